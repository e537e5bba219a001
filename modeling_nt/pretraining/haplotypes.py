"""Haplotype sequences from a reference FASTA and a phased VCF (the NT 1000 Genomes recipe).

For each sample and region the two haplotypes are the reference with that sample's alleles applied, as
``bcftools consensus -H 1pIu`` (haplotype 1) and ``-H 2pIu`` (haplotype 2) make them:

- phased genotypes (``0|1``) and homozygous ones (``1/1``): haplotype *h* gets the *h*-th allele of the GT
  (a haploid GT is used for both haplotypes); SNVs, MNVs, insertions and deletions are all applied;
- unphased heterozygous SNVs (``0/1``): both haplotypes get the IUPAC code of the two alleles (``A/G`` -> ``R``;
  the pretraining reader turns it into N); unphased heterozygous indels and MNVs keep the reference, like a
  missing allele (``.``); symbolic (``<DEL>``) and ``*`` alleles keep the reference;
- overlapping variants: on each haplotype, a variant whose REF span starts inside the REF span of an allele
  already applied there is skipped (counted in the stats), as bcftools does;
- every record's REF must match the reference (case-insensitive), else a ValueError names the VCF, the
  position and both sequences;
- only variants whose REF span lies wholly inside the region are applied.

Sequences are produced as a stream of pieces (reference blocks and alleles), so memory does not grow with the
region's length.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from .genome import ChunkingConfig, GenomeRecord, Region, _StreamedContig, chunk_windows, split_intervals

IUPAC_CODES = {
    frozenset("AG"): "R",
    frozenset("CT"): "Y",
    frozenset("CG"): "S",
    frozenset("AT"): "W",
    frozenset("GT"): "K",
    frozenset("AC"): "M",
}
_REFERENCE_BLOCK = 1 << 20


@dataclass
class HaplotypeStats:
    """What happened to the variants of one or more haplotypes."""

    applied: int = 0
    unphased_iupac: int = 0
    unphased_kept_reference: int = 0
    missing_kept_reference: int = 0
    symbolic_skipped: int = 0
    overlapping_skipped: int = 0

    def add(self, other: HaplotypeStats) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


@dataclass(frozen=True)
class _Variant:
    start: int
    stop: int
    ref: str
    alleles: tuple[str, ...]  # REF first, then ALTs
    genotypes: dict[str, tuple[tuple[int | None, ...], bool]] = field(compare=False)


@contextlib.contextmanager
def open_vcf(path: str | Path) -> Iterator[object]:
    """``pysam.VariantFile`` on a VCF/BCF (plain, bgzip or plain gzip), rewindable; clear errors for missing or
    unreadable files. htslib cannot open plain-gzip VCFs: they go through a decompressed temporary copy."""
    import pysam

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VCF file not found: {path}")
    try:
        vcf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable VCF file ({error})") from error
    except NotImplementedError:  # plain gzip: htslib cannot seek in it
        with tempfile.TemporaryDirectory() as folder:
            plain = Path(folder) / "variants.vcf"
            with gzip.open(path, "rb") as source, open(plain, "wb") as target:
                shutil.copyfileobj(source, target)
            with pysam.VariantFile(str(plain)) as vcf:
                yield vcf
        return
    with vcf:
        yield vcf


def _region_variants(vcf, region: Region, samples: Sequence[str]) -> Iterator[_Variant]:
    """Records of ``region`` (REF span inside it), in file order, with the genotypes of ``samples``."""
    if vcf.index is not None:
        records = vcf.fetch(region.contig, region.start, region.end)
    else:
        vcf.reset()
        records = (record for record in vcf if record.contig == region.contig)
    for record in records:
        if record.start < region.start or (region.end is not None and record.stop > region.end):
            continue
        genotypes = {
            name: (record.samples[name]["GT"] or (None,), record.samples[name].phased) for name in samples
        }
        yield _Variant(record.start, record.stop, record.ref, (record.ref, *(record.alts or ())), genotypes)


def _allele_for(variant: _Variant, sample: str, haplotype: int, stats: HaplotypeStats) -> str | None:
    """The allele haplotype 1 or 2 of ``sample`` carries at ``variant``; None keeps the reference."""
    genotype, phased = variant.genotypes[sample]
    index = genotype[min(haplotype - 1, len(genotype) - 1)]
    called = [allele for allele in genotype if allele is not None]
    homozygous = len(called) == len(genotype) and len(set(called)) == 1
    if index is None:
        stats.missing_kept_reference += 1
        return None
    if not phased and not homozygous:
        bases = {variant.alleles[allele] for allele in called}
        if all(len(base) == 1 and base in "ACGT" for base in bases):
            stats.unphased_iupac += 1
            return IUPAC_CODES.get(frozenset(bases), next(iter(bases)))
        stats.unphased_kept_reference += 1
        return None
    if index == 0:
        return None
    allele = variant.alleles[index]
    if allele.startswith("<") or allele == "*":
        stats.symbolic_skipped += 1
        return None
    return allele


def _reference_pieces(fasta, contig: str, start: int, end: int | None) -> Iterator[str]:
    """The reference from ``start`` to ``end`` (None: the contig's end) in blocks of at most 1 Mb."""
    end = fasta.get_reference_length(contig) if end is None else end
    for block in range(start, end, _REFERENCE_BLOCK):
        yield fasta.fetch(contig, block, min(block + _REFERENCE_BLOCK, end))


def haplotype_pieces(
    fasta, vcf, vcf_path: str | Path, region: Region, sample: str, haplotype: int, stats: HaplotypeStats
) -> Iterator[str]:
    """Pieces that concatenate to haplotype ``haplotype`` (1 or 2) of ``sample`` over ``region``.

    ``fasta`` is an open ``pysam.FastaFile``, ``vcf`` an open ``pysam.VariantFile``.
    """
    if region.contig not in fasta.references:
        raise ValueError(f"contig {region.contig!r} of region {region} is not in the reference FASTA")
    cursor = region.start
    for variant in _region_variants(vcf, region, [sample]):
        reference = fasta.fetch(region.contig, variant.start, variant.stop)
        if reference.upper() != variant.ref.upper():
            raise ValueError(
                f"{vcf_path}: REF allele {variant.ref} at {region.contig}:{variant.start + 1} does not match "
                f"the reference ({reference})"
            )
        allele = _allele_for(variant, sample, haplotype, stats)
        if allele is None:
            continue
        if variant.start < cursor:
            stats.overlapping_skipped += 1
            continue
        yield from _reference_pieces(fasta, region.contig, cursor, variant.start)
        yield allele
        stats.applied += 1
        cursor = variant.stop
    yield from _reference_pieces(fasta, region.contig, cursor, region.end)


def _check_samples(vcf, vcf_path: str | Path, samples: Sequence[str] | None) -> list[str]:
    available = list(vcf.header.samples)
    if not available:
        raise ValueError(f"{vcf_path} has no sample columns (sites-only VCF): no genotypes to apply")
    missing = [name for name in samples or () if name not in available]
    if missing:
        raise ValueError(
            f"samples {missing} are not in {vcf_path} (it has {len(available)}: {available[:5]}...)"
        )
    return list(samples) if samples else available


def haplotype_name(sample: str, haplotype: int, region: Region) -> str:
    """FASTA record name of a haplotype: ``SAMPLE_hap1_20:1-2000000``."""
    return f"{sample}_hap{haplotype}_{region}"


def build_haplotype(
    fasta_path: str | Path, vcf_path: str | Path, region: Region | str, sample: str, haplotype: int
) -> tuple[str, HaplotypeStats]:
    """One haplotype as a string (convenient for small regions), and what was applied."""
    import pysam

    from .genome import parse_region

    region = parse_region(region) if isinstance(region, str) else region
    stats = HaplotypeStats()
    with pysam.FastaFile(str(fasta_path)) as fasta, open_vcf(vcf_path) as vcf:
        _check_samples(vcf, vcf_path, [sample])
        sequence = "".join(haplotype_pieces(fasta, vcf, vcf_path, region, sample, haplotype, stats))
    return sequence, stats


def _whole_contigs(fasta, regions: Sequence[Region] | None) -> list[Region]:
    return list(regions) if regions else [Region(name) for name in fasta.references]


def write_haplotypes(
    fasta_path: str | Path,
    vcf_path: str | Path,
    out_path: str | Path,
    samples: Sequence[str] | None = None,
    regions: Sequence[Region] | None = None,
    line_width: int = 60,
) -> HaplotypeStats:
    """Write both haplotypes of each sample and region to a FASTA (gzip when the name ends in ``.gz``)."""
    import pysam

    stats = HaplotypeStats()
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    opener = gzip.open if out_path.suffix == ".gz" else open
    with pysam.FastaFile(str(fasta_path)) as fasta, open_vcf(vcf_path) as vcf, opener(partial, "wt") as out:
        names = _check_samples(vcf, vcf_path, samples)
        for region in _whole_contigs(fasta, regions):
            for sample in names:
                for haplotype in (1, 2):
                    out.write(f">{haplotype_name(sample, haplotype, region)}\n")
                    pending = ""
                    for piece in haplotype_pieces(fasta, vcf, vcf_path, region, sample, haplotype, stats):
                        pending += piece
                        cut = len(pending) - len(pending) % line_width
                        out.writelines(f"{pending[i : i + line_width]}\n" for i in range(0, cut, line_width))
                        pending = pending[cut:]
                    if pending:
                        out.write(pending + "\n")
    partial.replace(out_path)
    return stats


@dataclass
class HaplotypeReader:
    """Training records cut from haplotypes instead of the reference (same chunking rules).

    Held-out regions are reference coordinates, which indels shift on a haplotype: a haplotype region that
    overlaps a held-out region is left out of training, and haplotype sources give no validation records.
    """

    fasta_path: str | Path
    vcf_path: str | Path
    regions: Sequence[Region]
    samples: Sequence[str] | None = None
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    held_out: Sequence[Region] = ()

    def records(self, split: str = "train", offset: int = 0) -> Iterator[GenomeRecord]:
        """Records of every (region, sample, haplotype), each haplotype cut after ``offset`` bases."""
        import pysam

        if split != "train":
            return
        with pysam.FastaFile(str(self.fasta_path)) as fasta, open_vcf(self.vcf_path) as vcf:
            names = _check_samples(vcf, self.vcf_path, self.samples)
            for region in self.regions:
                if any(_overlaps(region, held) for held in self.held_out):
                    continue
                for sample in names:
                    for haplotype in (1, 2):
                        stats = HaplotypeStats()
                        pieces = haplotype_pieces(fasta, vcf, self.vcf_path, region, sample, haplotype, stats)
                        stream = _StreamedContig(pieces, on_header=lambda _line: None)
                        contig = haplotype_name(sample, haplotype, region)
                        intervals = split_intervals(contig, None, (), "train")
                        yield from chunk_windows(stream.fetch, contig, intervals, self.chunking, offset)


def _overlaps(first: Region, second: Region) -> bool:
    if first.contig != second.contig:
        return False
    first_end = first.end if first.end is not None else float("inf")
    second_end = second.end if second.end is not None else float("inf")
    return first.start < second_end and second.start < first_end
