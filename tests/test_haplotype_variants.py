"""Haplotypes apply every VCF record or count why not (issue 12, section 3).

Real GRCh37 chr20 bases: the shared chr20 (contig ``20``) where present, and the bundled slice
(``data/chr20_GRCh37_slice.fa.gz``, written here as contig ``chr20``) everywhere. Each hand-made VCF uses the
*other* contig naming than its FASTA, and the expected haplotypes are made by hand with string slicing.
"""

from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest

from modeling_nt.pretraining import ChunkingConfig, GenomeMLMDataset, GenomeSource, parse_region
from modeling_nt.pretraining.haplotypes import HaplotypeReader, HaplotypeStats, build_haplotype

WINDOW = 200  # bp of reference under test, 1-based positions 1..200 below are relative to its start
NEXT_BASE = {"A": "C", "C": "G", "G": "T", "T": "A"}


@dataclass(frozen=True)
class Reference:
    fasta: Path
    contig: str  # the FASTA's name
    other: str  # the other naming, used in the VCFs
    offset: int  # 0-based contig position of the window's first base
    window: str  # the reference bases of the window (uppercase)

    def region(self, naming: str) -> str:
        return f"{naming}:{self.offset + 1}-{self.offset + WINDOW}"


@pytest.fixture(params=["shared", "bundled"])
def reference(request, tmp_path_factory) -> Reference:
    if request.param == "shared":
        shared = request.getfixturevalue("shared_data")
        fasta = shared / "genomes" / "chr20_GRCh37.fa.gz"
        with pysam.FastaFile(str(fasta)) as handle:
            window = handle.fetch("20", 1_000_000, 1_000_000 + WINDOW).upper()
        return Reference(fasta, "20", "chr20", 1_000_000, window)
    bundled = request.getfixturevalue("bundled_data") / "chr20_GRCh37_slice.fa.gz"
    with gzip.open(bundled, "rt") as handle:  # 20:30,000,001-30,006,000 as contig chr20
        bases = "".join(line.strip() for line in itertools.islice(handle, 1, 101))
    fasta = tmp_path_factory.mktemp("bundled") / "chr20_slice.fa"
    fasta.write_text(f">chr20\n{bases}\n")
    return Reference(fasta, "chr20", "20", 1000, bases[1000 : 1000 + WINDOW].upper())


def write_vcf(path: Path, contig: str, rows: list[tuple[int, str, str, str]], offset: int) -> Path:
    """A VCF with one sample S1; rows are (1-based window position, REF, ALT, GT), written in the given order."""
    header = (
        f"##fileformat=VCFv4.2\n##contig=<ID={contig}>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
    )
    lines = [
        f"{contig}\t{offset + pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{gt}\n" for pos, ref, alt, gt in rows
    ]
    path.write_text(header + "".join(lines))
    return path


def by_hand(window: str, edits: list[tuple[int, str, str]]) -> str:
    """The window with (1-based position, REF, ALT) edits applied right to left with string slicing."""
    for position, ref, alt in sorted(edits, reverse=True):
        assert window[position - 1 : position - 1 + len(ref)] == ref
        window = window[: position - 1] + alt + window[position - 1 + len(ref) :]
    return window


def haplotypes_of(out: Path) -> dict[str, str]:
    return {record.name: record.sequence for record in pysam.FastxFile(str(out))}


# ----------------------------------------------------------------------------- unsorted, renamed contigs

GENOTYPES = ["1|0", "0|1", "1|1", "0|0"]


def _twenty_snvs(ref: Reference) -> list[tuple[int, str, str, str]]:
    """SNVs at window positions 10, 20, ..., 200 with genotypes cycling 1|0, 0|1, 1|1, 0|0."""
    rows = []
    for index, position in enumerate(range(10, 201, 10)):
        base = ref.window[position - 1]
        rows.append((position, base, NEXT_BASE[base], GENOTYPES[index % 4]))
    return rows


def test_unsorted_vcf_with_other_contig_names_applies_every_snv(reference, run_nt, tmp_path) -> None:
    rows = _twenty_snvs(reference)
    vcf = write_vcf(tmp_path / "unsorted.vcf", reference.other, rows[::-1], reference.offset)  # reversed
    out = tmp_path / "haplotypes.fa"
    result = run_nt("haplotypes", "--fasta", reference.fasta, "--vcf", vcf, "--region",
                    reference.region(reference.other), "--out", out)  # fmt: skip
    assert result.code == 0, result.err
    hap1 = by_hand(reference.window, [(p, r, a) for p, r, a, gt in rows if gt[0] == "1"])
    hap2 = by_hand(reference.window, [(p, r, a) for p, r, a, gt in rows if gt[2] == "1"])
    name = reference.region(reference.contig)  # records carry the FASTA's contig name
    assert haplotypes_of(out) == {f"S1_hap1_{name}": hap1, f"S1_hap2_{name}": hap2}
    assert sum(a != b for a, b in zip(hap1, reference.window, strict=True)) == 10
    # 15 records carry an ALT (five are 0|0); 10 ALTs per haplotype; 19 records follow a later position
    counts = json.loads((tmp_path / "haplotypes.fa.stats.json").read_text())
    assert counts == {
        **vars(
            HaplotypeStats(records=20, records_applied=15, out_of_order=19, applied=20, reference_allele=20)
        ),
        "skipped": {"reference allele (GT 0)": 20},
    }
    assert "15 of 20 VCF records applied" in result.out and "19 out-of-order records sorted" in result.out


def test_region_in_either_naming_and_indexed_vcf_give_the_same_haplotypes(reference, tmp_path) -> None:
    rows = _twenty_snvs(reference)
    plain = write_vcf(tmp_path / "sorted.vcf", reference.other, rows, reference.offset)
    pysam.tabix_index(str(plain), preset="vcf", force=True)  # -> sorted.vcf.gz + .tbi
    expected = by_hand(reference.window, [(p, r, a) for p, r, a, gt in rows if gt[2] == "1"])
    for vcf in (
        tmp_path / "sorted.vcf.gz",
        write_vcf(tmp_path / "u.vcf", reference.other, rows[::-1], reference.offset),
    ):
        for naming in (reference.contig, reference.other):
            sequence, stats = build_haplotype(reference.fasta, vcf, reference.region(naming), "S1", 2)
            assert sequence == expected
            assert (stats.records, stats.records_applied, stats.applied) == (20, 10, 10)


# ----------------------------------------------------------------------------- overlaps and every reason


def _overlap_rows(ref: Reference) -> list[tuple[int, str, str, str]]:
    w = ref.window
    deletion = w[49:55]  # positions 50-55: deletes 51-55 on haplotype 1
    snv = NEXT_BASE[w[51]]
    return [
        (
            52,
            w[51],
            snv,
            "1|1",
        ),  # file order before the deletion; on hap 1 inside it -> overlaps; hap 2 applied
        (50, deletion, deletion[0], "1|0"),
        (100, w[99], w[99] + "GGA", "0|1"),  # insertion after base 100 on haplotype 2
        (100, w[99], NEXT_BASE[w[99]], "0|1"),  # same position, later in the file: overlaps on hap 2
        (120, w[119], NEXT_BASE[w[119]], "0/1"),  # unphased het SNV: IUPAC code on both haplotypes
        (130, w[129:132], w[129], "1/0"),  # unphased het deletion: reference kept on both
        (140, w[139], NEXT_BASE[w[139]], ".|1"),  # missing on hap 1, applied on hap 2
        (150, w[149], "<DEL>", "1|1"),  # symbolic ALT: reference kept on both
        (160, w[159], NEXT_BASE[w[159]], "1|0"),  # plain SNV on haplotype 1
    ]


def test_overlaps_are_skipped_only_on_their_haplotype_and_every_reason_is_counted(
    reference, run_nt, tmp_path
) -> None:
    w = reference.window
    rows = _overlap_rows(reference)
    vcf = write_vcf(tmp_path / "overlaps.vcf", reference.other, rows, reference.offset)
    # a deletion from window position 199 over the window end (199-202): in the region's records, never applied
    with pysam.FastaFile(str(reference.fasta)) as fasta:
        crossing = fasta.fetch(reference.contig, reference.offset + 198, reference.offset + 202).upper()
    with open(vcf, "a") as handle:
        handle.write(
            f"{reference.other}\t{reference.offset + 199}\t.\t{crossing}\t{crossing[0]}\t.\t.\t.\tGT\t1|1\n"
        )
    out = tmp_path / "haplotypes.fa.gz"
    result = run_nt("haplotypes", "--fasta", reference.fasta, "--vcf", vcf, "--region",
                    reference.region(reference.contig), "--out", out)  # fmt: skip
    assert result.code == 0, result.err
    iupac = {"AG": "R", "CT": "Y", "CG": "S", "AT": "W", "GT": "K", "AC": "M"}
    code = iupac["".join(sorted(w[119] + NEXT_BASE[w[119]]))]
    hap1 = by_hand(w, [(50, w[49:55], w[49]), (120, w[119], code), (160, w[159], NEXT_BASE[w[159]])])
    hap2 = by_hand(
        w,
        [(52, w[51], NEXT_BASE[w[51]]), (100, w[99], w[99] + "GGA"), (120, w[119], code),
         (140, w[139], NEXT_BASE[w[139]])],
    )  # fmt: skip
    name = reference.region(reference.contig)
    assert haplotypes_of(out) == {f"S1_hap1_{name}": hap1, f"S1_hap2_{name}": hap2}
    assert len(hap1) == WINDOW - 5 and len(hap2) == WINDOW + 3
    counts = json.loads((tmp_path / "haplotypes.fa.gz.stats.json").read_text())
    assert counts["skipped"] == {
        "extends outside the region": 1,
        "reference allele (GT 0)": 4,  # deletion@50 and SNV@160 on hap 2, insertion and SNV@100 on hap 1
        "missing genotype": 1,
        "not phased (heterozygous indel/MNV)": 2,
        "symbolic ALT": 2,
        "overlaps previous variant": 2,  # SNV@52 on hap 1, SNV@100 on hap 2
    }
    # applied: hap 1 deletion@50, IUPAC@120, SNV@160; hap 2 SNV@52, insertion@100, IUPAC@120, SNV@140;
    # records applied somewhere: 50, 52, 100 (insertion), 120, 140, 160
    assert (counts["records"], counts["records_applied"], counts["applied"], counts["unphased_iupac"]) == (
        10, 6, 7, 2,
    )  # fmt: skip
    assert counts["out_of_order"] == 1  # the deletion at 50 came after the SNV at 52


def test_zero_applied_records_is_an_error_naming_the_reasons(reference, run_nt, tmp_path) -> None:
    w = reference.window
    rows = [
        (10, w[9], NEXT_BASE[w[9]], "0|0"),
        (20, w[19], NEXT_BASE[w[19]], ".|."),
        (30, w[29], "<INS>", "1|1"),
    ]
    vcf = write_vcf(tmp_path / "nothing.vcf", reference.other, rows, reference.offset)
    out = tmp_path / "haplotypes.fa"
    result = run_nt("haplotypes", "--fasta", reference.fasta, "--vcf", vcf, "--region",
                    reference.region(reference.other), "--out", out)  # fmt: skip
    assert result.code == 2 and result.err.count("\n") == 1
    assert (
        f"0 of 3 VCF records of {vcf} applied to {out}: reasons reference allele (GT 0) 2, missing genotype 2, "
        "symbolic ALT 2" in result.err
    )
    assert not out.exists() and not Path(f"{out}.partial").exists()
    elsewhere = run_nt("haplotypes", "--fasta", reference.fasta, "--vcf", vcf, "--region",
                       f"{reference.contig}:{reference.offset + 1001}-{reference.offset + 1100}", "--out", out)  # fmt: skip
    assert elsewhere.code == 2 and "0 VCF records of" in elsewhere.err
    assert f"VCF contigs: {reference.other}" in elsewhere.err


# ----------------------------------------------------------------------------- pretraining reader


def test_pretraining_reader_gives_the_same_haplotypes(reference, tmp_path) -> None:
    rows = _overlap_rows(reference)
    vcf = write_vcf(tmp_path / "overlaps.vcf", reference.other, rows, reference.offset)
    expected = {
        haplotype: build_haplotype(reference.fasta, vcf, reference.region(reference.contig), "S1", haplotype)[
            0
        ]
        for haplotype in (1, 2)
    }
    chunking = ChunkingConfig(chunk_length=1000, overlap=0, max_offset=0, min_length=1)
    region = parse_region(reference.region(reference.other))
    reader = HaplotypeReader(reference.fasta, vcf, [region], ["S1"], chunking)
    records = list(reader.records("train", 0))
    name = reference.region(reference.contig)
    assert [(r.contig, r.start) for r in records] == [(f"S1_hap1_{name}", 0), (f"S1_hap2_{name}", 0)]
    iupac_as_n = str.maketrans("RYSWKM", "NNNNNN")
    assert [r.sequence for r in records] == [
        expected[1].translate(iupac_as_n),
        expected[2].translate(iupac_as_n),
    ]
    assert (reader.stats.records, reader.stats.records_applied, reader.stats.overlapping_skipped) == (9, 6, 2)

    held_out = [parse_region(reference.region(reference.other))]  # held out in the VCF's naming
    assert list(HaplotypeReader(reference.fasta, vcf, [region], ["S1"], chunking, held_out).records()) == []

    source = GenomeSource(str(reference.fasta), vcf=str(vcf), regions=(reference.region(reference.other),))
    dataset = GenomeMLMDataset([source], chunking, split="train")
    first_two = list(itertools.islice(dataset.records(), 2))
    assert [r.sequence for r in first_two] == [r.sequence for r in records]


def test_pretraining_reader_refuses_a_source_that_applies_nothing(reference, tmp_path) -> None:
    w = reference.window
    vcf = write_vcf(
        tmp_path / "ref_only.vcf", reference.other, [(10, w[9], NEXT_BASE[w[9]], "0|0")], reference.offset
    )
    chunking = ChunkingConfig(chunk_length=1000, overlap=0, max_offset=0, min_length=1)
    reader = HaplotypeReader(
        reference.fasta, vcf, [parse_region(reference.region(reference.contig))], None, chunking
    )
    with pytest.raises(ValueError, match=r"0 of 1 VCF records of .*ref_only.vcf applied to haplotype source"):
        list(reader.records("train", 0))
    with pytest.raises(ValueError, match=r"contig 'chr7' of region chr7:1-10 is not in"):
        HaplotypeReader(reference.fasta, vcf, [parse_region("chr7:1-10")], None, chunking)


def test_unphased_calls_with_one_allele_missing_are_not_counted_as_heterozygous(reference, tmp_path) -> None:
    w = reference.window
    rows = [(10, w[9], NEXT_BASE[w[9]], "1/."), (20, w[19], NEXT_BASE[w[19]], "0/.")]
    vcf = write_vcf(tmp_path / "half.vcf", reference.other, rows, reference.offset)
    region = reference.region(reference.contig)
    hap1, stats1 = build_haplotype(reference.fasta, vcf, region, "S1", 1)
    hap2, stats2 = build_haplotype(reference.fasta, vcf, region, "S1", 2)
    assert hap1 == w[:9] + NEXT_BASE[w[9]] + w[10:] and hap2 == w
    assert (stats1.applied, stats1.unphased_iupac, stats1.reference_allele, stats1.missing_kept_reference) == (
        1, 0, 1, 0,
    )  # fmt: skip
    assert (stats2.applied, stats2.missing_kept_reference, stats2.records, stats2.records_applied) == (
        0,
        2,
        2,
        0,
    )
