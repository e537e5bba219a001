"""Bad input to `nt embed`, `nt score-variants` and `nt probe` with an NTv3 model (preset tiny-v3: inputs are
multiples of 8 bases, hidden states 0..3 = core input, core layers 1-2, base-resolution output): each case exit
2 and one stderr line naming the flag, record or position."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pysam
import pytest
from conftest import assert_bad_input

CONTIG = "".join(random.Random(5).choice("ACGT") for _ in range(300))
POS = 150
BASE = CONTIG[POS - 1]
WRONG = "A" if BASE != "A" else "C"
FASTA = ">a\nACGTACGTTGCA\n>b\nTTGACCAGT\n"


def _vcf(ref: str, alt: str) -> str:
    header = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    return "\n".join([*header, f"chr1\t{POS}\t.\t{ref}\t{alt}\t.\tPASS\t."]) + "\n"


GOOD_VCF = _vcf(BASE, "T" if BASE != "T" else "G")
TRAIN = "sequence\tlabel\n" + "".join(
    f"{''.join(random.Random(i).choices('ACGT', k=30))}\t{i % 2}\n" for i in range(12)
)


@dataclass
class Case:
    """The command, the files it reads (name -> text, under tmp_path), its arguments (``{tmp}`` = tmp_path)
    and the words the error line must hold."""

    id: str
    command: str
    argv: list[str]
    words: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)


def embed(case_id: str, argv: list[str], words: tuple[str, ...], fasta: str = FASTA) -> Case:
    return Case(
        case_id,
        "embed",
        ["--fasta", "{tmp}/in.fa", "--out", "{tmp}/e.parquet", "--no-progress", *argv],
        words,
        {"in.fa": fasta},
    )


def score(case_id: str, argv: list[str], words: tuple[str, ...], vcf: str = GOOD_VCF) -> Case:
    return Case(
        case_id,
        "score-variants",
        ["--fasta", "{tmp}/g.fa", "--vcf", "{tmp}/in.vcf", "--out", "{tmp}/o.tsv", *argv],
        words,
        {"in.vcf": vcf},
    )


CASES = [
    embed("cls-pooling", ["--pooling", "cls"], ("--pooling cls", "NTv3", "no <cls>")),
    embed("packing", ["--packing"], ("--packing", "NTv3", "convolutions")),
    embed(
        "window-not-a-multiple", ["--window-tokens", "100"], ("--window-tokens", "multiple of 8", "got 100")
    ),
    embed("window-over-1mb", ["--window-tokens", "2097152"], ("--window-tokens", "1048576", "got 2097152")),
    embed("layer-past-the-output", ["--layers", "4"], ("layer 4", "0..3")),
    embed(
        "overlap-past-the-window",
        ["--window-tokens", "64", "--overlap", "80"],
        ("--overlap", "[0, 64)", "got 80"),
    ),
    embed(
        "letter-outside-the-alphabet",
        [],
        ("record 2", "'b'", "'X'", "position 3"),
        fasta=">a\nACGTACGT\n>b\nACGXT\n",
    ),
    score(
        "ref-mismatch", ["--window", "101"], (f"chr1:{POS}", f"REF '{WRONG}'", "FASTA has"), _vcf(WRONG, "T")
    ),
    score("window-over-1mb", ["--window", "2000000"], ("--window 2000000", "1048576")),
    score("layer-past-the-output", ["--window", "101", "--layers", "5"], ("layer 5", "0..3")),
    Case(
        "probe-layer-past-the-output",
        "probe",
        [
            "--train",
            "{tmp}/t.tsv",
            "--test-fraction",
            "0",
            "--layers",
            "4",
            "--cv",
            "2",
            "--out",
            "{tmp}/p.json",
        ],
        ("layers", "0..3", "[4]"),
        {"t.tsv": TRAIN},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(run_nt, tmp_path: Path, case: Case) -> None:
    genome = tmp_path / "g.fa"
    genome.write_text(f">chr1\n{CONTIG}\n")
    pysam.faidx(str(genome))
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    argv = [part.replace("{tmp}", str(tmp_path)) for part in case.argv]
    result = run_nt(case.command, "--model", "tiny-v3", *argv)
    assert_bad_input(result, *case.words)
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "p.json").exists()
    assert not (tmp_path / "o.tsv").exists() or (tmp_path / "o.tsv").stat().st_size == 0
