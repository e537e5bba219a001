"""`nt embed`, `nt score-variants` and `nt probe` with an NTv3 model (tiny-v3: 3 downsamples, so inputs are
multiples of 8 bases; random weights). The rules under test live in :mod:`benchmarks.generation`: one token per
base, no ``<cls>``, ``N`` padding to the multiple, padded positions dropped from every output."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch
from conftest import assert_bad_input

from benchmarks import embeddings as emb
from benchmarks.results import load_results
from modeling_nt import NTModel, NTv3ForMaskedLM
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.loading import load_model
from tokenization import ntv3_vocabulary

VOCAB = ntv3_vocabulary()
CONTIG = "".join(random.Random(3).choice("ACGT") for _ in range(400))
SNV_POS = 200  # 1-based
WINDOW = 101  # not a multiple of 8: each window is padded with 3 N


def _dna(length: int, seed: int) -> str:
    return "".join(random.Random(seed).choice("ACGT") for _ in range(length))


def _ids(sequence: str) -> torch.Tensor:
    return torch.tensor([[VOCAB[base] for base in sequence]])


@pytest.fixture(scope="module")
def backbone() -> NTModel:
    return load_model("tiny-v3", NTModel, seed=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A saved tiny-v3 masked LM (seed 1), so that the CLI and the test read the same weights."""
    torch.manual_seed(1)
    model = load_model("tiny-v3", NTv3ForMaskedLM, seed=1)
    return save_checkpoint(model, tmp_path_factory.mktemp("ntv3") / "tiny_v3_mlm")


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    fasta = tmp_path_factory.mktemp("genome") / "g.fa"
    fasta.write_text(f">chr1\n{CONTIG}\n")
    pysam.faidx(str(fasta))
    return fasta


def _vcf(path: Path, records: list[tuple[int, str, str]]) -> Path:
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t." for pos, ref, alt in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("preset", "multiple", "window", "last_layer", "overlap_64", "bp_of_window", "variant_window"),
    [
        ("tiny-v3", 8, 2**20, 3, 64, 2**20, 32768),  # trained length unknown: 1 Mb; variants: 32 kb
        ("ntv3-8m-pre", 128, 2**20, 3, 128, 2**20, 32768),  # 64 bases round up to one 128-base block
        ("ntv3-100m-pre-8kb", 128, 8192, 7, 128, 8192, 8192),
        ("ntv3-5downsample-pre-8kb", 32, 8192, 13, 64, 8192, 8192),
        ("tiny", 1, 2048, 2, 64, 12282, 12282),  # NT v2: (2048 - 1) x 6 bp
    ],
)
def test_rules_of_each_generation(
    preset, multiple, window, last_layer, overlap_64, bp_of_window, variant_window
) -> None:
    from benchmarks.generation import token_rules
    from modeling_nt.loading import preset_config

    rules = token_rules(preset_config(preset))
    assert (rules.length_multiple, rules.default_window_tokens, rules.last_layer) == (
        multiple,
        window,
        last_layer,
    )
    assert rules.window_overlap(64, rules.content_width(window)) == overlap_64
    assert rules.window_bp(window) == bp_of_window
    assert rules.default_variant_window_bp == variant_window
    assert rules.cls_offset == (1 if preset == "tiny" else 0)


# ----------------------------------------------------------------------------- nt embed


def test_embed_shapes_per_base_core_and_pooled(run_nt, tmp_path: Path) -> None:
    fasta = tmp_path / "in.fa"
    fasta.write_text(f">a\n{_dna(61, 1)}\n>b\n{_dna(100, 2)}\n>c\n{_dna(8, 3)}\n")
    per_token, pooled = tmp_path / "t.parquet", tmp_path / "m.parquet"
    argv = ["embed", "--model", "tiny-v3", "--fasta", fasta, "--no-progress", "--layers", "0,2,-1"]
    assert run_nt(*argv, "--pooling", "none", "--out", per_token).code == 0
    assert run_nt(*argv, "--out", pooled).code == 0
    index, layers = emb.read_embeddings(per_token)
    assert sorted(layers) == [0, 2, 3]  # core input, core layer 2, base-resolution output (= -1)
    assert index["length"].tolist() == [61, 100, 8]
    assert [a.shape for a in layers[3]] == [(61, 16), (100, 16), (8, 16)]  # one row per real base
    assert [a.shape for a in layers[2]] == [(8, 32), (13, 32), (1, 32)]  # ceil(L / 8) core blocks
    assert [a.shape for a in layers[0]] == [(8, 32), (13, 32), (1, 32)]
    _, means = emb.read_embeddings(pooled)
    assert means[3].shape == (3, 16) and means[2].shape == (3, 32)
    for row in range(3):
        np.testing.assert_allclose(means[3][row], layers[3][row].mean(axis=0), atol=1e-6)
    # a core block holding 5 real bases of 61 (and 3 N) weighs 5/61, the 7 full ones 8/61 each
    weights = np.array([8] * 7 + [5]) / 61
    np.testing.assert_allclose(means[2][0], (layers[2][0] * weights[:, None]).sum(axis=0), atol=1e-6)


def test_embedding_is_the_first_rows_of_the_n_padded_sequence(backbone: NTModel) -> None:
    sequence = _dna(61, 4)
    out = emb.embed_sequences(backbone, [sequence, sequence + "NNN"], layers=[1, 3], pooling="none")
    alone, padded = out[3]
    assert alone.shape == (61, 16) and padded.shape == (64, 16)
    np.testing.assert_array_equal(alone, padded[:61])
    np.testing.assert_array_equal(out[1][0], out[1][1])  # the same 8 core blocks
    with torch.no_grad():
        reference = backbone(_ids(sequence + "NNN"), output_hidden_states=True)
    np.testing.assert_allclose(alone, reference.last_hidden_state[0, :61].numpy(), atol=1e-6)
    np.testing.assert_allclose(out[1][0], reference.hidden_states[1][0].numpy(), atol=1e-6)


def test_row_i_is_nucleotide_i() -> None:
    """With the stem reduced to a strong centre tap, the skip path from the stem (which sees base i alone)
    dominates output row i: the row most changed by a substitution must be the substituted base's (a <cls>
    shift or a padding on the left would move it). Measured margin: the largest row change is 5-6x the next."""
    model = load_model("tiny-v3", NTModel, seed=0)
    with torch.no_grad():
        centre = model.stem.weight.shape[-1] // 2
        tap = model.stem.weight[..., centre].clone()
        model.stem.weight.zero_()
        model.stem.weight[..., centre] = 300 * tap
    sequence = _dna(100, 5)
    for position in (0, 37, 99):
        changed = sequence[:position] + ("A" if sequence[position] != "A" else "C") + sequence[position + 1 :]
        before, after = emb.embed_sequences(model, [sequence, changed], pooling="none")[3]
        change = np.linalg.norm(before - after, axis=1)
        assert int(change.argmax()) == position
        assert change[position] > 2 * np.sort(change)[-2]


def test_long_sequence_windows_share_the_block_grid(backbone: NTModel) -> None:
    """300 bp (padded to 304) in windows of 128 with overlap 32: starts 0, 96, 176 (the last one ends at the
    padded end); owned bases [0, 112), [112, 200), [200, 300), bounds at overlap midpoints on the 8-base grid."""
    sequence = _dna(300, 6)
    out = emb.embed_sequences(
        backbone, [sequence], layers=[2, 3], pooling="none", window_tokens=128, overlap=32
    )
    ids = _ids(sequence + "NNNN")
    with torch.no_grad():
        runs = [backbone(ids[:, start : start + 128], output_hidden_states=True) for start in (0, 96, 176)]
    base = np.concatenate(
        [
            runs[0].last_hidden_state[0, 0:112].numpy(),
            runs[1].last_hidden_state[0, 16:104].numpy(),
            runs[2].last_hidden_state[0, 24:124].numpy(),
        ]
    )
    core = np.concatenate(
        [
            runs[0].hidden_states[2][0, 0:14].numpy(),
            runs[1].hidden_states[2][0, 2:13].numpy(),
            runs[2].hidden_states[2][0, 3:16].numpy(),
        ]
    )
    assert out[3][0].shape == (300, 16) and out[2][0].shape == (38, 32)
    np.testing.assert_allclose(out[3][0], base, atol=1e-6)
    np.testing.assert_allclose(out[2][0], core, atol=1e-6)


def test_batches_of_mixed_lengths_give_each_sequence_its_own_values(backbone: NTModel) -> None:
    sequences = [_dna(61, 7), _dna(100, 8), _dna(64, 9)]
    together = emb.embed_sequences(backbone, sequences, pooling="none", max_batch_tokens=10_000)[3]
    for sequence, rows in zip(sequences, together, strict=True):
        alone = emb.embed_sequences(backbone, [sequence], pooling="none")[3][0]
        np.testing.assert_allclose(rows, alone, atol=1e-6)


def test_resumed_embed_continues_and_refuses_another_model(run_nt, tmp_path: Path, monkeypatch) -> None:
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">r{i}\n{_dna(40 + 9 * i, 10 + i)}\n" for i in range(4)))
    full, out = tmp_path / "full.parquet", tmp_path / "e.parquet"
    argv = ["embed", "--fasta", fasta, "--no-progress", "--chunk-size", "1", "--pooling", "none"]
    assert run_nt(*argv, "--model", "tiny-v3", "--out", full).code == 0
    forward, calls = emb._forward_windows, []

    def killed_after_two(backbone, windows, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(len(windows))
        return forward(backbone, windows, *args)

    monkeypatch.setattr(emb, "_forward_windows", killed_after_two)
    assert run_nt(*argv, "--model", "tiny-v3", "--out", out).code == 130
    monkeypatch.setattr(emb, "_forward_windows", forward)
    assert len(list(emb.parts_dir(out).glob("part-*.parquet"))) == 2
    refused = run_nt(*argv, "--model", "tiny", "--out", out)
    assert_bad_input(refused, "--model")
    assert run_nt(*argv, "--model", "tiny-v3", "--out", out).code == 0
    _, resumed = emb.read_embeddings(out)
    _, reference = emb.read_embeddings(full)
    for one, two in zip(resumed[3], reference[3], strict=True):
        np.testing.assert_array_equal(one, two)


# ----------------------------------------------------------------------------- nt score-variants


def test_snv_llr_equals_the_masked_log_softmax_by_hand(run_nt, checkpoint: Path, genome: Path, tmp_path):
    ref = CONTIG[SNV_POS - 1]
    alt = "A" if ref != "A" else "G"
    indel_pos = SNV_POS + 40
    vcf = _vcf(tmp_path / "in.vcf", [(SNV_POS, ref, alt), (indel_pos, CONTIG[indel_pos - 1], "T" + "GC")])
    out = tmp_path / "o.tsv"
    argv = ["score-variants", "--model", checkpoint, "--fasta", genome, "--vcf", vcf, "--out", out]
    assert run_nt(*argv, "--window", WINDOW, "--scores", "llr,l2", "--layers", "1,-1").code == 0
    snv, indel = _rows(out)
    start = SNV_POS - 1 - (WINDOW - 1) // 2  # centred: 50 bases on each side of the SNV
    assert (int(snv["window_start"]), int(snv["window_end"])) == (start + 1, start + WINDOW)
    window = CONTIG[start : start + WINDOW] + "NNN"  # padded to 104 = 13 x 8
    masked = _ids(window)
    masked[0, 50] = VOCAB["<mask>"]
    model = NTv3ForMaskedLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=masked).logits[0, 50], dim=-1)
    expected = float(log_probs[VOCAB[alt]] - log_probs[VOCAB[ref]])
    assert float(snv["llr"]) == pytest.approx(expected, abs=1e-5)
    assert snv["note"] == ""
    assert (
        indel["llr"] == "nan"
        and indel["note"] == "llr: defined for substitutions only (this allele is an indel)"
    )
    # the embedding scores leave the N padding out: l2 of the base-resolution means over the 101 real bases
    alt_window = window[:50] + alt + window[51:]
    with torch.no_grad():
        states = [model.ntv3(_ids(w)).last_hidden_state[0, :WINDOW].mean(dim=0) for w in (window, alt_window)]
    assert float(snv["l2_mean_L3"]) == pytest.approx(
        float(torch.linalg.norm(states[0] - states[1])), rel=1e-4
    )
    assert {"l2_mean_L1", "l2_local_L1", "l2_local_L3"} <= set(snv)


def test_batch_size_does_not_change_scores_of_windows_of_different_lengths(checkpoint, tmp_path) -> None:
    """A 60-bp contig gives a 60-bp window (padded to 64) beside 101-bp ones (padded to 104): NTv3 batches hold
    one length only, so batching all together equals scoring one by one."""
    from benchmarks.variants import (
        ReferenceGenome,
        ScoringOptions,
        VariantAllele,
        VariantScorer,
        build_window,
    )
    from modeling_nt import tokenizer_for

    short = _dna(60, 12)
    fasta = tmp_path / "two.fa"
    fasta.write_text(f">chr1\n{CONTIG}\n>chr2\n{short}\n")
    pysam.faidx(str(fasta))
    genome = ReferenceGenome(fasta)
    alleles = [("chr1", SNV_POS, CONTIG), ("chr2", 30, short), ("chr1", 120, CONTIG)]
    windows = [
        build_window(genome, VariantAllele(0, chrom, pos, ".", seq[pos - 1], "N"), WINDOW)
        for chrom, pos, seq in alleles
    ]
    genome.close()
    assert [len(window.ref_seq) for window in windows] == [101, 60, 101]
    model = NTv3ForMaskedLM.from_pretrained(checkpoint).eval()
    scores = {}
    for batch_size in (1, 8):
        options = ScoringOptions(scores=("cosine", "llr"), layers="all", batch_size=batch_size)
        scores[batch_size] = VariantScorer(model, tokenizer_for(model.config), options, device="cpu").score(
            windows
        )
    for (one, _), (many, _) in zip(scores[1], scores[8], strict=True):
        assert one.keys() == many.keys() and all(math.isfinite(value) for value in one.values())
        for column, value in one.items():
            assert many[column] == pytest.approx(value, abs=1e-6), column


def test_ref_mismatch_is_one_line(run_nt, checkpoint: Path, genome: Path, tmp_path: Path) -> None:
    wrong = "C" if CONTIG[SNV_POS - 1] != "C" else "G"
    vcf = _vcf(tmp_path / "in.vcf", [(SNV_POS, wrong, "T" if wrong != "T" else "A")])
    out = tmp_path / "o.tsv"
    argv = ["score-variants", "--model", checkpoint, "--fasta", genome, "--vcf", vcf, "--out", out]
    assert_bad_input(run_nt(*argv, "--window", WINDOW), f"chr1:{SNV_POS}", f"REF '{wrong}'", "FASTA has")


# ----------------------------------------------------------------------------- nt probe


def test_probe_runs_end_to_end_and_writes_its_metrics(run_nt, tmp_path: Path) -> None:
    rng = random.Random(11)
    lines = ["sequence\tlabel"]
    for i in range(30):
        weights = [1, 1, 4, 4] if i % 2 else [4, 4, 1, 1]  # label 1: GC-rich
        length = 40 + rng.randrange(30)  # mostly not multiples of 8
        lines.append("".join(rng.choices("ATGC", weights, k=length)) + f"\t{i % 2}")
    train = tmp_path / "gc.tsv"
    train.write_text("\n".join(lines) + "\n")
    out = tmp_path / "probe.json"
    argv = ["probe", "--model", "tiny-v3", "--train", train, "--layers", "1,3", "--probes", "probe"]
    result = run_nt(*argv, "--trials", "2", "--cv", "3", "--test-fraction", "0.2", "--out", out)
    assert result.code == 0, result.err
    results = load_results(out)
    assert [(r.method, r.layer) for r in results] == [("raw-tokens", None), ("probe", 1), ("probe", 3)]
    for record in results:
        assert record.metric == "mcc" and len(record.fold_scores) == 3 and record.test_score is not None
        assert all(-1.0 <= score <= 1.0 for score in record.fold_scores)
    cache = np.load(tmp_path / "probe_work" / "embeddings_gc.npz")
    assert cache["layer_1"].shape == (30, 32) and cache["layer_3"].shape == (30, 16)
    assert (tmp_path / "probe_work" / "probing_gc.png").is_file()
    assert not any(math.isnan(score) for record in results for score in record.fold_scores)
