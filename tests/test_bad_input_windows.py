"""Bad window sizes (issue 13, section 3): ``nt embed --window-tokens`` / ``--overlap`` and ``nt score-variants
--window`` outside what the model takes are refused with one line naming the flag, the value and the limit,
before any output is written.

Each case is a mistake a user plausibly makes: a window of 0 or 1 token, a number in kb or bp where tokens
are asked for, a window larger than the model's context, an overlap as large as the window.
"""

from __future__ import annotations

import random
from pathlib import Path

import pysam
import pytest
import torch
from conftest import assert_bad_input

from modeling_nt import NTConfig, NTForMaskedLM
from modeling_nt.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``v2``: a tiny v2 model (2048 tokens) trained at 200 tokens; ``v1``: a tiny v1 model (1000 tokens)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    v2 = NTForMaskedLM(NTConfig.from_preset("tiny", trained_max_tokens=200)).eval()
    v1 = NTForMaskedLM(NTConfig.from_preset("tiny-v1")).eval()
    return {"v2": save_checkpoint(v2, root / "v2"), "v1": save_checkpoint(v1, root / "v1")}


def _inputs(tmp: Path) -> dict[str, Path]:
    """A 3 kb contig (FASTA, indexed) and a VCF with one SNV on it."""
    generator = random.Random(0)
    sequence = "".join(generator.choice("ACGT") for _ in range(3000))
    fasta = tmp / "genome.fa"
    fasta.write_text(">chr1\n" + "\n".join(sequence[i : i + 60] for i in range(0, 3000, 60)) + "\n")
    pysam.faidx(str(fasta))
    alt = "C" if sequence[999] != "C" else "G"
    vcf = tmp / "in.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        f"chr1\t1000\t.\t{sequence[999]}\t{alt}\t.\tPASS\t.\n"
    )
    return {"fa": fasta, "vcf": vcf, "out": tmp / "out.parquet", "tsv": tmp / "out.tsv"}


EMBED = ["embed", "--model", "{v2}", "--fasta", "{fa}", "--out", "{out}", "--no-progress"]
EMBED_V1 = ["embed", "--model", "{v1}", "--fasta", "{fa}", "--out", "{out}", "--no-progress"]
SCORE = ["score-variants", "--model", "{v2}", "--fasta", "{fa}", "--vcf", "{vcf}", "--out", "{tsv}"]

# (case id, argv, words the one error line must hold)
CASES = [
    ("embed-window-zero", [*EMBED, "--window-tokens", "0"], ["--window-tokens", ">= 2", "got 0"]),
    ("embed-window-one-token", [*EMBED, "--window-tokens", "1"], ["--window-tokens", ">= 2", "got 1"]),
    ("embed-window-negative", [*EMBED, "--window-tokens=-200"], ["--window-tokens", ">= 2", "-200"]),
    ("embed-window-fraction", [*EMBED, "--window-tokens", "1.5"], ["--window-tokens", "integer", "1.5"]),
    ("embed-window-in-kb", [*EMBED, "--window-tokens", "6kb"], ["--window-tokens", "integer", "'6kb'"]),
    ("embed-window-empty", [*EMBED, "--window-tokens", ""], ["--window-tokens", "integer"]),
    (
        "embed-window-in-bp-above-v2-context",
        [*EMBED, "--window-tokens", "12282"],
        ["--window-tokens", "[2, 2048]", "got 12282"],
    ),
    (
        "embed-window-above-v1-context",
        [*EMBED_V1, "--window-tokens", "1001"],
        ["--window-tokens", "[2, 1000]", "got 1001"],
    ),
    (
        "embed-overlap-equals-window",
        [*EMBED, "--window-tokens", "100", "--overlap", "99"],
        ["--overlap", "[0, 99)", "100-token window", "got 99"],
    ),
    (
        "embed-overlap-above-trained-window",
        [*EMBED, "--overlap", "300"],
        ["--overlap", "[0, 199)", "200-token window", "got 300"],
    ),
    ("score-window-zero", [*SCORE, "--window", "0"], ["--window", ">= 1", "got 0"]),
    ("score-window-below-one-6mer", [*SCORE, "--window", "5"], ["--window 5", "6 bp", "12282 bp"]),
    (
        "score-window-above-context",
        [*SCORE, "--window", "20000"],
        ["--window 20000", "12282 bp", "2048 tokens"],
    ),
    ("score-window-in-kb", [*SCORE, "--window", "1.2kb"], ["--window", "integer", "'1.2kb'"]),
]


@pytest.mark.parametrize(("argv", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_window_is_refused_in_one_line(argv, words, models, run_nt, tmp_path):
    paths = {**_inputs(tmp_path), **models}
    result = run_nt(*(arg.format(**paths) for arg in argv))
    assert_bad_input(result, *words)
    left = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("out"))
    assert left == [], left  # refused before any output (or resumable part) was written
