"""`nt haplotypes`: both haplotypes of each sample from a reference FASTA and a phased VCF."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import check_writable_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "haplotypes",
        help="apply phased VCF alleles to a reference (like bcftools consensus -H 1pIu / -H 2pIu)",
        description="Write, per sample and region, the two haplotype sequences made by applying the sample's "
        "phased SNVs and indels to the reference. Unphased heterozygous SNVs become IUPAC codes, unphased "
        "heterozygous indels and missing alleles keep the reference, overlapping variants are skipped per "
        "haplotype, and a REF allele that does not match the reference is an error naming its position. "
        "Contig names are matched across FASTA, VCF and --region (chr20 = 20); an unsorted VCF is sorted. "
        "The counts of applied and skipped records per reason are printed and written to OUT.stats.json; "
        "a run that applies no VCF record (or finds none in the regions) is an error.",
    )
    parser.add_argument(
        "--fasta", type=Path, required=True, help="reference FASTA (plain with .fai, or bgzip)"
    )
    parser.add_argument("--vcf", type=Path, required=True, help="phased VCF/BCF (bgzip+tabix, plain or gzip)")
    parser.add_argument("--samples", help="comma-separated sample names (default: all)")
    parser.add_argument(
        "--region",
        action="append",
        help="region such as 20:1-2000000 or chr20:1-2000000 (either naming; repeatable; default: every FASTA "
        "contig)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output FASTA (.fa or .fa.gz)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modeling_nt.pretraining import parse_region, write_haplotypes
    from modeling_nt.pretraining.haplotypes import stats_path
    from tokenization import require_file

    require_file(args.fasta, "reference FASTA")
    if args.out.exists():
        raise ValueError(f"{args.out} already exists; remove it or choose another --out")
    check_writable_file(args.out)
    samples = [name for name in args.samples.split(",") if name] if args.samples else None
    regions = [parse_region(text) for text in args.region] if args.region else None
    stats = write_haplotypes(args.fasta, args.vcf, args.out, samples=samples, regions=regions)
    print(f"wrote {args.out}: {stats.summary()}")
    print(f"counts per reason: {stats_path(args.out)}")
    return 0
