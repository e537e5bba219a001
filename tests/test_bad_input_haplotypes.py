"""Bad input to ``nt haplotypes``: exit 2, one stderr line naming the file, record, position or flag.

The reference is 6,000 bp of real GRCh37 chr20 (the bundled slice, 20:30,000,001-30,006,000) written as
contig ``20`` (plus a 1,000 bp contig ``21`` cut from it); the VCFs are written here by hand.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUNDLED_DATA, assert_bad_input

LENGTH = 6000
_BASES: list[str] = []


def bases() -> str:
    if not _BASES:
        with gzip.open(BUNDLED_DATA / "chr20_GRCh37_slice.fa.gz", "rt") as handle:
            _BASES.append("".join(line.strip() for line in itertools.islice(handle, 1, 101)).upper())
    return _BASES[0]


HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=20,length=6000>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
)


def snv(position: int, genotype: str = "0|1", contig: str = "20", ref: str | None = None) -> str:
    """A VCF line: the SNV at 1-based ``position`` of the reference (REF from the reference unless given)."""
    base = ref or bases()[position - 1]
    alt = {"A": "C", "C": "G", "G": "T", "T": "A"}[bases()[position - 1]]
    return f"{contig}\t{position}\t.\t{base}\t{alt}\t.\tPASS\t.\tGT\t{genotype}\n"


GOOD_VCF = HEADER + snv(100) + snv(200, "1|1")


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _fasta(tmp: Path) -> Path:
    return _write(tmp, "ref.fa", f">20\n{bases()}\n>21\n{bases()[:1000]}\n")


def _plain_gzip_fasta(tmp: Path) -> Path:
    path = tmp / "ref.fa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(f">20\n{bases()}\n")
    return path


def _args(tmp: Path, vcf_text: str | None = GOOD_VCF, *extra: str) -> list[str]:
    vcf = _write(tmp, "calls.vcf", vcf_text) if vcf_text is not None else tmp / "missing.vcf"
    return ["--fasta", str(_fasta(tmp)), "--vcf", str(vcf), "--out", str(tmp / "haps.fa"), *extra]


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def _existing_out(tmp: Path) -> list[str]:
    _write(tmp, "haps.fa", ">old\nACGT\n")
    return _args(tmp)


def _out_under_a_file(tmp: Path) -> list[str]:
    _write(tmp, "notes.txt", "a file, not a folder\n")
    return _replace(_args(tmp), "--out", str(tmp / "notes.txt" / "haps.fa"))


# (id, build argv from tmp_path, words the one error line must contain)
CASES: list[tuple[str, Callable[[Path], list[str]], tuple[str, ...]]] = [
    ("missing-vcf", lambda t: _args(t, None), ("VCF file not found", "missing.vcf")),
    ("vcf-is-plain-text", lambda t: _args(t, "sample\tvalue\nS1\t3\n"), ("calls.vcf", "not a readable VCF")),
    ("vcf-is-a-fasta", lambda t: _args(t, ">20\nACGT\n"), ("calls.vcf", "not a readable VCF")),
    (
        "missing-fasta",
        lambda t: _replace(_args(t), "--fasta", str(t / "hg19.fa")),
        ("hg19.fa", "not found"),
    ),
    (
        "fasta-plain-gzip",
        lambda t: _replace(_args(t), "--fasta", str(_plain_gzip_fasta(t))),
        ("ref.fa.gz", "indexed FASTA", "bgzip"),
    ),
    (
        "fasta-not-fasta",
        lambda t: _replace(_args(t), "--fasta", str(_write(t, "x.fa", "hello\n"))),
        ("x.fa",),
    ),
    (
        "region-contig-not-in-fasta",
        lambda t: _args(t, GOOD_VCF, "--region", "chr7:1-100"),
        ("'chr7'", "chr7:1-100", "ref.fa", "its contigs: 20, 21"),
    ),
    (
        "region-contig-not-in-vcf",
        lambda t: _args(t, GOOD_VCF, "--region", "chr21:1-100"),
        ("'chr21'", "calls.vcf", "its contigs: 20"),
    ),
    (
        "sample-not-in-vcf",
        lambda t: _args(t, GOOD_VCF, "--samples", "NA12878"),
        ("NA12878", "calls.vcf", "S1"),
    ),
    (
        "region-past-contig-end",
        lambda t: _args(t, GOOD_VCF, "--region", "20:5901-6100"),
        ("20:5901-6100", "outside contig 20", "6,000 bp"),
    ),
    (
        "region-beyond-contig",
        lambda t: _args(t, GOOD_VCF, "--region", "chr20:10001-10100"),
        ("chr20:10001-10100", "outside contig 20"),
    ),
    (
        "region-end-before-start",
        lambda t: _args(t, GOOD_VCF, "--region", "20:500-100"),
        ("20:500-100", "START"),
    ),
    ("region-zero-start", lambda t: _args(t, GOOD_VCF, "--region", "20:0-100"), ("20:0-100", "1 <= START")),
    (
        "nothing-applied",
        lambda t: _args(t, HEADER + snv(100, "0|0") + snv(200, ".|.")),
        ("0 of 2 VCF records", "calls.vcf", "haps.fa", "reference allele (GT 0) 2", "missing genotype 2"),
    ),
    (
        "only-symbolic-alts",
        lambda t: _args(t, HEADER + f"20\t100\t.\t{bases()[99]}\t<DEL>\t.\t.\t.\tGT\t1|1\n"),
        ("0 of 1 VCF records", "symbolic ALT 2"),
    ),
    (
        "no-records-in-region",
        lambda t: _args(t, GOOD_VCF, "--region", "20:3001-4000"),
        ("0 VCF records", "calls.vcf", "20:3001-4000"),
    ),
    ("header-only-vcf", lambda t: _args(t, HEADER), ("0 VCF records", "calls.vcf")),
    (
        "undeclared-contig-nothing-applied",  # no ##contig line: htslib warns on the C-level stderr
        lambda t: _args(t, HEADER.replace("##contig=<ID=20,length=6000>\n", "") + snv(100, "0|0")),
        ("0 of 1 VCF records", "reference allele (GT 0) 2"),
    ),
    (
        "vcf-contigs-match-nothing",
        lambda t: _args(t, HEADER.replace("ID=20", "ID=chrUn_gl000220") + snv(100, contig="chrUn_gl000220")),
        ("0 VCF records", "VCF contigs: chrUn_gl000220"),
    ),
    (
        "ref-mismatch-everywhere",
        lambda t: _args(t, HEADER + snv(100, ref="N") + snv(200, ref="N")),
        ("calls.vcf", "REF allele N at 20:100", "does not match"),
    ),
    (
        "sites-only-vcf",
        lambda t: _args(
            t,
            "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n20\t5\t.\tA\tC\t.\t.\t.\n",
        ),
        ("calls.vcf", "no sample columns"),
    ),
    (
        "malformed-record",
        lambda t: _args(t, GOOD_VCF + "20\tabc\t.\tA\n"),
        ("calls.vcf", "cannot read the record after record 20:200"),
    ),
    ("out-exists", _existing_out, ("haps.fa", "already exists")),
    ("out-under-a-file", _out_under_a_file, ("--out", "notes.txt", "is a file")),
]


@pytest.mark.parametrize(("build", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_haplotypes(run_nt, tmp_path, build, words) -> None:
    argv = build(tmp_path)
    result = run_nt("haplotypes", *argv)
    assert_bad_input(result, *words)
    out = Path(argv[argv.index("--out") + 1])
    assert not Path(f"{out}.partial").exists() and not Path(f"{out}.stats.json").exists()


def test_the_good_input_of_the_table_works(run_nt, tmp_path) -> None:
    """The cases differ from a working call only by their defect."""
    result = run_nt("haplotypes", *_args(tmp_path, GOOD_VCF, "--region", "chr20:1-1000"))
    assert result.code == 0, result.err
    assert "2 of 2 VCF records applied (3 haplotype alleles" in result.out


@pytest.mark.parametrize(
    "case", ["fasta-plain-gzip", "fasta-not-fasta", "vcf-is-plain-text", "undeclared-contig-nothing-applied"]
)
def test_htslib_adds_no_lines_of_its_own(capfd, tmp_path, case) -> None:
    """htslib writes its warnings to the C-level stderr, which ``run_nt`` (capsys) does not see: capfd does."""
    from benchmarks.cli import main

    build = next(entry[1] for entry in CASES if entry[0] == case)
    assert main(["haplotypes", *build(tmp_path)]) == 2
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nt haplotypes: error:"), lines
