"""Haplotypes from a reference + phased VCF, against hand-made expected sequences (bcftools -H 1pIu / 2pIu)."""

from __future__ import annotations

from pathlib import Path

import pysam
import pytest

from benchmarks.cli import main as nt
from modeling_nt.pretraining import (
    ChunkingConfig,
    GenomeMLMDataset,
    GenomeSource,
    build_haplotype,
    parse_region,
    write_haplotypes,
)
from modeling_nt.pretraining.haplotypes import HaplotypeReader, HaplotypeStats

#            1234567890123456789012345678901234567890  (1-based positions)
REFERENCE = "ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGT"
HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=c1,length=40>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n"
)
RECORDS = [
    ("3", "G", "T", "0|1", "0/1"),  # SNV: S1 phase 2; S2 unphased het -> IUPAC K on both
    ("9", "A", "ACC", "1|0", "1/1"),  # insertion: S1 phase 1; S2 homozygous (unphased is fine)
    ("10", "C", "G", "1|1", "0|0"),  # SNV inside nothing applied before on S1's haplotypes: applied
    ("19", "GTA", "G", "0|1", "./."),  # deletion of TA (positions 20-21): S1 phase 2; S2 missing
    ("20", "T", "C", "0|1", "1|0"),  # overlaps S1's deletion on haplotype 2: skipped there
    ("30", "C", "CGGG,A", "1|2", "2/1"),  # multi-allelic; S2 unphased het mixing an indel: reference kept
]


def _vcf_text(records) -> str:
    lines = [f"c1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{s1}\t{s2}\n" for pos, ref, alt, s1, s2 in records]
    return HEADER + "".join(lines)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("haplotypes")
    fasta = folder / "ref.fa"
    fasta.write_text(f">c1\n{REFERENCE}\n")
    pysam.faidx(str(fasta))
    plain = folder / "calls.vcf"
    plain.write_text(_vcf_text(RECORDS))
    indexed = folder / "indexed.vcf"
    indexed.write_text(_vcf_text(RECORDS))
    pysam.tabix_index(str(indexed), preset="vcf", force=True)  # -> indexed.vcf.gz + .tbi
    return {"fasta": fasta, "vcf": plain, "indexed": folder / "indexed.vcf.gz", "folder": folder}


def _splice(edits: list[tuple[int, str, str]], sequence: str = REFERENCE) -> str:
    """Apply (1-based pos, ref, alt) edits right to left: the hand-made expectation."""
    for position, ref, alt in sorted(edits, reverse=True):
        assert sequence[position - 1 : position - 1 + len(ref)] == ref
        sequence = sequence[: position - 1] + alt + sequence[position - 1 + len(ref) :]
    return sequence


EXPECTED = {
    ("S1", 1): _splice([(9, "A", "ACC"), (10, "C", "G"), (30, "C", "CGGG")]),
    ("S1", 2): _splice([(3, "G", "T"), (10, "C", "G"), (19, "GTA", "G"), (30, "C", "A")]),
    ("S2", 1): _splice([(3, "G", "K"), (9, "A", "ACC"), (20, "T", "C")]),
    ("S2", 2): _splice([(3, "G", "K"), (9, "A", "ACC")]),
}


def test_hand_made_expectations_are_what_we_think() -> None:
    # segments: reference stretches and the applied alleles, written out by hand
    assert EXPECTED[("S1", 1)] == "ACGTACGTA" + "CC" + "G" + "GTACGTACGTACGTACGTA" + "CGGG" + "GTACGTACGT"
    assert (
        EXPECTED[("S1", 2)]
        == "AC" + "T" + "TACGTA" + "G" + "GTACGTAC" + "G" + "CGTACGTA" + "A" + "GTACGTACGT"
    )
    assert EXPECTED[("S2", 1)] == "AC" + "K" + "TACGTA" + "CC" + "CGTACGTACG" + "C" + "ACGTACGTACGTACGTACGT"


@pytest.mark.parametrize("vcf_kind", ["vcf", "indexed"])
@pytest.mark.parametrize(("sample", "haplotype"), list(EXPECTED))
def test_haplotypes_match_hand_made_sequences(files, vcf_kind: str, sample: str, haplotype: int) -> None:
    sequence, _ = build_haplotype(files["fasta"], files[vcf_kind], "c1", sample, haplotype)
    assert sequence == EXPECTED[(sample, haplotype)]


def test_stats_count_the_documented_rules(files) -> None:
    _, s1 = build_haplotype(files["fasta"], files["vcf"], "c1", "S1", 2)
    assert (s1.applied, s1.overlapping_skipped) == (4, 1)
    _, s2 = build_haplotype(files["fasta"], files["vcf"], "c1", "S2", 1)
    assert s2 == HaplotypeStats(
        records=6,
        records_applied=3,
        applied=3,
        reference_allele=1,
        unphased_iupac=1,
        unphased_kept_reference=1,
        missing_kept_reference=1,
        overlapping_skipped=0,
    )


def test_region_limits_variants_and_sequence(files) -> None:
    sequence, _ = build_haplotype(files["fasta"], files["indexed"], "c1:5-25", "S1", 2)
    assert sequence == _splice([(10, "C", "G"), (19, "GTA", "G")])[4:23]


def test_ref_mismatch_is_reported_with_its_position(files) -> None:
    bad = files["folder"] / "bad.vcf"
    bad.write_text(_vcf_text([("3", "G", "T", "0|1", "0|0"), ("14", "A", "G", "1|1", "0|0")]))  # pos 14 is C
    with pytest.raises(ValueError, match=r"REF allele A at c1:14 does not match the reference \(C\)"):
        build_haplotype(files["fasta"], bad, "c1", "S1", 1)


def test_unknown_sample_and_sites_only_vcf_are_errors(files, shared_data) -> None:
    with pytest.raises(ValueError, match=r"samples \['S9'\] are not in"):
        build_haplotype(files["fasta"], files["vcf"], "c1", "S9", 1)
    sites_only = shared_data / "variants" / "vt_normalize_chr20_indels.out.vcf.gz"  # plain gzip, no samples
    with pytest.raises(ValueError, match="no sample columns"):
        build_haplotype(shared_data / "genomes" / "chr20_GRCh37.fa.gz", sites_only, "20:1-1000000", "S1", 1)


def test_cli_writes_both_haplotypes_per_sample(files) -> None:
    out = files["folder"] / "haplotypes.fa"
    assert nt(["haplotypes", "--fasta", str(files["fasta"]), "--vcf", str(files["vcf"]), "--samples", "S2,S1",
               "--region", "c1:1-40", "--out", str(out)]) == 0  # fmt: skip
    records = {record.name: record.sequence for record in pysam.FastxFile(str(out))}
    assert list(records) == [f"{s}_hap{h}_c1:1-40" for s in ("S2", "S1") for h in (1, 2)]
    assert all(records[f"{s}_hap{h}_c1:1-40"] == EXPECTED[(s, h)] for s, h in EXPECTED)
    assert (
        nt(["haplotypes", "--fasta", str(files["fasta"]), "--vcf", str(files["vcf"]), "--out", str(out)]) == 2
    )


def test_haplotype_records_feed_pretraining(files) -> None:
    chunking = ChunkingConfig(chunk_length=20, overlap=2, max_offset=0, min_length=5)
    reader = HaplotypeReader(files["fasta"], files["indexed"], [parse_region("c1")], ["S1"], chunking)
    records = list(reader.records("train", offset=0))
    assert [r.contig for r in records] == ["S1_hap1_c1"] * 3 + ["S1_hap2_c1"] * 2
    assert records[0].sequence == EXPECTED[("S1", 1)][:24]
    source = GenomeSource(str(files["fasta"]), vcf=str(files["indexed"]), samples=("S2",), regions=("c1",))
    dataset = GenomeMLMDataset([source], chunking, max_tokens=10)
    first = next(iter(dataset))
    assert first["input_ids"][0] == 3 and len(first["input_ids"]) > 1
    assert next(dataset.records()).sequence == EXPECTED[("S2", 1)][:24].replace("K", "N")


def test_real_chr20_haplotypes(shared_data, tmp_path) -> None:
    """Small phased VCF on the real GRCh37 chr20: SNV, insertion, deletion, both phases; REF mismatch."""
    reference = shared_data / "genomes" / "chr20_GRCh37.fa.gz"
    with pysam.FastaFile(str(reference)) as fasta:
        window = fasta.fetch("20", 1_000_000, 1_000_100).upper()  # 20:1,000,001-1,000,100
    snv_ref, del_ref = window[9], window[49:53]
    snv_alt = "A" if snv_ref != "A" else "C"
    records = [
        ("1000010", snv_ref, snv_alt, "1|0", "0|0"),
        ("1000030", window[29], window[29] + "TTTT", "0|1", "0|0"),
        ("1000050", del_ref, del_ref[0], "1|1", "0|0"),
    ]
    text = _vcf_text(records).replace("##contig=<ID=c1,length=40>", "##contig=<ID=20,length=63025520>")
    vcf = tmp_path / "phased.vcf"
    vcf.write_text(text.replace("c1\t", "20\t"))
    pysam.tabix_index(str(vcf), preset="vcf", force=True)
    out = tmp_path / "haplotypes.fa.gz"
    stats = write_haplotypes(
        reference, tmp_path / "phased.vcf.gz", out, ["S1"], [parse_region("20:1000001-1000100")]
    )
    assert stats.applied == 4
    haplotypes = [record.sequence for record in pysam.FastxFile(str(out))]
    assert haplotypes[0] == _splice([(10, snv_ref, snv_alt), (50, del_ref, del_ref[0])], window)
    assert haplotypes[1] == _splice(
        [(30, window[29], window[29] + "TTTT"), (50, del_ref, del_ref[0])], window
    )
    assert len(haplotypes[1]) == 100 + 4 - 3
    wrong = "A" if window[69] != "A" else "G"
    bad = tmp_path / "bad.vcf"
    bad.write_text(text.replace("c1\t", "20\t") + f"20\t1000070\t.\t{wrong}\tT\t.\tPASS\t.\tGT\t1|1\t0|0\n")
    with pytest.raises(ValueError, match=f"REF allele {wrong} at 20:1000070 does not match"):
        build_haplotype(reference, bad, "20:1000001-1000100", "S1", 1)
