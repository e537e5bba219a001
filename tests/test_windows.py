"""Windows sized to the model (issue 13, section 3): ``nt embed`` and ``nt score-variants`` cut long inputs at
the context the checkpoint was trained at (``NTConfig.trained_max_tokens``, recorded by ``nt pretrain``; the
published context for official checkpoints), ``--window-tokens`` / ``--window`` override it, and a model
that does not record it falls back to the architecture's maximum.

Window counts below are worked out by hand from the rule of ``benchmarks.embeddings.make_windows``: windows
of ``W - 1`` sequence tokens (``W`` = window tokens, ``<cls>`` included), starts ``0, step, 2 step, ...``
with ``step = W - 1 - overlap``, the last start moved back so that the last window ends at the sequence end.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch

from benchmarks import embeddings as emb
from benchmarks.variants import ScoringOptions, VariantScorer
from benchmarks.variants.runner import default_window_bp, fingerprint_path_of, window_token_budget
from modeling_nt import NTConfig, NTForMaskedLM, tokenizer_for
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.configuration_nt import HUB_IDS
from modeling_nt.convert import config_from_hub, hyperparams_to_config

TRAINED = 200  # tokens, <cls> included: 199 six-mers = 1,194 bp


def _dna(length: int, seed: int) -> str:
    generator = random.Random(seed)
    return "".join(generator.choice("ACGT") for _ in range(length))


def _checkpoint(folder: Path, trained: int | None) -> Path:
    torch.manual_seed(0)
    config = NTConfig.from_preset("tiny", trained_max_tokens=trained)  # architecture: 2048 tokens
    return save_checkpoint(NTForMaskedLM(config).eval(), folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny models with the same weights: one records a trained context of 200 tokens, one nothing."""
    root = tmp_path_factory.mktemp("windows")
    return {"trained": _checkpoint(root / "trained200", TRAINED), "unknown": _checkpoint(root / "old", None)}


# ----------------------------------------------------------------------------- the rule and where it is set


@pytest.mark.parametrize(
    ("preset", "overrides", "window"),
    [
        ("tiny", {}, 2048),  # nothing recorded: the architecture's maximum
        ("tiny-v1", {}, 1000),
        ("tiny", {"trained_max_tokens": TRAINED}, TRAINED),
        ("tiny-v1", {"trained_max_tokens": 64}, 64),
        ("tiny-v1", {"trained_max_tokens": 4000}, 1000),  # never above what the architecture takes
    ],
)
def test_default_window_is_the_trained_context_else_the_maximum(preset, overrides, window):
    config = NTConfig.from_preset(preset, **overrides)
    assert config.default_window_tokens == window
    assert emb.resolve_window_tokens(config) == window


def test_released_presets_record_the_published_context():
    windows = {name: NTConfig.from_preset(name).default_window_tokens for name in HUB_IDS}
    assert windows == {
        "nt-v1-500m-human-ref": 1000,
        "nt-v1-500m-1000g": 1000,
        "nt-v1-2.5b-1000g": 1000,
        "nt-v1-2.5b-multi-species": 1000,
        "nt-v2-50m-multi-species": 2048,
        "nt-v2-100m-multi-species": 2048,
        "nt-v2-250m-multi-species": 2048,
        "nt-v2-500m-multi-species": 2048,
    }
    assert {name: NTConfig.from_preset(name).trained_max_tokens for name in HUB_IDS} == windows
    assert default_window_bp(1000) == 5994 and default_window_bp(2048) == 12282  # NT_SPEC: 5,994 / 12,282 bp


def test_converted_official_configs_record_the_published_context_and_others_stay_unknown():
    sizes = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    esm = config_from_hub({**sizes, "vocab_size": 4105, "max_position_embeddings": 1002}, "esm")
    v2 = config_from_hub(
        {**sizes, "vocab_size": 4107, "max_position_embeddings": 2050, "position_embedding_type": "rotary"},
        "nt-v2-hub",
    )
    other = config_from_hub({**sizes, "vocab_size": 4105, "max_position_embeddings": 66}, "esm")
    jax = hyperparams_to_config(
        {
            "alphabet_size": 4105,
            "embed_dim": 64,
            "num_layers": 2,
            "attention_heads": 4,
            "ffn_embed_dim": 256,
            "max_positions": 1000,
            "pad_token_id": 1,
            "mask_token_id": 2,
        }
    )
    assert (esm.trained_max_tokens, v2.trained_max_tokens, jax.trained_max_tokens) == (1000, 2048, 1000)
    assert other.trained_max_tokens is None and other.default_window_tokens == 64  # falls back to max_tokens


def test_recorded_context_survives_save_and_load(checkpoints):
    assert NTConfig.from_pretrained(checkpoints["trained"]).default_window_tokens == TRAINED
    assert NTConfig.from_pretrained(checkpoints["unknown"]).default_window_tokens == 2048


# ----------------------------------------------------------------------------- nt embed


@pytest.fixture(scope="module")
def long_fasta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``long``: 3,000 bp = 500 six-mer tokens; ``short``: 600 bp = 100 tokens."""
    path = tmp_path_factory.mktemp("fasta") / "in.fa"
    path.write_text(f">long\n{_dna(3000, 1)}\n>short\n{_dna(600, 2)}\n")
    return path


def _windows_per_record(run_nt, model: Path, fasta: Path, out: Path, *flags: str) -> dict[str, int]:
    result = run_nt("embed", "--model", model, "--fasta", fasta, "--out", out, "--no-progress", *flags)
    assert result.code == 0, result.err
    index, _ = emb.read_embeddings(out)
    return dict(zip(index["name"], index["n_windows"].tolist(), strict=True))


def test_embed_uses_the_trained_context_by_default(checkpoints, long_fasta, run_nt, tmp_path):
    # 200-token windows: 199 tokens, overlap 64, step 135; 500 tokens -> starts 0, 135, 270, 301 (end-aligned).
    trained = _windows_per_record(run_nt, checkpoints["trained"], long_fasta, tmp_path / "a.parquet")
    assert trained == {"long": 4, "short": 1}
    # A model that records no trained context: one 2048-token window holds all 500 tokens.
    unknown = _windows_per_record(run_nt, checkpoints["unknown"], long_fasta, tmp_path / "b.parquet")
    assert unknown == {"long": 1, "short": 1}


def test_window_tokens_flag_overrides_the_default(checkpoints, long_fasta, run_nt, tmp_path):
    # 100-token windows: 99 tokens, default overlap cut to half a window (49), step 50; 500 tokens -> starts
    # 0, 50, ..., 400 (9) and 401 (end-aligned): 10 windows; the 100-token record: 99 + 1 tokens -> 2.
    narrow = _windows_per_record(
        run_nt, checkpoints["trained"], long_fasta, tmp_path / "a.parquet", "--window-tokens", "100"
    )
    assert narrow == {"long": 10, "short": 2}
    # Wider than the trained context, up to the architecture's maximum: one window each.
    wide = _windows_per_record(
        run_nt, checkpoints["trained"], long_fasta, tmp_path / "b.parquet", "--window-tokens", "2048"
    )
    assert wide == {"long": 1, "short": 1}


def test_python_api_default_window_is_the_trained_context(checkpoints):
    sequences = [_dna(3000, 1)]
    backbone = emb.load_backbone(checkpoints["trained"])
    default = emb.embed_sequences(backbone, sequences, progress=False)[2]
    explicit = emb.embed_sequences(backbone, sequences, window_tokens=TRAINED, progress=False)[2]
    whole = emb.embed_sequences(backbone, sequences, window_tokens=2048, progress=False)[2]
    np.testing.assert_array_equal(default, explicit)
    assert np.abs(default - whole).max() > 1e-3  # the windows see other contexts: other embeddings
    counts = [n for _, _, n in emb.iter_embeddings(backbone, sequences, [0], layers=[2], progress=False)]
    assert counts == [[4]]


def test_window_tokens_is_a_recorded_run_setting():
    names, sequences = ["a"], ["ACGTAC"]
    default = emb.embedding_run_fingerprint("tiny", names, sequences, None, None, "mean", 64, "fp32")
    given = emb.embedding_run_fingerprint("tiny", names, sequences, None, None, "mean", 64, "fp32", 100)
    assert default["--window-tokens"]["value"] == "model default"
    assert given.differences(default) == ['--window-tokens: was "model default", now 100']


def test_resumed_embed_with_another_window_is_refused(checkpoints, long_fasta, run_nt, tmp_path, monkeypatch):
    out = tmp_path / "e.parquet"
    forward = emb._forward_windows

    def killed_after_the_first_record(backbone, windows, *args):
        if any(window.sequence == 1 for window in windows):  # the short record runs last (length-sorted)
            raise KeyboardInterrupt("killed")
        return forward(backbone, windows, *args)

    monkeypatch.setattr(emb, "_forward_windows", killed_after_the_first_record)
    argv = ["embed", "--model", checkpoints["trained"], "--fasta", long_fasta, "--out", out, "--no-progress"]
    assert run_nt(*argv, "--chunk-size", "1").code == 130  # Ctrl-C: exit 130
    monkeypatch.setattr(emb, "_forward_windows", forward)
    result = run_nt(*argv, "--chunk-size", "1", "--window-tokens", "100")
    assert result.code == 2 and '--window-tokens: was "model default", now 100' in result.err
    assert run_nt(*argv, "--chunk-size", "1").code == 0  # the same settings resume
    index, _ = emb.read_embeddings(out)
    assert index["n_windows"].tolist() == [4, 1]


# ----------------------------------------------------------------------------- nt score-variants


@pytest.fixture(scope="module")
def genome(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 3,000 bp contig and a VCF with one SNV at position 1501."""
    folder = tmp_path_factory.mktemp("genome")
    sequence = _dna(3000, 3)
    fasta = folder / "genome.fa"
    fasta.write_text(">chr1\n" + "\n".join(sequence[i : i + 60] for i in range(0, 3000, 60)) + "\n")
    pysam.faidx(str(fasta))
    alt = "C" if sequence[1500] != "C" else "G"
    vcf = folder / "in.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        f"chr1\t1501\t.\t{sequence[1500]}\t{alt}\t.\tPASS\t.\n"
    )
    return fasta, vcf


def _scored_window(run_nt, model: Path, genome, out: Path, *flags: str) -> tuple[int, int, int]:
    """(window start, window end (1-based, inclusive), the --window recorded in the run fingerprint)."""
    fasta, vcf = genome
    argv = ["score-variants", "--model", model, "--fasta", fasta, "--vcf", vcf, "--out", out]
    result = run_nt(*argv, "--scores", "l2", *flags)
    assert result.code == 0, result.err
    row = out.read_text().splitlines()[1].split("\t")
    recorded = json.loads(fingerprint_path_of(out).read_text())["--window"]["value"]
    return int(row[8]), int(row[9]), recorded


def test_score_variants_uses_the_trained_context_by_default(checkpoints, genome, run_nt, tmp_path):
    # 1,194 bp centred on position 1501: 1501 - (1194 - 1) // 2 = 905 .. 905 + 1193 = 2098.
    assert _scored_window(run_nt, checkpoints["trained"], genome, tmp_path / "a.tsv") == (905, 2098, 1194)
    # No recorded context: the full 12,282 bp, cut to the 3,000 bp contig.
    assert _scored_window(run_nt, checkpoints["unknown"], genome, tmp_path / "b.tsv") == (1, 3000, 12282)


def test_score_variants_window_flag_overrides_the_default(checkpoints, genome, run_nt, tmp_path):
    # start = 1501 - (bp - 1) // 2. 600 bp: 1202 .. 1801; 2,400 bp (more than the trained context): 302 .. 2701.
    assert _scored_window(run_nt, checkpoints["trained"], genome, tmp_path / "a.tsv", "--window", "600") == (
        1202,
        1801,
        600,
    )
    wide = _scored_window(run_nt, checkpoints["trained"], genome, tmp_path / "b.tsv", "--window", "2400")
    assert wide == (302, 2701, 2400)


def test_windows_with_n_runs_shrink_to_the_trained_context_unless_asked_for_more(checkpoints):
    model = NTForMaskedLM.from_pretrained(checkpoints["trained"])
    scorer = VariantScorer(model, tokenizer_for(model.config), ScoringOptions(scores=("l2",)), device="cpu")
    assert (scorer.max_tokens, scorer.default_window_tokens) == (2048, TRAINED)
    # tokens of an A/C/G/T window: bp // 6 six-mers + bp % 6 single bases + <cls>
    budgets = {bp: window_token_budget(scorer, bp) for bp in (600, 1194, 6000, 12282)}
    assert budgets == {600: 200, 1194: 200, 6000: 1001, 12282: 2048}


@pytest.mark.parametrize(
    ("window_tokens", "words"),
    [
        (1, "must be in [2, 2048] tokens (<cls> included; this model takes at most 2048), got 1"),
        (2049, "must be in [2, 2048] tokens (<cls> included; this model takes at most 2048), got 2049"),
        (150.0, "must be an integer, got 150.0"),
        (True, "must be an integer, got True"),
    ],
)
def test_python_api_refuses_a_bad_window(window_tokens, words):
    torch.manual_seed(0)
    backbone = emb.load_backbone(NTForMaskedLM(NTConfig.from_preset("tiny")).eval())  # 2048 tokens
    with pytest.raises(ValueError, match=r"^window_tokens \(--window-tokens\) ") as error:
        emb.embed_sequences(backbone, ["ACGTAC"], window_tokens=window_tokens, progress=False)
    assert str(error.value).endswith(words)
