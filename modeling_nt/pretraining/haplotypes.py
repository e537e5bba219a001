"""Haplotype sequences from a reference FASTA and a phased VCF (the NT 1000 Genomes recipe).

For each sample and region the two haplotypes are the reference with that sample's alleles applied, as
``bcftools consensus -H 1pIu`` (haplotype 1) and ``-H 2pIu`` (haplotype 2) make them:

- contig names are reconciled between the FASTA, the VCF and the regions given (``chr20`` finds ``20`` and
  ``20`` finds ``chr20``: :func:`~modeling_nt.pretraining.genome.match_contig`, the rule ``score-variants``
  uses); haplotype records are named with the FASTA's contig name;
- the records of a region are applied in position order: an indexed VCF is read through its index, an
  unindexed one is read whole and sorted by position (records at the same position keep their file order);
- phased genotypes (``0|1``) and homozygous ones (``1/1``): haplotype *h* gets the *h*-th allele of the GT
  (a haploid GT is used for both haplotypes); SNVs, MNVs, insertions and deletions are all applied;
- unphased heterozygous SNVs (``0/1``): both haplotypes get the IUPAC code of the two alleles (``A/G`` -> ``R``;
  N for three; the pretraining reader turns it into N); unphased heterozygous indels and MNVs keep the
  reference, like a missing allele (``.``; ``1/.`` gives ALT on haplotype 1, reference on haplotype 2);
  symbolic (``<DEL>``) and ``*`` alleles keep the reference;
- overlapping variants: on each haplotype, a variant whose REF span starts inside the REF span of an allele
  already applied there is skipped ("overlaps previous variant"), as bcftools does; the other haplotype,
  where nothing overlaps, still gets it;
- every record's REF must match the reference (case-insensitive), else a ValueError names the VCF, the
  position and both sequences;
- only variants whose REF span lies wholly inside the region are applied (the others are counted as
  "extends outside the region"); FILTER is not looked at (like bcftools consensus without -i/-e).

What happened to every record is counted per reason in :class:`HaplotypeStats`; :func:`write_haplotypes`
writes the counts beside its output (``OUT.stats.json``) and, like :class:`HaplotypeReader`, refuses a run
in which no VCF record was applied to any haplotype (0 of N records, or no record in the regions at all: the
output would be the reference, which is nearly always a contig, region or sample mistake).

Sequences are produced as a stream of pieces (reference blocks and alleles), so memory does not grow with the
region's length; the records of one region and sample are held in memory (to sort them).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .genome import (
    ChunkingConfig,
    GenomeRecord,
    Region,
    _StreamedContig,
    chunk_windows,
    contig_list,
    match_contig,
    open_fasta,
    quiet_htslib,
    resolve_region,
    split_intervals,
)

IUPAC_CODES = {
    frozenset("AG"): "R",
    frozenset("CT"): "Y",
    frozenset("CG"): "S",
    frozenset("AT"): "W",
    frozenset("GT"): "K",
    frozenset("AC"): "M",
}
_REFERENCE_BLOCK = 1 << 20

#: Why a haplotype allele (record x sample x haplotype) or a record was not applied, by stats field.
SKIP_REASONS = {
    "outside_region": "extends outside the region",
    "reference_allele": "reference allele (GT 0)",
    "missing_kept_reference": "missing genotype",
    "unphased_kept_reference": "not phased (heterozygous indel/MNV)",
    "symbolic_skipped": "symbolic ALT",
    "overlapping_skipped": "overlaps previous variant",
}


@dataclass
class HaplotypeStats:
    """What happened to the VCF records of one or more haplotypes.

    Record counts (each record of a region once, whatever the number of samples): ``records`` in the
    regions, ``records_applied`` (applied to at least one haplotype), ``outside_region`` (REF span crossing
    the region's ends: never applied), ``out_of_order`` (records that came after a record at a later position
    in the file, i.e. the VCF was not sorted; they were sorted, not dropped). Haplotype-allele counts (one per
    record, sample and haplotype): ``applied`` (of which ``unphased_iupac`` as an IUPAC code) and the skip
    reasons of :data:`SKIP_REASONS`.
    """

    records: int = 0
    records_applied: int = 0
    outside_region: int = 0
    out_of_order: int = 0
    applied: int = 0
    unphased_iupac: int = 0
    reference_allele: int = 0
    missing_kept_reference: int = 0
    unphased_kept_reference: int = 0
    symbolic_skipped: int = 0
    overlapping_skipped: int = 0

    def add(self, other: HaplotypeStats) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def reasons(self) -> dict[str, int]:
        """Non-zero skip counts by reason label (:data:`SKIP_REASONS`), in that order."""
        return {label: getattr(self, name) for name, label in SKIP_REASONS.items() if getattr(self, name)}

    def as_dict(self) -> dict[str, object]:
        """The counts, plus ``skipped`` by reason label (the content of ``OUT.stats.json``)."""
        return {**asdict(self), "skipped": self.reasons()}

    def summary(self) -> str:
        """One line: records applied of the records in the regions, then the skip counts per reason."""
        reasons = ", ".join(f"{label} {count}" for label, count in self.reasons().items()) or "none"
        sorted_note = f"; {self.out_of_order} out-of-order records sorted" if self.out_of_order else ""
        return (
            f"{self.records_applied} of {self.records} VCF records applied ({self.applied} haplotype alleles, "
            f"{self.unphased_iupac} as IUPAC codes); not applied, by reason: {reasons}{sorted_note}"
        )

    def check_applied(
        self, vcf_path: str | Path, target: str, regions: Sequence[Region], vcf_contigs: Sequence[str]
    ) -> None:
        """ValueError when no record of ``vcf_path`` was applied to any haplotype of ``target`` (naming the
        ``regions`` and, when none of its records lay in them, the VCF's contigs)."""
        if self.records == 0:
            raise ValueError(
                f"0 VCF records of {vcf_path} lie in the regions {contig_list(map(str, regions), 5)} "
                f"(VCF contigs: {contig_list(vcf_contigs)}): nothing to apply to {target}"
            )
        if self.records_applied == 0:
            reasons = ", ".join(f"{label} {count}" for label, count in self.reasons().items())
            raise ValueError(
                f"0 of {self.records} VCF records of {vcf_path} applied to {target}: reasons {reasons}"
            )


@dataclass(frozen=True)
class _Variant:
    ordinal: int  # rank of the record among the region's records in position order
    start: int
    stop: int
    alleles: tuple[str, ...]  # REF first, then ALTs
    genotype: tuple[int | None, ...]
    phased: bool


@contextlib.contextmanager
def open_vcf(path: str | Path) -> Iterator[object]:
    """``pysam.VariantFile`` on a VCF/BCF (plain, bgzip or plain gzip), rewindable; clear errors for missing or
    unreadable files. htslib cannot open plain-gzip VCFs: they go through a decompressed temporary copy."""
    import pysam

    from tokenization import require_file

    path = require_file(path, "VCF")
    with quiet_htslib():
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


def read_records(vcf, path: str | Path, records: Iterable[object] | None = None) -> Iterator[object]:
    """The records of an open VCF (or of ``records``, e.g. a ``fetch``); a record htslib cannot parse raises a
    ValueError naming the file and the last good record."""
    last = "the header"
    records = iter(vcf if records is None else records)
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot read the record after {last} ({error})") from error
        last = f"record {record.chrom}:{record.pos}"
        if record.pos < 1:  # htslib reads POS 0 (a telomere mark in the VCF spec) as start -1
            raise ValueError(f"{path}: {last} has POS {record.pos}; VCF positions are 1-based (>= 1)")
        yield record


def _vcf_contigs(vcf) -> list[str]:
    """Contig names the VCF declares: its header ``##contig`` lines and its index."""
    names = dict.fromkeys(vcf.header.contigs)
    names.update(dict.fromkeys(vcf.index or ()))
    return list(names)


def _region_records(fasta, vcf, vcf_path: str | Path, region: Region) -> Iterator[object]:
    """Records overlapping ``region`` (its contig is the FASTA's name) whose contig matches it, in file order."""
    references = set(fasta.references)
    if vcf.index is not None:
        for name in vcf.index:
            if match_contig(name, references) == region.contig:
                yield from read_records(vcf, vcf_path, vcf.fetch(name, region.start, region.end))
        return
    vcf.reset()
    matches: dict[str, bool] = {}
    for record in read_records(vcf, vcf_path):
        if record.chrom not in matches:
            matches[record.chrom] = match_contig(record.chrom, references) == region.contig
        inside = record.stop > region.start and (region.end is None or record.start < region.end)
        if matches[record.chrom] and inside:
            yield record


def _genotype(record, sample: str) -> tuple[tuple[int | None, ...], bool]:
    call = record.samples[sample]
    genotype = call.get("GT") if "GT" in record.format else None
    return (genotype or (None,)), bool(call.phased)


def _region_variants(
    fasta, vcf, vcf_path: str | Path, region: Region, sample: str, stats: HaplotypeStats, count_records: bool
) -> list[_Variant]:
    """The records of ``region`` whose REF span lies inside it, in position order, with ``sample``'s genotype.

    REF alleles are checked against the FASTA. ``count_records``: count the region's records (once per
    region, not per sample).
    """
    rows = []
    latest = -1
    for index, record in enumerate(_region_records(fasta, vcf, vcf_path, region)):
        if count_records:
            stats.records += 1
            stats.out_of_order += record.start < latest
            latest = max(latest, record.start)
        if record.start < region.start or (region.end is not None and record.stop > region.end):
            stats.outside_region += count_records
            continue
        reference = fasta.fetch(region.contig, record.start, record.stop)
        if reference.upper() != record.ref.upper():
            raise ValueError(
                f"{vcf_path}: REF allele {record.ref} at {record.chrom}:{record.pos} does not match "
                f"the reference ({reference})"
            )
        alleles = (record.ref, *(record.alts or ()))
        rows.append((record.start, index, record.stop, alleles, *_genotype(record, sample)))
    rows.sort(key=lambda row: row[:2])
    return [_Variant(ordinal, row[0], *row[2:]) for ordinal, row in enumerate(rows)]


def _allele_for(variant: _Variant, haplotype: int) -> tuple[str | None, str | None]:
    """What haplotype 1 or 2 carries at ``variant``: (allele, None); (IUPAC code, "unphased_iupac") for an
    unphased heterozygous SNV; or (None, the stats field of the reason the reference is kept)."""
    genotype = variant.genotype
    index = genotype[min(haplotype - 1, len(genotype) - 1)]
    if index is None:
        return None, "missing_kept_reference"
    called = {allele for allele in genotype if allele is not None}
    if not variant.phased and len(called) > 1:  # heterozygous, phase unknown: the same on both haplotypes
        bases = {variant.alleles[allele] for allele in called}
        if all(len(base) == 1 and base in "ACGT" for base in bases):
            return IUPAC_CODES.get(frozenset(bases), "N"), "unphased_iupac"
        return None, "unphased_kept_reference"
    if index == 0:
        return None, "reference_allele"
    allele = variant.alleles[index]
    if allele.startswith("<") or allele == "*":
        return None, "symbolic_skipped"
    return allele, None


def _reference_pieces(fasta, contig: str, start: int, end: int | None) -> Iterator[str]:
    """The reference from ``start`` to ``end`` (None: the contig's end) in blocks of at most 1 Mb."""
    end = fasta.get_reference_length(contig) if end is None else end
    for block in range(start, end, _REFERENCE_BLOCK):
        yield fasta.fetch(contig, block, min(block + _REFERENCE_BLOCK, end))


def haplotype_pieces(
    fasta,
    region: Region,
    variants: Sequence[_Variant],
    haplotype: int,
    stats: HaplotypeStats,
    applied: set[int] | None = None,
) -> Iterator[str]:
    """Pieces that concatenate to haplotype ``haplotype`` (1 or 2) over ``region`` (FASTA contig name).

    ``fasta`` is an open ``pysam.FastaFile``; ``variants`` come from :func:`_region_variants` (position
    order). The ordinals of the records applied are added to ``applied``.
    """
    cursor = region.start
    for variant in variants:
        allele, reason = _allele_for(variant, haplotype)
        if allele is None:
            setattr(stats, reason, getattr(stats, reason) + 1)
            continue
        if variant.start < cursor:
            stats.overlapping_skipped += 1
            continue
        yield from _reference_pieces(fasta, region.contig, cursor, variant.start)
        yield allele
        stats.applied += 1
        stats.unphased_iupac += reason == "unphased_iupac"
        if applied is not None:
            applied.add(variant.ordinal)
        cursor = variant.stop
    yield from _reference_pieces(fasta, region.contig, cursor, region.end)


def _check_samples(vcf, vcf_path: str | Path, samples: Sequence[str] | None) -> list[str]:
    available = list(vcf.header.samples)
    if not available:
        raise ValueError(f"{vcf_path} has no sample columns (sites-only VCF): no genotypes to apply")
    missing = [name for name in samples or () if name not in available]
    if missing:
        raise ValueError(
            f"samples {missing} are not in {vcf_path} (it has {len(available)}: {contig_list(available, 5)})"
        )
    return list(samples) if samples else available


def _resolve_regions(
    fasta, fasta_path: str | Path, vcf, vcf_path: str | Path, regions: Sequence[Region] | None
) -> list[Region]:
    """Regions renamed to the FASTA's contig names and checked to lie inside their contigs (default: every
    FASTA contig). A given region whose contig the VCF does not declare under any name is an error."""
    if not regions:
        return [Region(name) for name in fasta.references]
    declared = _vcf_contigs(vcf)
    resolved = []
    for region in regions:
        found = resolve_region(region, fasta.references, fasta_path)
        length = fasta.get_reference_length(found.contig)
        if found.start >= length or (found.end is not None and found.end > length):
            raise ValueError(
                f"region {region} lies outside contig {found.contig} of {fasta_path} ({length:,} bp)"
            )
        references = set(fasta.references)
        if declared and not any(match_contig(name, references) == found.contig for name in declared):
            raise ValueError(
                f"contig {region.contig!r} of region {region} is not in {vcf_path} "
                f"(its contigs: {contig_list(declared)})"
            )
        resolved.append(found)
    return resolved


def haplotype_name(sample: str, haplotype: int, region: Region) -> str:
    """FASTA record name of a haplotype: ``SAMPLE_hap1_20:1-2000000``."""
    return f"{sample}_hap{haplotype}_{region}"


def _haplotypes(
    fasta, vcf, vcf_path: str | Path, regions: Sequence[Region], samples: Sequence[str], stats: HaplotypeStats
) -> Iterator[tuple[Region, str, int, Iterator[str]]]:
    """(region, sample, haplotype, pieces) for every region, sample and haplotype; each ``pieces`` must be
    consumed before the next item is asked for. ``stats`` is complete once the iterator is exhausted."""
    for region in regions:
        applied: set[int] = set()
        for index, sample in enumerate(samples):
            variants = _region_variants(fasta, vcf, vcf_path, region, sample, stats, count_records=index == 0)
            for haplotype in (1, 2):
                yield (
                    region,
                    sample,
                    haplotype,
                    haplotype_pieces(fasta, region, variants, haplotype, stats, applied),
                )
        stats.records_applied += len(applied)


def build_haplotype(
    fasta_path: str | Path, vcf_path: str | Path, region: Region | str, sample: str, haplotype: int
) -> tuple[str, HaplotypeStats]:
    """One haplotype as a string (convenient for small regions), and what was applied to it.

    Unlike :func:`write_haplotypes`, applying nothing is not an error here (one haplotype of a heterozygous
    sample may legitimately carry only reference alleles): check ``stats.records_applied``.
    """
    from .genome import parse_region

    region = parse_region(region) if isinstance(region, str) else region
    stats = HaplotypeStats()
    with open_fasta(fasta_path) as fasta, open_vcf(vcf_path) as vcf:
        _check_samples(vcf, vcf_path, [sample])
        (region,) = _resolve_regions(fasta, fasta_path, vcf, vcf_path, [region])
        variants = _region_variants(fasta, vcf, vcf_path, region, sample, stats, count_records=True)
        applied: set[int] = set()
        sequence = "".join(haplotype_pieces(fasta, region, variants, haplotype, stats, applied))
    stats.records_applied = len(applied)
    return sequence, stats


def stats_path(out_path: str | Path) -> Path:
    """Where :func:`write_haplotypes` writes its counts: ``OUT.stats.json`` beside ``OUT``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".stats.json")


def write_haplotypes(
    fasta_path: str | Path,
    vcf_path: str | Path,
    out_path: str | Path,
    samples: Sequence[str] | None = None,
    regions: Sequence[Region] | None = None,
    line_width: int = 60,
) -> HaplotypeStats:
    """Write both haplotypes of each sample and region to a FASTA (gzip when the name ends in ``.gz``) and
    the counts of :class:`HaplotypeStats` to ``OUT.stats.json`` (:func:`stats_path`).

    Regions may use either contig naming (``chr20`` or ``20``); default: every contig of the FASTA.
    Raises ValueError (and writes nothing) when no VCF record lies in the regions or none was applied to any
    haplotype (:meth:`HaplotypeStats.check_applied`), or on a REF mismatch, unknown sample or contig.
    """
    stats = HaplotypeStats()
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    opener = gzip.open if out_path.suffix == ".gz" else open
    try:
        with open_fasta(fasta_path) as fasta, open_vcf(vcf_path) as vcf:
            names = _check_samples(vcf, vcf_path, samples)
            resolved = _resolve_regions(fasta, fasta_path, vcf, vcf_path, regions)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            with opener(partial, "wt") as out:
                for region, sample, haplotype, pieces in _haplotypes(
                    fasta, vcf, vcf_path, resolved, names, stats
                ):
                    out.write(f">{haplotype_name(sample, haplotype, region)}\n")
                    _write_wrapped(out, pieces, line_width)
            stats.check_applied(vcf_path, str(out_path), resolved, _vcf_contigs(vcf))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out_path)
    stats_path(out_path).write_text(json.dumps(stats.as_dict(), indent=1) + "\n")
    return stats


def _write_wrapped(out, pieces: Iterable[str], line_width: int) -> None:
    pending = ""
    for piece in pieces:
        pending += piece
        cut = len(pending) - len(pending) % line_width
        out.writelines(f"{pending[i : i + line_width]}\n" for i in range(0, cut, line_width))
        pending = pending[cut:]
    if pending:
        out.write(pending + "\n")


@dataclass
class HaplotypeReader:
    """Training records cut from haplotypes instead of the reference (same chunking rules).

    Regions and held-out regions may use either contig naming (``chr20`` or ``20``). Construction checks the
    files, samples and regions (one-line ValueError); each pass over the records counts what happened to
    the VCF records in :attr:`stats` and raises a ValueError at its end when none was applied
    (:meth:`HaplotypeStats.check_applied`).

    Held-out regions are reference coordinates, which indels shift on a haplotype: a haplotype region that
    overlaps a held-out region is left out of training, and haplotype sources give no validation records.
    """

    fasta_path: str | Path
    vcf_path: str | Path
    regions: Sequence[Region]
    samples: Sequence[str] | None = None
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    held_out: Sequence[Region] = ()
    stats: HaplotypeStats = field(default_factory=HaplotypeStats, init=False)

    def __post_init__(self) -> None:
        with open_fasta(self.fasta_path) as fasta, open_vcf(self.vcf_path) as vcf:
            self._samples = _check_samples(vcf, self.vcf_path, self.samples)
            self._regions = _resolve_regions(fasta, self.fasta_path, vcf, self.vcf_path, self.regions)
            references = set(fasta.references)
            self._held_out = [
                Region(match_contig(held.contig, references) or held.contig, held.start, held.end)
                for held in self.held_out
            ]

    def records(self, split: str = "train", offset: int = 0) -> Iterator[GenomeRecord]:
        """Records of every (region, sample, haplotype), each haplotype cut after ``offset`` bases."""
        if split != "train":
            return
        stats = HaplotypeStats()
        regions = [r for r in self._regions if not any(_overlaps(r, held) for held in self._held_out)]
        with open_fasta(self.fasta_path) as fasta, open_vcf(self.vcf_path) as vcf:
            for region, sample, haplotype, pieces in _haplotypes(
                fasta, vcf, self.vcf_path, regions, self._samples, stats
            ):
                stream = _StreamedContig(pieces, on_header=lambda _line: None)
                contig = haplotype_name(sample, haplotype, region)
                intervals = split_intervals(contig, None, (), "train")
                yield from chunk_windows(stream.fetch, contig, intervals, self.chunking, offset)
                stream.drain()  # the counts cover the whole haplotype
            self.stats = stats
            if regions:
                target = f"haplotype source {self.fasta_path}"
                stats.check_applied(self.vcf_path, target, regions, _vcf_contigs(vcf))


def _overlaps(first: Region, second: Region) -> bool:
    if first.contig != second.contig:
        return False
    first_end = first.end if first.end is not None else float("inf")
    second_end = second.end if second.end is not None else float("inf")
    return first.start < second_end and second.start < first_end
