"""The `nt` commands beyond embed / score-variants / probe with an NTv3 model (preset tiny-v3: 3 downsamples, so
inputs are multiples of 8 bases; random weights): `nt analyze reconstruction|elements|attention|scaling`,
`nt tokenize --version v3`, `nt push --dry-run`, `nt leaderboard` and the v3 model card, the run fingerprint and
the model name. Values are checked against hand computations from the model's own outputs."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import torch

from benchmarks.analysis.annotation import LabelledWindow
from benchmarks.results import BenchmarkResult, model_name_of, save_results
from modeling_nt import NTModel, NTv3ForMaskedLM
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.fingerprint import file_sha256, model_fingerprint
from modeling_nt.loading import load_model, preset_config
from tokenization import ntv3_vocabulary

VOCAB = ntv3_vocabulary()
TOKEN_OF = {index: token for token, index in VOCAB.items()}
CONTIG = "".join(random.Random(11).choice("ACGT") for _ in range(40))


def _dna(length: int, seed: int) -> str:
    return "".join(random.Random(seed).choice("ACGT") for _ in range(length))


def _ids(sequence: str) -> torch.Tensor:
    return torch.tensor([[VOCAB[base] for base in sequence]])


def _rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A saved tiny-v3 masked LM (seed 2): the CLI and the hand computations read the same weights."""
    model = load_model("tiny-v3", NTv3ForMaskedLM, seed=2)
    return save_checkpoint(model, tmp_path_factory.mktemp("ntv3") / "tiny_v3_mlm")


@pytest.fixture(scope="module")
def mlm(checkpoint: Path) -> NTv3ForMaskedLM:
    return load_model(checkpoint, NTv3ForMaskedLM).eval()


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    fasta = tmp_path_factory.mktemp("genome") / "g.fa"
    fasta.write_text(f">chr1\n{CONTIG}\n")
    pysam.faidx(str(fasta))
    return fasta


# ------------------------------------------------------------------------------ nt analyze reconstruction


def test_reconstruction_of_every_base_equals_the_hand_computation(run_nt, checkpoint, mlm, genome, tmp_path):
    """12 bases (chr1:3-14) masked one at a time in a window N-padded to 16: per base, the arg-max and the
    negative log-likelihood of the true base from the model's logits at that position."""
    out = tmp_path / "rc"
    argv = ["analyze", "reconstruction", "--model", checkpoint, "--fasta", genome, "--region", "chr1:3-14"]
    result = run_nt(*argv, "--masking", "every", "--out", out)
    assert result.code == 0, result.err
    window = CONTIG[2:14]
    expected = []
    for position in range(12):
        ids = _ids(window + "NNNN")
        truth = int(ids[0, position])
        ids[0, position] = VOCAB["<mask>"]
        with torch.no_grad():
            log_probs = torch.log_softmax(mlm(input_ids=ids).logits[0, position], dim=-1)
        predicted = int(log_probs.argmax())
        expected.append(
            (2 + position, window[position], TOKEN_OF[predicted], predicted == truth, -log_probs[truth])
        )
    rows = _rows(out / "masked_tokens.csv")
    assert [(int(r["position"]), r["token"], r["predicted"], r["correct"] == "True") for r in rows] == [
        row[:4] for row in expected
    ]
    np.testing.assert_allclose(
        [float(r["nll"]) for r in rows], [float(row[4]) for row in expected], atol=1e-5
    )
    summary = json.loads((out / "reconstruction.json").read_text())
    overall = summary["groups"][0]
    assert overall["n_masked"] == 12
    assert overall["accuracy"] == pytest.approx(sum(row[3] for row in expected) / 12)
    assert overall["perplexity"] == pytest.approx(
        math.exp(np.mean([float(row[4]) for row in expected])), rel=1e-5
    )
    assert (summary["chance_accuracy"], summary["uniform_perplexity"]) == (0.25, 11)
    assert summary["model"] == "tiny_v3_mlm"
    recorded = json.loads((out / "fingerprint_reconstruction.json").read_text())["--model"]
    assert recorded["kind"] == "checkpoint"
    assert recorded["weights"] == {"model.safetensors": file_sha256(checkpoint / "model.safetensors")}


def test_random_masking_never_draws_the_padding_and_variants_mask_their_base(genome, tmp_path):
    from benchmarks.analysis.reconstruction import variant_requests, window_requests
    from benchmarks.variants.alleles import ReferenceGenome

    config = preset_config("tiny-v3")
    window = LabelledWindow("chr1", 0, 13, "all", CONTIG[:13], np.zeros(13, dtype=np.int64))
    (request,) = window_requests([window], ["all"], config, mode="random", mask_rate=1.0)
    assert request.ids.tolist() == [VOCAB[base] for base in CONTIG[:13]] + [VOCAB["N"]] * 3
    assert request.positions == list(range(13))  # every base, none of the 3 N of the padding
    assert [record["position"] for record in request.records] == list(range(13))
    vcf = tmp_path / "v.vcf"
    alt = "A" if CONTIG[20] != "A" else "C"
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    vcf.write_text(header + f"chr1\t21\t.\t{CONTIG[20]}\t{alt}\t.\tPASS\t.\n")
    (variant,) = variant_requests(vcf, ReferenceGenome(genome), config, window_bp=10)
    # the window of 10 bases centred on 0-based 20 starts at 15; base 20 is input position 5 (no <cls>)
    assert variant.positions == [5]
    assert variant.ids.tolist() == [VOCAB[base] for base in CONTIG[15:25]] + [VOCAB["N"]] * 6


def test_passes_hold_inputs_of_one_length_only():
    from benchmarks.generation import same_width_batches, token_rules

    lengths = [16, 16, 24, 16, 16, 16]
    assert same_width_batches(lengths, 2, token_rules(preset_config("tiny-v3"))) == [[0, 1], [2], [3, 4], [5]]
    assert same_width_batches(lengths, 2, token_rules(preset_config("tiny"))) == [[0, 1], [2, 3], [4, 5]]


# ------------------------------------------------------------------------------------ nt analyze elements


def test_elements_features_are_the_mean_states_of_every_layer(run_nt, checkpoint, tmp_path):
    from benchmarks.analysis.elements import layer_features

    sequences = [_dna(13 + index, 20 + index) for index in range(6)]
    backbone = load_model(checkpoint, NTModel).eval()
    features = layer_features(backbone, sequences, None)
    assert list(features) == ["layer 0", "layer 1", "layer 2", "layer 3", "6-mer counts"]
    sequence = sequences[0]  # 13 bases: padded with 3 N to two blocks of 8
    with torch.no_grad():
        output = backbone(_ids(sequence + "NNN"), output_hidden_states=True)
    np.testing.assert_allclose(features["layer 3"][0], output.last_hidden_state[0, :13].mean(0), atol=1e-5)
    core = (output.hidden_states[2][0, 0] * 8 + output.hidden_states[2][0, 1] * 5) / 13  # bases per block
    np.testing.assert_allclose(features["layer 2"][0], core, atol=1e-5)
    table = tmp_path / "s.tsv"
    table.write_text("sequence\tclass\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(sequences)))
    out = tmp_path / "el"
    result = run_nt(
        "analyze", "elements", "--model", checkpoint, "--sequences", table, "--folds", "2", "--out", out
    )
    assert result.code == 0, result.err
    scores = [row["feature"] for row in _rows(out / "element_scores.csv")]
    assert scores == ["layer 0", "layer 1", "layer 2", "layer 3", "6-mer counts"]


# ----------------------------------------------------------------------------------- nt analyze attention


def test_attention_shares_between_core_blocks_equal_the_hand_computation(checkpoint):
    from benchmarks.analysis.attention import attention_shares

    labels = np.array([0] * 10 + [1] * 10)  # blocks [0, 8) -> 0, [8, 16) -> 1, [16, 20) + 4 N -> 1
    windows = [
        LabelledWindow("chr1", 0, 20, "mixed", _dna(20, 30), labels),
        LabelledWindow("chr1", 0, 20, "mixed", _dna(20, 31), labels),
        LabelledWindow("chr1", 0, 9, "mixed", _dna(9, 32), labels[5:14]),  # blocks 8 + 1 real: 0, 1
    ]
    shares = attention_shares(checkpoint, windows, ["a", "b"], batch_size=4, progress=False)
    assert shares.unit == "block of 8 bases"
    assert shares.observed.shape == (3, 2, 2, 2)
    np.testing.assert_allclose(shares.expected, [[1 / 3, 2 / 3], [1 / 3, 2 / 3], [1 / 2, 1 / 2]])
    backbone = load_model(checkpoint, NTModel).eval()
    backbone.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = backbone(_ids(windows[0].sequence + "NNNN"), output_attentions=True).attentions
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    for layer in range(2):
        mass = attentions[layer][0] @ onehot  # [heads, 3 blocks, 2 classes]: every block is a real one
        expected = (mass / mass.sum(-1, keepdim=True)).mean(1)
        np.testing.assert_allclose(shares.observed[0, layer], expected.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------------------ nt tokenize


def test_tokenize_v3_sequence_and_fasta(run_nt, tmp_path):
    result = run_nt("tokenize", "--sequence", "acgTNu", "--version", "v3")
    assert result.code == 0, result.err
    assert "tokens: A C G T N T" in result.out and "ids:    6 8 9 7 10 7" in result.out
    fasta = tmp_path / "in.fa"
    fasta.write_text(">r1\nACGTACGTAA\n>r2\nNNCC\n")
    out = tmp_path / "t.parquet"
    result = run_nt("tokenize", fasta, "--version", "v3", "--chunk-bp", "8", "--out", out)
    assert result.code == 0, result.err
    assert "records         2   chunks 3   bp 14" in result.out
    assert "tokens          14 (one per base, nothing added)" in result.out
    assert "bases           A 4, C 4, G 2, T 2, N 2" in result.out
    frame = pd.read_parquet(out)
    assert frame["start"].tolist() == [0, 8, 0]
    assert [np.asarray(ids).tolist() for ids in frame["input_ids"]] == [
        [6, 8, 9, 7, 6, 8, 9, 7],
        [6, 6],
        [10, 10, 8, 8],
    ]


# ------------------------------------------------------------------------------- nt push, cards, leaderboard


@pytest.mark.parametrize("preset", ["tiny-v3", "tiny-v3-post"])
def test_push_dry_run_stages_a_loadable_ntv3_folder_with_its_tokenizer(run_nt, tmp_path, preset):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from modeling_nt import NTv3ForTracksPrediction

    post = preset == "tiny-v3-post"
    torch.manual_seed(3)
    model = (
        NTv3ForTracksPrediction(preset_config(preset)) if post else NTv3ForMaskedLM(preset_config(preset))
    ).eval()
    folder = save_checkpoint(model, tmp_path / "ckpt")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (
            folder / name
        ).unlink()  # staged from the config, as for a Trainer checkpoint without tokenizer files
    staged = tmp_path / "staged"
    result = run_nt("push", folder, "me/ntv3-tiny", "--dry-run", staged)
    assert result.code == 0, result.err
    files = sorted(path.name for path in staged.iterdir())
    assert files == [
        "README.md",
        "config.json",
        "configuration_nt.py",
        "configuration_ntv3.py",
        "model.safetensors",
        "modeling_nt.py",
        "modeling_ntv3.py",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    tokenizer = AutoTokenizer.from_pretrained(staged)
    batch = tokenizer(["ACGTNACG"], return_tensors="pt")
    assert batch["input_ids"].tolist() == [[6, 8, 9, 7, 10, 6, 8, 9]]
    config = json.loads((staged / "config.json").read_text())
    # the remote-code round trip of these files is tests/test_ntv3_model.py's; here: staged as saved
    for name in ("configuration_ntv3.py", "modeling_ntv3.py", "config.json"):
        assert (staged / name).read_bytes() == (folder / name).read_bytes(), name
    if post:  # what the card's `AutoModel.from_pretrained(..., trust_remote_code=True)` loads
        assert config["auto_map"]["AutoModel"] == "modeling_ntv3.NTv3ForTracksPrediction"
    loaded = (NTv3ForTracksPrediction if post else AutoModelForMaskedLM).from_pretrained(staged).eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        if post:
            species = torch.tensor([model.config.species_token("mouse")])
            got = loaded(batch["input_ids"], species_ids=species).track_predictions
            want = model(batch["input_ids"], species_ids=species).track_predictions
        else:
            got, want = loaded(**batch).logits, model(**batch).logits
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in loaded.state_dict().items())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # attention kernels may differ in rounding
    card = (staged / "README.md").read_text()
    assert "An NTv3 (Nucleotide Transformer v3)" in card and "multiple of 8 bases" in card
    assert "transformer core of 2 layers of width 32" in card and "- ntv3" in card
    if post:
        assert "pipeline_tag" not in card
        assert "(human, mouse) predicting 5 functional tracks and 3 genome-annotation classes" in card
        assert 'AutoModel.from_pretrained("me/ntv3-tiny"' in card
    else:
        assert "pipeline_tag: fill-mask" in card and "masked-language-model checkpoint" in card
        assert 'AutoModelForMaskedLM.from_pretrained("me/ntv3-tiny"' in card


def test_leaderboard_and_card_from_v3_results(run_nt, tmp_path):
    from benchmarks.leaderboard import card_size, card_sizes

    results = [
        BenchmarkResult(
            model=model_name_of(name),
            task="H3",
            benchmark="original",
            method="probe",
            fold_scores=[score, score + 0.02],
            n_params=n_params,
            extra={"training_tokens": 10**9},
        )
        for name, score, n_params in (("tiny-v3", 0.3, 44_709), ("tiny", 0.4, 620_000))
    ]
    save_results(results, tmp_path / "r.json")
    out = tmp_path / "lb"
    result = run_nt("leaderboard", tmp_path / "r.json", "--out", out, "--card-model", "tiny-v3")
    assert result.code == 0, result.err
    board = (out / "leaderboard.md").read_text()
    assert "tiny-v3 (probe)" in board and "tiny (probe)" in board
    card = (out / "model_card" / "README.md").read_text()
    assert "Nucleotide Transformer **v3** (NTv3) model with 44.7K parameters" in card
    assert "3 downsamples: an input must be a multiple of 8 bases long" in card
    assert 'AutoModelForMaskedLM.from_pretrained("tiny-v3"' in card and "0.31" in card
    sizes = card_sizes()
    assert card_size("NTv3_100M_post_131kb", sizes) == "ntv3-100m-post-131kb"
    assert card_size("runs/ntv3-650m-pre-8kb-finetuned", sizes) == "ntv3-650m-pre-8kb"
    assert sizes["ntv3-100m-pre"]["family"] == "v3" and sizes["ntv3-100m-pre"]["params"] == "106.5M"
    scaling = tmp_path / "scaling"
    assert run_nt("analyze", "scaling", tmp_path / "r.json", "--out", scaling).code == 0
    plotted = {row["model"]: float(row["n_params"]) for row in _rows(scaling / "scaling.csv")}
    assert plotted == {"tiny-v3": 44_709.0, "tiny": 620_000.0}


# ------------------------------------------------------------------------------ fingerprint and model name


def test_fingerprint_and_name_of_an_ntv3_model(checkpoint, mlm, tmp_path):
    assert model_fingerprint("tiny-v3") == {"kind": "preset", "name": "tiny-v3"}
    assert model_fingerprint("tiny-v3-post") == {"kind": "preset", "name": "tiny-v3-post"}
    entry = model_fingerprint(checkpoint)
    assert entry["kind"] == "checkpoint"
    assert entry["config_sha256"] == file_sha256(checkpoint / "config.json")
    assert entry["weights"] == {"model.safetensors": file_sha256(checkpoint / "model.safetensors")}
    loaded = model_fingerprint(mlm)
    assert loaded["kind"] == "loaded"
    assert loaded == model_fingerprint(load_model(checkpoint, NTv3ForMaskedLM))  # same weights, same entry
    assert (
        loaded["weights_sha256"]
        != model_fingerprint(load_model("tiny-v3", NTv3ForMaskedLM, seed=5))["weights_sha256"]
    )
    assert model_name_of("tiny-v3") == "tiny-v3"
    assert model_name_of(checkpoint) == model_name_of(mlm) == "tiny_v3_mlm"
    run = save_checkpoint(mlm, tmp_path / "chr20_v3" / "final")
    assert model_name_of(run) == "chr20_v3"
