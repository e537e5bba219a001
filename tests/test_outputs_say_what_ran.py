"""Outputs say what was run: fold counts on the card, test-only scores marked, model names in results."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from benchmarks.cli import main as nt
from benchmarks.leaderboard import TEST_ONLY_LEGEND, evaluation_note, render_model_card, write_leaderboard
from benchmarks.results import BenchmarkResult, load_results, model_name_of

MODEL = "nt-v2-50m-hf"


def demo_like_results() -> list[BenchmarkResult]:
    """What `nt demo` writes: probes with 5 folds, fine-tuning with 3, BPNet on the test split only."""
    return [
        BenchmarkResult(MODEL, "H3", "original", "probe", fold_scores=[0.5, 0.6, 0.7, 0.6, 0.6], layer=2),
        BenchmarkResult(MODEL, "H3", "original", "full", fold_scores=[0.7, 0.8, 0.9], test_score=0.75),
        BenchmarkResult(MODEL, "H4", "original", "probe", test_score=0.42, layer=1),
        BenchmarkResult("BPNet", "H3", "original", "bpnet", test_score=0.3),
    ]


def test_card_fold_counts_come_from_the_results(tmp_path):
    card = render_model_card(demo_like_results(), MODEL, tmp_path).read_text()
    assert "10 cross-validation" not in card and "10-fold CV" not in card
    assert (
        "mean ± 2 s.d. over the cross-validation folds of the training split: 3 folds (full); 5 folds (probe); "
        "†: scored on the test split only, no cross-validation (probe)" in card
    )
    assert "MCC (5-fold CV mean)" in card and "MCC (3-fold CV mean)" in card


def test_card_with_one_fold_count_names_it():
    five = [BenchmarkResult(MODEL, "H3", "original", m, fold_scores=[0.5] * 5) for m in ("probe", "ia3")]
    assert evaluation_note(five) == (
        "Scores of this model on the downstream benchmark (mean ± 2 s.d. over 5 cross-validation folds of the "
        "training split; best layer for probes), from `nt leaderboard`."
    )
    mixed = [*five, BenchmarkResult(MODEL, "H4", "original", "probe", fold_scores=[0.5] * 10)]
    assert "5 folds (ia3); 5 or 10 folds (probe)" in evaluation_note(mixed)


def test_test_only_scores_are_marked_in_markdown_csv_and_heatmap(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    paths = write_leaderboard(demo_like_results(), tmp_path)
    markdown = paths["md"].read_text()
    assert "| nt-v2-50m-hf (probe) | 0.600 ± 0.141 (L2) | 0.420 † | 0.510 |" in markdown
    assert "| BPNet (bpnet) | 0.300 † |  | 0.300 † |" in markdown
    assert "| nt-v2-50m-hf (full) | 0.800 ± 0.200 |  | 0.800 |" in markdown
    assert f"\n{TEST_ONLY_LEGEND}\n" in markdown
    with paths["csv"].open() as handle:
        rows = {(row["model"], row["task"], row["method"]): row for row in csv.DictReader(handle)}
    assert {key: (row["score_source"], row["n_folds"], float(row["score"])) for key, row in rows.items()} == {
        (MODEL, "H3", "probe"): ("cv-mean", "5", pytest.approx(0.6)),
        (MODEL, "H3", "full"): ("cv-mean", "3", pytest.approx(0.8)),
        (MODEL, "H4", "probe"): ("test-only", "0", 0.42),
        ("BPNet", "H3", "bpnet"): ("test-only", "0", 0.3),
    }
    (figure,) = figures
    cell_texts = {text.get_text() for axis in figure.axes for text in axis.texts}
    assert {"0.42†", "0.30†", "0.60", "0.80"} <= cell_texts
    assert "0.60†" not in cell_texts and "0.80†" not in cell_texts
    assert TEST_ONLY_LEGEND in {text.get_text() for text in figure.texts}


def test_cv_only_results_carry_no_legend(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    paths = write_leaderboard(demo_like_results()[:2], tmp_path)
    assert "†" not in paths["md"].read_text()
    assert not figures[0].texts


# ----------------------------------------------------------------------------- model names


def _checkpoint(folder: Path, **config_fields) -> Path:
    """A tiny saved masked-LM checkpoint (random weights) with the given config fields."""
    from modeling_nt import NTConfig, NTForMaskedLM
    from modeling_nt.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(NTForMaskedLM(NTConfig.from_preset("tiny", **config_fields)), folder)


def _config_only(folder: Path, **fields) -> Path:
    """A folder holding only a ``config.json`` (the name rules read nothing else)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "nucleotide_transformer", **fields}))
    return folder


def test_model_name_rules(tmp_path):
    from modeling_nt import NTConfig, NTModel

    recorded = _config_only(tmp_path / "anything" / "final", model_name="nt-chr20-64")
    unnamed = _checkpoint(tmp_path / "chr20-run" / "final")
    step = _config_only(tmp_path / "chr20-run" / "checkpoint-40", model_name=None)
    plain = _config_only(tmp_path / "my-nt")
    assert model_name_of(recorded) == "nt-chr20-64"
    assert model_name_of(str(unnamed)) == "chr20-run"  # not "final"
    assert model_name_of(step) == "chr20-run"
    assert model_name_of(plain) == "my-nt"
    assert model_name_of("tiny") == "tiny"
    assert model_name_of("InstaDeepAI/nucleotide-transformer-v2-50m-multi-species") == (
        "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species"
    )
    loaded = NTModel.from_pretrained(unnamed)
    assert model_name_of(loaded) == model_name_of(loaded.config) == "chr20-run"
    loaded.config.model_name = "given"
    assert model_name_of(loaded) == "given"
    assert model_name_of(NTModel(NTConfig.from_preset("tiny"))) == "NTModel"


def test_probe_results_carry_the_recorded_name_and_analyze_the_given_one(tmp_path):
    from test_probing import gc_task

    checkpoint = _checkpoint(tmp_path / "runs" / "final", model_name="nt-chr20-64")
    folder = tmp_path / "task"
    folder.mkdir()
    task = gc_task(n_train=24, n_test=8)
    for split in ("train", "dev", "test"):
        task["test" if split == "dev" else split].to_pandas()[["sequence", "label"]].to_csv(
            folder / f"{split}.csv", index=False
        )
    out = tmp_path / "probe.json"
    argv = [
        "probe",
        "--model",
        str(checkpoint),
        "--benchmark",
        "gue",
        "--task",
        "gc",
        "--data-dir",
        str(folder),
    ]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--folds", "2", "--trials", "1"]
    assert nt([*argv, "--layers", "1", "--probes", "probe", "--no-baseline"]) == 0
    assert [(r.model, r.method, r.layer) for r in load_results(out)] == [("nt-chr20-64", "probe", 1)]

    fasta = tmp_path / "small.fa"
    fasta.write_text(">chr1\n" + "ACGTTGCA" * 20 + "\n")
    analysis = tmp_path / "reconstruction"
    argv = ["analyze", "reconstruction", "--model", str(checkpoint), "--model-name", "my NT", "--fasta",
            str(fasta), "--region", "chr1:1-60", "--masking", "every", "--out", str(analysis)]  # fmt: skip
    assert nt(argv) == 0
    assert json.loads((analysis / "reconstruction.json").read_text())["model"] == "my NT"


def test_score_variants_evaluation_names_the_model(tmp_path):
    fasta = tmp_path / "ref.fa"
    sequence = "ACGTTGCAAC" * 30
    fasta.write_text(">chr1\n" + sequence + "\n")
    positions = [101, 131, 161, 191]
    alt = {"A": "C", "C": "G", "G": "T", "T": "A"}
    vcf = tmp_path / "in.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=300>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + "".join(f"chr1\t{p}\t.\t{sequence[p - 1]}\t{alt[sequence[p - 1]]}\t.\t.\t.\n" for p in positions)
    )
    labels = tmp_path / "labels.tsv"
    labels.write_text(
        "chrom\tpos\tref\talt\tlabel\n"
        + "".join(
            f"chr1\t{p}\t{sequence[p - 1]}\t{alt[sequence[p - 1]]}\t{i % 2}\n"
            for i, p in enumerate(positions)
        )
    )
    out = tmp_path / "scores.tsv"
    argv = ["score-variants", "--model", "tiny", "--fasta", str(fasta), "--vcf", str(vcf), "--out", str(out)]
    assert nt([*argv, "--window", "60", "--scores", "cosine", "--labels", str(labels)]) == 0
    assert json.loads((tmp_path / "scores.eval.json").read_text())["model"] == "tiny"
    with (tmp_path / "scores.eval.tsv").open() as handle:
        assert {row["model"] for row in csv.DictReader(handle, delimiter="\t")} == {"tiny"}


# ----------------------------------------------------------------------------- pretraining output


def assert_final_says_what_ran(final: Path, trained_max_tokens: int, run_name: str) -> None:
    """``nt pretrain``'s ``final/`` (checked in tests/test_pretrain_run.py, on its short run): the tokenizer
    loads with AutoTokenizer and gives our ids; the config records the trained context and the run's name."""
    from transformers import AutoTokenizer

    from modeling_nt import NTConfig
    from tokenization import build_tokenizer

    sequences = ["ACGTACGGT", "TTTTTTNACGTA"]
    loaded = AutoTokenizer.from_pretrained(final)(sequences)["input_ids"]
    # <cls>=3, 6-mers ACGTAC and TTTTTT, single letters A C G T N = 4102..4106 (NT_SPEC section 1)
    assert loaded == build_tokenizer(version="v2")(sequences)["input_ids"]
    assert [row[0] for row in loaded] == [3, 3] and loaded[0][2:] == [4105, 4105, 4103]
    config = NTConfig.from_pretrained(final)
    assert config.trained_max_tokens == trained_max_tokens
    assert config.max_tokens == 2048  # what the architecture accepts is unchanged
    assert config.model_name == run_name and model_name_of(final) == run_name


def test_trainer_progress_lines_in_a_log():
    """The step lines `nt pretrain` writes when stderr is a file, from Trainer callback events."""
    import io
    from types import SimpleNamespace

    from benchmarks.progress import trainer_progress_callback

    stream = io.StringIO()
    callback = trainer_progress_callback("pretrain", stream=stream, min_interval=0)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=8, global_step=4)  # resumed at step 4
    callback.on_train_begin(None, state, None)
    for step in (5, 6, 7, 8):
        state.global_step = step
        callback.on_step_end(None, state, None)
    callback.on_train_end(None, state, None)
    lines = [line.split("] ", 1)[1].split(" 00:")[0] for line in stream.getvalue().splitlines()]
    assert lines == [f"pretrain: {step}/8 steps ({100 * step // 8}%)" for step in (5, 6, 7, 8)]
