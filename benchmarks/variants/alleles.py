"""Variant alleles from a VCF, checked against a reference FASTA, and the sequence windows that carry them.

Reading: every VCF record is split into one :class:`VariantAllele` per ALT allele. Symbolic and structural
alleles (``<DEL>``, ``*``, breakends, ``.``) and alleles with letters outside A/C/G/T/N are kept with a
``skip_reason`` so that they appear in the output instead of vanishing.

Empty alleles written as ``-`` (MPRA, ClinVar and MAF-style exports: a deletion ``REF=A, ALT=-``, an insertion
``REF=-, ALT=T``) are left-anchored against the reference as VCF normalisation does (:func:`left_anchor`):
the base before POS is prepended to both alleles and POS moves back by one, so ``-`` at POS means "between
POS-1 and POS" for an insertion and "the bases from POS on" for a deletion (at POS 1 the base after the
allele is appended instead). Without a reference they are skipped with the reason.

Windows (:func:`build_window`), all coordinates 0-based and half-open:

- The reference window is ``window_bp`` long and centred on the REF allele ``[p, p + len(REF))``: it starts
  at ``p - (window_bp - len(REF)) // 2``. Near a contig end it is shifted to lie inside the contig (so the
  variant is no longer centred); a contig shorter than the window gives the whole contig.
- The alternative window keeps the same left flank (same start, so the tokens before the variant are the
  same 6-mers in both windows), then ALT, then as much right flank from the reference as keeps the length at
  ``window_bp``: a deletion takes more right flank, an insertion less. When the contig ends before the right
  flank is full, the missing bases are taken on the left (the alternative window then starts earlier).
  An insertion longer than the space right of the variant is cut at the window end.
- A window whose tokenization is longer than the model's context (runs of N cost one token per base) is
  shrunk, still centred on the variant, until it fits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from modeling_nt.pretraining.genome import match_contig, open_fasta
from modeling_nt.pretraining.haplotypes import open_vcf, read_records
from tokenization import token_starts

ALLELE_PATTERN = re.compile(r"[ACGTN]+")
#: How MPRA / ClinVar / MAF-style exports write an empty REF or ALT (an insertion or a deletion without anchor).
EMPTY_ALLELE = "-"
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass(frozen=True)
class VariantAllele:
    """One ALT allele of one VCF record (``pos`` is 1-based, as in the VCF)."""

    record: int
    chrom: str
    pos: int
    id: str
    ref: str
    alt: str
    skip_reason: str | None = None
    #: ``"POS REF/ALT"`` as written in the input when the allele was left-anchored (:func:`left_anchor`).
    anchored_from: str | None = None

    @property
    def key(self) -> tuple[int, str]:
        """Identifies the allele within its VCF: (0-based record index, ALT)."""
        return self.record, self.alt


@dataclass(frozen=True)
class RefMismatch:
    """A REF allele that does not match the FASTA at its position."""

    chrom: str
    pos: int
    expected: str
    found: str
    #: Set when the REF allele runs past the end of the FASTA contig (``found`` is then the part inside).
    contig_length: int | None = None
    #: The input form of a left-anchored allele (``VariantAllele.anchored_from``).
    anchored_from: str | None = None

    def __str__(self) -> str:
        if self.contig_length is not None:
            return (
                f"{self.chrom}:{self.pos}: REF {self.expected!r} lies beyond the end of the FASTA contig "
                f"({self.contig_length} bp)"
            )
        given = f" (left-anchored from {self.chrom}:{self.anchored_from})" if self.anchored_from else ""
        return f"{self.chrom}:{self.pos}: VCF REF {self.expected!r}{given} but the FASTA has {self.found!r}"

    @property
    def reason(self) -> str:
        """The skip reason written in the output row."""
        if self.contig_length is not None:
            return f"POS beyond the end of the contig ({self.contig_length} bp)"
        return f"REF mismatch: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class VariantWindow:
    """The reference and alternative sequences around one allele.

    ``ref_span`` / ``alt_span`` are the allele's 0-based half-open interval inside each sequence;
    ``start`` / ``alt_start`` are the 0-based contig positions where each sequence begins.
    """

    contig: str
    start: int
    ref_seq: str
    ref_span: tuple[int, int]
    alt_start: int
    alt_seq: str
    alt_span: tuple[int, int]

    def reverse_complement(self) -> VariantWindow:
        """The same window on the other strand (spans mirrored)."""
        return VariantWindow(
            contig=self.contig,
            start=self.start,
            ref_seq=reverse_complement(self.ref_seq),
            ref_span=_mirror(self.ref_span, len(self.ref_seq)),
            alt_start=self.alt_start,
            alt_seq=reverse_complement(self.alt_seq),
            alt_span=_mirror(self.alt_span, len(self.alt_seq)),
        )


def reverse_complement(sequence: str) -> str:
    """Reverse complement of an uppercase A/C/G/T/N sequence."""
    return sequence.translate(_COMPLEMENT)[::-1]


def _mirror(span: tuple[int, int], length: int) -> tuple[int, int]:
    return length - span[1], length - span[0]


def skip_reason_of(ref: str, alt: str | None) -> str | None:
    """Why an allele cannot be scored as a sequence change, or None when it can."""
    if alt is None or alt in (".", "*"):
        return f"missing or spanning-deletion ALT {alt!r}"
    if EMPTY_ALLELE in (ref, alt):
        return (
            f"REF {ref!r} ALT {alt!r}: both empty"
            if ref == alt
            else f"empty allele '-' (REF {ref!r}, ALT {alt!r}) not left-anchored: no reference base at POS"
        )
    if alt.startswith("<") or "[" in alt or "]" in alt:
        return f"symbolic or breakend ALT {alt!r}"
    if not ALLELE_PATTERN.fullmatch(ref):
        return f"REF {ref!r} has letters outside A/C/G/T/N"
    if not ALLELE_PATTERN.fullmatch(alt):
        return f"ALT {alt!r} has letters outside A/C/G/T/N"
    if alt == ref:
        return "ALT equals REF"
    return None


def read_variant_alleles(path: str | Path, genome: ReferenceGenome | None = None) -> Iterator[VariantAllele]:
    """Every ALT allele of every record of a VCF, in file order (multi-allelic records are split).

    With ``genome``, alleles written with ``-`` are left-anchored against it (:func:`left_anchor`).
    """
    with open_vcf(path) as vcf:
        for record_index, record in enumerate(read_records(vcf, path)):
            ref = record.ref.upper()
            alts = [alt.upper() if alt else alt for alt in record.alts or (None,)]
            for alt_text in alts:
                allele = VariantAllele(
                    record=record_index,
                    chrom=record.chrom,
                    pos=record.pos,
                    id=record.id or ".",
                    ref=ref,
                    alt=alt_text or ".",
                    skip_reason=skip_reason_of(ref, alt_text),
                )
                anchored = left_anchor(allele, genome) if genome is not None else allele
                if anchored is not allele and anchored.alt in alts:  # (record, ALT) must name one allele
                    anchored = replace(
                        allele,
                        skip_reason=f"left-anchored ALT {anchored.alt!r} is also another ALT of the record",
                    )
                yield anchored


def left_anchor(allele: VariantAllele, genome: ReferenceGenome) -> VariantAllele:
    """The VCF form of an allele whose REF or ALT is ``-`` (empty); other alleles are returned unchanged.

    The reference base before POS is prepended to REF and ALT and POS moves back by one: ``20:101 A/-``
    (a deletion of the A at 101) becomes ``20:100 GA/G`` and ``20:101 -/T`` (T inserted before 101) becomes
    ``20:100 G/GT``, G being the base at 100. At POS 1 the base after the allele is appended instead
    (``1 A/-`` -> ``1 AC/C``). The input form is kept in ``anchored_from``. An allele that cannot be anchored
    (contig not in the FASTA, POS outside the contig, both alleles empty, other letters) is returned
    unchanged and keeps its skip reason.
    """
    if EMPTY_ALLELE not in (allele.ref, allele.alt) or allele.ref == allele.alt:
        return allele
    ref, alt = allele.ref.replace(EMPTY_ALLELE, ""), allele.alt.replace(EMPTY_ALLELE, "")
    contig = genome.contig_for(allele.chrom)
    if not ALLELE_PATTERN.fullmatch(ref + alt) or contig is None:
        return allele
    length = genome.lengths[contig]
    if allele.pos > 1:
        if allele.pos - 1 > length:
            return allele
        base = genome.fetch(contig, allele.pos - 2, allele.pos - 1)
        pos, ref, alt = allele.pos - 1, base + ref, base + alt
    else:
        after = allele.pos - 1 + len(ref)  # 0-based index of the base after the REF allele
        if after >= length:
            return allele
        base = genome.fetch(contig, after, after + 1)
        pos, ref, alt = allele.pos, ref + base, alt + base
    return replace(
        allele,
        pos=pos,
        ref=ref,
        alt=alt,
        skip_reason=skip_reason_of(ref, alt),
        anchored_from=f"{allele.pos} {allele.ref}/{allele.alt}",
    )


class ReferenceGenome:
    """A reference FASTA (plain or BGZF with .fai/.gzi) read through ``pysam.FastaFile``.

    VCF contig names are reconciled with the FASTA's: ``chr20`` finds ``20`` and ``20`` finds ``chr20``
    (and ``chrM``/``M`` find ``MT``); :meth:`contig_for` returns None for a contig absent under every name.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.fasta = open_fasta(path)
        self.path = path
        self.lengths = dict(zip(self.fasta.references, self.fasta.lengths, strict=True))
        self._contig_cache: dict[str, str | None] = {}

    def close(self) -> None:
        self.fasta.close()

    def contig_for(self, chrom: str) -> str | None:
        """The FASTA contig name of a VCF contig name, or None when it is not in the FASTA."""
        if chrom not in self._contig_cache:
            self._contig_cache[chrom] = match_contig(chrom, self.lengths)
        return self._contig_cache[chrom]

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Uppercase sequence of ``contig[start:end]`` (0-based, half-open)."""
        return self.fasta.fetch(contig, start, end).upper()

    def check_ref(self, allele: VariantAllele) -> RefMismatch | None:
        """A :class:`RefMismatch` when the allele's REF differs from the FASTA or runs past the contig end
        (its contig must exist)."""
        contig = self.contig_for(allele.chrom)
        length = self.lengths[contig]
        end = allele.pos - 1 + len(allele.ref)
        found = self.fetch(contig, min(allele.pos - 1, length), min(end, length))
        if end > length:
            return RefMismatch(allele.chrom, allele.pos, allele.ref, found, contig_length=length)
        if found == allele.ref:
            return None
        return RefMismatch(allele.chrom, allele.pos, allele.ref, found, anchored_from=allele.anchored_from)


def build_window(
    genome: ReferenceGenome, allele: VariantAllele, window_bp: int, max_tokens: int | None = None
) -> VariantWindow:
    """Reference and alternative windows of ``window_bp`` bases around an allele (rules: module docstring).

    ``max_tokens`` (the model's context, ``<cls>`` included) shrinks windows whose tokenization is longer.
    """
    if len(allele.ref) > window_bp or len(allele.alt) > window_bp:
        raise ValueError(
            f"{allele.chrom}:{allele.pos}: allele longer than the {window_bp} bp window "
            f"(REF {len(allele.ref)} bp, ALT {len(allele.alt)} bp)"
        )
    while True:
        window = _window_of_length(genome, allele, window_bp)
        if max_tokens is None:
            return window
        excess = max(_token_count(window.ref_seq), _token_count(window.alt_seq)) - max_tokens
        if excess <= 0:
            return window
        window_bp -= excess  # an N costs one token per base, other bases one per six: shrinks fast enough
        if window_bp < max(len(allele.ref), len(allele.alt)):
            raise ValueError(
                f"{allele.chrom}:{allele.pos}: no window around the allele fits {max_tokens} tokens"
            )


def _token_count(sequence: str) -> int:
    return len(token_starts(sequence)) + 1  # + <cls>


def _window_of_length(genome: ReferenceGenome, allele: VariantAllele, window_bp: int) -> VariantWindow:
    contig = genome.contig_for(allele.chrom)
    contig_length = genome.lengths[contig]
    position = allele.pos - 1
    ref_end = position + len(allele.ref)
    start = position - (window_bp - len(allele.ref)) // 2
    start = max(0, min(start, contig_length - window_bp))
    end = min(start + window_bp, contig_length)
    ref_seq = genome.fetch(contig, start, end)

    right_flank = len(ref_seq) - (position - start) - len(allele.alt)
    available_right = contig_length - ref_end
    alt_start = max(0, start - max(0, right_flank - available_right))
    right_flank = len(ref_seq) - (position - alt_start) - len(allele.alt)
    alt_seq = (
        genome.fetch(contig, alt_start, position)
        + allele.alt
        + genome.fetch(contig, ref_end, ref_end + max(right_flank, 0))
    )[: len(ref_seq)]
    return VariantWindow(
        contig=contig,
        start=start,
        ref_seq=ref_seq,
        ref_span=(position - start, ref_end - start),
        alt_start=alt_start,
        alt_seq=alt_seq,
        alt_span=(position - alt_start, min(position - alt_start + len(allele.alt), len(alt_seq))),
    )
