"""Bad input to `nt score-variants`: each case exit 2, one stderr line naming the file / record / position / flag.

Every case builds its files in ``tmp_path`` on a small reference (contig ``chr1``, random bases, 600 bp) and
runs the command in-process with the tiny preset.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest
from conftest import assert_bad_input

CONTIG_BP = 600
SEQUENCE = "".join(random.Random(7).choice("ACGT") for _ in range(CONTIG_BP))
POS = 300
BASE = SEQUENCE[POS - 1]
OTHER = "C" if BASE != "C" else "G"
WRONG = "A" if BASE != "A" else "T"


def _vcf_text(records: list[tuple[str, int, str, str]]) -> str:
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t." for chrom, pos, ref, alt in records]
    return "\n".join(lines) + "\n"


GOOD_VCF = _vcf_text([("chr1", POS, BASE, OTHER), ("chr1", POS + 10, SEQUENCE[POS + 9], "<DEL>")])
GOOD_LABELS = f"chrom,pos,ref,alt,label\nchr1,{POS},{BASE},{OTHER},1\n"


@dataclass
class Case:
    """Files to write (name -> text, or bytes), extra argv, and the words the error line must hold."""

    id: str
    files: dict[str, str | bytes]
    argv: list[str]
    words: tuple[str, ...]
    setup: Callable[[Path], None] | None = None


def _write_fasta(folder: Path) -> Path:
    path = folder / "ref.fa"
    path.write_text(">chr1\n" + "\n".join(SEQUENCE[i : i + 60] for i in range(0, CONTIG_BP, 60)) + "\n")
    pysam.faidx(str(path))
    return path


def _plain_gzip_fasta(folder: Path) -> None:
    with gzip.open(folder / "ref.fa.gz", "wt") as handle:
        handle.write(">chr1\n" + SEQUENCE + "\n")


def _existing_out(folder: Path) -> None:
    (folder / "done.vcf").write_text("##fileformat=VCFv4.2\n")


CASES = [
    Case("vcf missing", {}, ["--vcf", "{tmp}/nope.vcf"], ("VCF file not found", "nope.vcf")),
    Case(
        "fasta missing", {"in.vcf": GOOD_VCF}, ["--fasta", "{tmp}/nope.fa"], ("FASTA", "not found", "nope.fa")
    ),
    Case("labels missing", {"in.vcf": GOOD_VCF}, ["--labels", "{tmp}/nope.csv"], ("labels", "not found")),
    Case(
        "not a vcf (a FASTA given as --vcf)",
        {"in.vcf": ">chr1\nACGT\n"},
        [],
        ("in.vcf",),
    ),
    Case("vcf with a header only", {"in.vcf": _vcf_text([])}, [], ("in.vcf", "no variant records")),
    Case("vcf of random bytes", {"in.vcf": bytes(range(256)) * 4}, [], ("in.vcf",)),
    Case(
        "vcf record with a non-numeric POS",
        {"in.vcf": GOOD_VCF + "chr1\tabc\t.\tA\tC\t.\tPASS\t.\n"},
        [],
        ("in.vcf", "record after record chr1:310"),
    ),
    Case(
        "contig absent from the FASTA",
        {"in.vcf": _vcf_text([("chr7", POS, BASE, OTHER)])},
        [],
        ("in.vcf", "chr7", "right reference"),
    ),
    Case(
        "POS beyond the contig end",
        {"in.vcf": _vcf_text([("chr1", CONTIG_BP + 50, "A", "C")])},
        [],
        (f"chr1:{CONTIG_BP + 50}", "beyond the end", f"{CONTIG_BP} bp"),
    ),
    Case(
        "REF mismatch under --ref-mismatch error",
        {"in.vcf": _vcf_text([("chr1", POS, BASE, OTHER), ("chr1", POS + 1, WRONG + "A", "C")])},
        ["--ref-mismatch", "error"],
        ("in.vcf", f"chr1:{POS + 1}", "does not match", "--ref-mismatch skip"),
    ),
    Case(
        "'-' deletion whose REF does not match after anchoring",
        {"in.vcf": _vcf_text([("chr1", POS, WRONG, "-")])},
        [],
        ("in.vcf", f"chr1:{POS - 1}", f"left-anchored from chr1:{POS} {WRONG}/-", "does not match"),
    ),
    Case(
        "plain-gzip FASTA (not BGZF)",
        {"in.vcf": GOOD_VCF},
        ["--fasta", "{tmp}/ref.fa.gz"],
        ("ref.fa.gz", "bgzip"),
        setup=_plain_gzip_fasta,
    ),
    Case(
        "labels without variant columns",
        {"in.vcf": GOOD_VCF, "labels.csv": "name,label\nx,1\n"},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "chrom,pos,ref,alt", "columns: name, label"),
    ),
    Case(
        "labels without the label column",
        {"in.vcf": GOOD_VCF, "labels.csv": f"chrom,pos,ref,alt,effect\nchr1,{POS},{BASE},{OTHER},1\n"},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "no column 'label'", "effect"),
    ),
    Case(
        "label column without numbers",
        {"in.vcf": GOOD_VCF, "labels.csv": f"chrom,pos,ref,alt,label\nchr1,{POS},{BASE},{OTHER},benign\n"},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "'label'", "no numbers"),
    ),
    Case(
        "labels matching no variant (0-based positions)",
        {"in.vcf": GOOD_VCF, "labels.csv": f"Chrom,Pos,Ref,Alt,label\nchr1,{POS - 1},{BASE},{OTHER},1\n"},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "none of its 1 labels", f"1:{POS - 1}", f"1:{POS}", "1-based"),
    ),
    Case(
        "labels matching only a symbolic (skipped) allele",
        {
            "in.vcf": GOOD_VCF,
            "labels.csv": f"chrom,pos,ref,alt,label\nchr1,{POS + 10},{SEQUENCE[POS + 9]},<DEL>,1\n",
        },
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "its 1 labels match only alleles that are skipped"),
    ),
    Case(
        "labels with a non-integer position",
        {"in.vcf": GOOD_VCF, "labels.csv": GOOD_LABELS + "chr1,31O,A,C,0\n"},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "line 3", "'31O'", "not a positive integer"),
    ),
    Case(
        "labels giving one variant twice",
        {"in.vcf": GOOD_VCF, "labels.csv": GOOD_LABELS + f"1,{POS},{BASE},{OTHER},0\n"},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", f"1:{POS} {BASE}>{OTHER} is labelled more than once"),
    ),
    Case(
        "labels with two chromosome columns",
        {
            "in.vcf": GOOD_VCF,
            "labels.csv": f"Chrom,chrom,pos,ref,alt,label\nchr1,chr1,{POS},{BASE},{OTHER},1\n",
        },
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "'Chrom' and 'chrom'", "same name"),
    ),
    Case(
        "empty labels file",
        {"in.vcf": GOOD_VCF, "labels.csv": ""},
        ["--labels", "{tmp}/labels.csv"],
        ("labels.csv", "not a CSV/TSV"),
    ),
    Case("--layers not integers", {"in.vcf": GOOD_VCF}, ["--layers", "first"], ("--layers", "'first'")),
    Case("--layers beyond the model", {"in.vcf": GOOD_VCF}, ["--layers", "0,9"], ("layer 9", "0..2")),
    Case(
        "--scores unknown", {"in.vcf": GOOD_VCF}, ["--scores", "cosine,spearman"], ("spearman", "cosine,dot")
    ),
    Case("--scores empty", {"in.vcf": GOOD_VCF}, ["--scores", ","], ("score", "choose from")),
    Case("--window too small for the model", {"in.vcf": GOOD_VCF}, ["--window", "3"], ("--window 3", "6 bp")),
    Case(
        "--window beyond the model's context",
        {"in.vcf": GOOD_VCF},
        ["--window", "20000"],
        ("--window 20000", "12282 bp", "2048 tokens"),
    ),
    Case("--window zero", {"in.vcf": GOOD_VCF}, ["--window", "0"], ("--window", "0")),
    Case("--batch-size zero", {"in.vcf": GOOD_VCF}, ["--batch-size", "0"], ("--batch-size", "0")),
    Case("--flank-tokens negative", {"in.vcf": GOOD_VCF}, ["--flank-tokens", "-1"], ("--flank-tokens",)),
    Case(
        "--ref-mismatch unknown",
        {"in.vcf": GOOD_VCF},
        ["--ref-mismatch", "ignore"],
        ("--ref-mismatch", "ignore"),
    ),
    Case(
        "--vcf-out exists",
        {"in.vcf": GOOD_VCF},
        ["--vcf-out", "{tmp}/done.vcf"],
        ("done.vcf", "already exists"),
        setup=_existing_out,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(run_nt, tmp_path: Path, case: Case) -> None:
    fasta = _write_fasta(tmp_path)
    for name, content in case.files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    if case.setup:
        case.setup(tmp_path)
    defaults = {"--fasta": str(fasta), "--vcf": str(tmp_path / "in.vcf"), "--out": str(tmp_path / "o.tsv")}
    argv = [part.replace("{tmp}", str(tmp_path)) for part in case.argv]
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    result = run_nt("score-variants", "--model", "tiny", "--window", "60", *argv)
    assert_bad_input(result, *case.words)
    assert not (tmp_path / "o.tsv").exists() or (tmp_path / "o.tsv").stat().st_size == 0
