"""A resumed or rerun job never mixes results (issue 12, section 2): the run fingerprint
(:mod:`modeling_nt.fingerprint`) of every resumable job, killed runs rerun with other inputs, identical reruns
that resume to the uninterrupted result, and the property "resume == uninterrupted run" for embeddings."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pysam
import pytest
import torch
from conftest import assert_bad_input
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import embeddings as emb
from benchmarks import probing
from modeling_nt import NTConfig, NTForMaskedLM, NTModel
from modeling_nt import fingerprint as fp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _dna(count: int, low: int, high: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size)) for size in rng.integers(low, high, count)]


def _write_fasta(path: Path, sequences: list[str], prefix: str = "s") -> Path:
    path.write_text("".join(f">{prefix}{index}\n{sequence}\n" for index, sequence in enumerate(sequences)))
    return path


def _checkpoint(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    NTForMaskedLM(NTConfig.from_preset("tiny")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny checkpoints with the same config and different weights."""
    root = tmp_path_factory.mktemp("models")
    return _checkpoint(root / "a", 0), _checkpoint(root / "b", 1)


def _part_rows(folder: Path) -> list[int]:
    import pyarrow.parquet as pq

    return sorted(
        i for part in folder.glob("part-*.parquet") for i in pq.read_table(part)["index"].to_pylist()
    )


class _Killer:
    """Wraps ``_forward_windows``: raises KeyboardInterrupt (a killed job) once ``limit`` windows have run."""

    def __init__(self, limit: int) -> None:
        self.limit, self.windows, self.forward = limit, 0, emb._forward_windows

    def __call__(self, backbone, windows, *args):
        if self.windows + len(windows) > self.limit:
            raise KeyboardInterrupt("killed")
        self.windows += len(windows)
        return self.forward(backbone, windows, *args)


# ----------------------------------------------------------------------------- the fingerprint itself


def test_file_entry_is_size_and_sha256_of_the_content_and_ignores_the_path(tmp_path):
    data = b">a\nACGT\n" * 1000
    first = tmp_path / "a.fa"
    first.write_bytes(data)
    entry = fp.file_fingerprint(first)
    assert entry == {
        "kind": "file",
        "path": str(first),
        "size": 8000,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    moved = tmp_path / "moved.fa"
    shutil.copy(first, moved)
    run = fp.fingerprint_run(inputs={"--fasta": moved})
    assert run.differences(fp.fingerprint_run(inputs={"--fasta": first})) == []  # same content: same input
    first.write_bytes(data.replace(b"ACGT", b"ACGA", 1))  # same size, one base changed
    changed = fp.fingerprint_run(inputs={"--fasta": first})
    [difference] = changed.differences(fp.fingerprint_run(inputs={"--fasta": moved}))
    assert difference.startswith(
        f"--fasta: was {moved} (8000 bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}"
    )


def test_file_hash_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x" * 100)
    first = fp.file_sha256(path)
    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    assert fp.file_sha256(path) == first and opened == []  # hashed once per process
    path.write_bytes(b"y" * 101)
    opened.clear()
    assert fp.file_sha256(path) == hashlib.sha256(b"y" * 101).hexdigest() and opened == [path.resolve()]


def test_model_entries_checkpoint_preset_hub_and_loaded(checkpoints, tmp_path):
    a, b = checkpoints
    entry = fp.model_fingerprint(a)
    assert entry["kind"] == "checkpoint" and set(entry["weights"]) == {"model.safetensors"}
    assert entry["config_sha256"] == hashlib.sha256((a / "config.json").read_bytes()).hexdigest()
    assert (
        entry["weights"]["model.safetensors"]
        == hashlib.sha256((a / "model.safetensors").read_bytes()).hexdigest()
    )
    copy = shutil.copytree(a, tmp_path / "copy")
    assert fp.fingerprint_run(model=copy).differences(fp.fingerprint_run(model=a)) == []
    [difference] = fp.fingerprint_run(model=b).differences(fp.fingerprint_run(model=a))
    assert difference.startswith(f"--model: was {a} (config sha256 ") and f", now {b} (config" in difference
    assert fp.model_fingerprint("tiny") == {"kind": "preset", "name": "tiny"}
    with pytest.raises(FileNotFoundError, match="no such folder"):  # the loader's own error, before any work
        fp.model_fingerprint(tmp_path / "missing")
    torch.manual_seed(0)
    model = NTModel(NTConfig.from_preset("tiny"))
    loaded = fp.model_fingerprint(model)
    assert loaded["kind"] == "loaded" and loaded == fp.model_fingerprint(model)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[0, 0] += 1e-3  # one weight moves: another model
    assert fp.model_fingerprint(model)["weights_sha256"] != loaded["weights_sha256"]


def test_differences_name_each_changed_entry_on_one_line(tmp_path):
    recorded = fp.fingerprint_run(model="tiny", settings={"--layers": [1], "--pooling": "mean"})
    now = fp.fingerprint_run(
        model="tiny-v1", settings={"--layers": [2], "--pooling": "mean", "--dtype": "bf16"}
    )
    assert now.differences(recorded) == [
        '--dtype: was not given, now "bf16"',
        "--layers: was [1], now [2]",
        "--model: was preset tiny (random weights), now preset tiny-v1 (random weights)",
    ]
    record = fp.record_fingerprint(tmp_path / "run" / "fingerprint.json", recorded)
    assert json.loads(record.read_text()) == recorded  # JSON round trip
    with pytest.raises(fp.FingerprintMismatch) as refused:
        fp.check_fingerprint(record, now, partial=tmp_path / "run")
    message = str(refused.value)
    assert "\n" not in message and message.count(";") >= 2 and "delete" in message
    fp.check_fingerprint(record, now, started=False)  # nothing on disk to mix with: not refused
    fp.check_fingerprint(tmp_path / "absent.json", now, started=False)
    with pytest.raises(fp.FingerprintMismatch, match="without a record"):
        fp.check_fingerprint(tmp_path / "absent.json", now, started=True)


def test_content_entry_counts_records_and_hashes_every_value():
    one = fp.content_fingerprint(["a", "b"], ["ACGT", "GGCC"])
    assert one == {"kind": "content", "n": 2, "sha256": one["sha256"]}
    assert fp.content_fingerprint(["a", "b"], ["ACGT", "GGCA"])["sha256"] != one["sha256"]
    assert fp.content_fingerprint(np.array([0, 1]))["sha256"] == fp.content_fingerprint([0, 1])["sha256"]


# ----------------------------------------------------------------------------- nt embed


@pytest.fixture
def embed_case(tmp_path, checkpoints, monkeypatch, run_nt):
    """``nt embed`` with checkpoint a killed after 8 of 12 sequences (2 parts of 4): returns a rerun helper."""
    sequences = _dna(12, 30, 90, seed=3)
    fasta = _write_fasta(tmp_path / "in.fa", sequences)
    out = tmp_path / "emb.parquet"
    base = [
        "embed",
        "--fasta",
        fasta,
        "--out",
        out,
        "--layers",
        "1,2",
        "--chunk-size",
        "4",
        "--batch-size",
        "4",
    ]
    killer = _Killer(8)
    monkeypatch.setattr(emb, "_forward_windows", killer)
    assert run_nt(*base, "--model", checkpoints[0], "--no-progress").code == 130  # Ctrl-C: exit 130
    monkeypatch.setattr(emb, "_forward_windows", killer.forward)
    assert _part_rows(emb.parts_dir(out)) == sorted(emb.length_sorted(sequences)[:8]) and not out.exists()
    return {"base": base, "fasta": fasta, "out": out, "sequences": sequences, "killer": killer}


def test_embed_killed_then_rerun_with_another_model_is_refused(embed_case, checkpoints, run_nt):
    a, b = checkpoints
    before = _part_rows(emb.parts_dir(embed_case["out"]))
    result = run_nt(*embed_case["base"], "--model", b, "--no-progress")
    assert_bad_input(result, "--model: was", str(a), f"now {b}", "config sha256", "weights sha256")
    assert _part_rows(emb.parts_dir(embed_case["out"])) == before and not embed_case["out"].exists()


def test_embed_rerun_with_another_fasta_of_the_same_size_is_refused(embed_case, checkpoints, run_nt):
    other = _dna(12, 30, 90, seed=4)
    _write_fasta(embed_case["fasta"], other)  # same path, same number of records, other sequences
    result = run_nt(*embed_case["base"], "--model", checkpoints[0], "--no-progress")
    assert_bad_input(result, "--fasta: content changed", str(embed_case["fasta"]))
    assert len(_part_rows(emb.parts_dir(embed_case["out"]))) == 8 and not embed_case["out"].exists()


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--pooling", "cls", ['--pooling: was "mean", now "cls"']),
        ("--overlap", "32", ["--overlap: was 64, now 32"]),
        ("--dtype", "bf16", ['--dtype: was "fp32", now "bf16"']),
    ],
)
def test_embed_rerun_with_another_value_argument_is_refused(
    embed_case, checkpoints, run_nt, flag, value, words
):
    result = run_nt(*embed_case["base"], "--model", checkpoints[0], flag, value, "--no-progress")
    assert_bad_input(result, *words)


def test_embed_identical_rerun_resumes_to_the_uninterrupted_output(embed_case, checkpoints, run_nt, tmp_path):
    killer = _Killer(10**9)
    with mock.patch.object(emb, "_forward_windows", killer):
        assert run_nt(*embed_case["base"], "--model", checkpoints[0], "--no-progress").code == 0
    assert killer.windows == 4  # only the 4 unfinished sequences ran (one window each)
    straight = tmp_path / "straight.parquet"
    argv = ["embed", "--fasta", embed_case["fasta"], "--out", straight, "--layers", "1,2"]
    assert run_nt(*argv, "--model", checkpoints[0], "--no-progress").code == 0
    resumed_index, resumed = emb.read_embeddings(embed_case["out"])
    index, expected = emb.read_embeddings(straight)
    assert resumed_index.equals(index) and resumed_index["name"].tolist() == [f"s{i}" for i in range(12)]
    for layer in (1, 2):
        np.testing.assert_allclose(resumed[layer], expected[layer], atol=1e-6)
    assert not emb.parts_dir(embed_case["out"]).exists()


def test_refused_embed_leaves_nothing_that_blocks_the_corrected_rerun(tmp_path, run_nt):
    fasta = _write_fasta(tmp_path / "in.fa", _dna(3, 20, 40, seed=5))
    out = tmp_path / "emb.parquet"
    argv = ["embed", "--model", "tiny", "--fasta", fasta, "--out", out, "--no-progress"]
    assert_bad_input(run_nt(*argv, "--layers", "7"), "layer 7", "0..2")
    assert not emb.parts_dir(out).exists()
    assert run_nt(*argv, "--layers", "2").code == 0
    index, layers = emb.read_embeddings(out)
    assert index["name"].tolist() == ["s0", "s1", "s2"] and layers[2].shape == (3, 64)


def test_embed_parts_without_a_record_are_refused(embed_case, checkpoints, run_nt):
    (emb.parts_dir(embed_case["out"]) / fp.FINGERPRINT_FILE).unlink()  # parts of an older version
    result = run_nt(*embed_case["base"], "--model", checkpoints[0], "--no-progress")
    assert_bad_input(result, "without a record", "delete")


# ----------------------------------------------------------------------------- property: resume == uninterrupted

SHORT = 12  # max_position_embeddings: windows of 9 tokens, so longer sequences are cut into several windows
PROPERTY_NAMES = [f"r{i}" for i in range(9)]
PROPERTY_SEQUENCES = _dna(9, 5, 110, seed=7)


@pytest.fixture(scope="module")
def short_model() -> NTModel:
    torch.manual_seed(0)
    return NTModel(NTConfig.from_preset("tiny", max_position_embeddings=SHORT)).eval()


@pytest.fixture(scope="module")
def uninterrupted(short_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "emb.parquet"
    options = {"layers": [0, 2], "pooling": "mean", "overlap": 2, "progress": False}
    emb.embed_records(short_model, PROPERTY_NAMES, PROPERTY_SEQUENCES, out, **options)
    return emb.read_embeddings(out), options


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk_size=st.integers(1, 5),
    batch_size=st.integers(1, 4),
    kill_after=st.integers(0, 20),
    as_fasta=st.booleans(),
)
def test_resume_equals_uninterrupted_run(
    short_model, uninterrupted, chunk_size, batch_size, kill_after, as_fasta
):
    (index, expected), options = uninterrupted
    with tempfile.TemporaryDirectory() as folder:
        out, fasta = Path(folder) / "emb.parquet", Path(folder) / "in.fa"
        fasta.write_text(
            "".join(f">{n}\n{s}\n" for n, s in zip(PROPERTY_NAMES, PROPERTY_SEQUENCES, strict=True))
        )

        def run() -> None:
            run_options = {**options, "chunk_size": chunk_size, "batch_size": batch_size}
            if as_fasta:
                emb.embed_fasta(short_model, fasta, out, **run_options)
            else:
                emb.embed_records(short_model, PROPERTY_NAMES, PROPERTY_SEQUENCES, out, **run_options)

        killer = _Killer(kill_after)
        with mock.patch.object(emb, "_forward_windows", killer):
            try:
                run()
            except KeyboardInterrupt:
                done = _part_rows(emb.parts_dir(out))
                assert len(done) == len(set(done)) and len(done) % chunk_size == 0
                killer.limit = 10**9
                run()  # the same call again resumes
        resumed_index, resumed = emb.read_embeddings(out)
        assert resumed_index.equals(index)
        for layer in (0, 2):
            np.testing.assert_allclose(resumed[layer], expected[layer], atol=1e-5)


# ----------------------------------------------------------------------------- nt score-variants


def _genome(folder: Path) -> tuple[Path, str]:
    sequence = _dna(1, 3000, 3001, seed=11)[0]
    fasta = folder / "genome.fa"
    fasta.write_text(">chr1\n" + "\n".join(sequence[i : i + 60] for i in range(0, len(sequence), 60)) + "\n")
    pysam.faidx(str(fasta))
    return fasta, sequence


def _vcf(path: Path, sequence: str, positions: range) -> Path:
    rows = [
        f"chr1\t{pos}\t.\t{sequence[pos - 1]}\t{'T' if sequence[pos - 1] != 'T' else 'G'}\t.\tPASS\t."
        for pos in positions
    ]
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(header + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def variants_case(tmp_path, checkpoints, run_nt):
    """A scoring run with checkpoint a killed after 4 of 10 rows (the TSV is flushed row chunk by chunk)."""
    fasta, sequence = _genome(tmp_path)
    vcf = _vcf(tmp_path / "in.vcf", sequence, range(300, 2800, 250))
    out = tmp_path / "scores.tsv"
    base = [
        "score-variants",
        "--fasta",
        fasta,
        "--vcf",
        vcf,
        "--out",
        out,
        "--window",
        "120",
        "--scores",
        "cosine,llr",
    ]
    assert run_nt(*base, "--model", checkpoints[0]).code == 0
    uninterrupted = out.read_text()
    lines = uninterrupted.splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][:7])  # killed while writing the 5th row
    return {"base": base, "out": out, "fasta": fasta, "vcf": vcf, "sequence": sequence, "full": uninterrupted}


def test_score_variants_rerun_with_another_model_or_input_is_refused(
    variants_case, checkpoints, run_nt, tmp_path
):
    a, b = checkpoints
    kept = variants_case["out"].read_text()
    assert_bad_input(run_nt(*variants_case["base"], "--model", b), "--model: was", str(a), f"now {b}")
    other_vcf = _vcf(
        tmp_path / "other.vcf", variants_case["sequence"], range(310, 2810, 250)
    )  # also 10 records
    argv = [other_vcf if arg == variants_case["vcf"] else arg for arg in variants_case["base"]]
    assert_bad_input(run_nt(*argv, "--model", a), "--vcf: was", "other.vcf")
    assert_bad_input(
        run_nt(*variants_case["base"], "--model", a, "--window", "240"), "--window: was 120, now 240"
    )
    assert variants_case["out"].read_text() == kept  # nothing written by the refused runs


def test_score_variants_identical_rerun_resumes_to_the_uninterrupted_output(
    variants_case, checkpoints, run_nt
):
    result = run_nt(*variants_case["base"], "--model", checkpoints[0])
    assert result.code == 0 and "6 alleles scored" in result.out and "4 already done" in result.out
    with variants_case["out"].open() as resumed_handle:
        resumed = list(csv.DictReader(resumed_handle, delimiter="\t"))
    expected = list(csv.DictReader(variants_case["full"].splitlines(), delimiter="\t"))
    assert [row["pos"] for row in resumed] == [row["pos"] for row in expected]
    for row, reference in zip(resumed, expected, strict=True):
        assert float(row["llr"]) == pytest.approx(float(reference["llr"]), rel=1e-4, abs=1e-5)


# ----------------------------------------------------------------------------- nt probe / finetune / bpnet


def _write_task(folder: Path, seed: int, n_train: int = 24, n_test: int = 8) -> Path:
    """A GUE-layout task: GC-rich (1) vs AT-rich (0) sequences of 60 bp."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("dev", n_test), ("test", n_test)):
        rows = []
        for index in range(count):
            label = index % 2
            weights = [0.1, 0.1, 0.4, 0.4] if label else [0.4, 0.4, 0.1, 0.1]
            rows.append(f"{''.join(rng.choice(list('ATGC'), 60, p=weights))},{label}\n")
        (folder / f"{split}.csv").write_text("sequence,label\n" + "".join(rows))
    return folder


def _built(folder: Path, cache: Path, splits: tuple[str, ...] | None = None) -> None:
    """Build the task's dataset beforehand (``datasets`` prints progress lines while it builds one)."""
    from benchmarks.builders import load_task

    load_task("gue", folder.name, data_dir=folder, cache_dir=cache, splits=splits)


def _once_then(error: type[BaseException], real):
    """A stand-in for ``real`` that runs it once, then raises ``error`` (a job killed after one unit)."""
    calls = []

    def wrapped(*args, **kwargs):
        if calls:
            raise error("killed")
        calls.append(1)
        return real(*args, **kwargs)

    return wrapped


def test_probe_killed_then_rerun_is_refused_or_resumes_to_the_uninterrupted_result(
    tmp_path, checkpoints, run_nt, monkeypatch
):
    from benchmarks.results import load_results

    a, b = checkpoints
    task = _write_task(tmp_path / "gc", seed=0)
    base = ["probe", "--benchmark", "gue", "--task", "gc", "--cache-dir", tmp_path / "cache", "--folds", "2"]
    base += ["--trials", "1", "--layers", "1,2", "--probes", "probe", "--no-baseline"]
    out = tmp_path / "probe.json"
    real = probing.cross_validate_probe
    monkeypatch.setattr(probing, "cross_validate_probe", _once_then(KeyboardInterrupt, real))
    assert run_nt(*base, "--data-dir", task, "--model", a, "--out", out).code == 130  # Ctrl-C: exit 130
    monkeypatch.setattr(probing, "cross_validate_probe", real)
    work = tmp_path / "probe_work"
    assert [r.layer for r in load_results(work / "probing_gc.json")] == [1] and not out.exists()
    assert_bad_input(run_nt(*base, "--data-dir", task, "--model", b, "--out", out), "--model: was", str(a))
    other = _write_task(tmp_path / "other" / "gc", seed=1)  # the same sizes, other sequences
    _built(other, tmp_path / "cache")
    assert_bad_input(
        run_nt(*base, "--data-dir", other, "--model", a, "--out", out), "task data: was 24 records", "now 24"
    )
    assert_bad_input(
        run_nt(*base, "--data-dir", task, "--model", a, "--out", out, "--seed", "3"), "--seed: was 0, now 3"
    )
    assert run_nt(*base, "--data-dir", task, "--model", a, "--out", out).code == 0
    straight = tmp_path / "straight.json"
    assert run_nt(*base, "--data-dir", task, "--model", a, "--out", straight).code == 0
    resumed, expected = load_results(out), load_results(straight)
    assert [(r.layer, r.fold_scores, r.test_score) for r in resumed] == [
        (r.layer, r.fold_scores, r.test_score) for r in expected
    ]


def test_finetune_killed_then_rerun_is_refused_or_resumes(tmp_path, checkpoints, run_nt, monkeypatch):
    from benchmarks import finetune
    from benchmarks.results import load_results

    a, b = checkpoints
    task = _write_task(tmp_path / "gc", seed=0)
    base = [
        "finetune",
        "--benchmark",
        "gue",
        "--task",
        "gc",
        "--cache-dir",
        tmp_path / "cache",
        "--folds",
        "2",
    ]
    base += ["--steps", "2", "--data-dir", task, "--out", tmp_path / "ft.json"]
    real = finetune.run_fold
    monkeypatch.setattr(finetune, "run_fold", _once_then(KeyboardInterrupt, real))
    assert run_nt(*base, "--model", a).code == 130  # Ctrl-C: exit 130
    monkeypatch.setattr(finetune, "run_fold", real)
    fold_0 = tmp_path / "ft_work" / "gc_ia3" / "fold_0" / "score.json"
    kept = fold_0.read_text()
    assert_bad_input(run_nt(*base, "--model", b), "--model: was", str(a), str(b))
    assert_bad_input(run_nt(*base, "--model", a, "--lr", "0.01"), "--lr: was 0.003, now 0.01")
    assert fold_0.read_text() == kept
    monkeypatch.setattr(finetune, "run_fold", _once_then(AssertionError, real))  # only fold 1 may run
    assert run_nt(*base, "--model", a).code == 0
    [result] = load_results(tmp_path / "ft.json")
    assert result.fold_scores[0] == json.loads(kept)["eval_score"] and len(result.fold_scores) == 2


def test_bpnet_killed_then_rerun_is_refused_or_resumes(tmp_path, run_nt, monkeypatch):
    from benchmarks import bpnet
    from benchmarks.results import load_results

    task = _write_task(tmp_path / "gc", seed=0, n_train=40)
    out = tmp_path / "bp.json"
    base = ["bpnet", "--benchmark", "gue", "--task", "gc", "--cache-dir", tmp_path / "cache", "--out", out]
    base += ["--folds", "2", "--no-test", "--max-epochs", "1", "--threads", "1", "--quiet"]
    real = bpnet.train_and_score
    monkeypatch.setattr(bpnet, "train_and_score", _once_then(KeyboardInterrupt, real))
    assert run_nt(*base, "--data-dir", task).code == 130  # Ctrl-C: exit 130
    monkeypatch.setattr(bpnet, "train_and_score", real)
    state = out.with_name(out.name + ".progress.json")
    assert set(json.loads(state.read_text())["runs"]) == {"fold 0"}
    other = _write_task(tmp_path / "other" / "gc", seed=1, n_train=40)
    _built(other, tmp_path / "cache", ("train",))
    assert_bad_input(run_nt(*base, "--data-dir", other), "train data: was 40 records", "now 40 records")
    assert_bad_input(run_nt(*base, "--data-dir", task, "--lr", "0.01"), "--lr: was 0.002, now 0.01")
    assert_bad_input(run_nt(*base, "--data-dir", task, "--rc-augment"), "--rc-augment: was false, now true")
    fold_0 = json.loads(state.read_text())["runs"]["fold 0"]
    assert run_nt(*base, "--data-dir", task).code == 0
    [result] = load_results(out)
    assert result.fold_scores[0] == fold_0["score"] and len(result.fold_scores) == 2


# ----------------------------------------------------------------------------- nt analyze


def test_analyze_interrupted_outputs_are_redone_or_refused_never_mixed(tmp_path, checkpoints, run_nt):
    a, b = checkpoints
    fasta, _ = _genome(tmp_path)
    out = tmp_path / "recon"
    base = ["analyze", "reconstruction", "--fasta", fasta, "--region", "chr1:1-60", "--masking", "every"]
    base += ["--out", out]
    assert run_nt(*base, "--model", a).code == 0
    finished = (out / "reconstruction.json").read_text()
    assert_bad_input(run_nt(*base, "--model", a), "finished analysis", "--overwrite")
    (out / "reconstruction.png").unlink()  # killed before its last output
    assert_bad_input(run_nt(*base, "--model", b), "--model: was", str(a), f"now {b}")
    assert_bad_input(run_nt(*base, "--model", a, "--seed", "2"), "--seed: was 0, now 2")
    assert (out / "reconstruction.json").read_text() == finished
    assert run_nt(*base, "--model", a).code == 0  # the same run: redone
    assert (out / "reconstruction.png").is_file() and (out / "reconstruction.json").read_text() == finished
    assert run_nt(*base, "--model", b, "--overwrite").code == 0  # asked for: every output replaced
    assert json.loads((out / "fingerprint_reconstruction.json").read_text())["--model"]["path"] == str(b)
    assert (out / "reconstruction.json").read_text() != finished


# ----------------------------------------------------------------------------- nt pretrain


def _pretrain_config(folder: Path, **overrides) -> dict:
    from conftest import BUNDLED_DATA

    values = {
        "preset": "tiny",
        "train_genomes": [str(BUNDLED_DATA / "chr20_GRCh37_slice.fa.gz")],
        "held_out": ["20:30000001-32000000:1980001-2000000"],
        "chunk_length": 360,
        "overlap": 10,
        "max_offset": 20,
        "min_length": 60,
        "max_tokens": 64,
        "tokens_per_update": None,
        "gradient_accumulation_steps": 1,
        "warmup_steps": 4,
        "max_steps": 8,
        "save_steps": 4,
        "report_to": "none",
        "output_dir": str(folder),
    }
    return {**values, **overrides}


def _killed_pretraining(folder: Path) -> None:
    """What a pretraining run killed after its first checkpoint leaves: its record and ``checkpoint-4``."""
    from modeling_nt.pretraining import PretrainingConfig
    from modeling_nt.pretraining.trainer import pretraining_run_fingerprint

    config = PretrainingConfig.from_mapping(_pretrain_config(folder))
    fp.record_fingerprint(folder / fp.FINGERPRINT_FILE, pretraining_run_fingerprint(config))
    (folder / "checkpoint-4").mkdir()
    (folder / "checkpoint-4" / "trainer_state.json").write_text("{}")


def test_pretrain_resume_with_another_setting_or_genome_is_refused(tmp_path):
    from modeling_nt.pretraining import run_pretraining

    run = tmp_path / "run"
    _killed_pretraining(run)
    with pytest.raises(fp.FingerprintMismatch, match="max_steps: was 8, now 9"):
        run_pretraining(_pretrain_config(run, max_steps=9, resume=True))
    genome = _write_fasta(tmp_path / "other.fa", _dna(2, 700, 800, seed=1))
    with pytest.raises(fp.FingerprintMismatch, match=r"train_genomes\[0\]\.path: was .*chr20_GRCh37_slice"):
        run_pretraining(_pretrain_config(run, train_genomes=[str(genome)], resume=True))
    with pytest.raises(fp.FingerprintMismatch, match="preset: was preset tiny"):
        run_pretraining(_pretrain_config(run, preset="tiny-v1", resume=True))
    assert sorted(path.name for path in run.iterdir()) == ["checkpoint-4", "fingerprint.json"]


def test_pretrain_refused_by_validation_records_nothing(tmp_path):
    from modeling_nt.pretraining import run_pretraining

    run = tmp_path / "run"
    with pytest.raises(ValueError, match="chr99"):
        run_pretraining(_pretrain_config(run, held_out=["chr99:1-100"]))
    assert not (run / fp.FINGERPRINT_FILE).exists()


def test_pretrain_fingerprint_leaves_out_only_what_does_not_change_the_weights(tmp_path):
    from modeling_nt.pretraining import PretrainingConfig
    from modeling_nt.pretraining.trainer import pretraining_run_fingerprint

    def of(**overrides):
        return pretraining_run_fingerprint(
            PretrainingConfig.from_mapping(_pretrain_config(tmp_path, **overrides))
        )

    base = of()
    assert of(logging_steps=3, save_steps=2, output_dir=str(tmp_path / "elsewhere")).differences(base) == []
    assert of(seed=1).differences(base) == ["seed: was 0, now 1"]
    assert of(peak_lr=1e-3).differences(base) == ["peak_lr: was 0.0001, now 0.001"]
    assert base["train_genomes[0].path"]["kind"] == "file"
