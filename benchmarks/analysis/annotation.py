"""Genomic element classes of every base, from a gene annotation (GTF / GFF3) or labelled regions (BED), and
the windows the analyses are run on.

Element classes from a GTF / GFF3 (NT_SPEC section 7): only ``exon`` and ``CDS`` features are read, grouped
into transcripts (GTF ``transcript_id``; GFF3 ``Parent``). For each transcript, the bases of its exons inside
the CDS span are ``exon``, exon bases before / after the CDS span are ``5UTR`` / ``3UTR`` (by strand), exon bases
of a transcript without CDS are ``exon``; bases between its first and last exon are ``intron``; the
``promoter_bp`` bases upstream of its TSS are ``promoter``; every other base is ``intergenic``. Where transcripts
overlap, the classes are painted in the order promoter < intron < non-coding exon < 3UTR < 5UTR < coding exon
(later wins), so a coding exon of one isoform stays ``exon`` even where another isoform has a UTR.

A BED file (``chrom start end name``, 0-based half-open) labels its regions with their ``name``; later lines win
where regions overlap, and bases outside every region belong to the background class ``other``.

Contig names are reconciled with the FASTA (``chr20`` finds ``20`` and back); annotation lines on contigs
absent from the FASTA are skipped.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from modeling_nt.pretraining.genome import open_text as genome_open_text

GENE_CLASSES = ("intergenic", "promoter", "intron", "exon", "5UTR", "3UTR")
BED_BACKGROUND = "other"
DEFAULT_PROMOTER_BP = 1000
ANNOTATION_FORMATS = {".gtf": "gtf", ".gff": "gff3", ".gff3": "gff3", ".bed": "bed"}

_INTERGENIC, _PROMOTER, _INTRON, _EXON, _UTR5, _UTR3 = range(len(GENE_CLASSES))
_GTF_ATTRIBUTE = re.compile(r'\s*([^\s;]+)\s+"?([^";]*)"?\s*;?')


@dataclass
class Transcript:
    """Exons and CDS parts (0-based half-open) of one annotated transcript."""

    chrom: str
    strand: str
    exons: list[tuple[int, int]] = field(default_factory=list)
    cds: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class GenomeLabels:
    """The class of every base of a genome: segments painted over the background class ``classes[0]``.

    ``segments[chrom]`` holds ``(starts, ends, class indices)`` arrays in paint order (later segments win).
    ``background_is_element`` says whether the background is an element class of its own (``intergenic``) or
    just "not in any region" (``other`` of a BED file).
    """

    classes: tuple[str, ...]
    lengths: dict[str, int]
    segments: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    background_is_element: bool = True

    @property
    def element_classes(self) -> tuple[str, ...]:
        """The classes to sample and report (the background only when it is an element class)."""
        return self.classes if self.background_is_element else self.classes[1:]

    def labels(self, chrom: str, start: int = 0, end: int | None = None) -> np.ndarray:
        """Class index (int8) of each base of ``chrom[start:end]``."""
        end = self.lengths[chrom] if end is None else end
        labels = np.zeros(end - start, dtype=np.int8)
        if chrom not in self.segments:
            return labels
        starts, ends, classes = self.segments[chrom]
        for index in np.flatnonzero((starts < end) & (ends > start)):
            labels[max(starts[index], start) - start : min(ends[index], end) - start] = classes[index]
        return labels

    def runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Maximal stretches of one class on ``chrom``: ``(starts, ends, class indices)``."""
        labels = self.labels(chrom)
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1, [len(labels)]])
        return bounds[:-1], bounds[1:], labels[bounds[:-1]]


@dataclass
class LabelledWindow:
    """A stretch ``chrom[start:end]`` of the reference with its class (``"mixed"`` for multi-class windows)
    and the class index of each base (indices into the :class:`GenomeLabels` classes)."""

    chrom: str
    start: int
    end: int
    label: str
    sequence: str
    base_labels: np.ndarray


def open_text(path: str | Path) -> IO[str]:
    """Open a plain or gzip-compressed text file."""
    from tokenization import require_file

    return genome_open_text(require_file(path, "annotation"))


def annotation_format(path: str | Path) -> str:
    """``"gtf"``, ``"gff3"`` or ``"bed"`` from the file name (a ``.gz`` suffix is allowed)."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if not suffixes or suffixes[-1] not in ANNOTATION_FORMATS:
        raise ValueError(
            f"{path}: unknown annotation format; use a file ending in {', '.join(ANNOTATION_FORMATS)} (or .gz)"
        )
    return ANNOTATION_FORMATS[suffixes[-1]]


def read_annotation(path: str | Path, genome: Any, promoter_bp: int = DEFAULT_PROMOTER_BP) -> GenomeLabels:
    """The :class:`GenomeLabels` of a GTF / GFF3 (element classes) or BED file (region names) over ``genome``
    (a :class:`benchmarks.variants.alleles.ReferenceGenome`)."""
    if promoter_bp < 0:
        raise ValueError(f"promoter length must be >= 0, got {promoter_bp}")
    kind = annotation_format(path)
    if kind == "bed":
        return _labels_from_bed(path, genome)
    transcripts = read_transcripts(path, kind)
    return _labels_from_transcripts(path, transcripts, genome, promoter_bp)


def table_lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, tab-separated fields)`` of the data lines of a GTF / GFF3 / BED file (plain or gzip),
    skipping blank, ``#``, ``track`` and ``browser`` lines.

    Raises:
        ValueError: the file is not readable text (binary, or a broken gzip stream), naming it.
    """
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                yield number, line.rstrip("\n\r").split("\t")
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: not a readable text annotation file ({error})") from None


def _interval(path: str | Path, number: int, start: str, end: str, one_based: bool) -> tuple[int, int]:
    try:
        lo, hi = int(start) - int(one_based), int(end)
    except ValueError:
        raise ValueError(f"{path}:{number}: start/end must be integers, got {start!r}/{end!r}") from None
    if lo < 0 or hi <= lo:
        raise ValueError(f"{path}:{number}: invalid interval {start}-{end}")
    return lo, hi


def _transcript_keys(path: str | Path, number: int, attributes: str, kind: str) -> list[str]:
    if kind == "gtf":
        parsed = dict(_GTF_ATTRIBUTE.findall(attributes))
        key = parsed.get("transcript_id") or parsed.get("gene_id")
        keys = [key] if key else []
    else:
        parsed = dict(item.split("=", 1) for item in attributes.strip().split(";") if "=" in item)
        keys = [key for key in parsed.get("Parent", "").split(",") if key]
    if not keys:
        wanted = "transcript_id" if kind == "gtf" else "Parent"
        raise ValueError(f"{path}:{number}: exon/CDS line without a {wanted} attribute")
    return keys


def read_transcripts(path: str | Path, kind: str | None = None) -> list[Transcript]:
    """Transcripts (exons and CDS parts) of a GTF or GFF3 file, in order of first appearance."""
    kind = kind or annotation_format(path)
    transcripts: dict[str, Transcript] = {}
    for number, columns in table_lines(path):
        if len(columns) != 9:
            raise ValueError(
                f"{path}:{number}: expected 9 tab-separated {kind.upper()} columns, got {len(columns)}"
            )
        feature = columns[2]
        if feature not in ("exon", "CDS"):
            continue
        interval = _interval(path, number, columns[3], columns[4], one_based=True)
        strand = columns[6] if columns[6] in "+-" else "+"
        for key in _transcript_keys(path, number, columns[8], kind):
            transcript = transcripts.setdefault(key, Transcript(columns[0], strand))
            if transcript.chrom != columns[0]:
                raise ValueError(
                    f"{path}:{number}: transcript {key!r} spans contigs {transcript.chrom}, {columns[0]}"
                )
            (transcript.exons if feature == "exon" else transcript.cds).append(interval)
    if not transcripts:
        raise ValueError(f"{path}: no exon or CDS features found")
    return list(transcripts.values())


def _transcript_segments(transcript: Transcript, length: int, promoter_bp: int) -> dict[int, list]:
    """Painted segments of one transcript, by paint level (see the module docstring)."""
    exons = transcript.exons or transcript.cds
    first, last = min(start for start, _ in exons), max(end for _, end in exons)
    plus = transcript.strand == "+"
    promoter = (max(0, first - promoter_bp), first) if plus else (last, min(length, last + promoter_bp))
    levels: dict[int, list] = defaultdict(list)
    if promoter[1] > promoter[0]:
        levels[0].append((*promoter, _PROMOTER))
    levels[1].append((first, last, _INTRON))
    if not transcript.cds:
        levels[2].extend((start, end, _EXON) for start, end in exons)
        return levels
    cds_lo, cds_hi = min(start for start, _ in transcript.cds), max(end for _, end in transcript.cds)
    before, after = (_UTR5, _UTR3) if plus else (_UTR3, _UTR5)
    for start, end in exons:
        for lo, hi, label in ((start, min(end, cds_lo), before), (max(start, cds_hi), end, after)):
            if hi > lo:
                levels[3 if label == _UTR3 else 4].append((lo, hi, label))
        if min(end, cds_hi) > max(start, cds_lo):
            levels[5].append((max(start, cds_lo), min(end, cds_hi), _EXON))
    return levels


def _segment_arrays(segments: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    array = np.asarray(segments, dtype=np.int64).reshape(-1, 3)
    return array[:, 0], array[:, 1], array[:, 2].astype(np.int8)


def _resolved_contig(genome: Any, chrom: str, skipped: set[str]) -> str | None:
    contig = genome.contig_for(chrom)
    if contig is None:
        skipped.add(chrom)
    return contig


def _warn_skipped(path: str | Path, skipped: set[str], genome: Any, used: int) -> None:
    if not used:
        raise ValueError(
            f"{path}: no annotated contig is in the FASTA (annotation has {sorted(skipped)[:5]}, FASTA has "
            f"{list(genome.lengths)[:5]})"
        )
    if skipped:
        warnings.warn(f"{path}: skipped contigs absent from the FASTA: {sorted(skipped)[:10]}", stacklevel=3)


def _labels_from_transcripts(
    path: str | Path, transcripts: list[Transcript], genome: Any, promoter_bp: int
) -> GenomeLabels:
    by_chrom: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    skipped: set[str] = set()
    for transcript in transcripts:
        contig = _resolved_contig(genome, transcript.chrom, skipped)
        if contig is None:
            continue
        for level, segments in _transcript_segments(transcript, genome.lengths[contig], promoter_bp).items():
            by_chrom[contig][level].extend(segments)
    _warn_skipped(path, skipped, genome, len(by_chrom))
    segments = {
        chrom: _segment_arrays([segment for level in sorted(levels) for segment in levels[level]])
        for chrom, levels in by_chrom.items()
    }
    return GenomeLabels(GENE_CLASSES, dict(genome.lengths), segments, background_is_element=True)


def _labels_from_bed(path: str | Path, genome: Any) -> GenomeLabels:
    classes: dict[str, int] = {BED_BACKGROUND: 0}
    by_chrom: dict[str, list] = defaultdict(list)
    skipped: set[str] = set()
    for number, columns in table_lines(path):
        if len(columns) < 4 or not columns[3]:
            raise ValueError(f"{path}:{number}: a BED line needs 4 columns (chrom start end class-name)")
        start, end = _interval(path, number, columns[1], columns[2], one_based=False)
        contig = _resolved_contig(genome, columns[0], skipped)
        if contig is None:
            continue
        if end > genome.lengths[contig]:
            raise ValueError(
                f"{path}:{number}: end {end} is past the end of {contig} ({genome.lengths[contig]} bp)"
            )
        label = classes.setdefault(columns[3], len(classes))
        if label > np.iinfo(np.int8).max:
            raise ValueError(f"{path}:{number}: more than {np.iinfo(np.int8).max} region classes")
        by_chrom[contig].append((start, end, label))
    _warn_skipped(path, skipped, genome, len(by_chrom))
    segments = {chrom: _segment_arrays(items) for chrom, items in by_chrom.items()}
    return GenomeLabels(tuple(classes), dict(genome.lengths), segments, background_is_element=False)


def _window(
    labels: GenomeLabels, genome: Any, chrom: str, start: int, end: int, label: str
) -> LabelledWindow:
    return LabelledWindow(
        chrom, start, end, label, genome.fetch(chrom, start, end), labels.labels(chrom, start, end)
    )


def sample_element_windows(
    labels: GenomeLabels, genome: Any, n_per_class: int, window_bp: int, seed: int = 0
) -> list[LabelledWindow]:
    """Up to ``n_per_class`` windows of ``window_bp`` bases lying wholly inside one element class, per class,
    drawn uniformly over the possible positions, without ``N`` bases. Classes with fewer windows are warned
    about (none: left out)."""
    if n_per_class < 1 or window_bp < 1:
        raise ValueError("the number of windows per class and the window length must be positive")
    candidates: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for chrom in labels.lengths:
        starts, ends, classes = labels.runs(chrom)
        for start, end, label in zip(starts, ends, classes, strict=True):
            if end - start >= window_bp:
                candidates[int(label)].append((chrom, int(start), int(end - start - window_bp + 1)))
    rng = np.random.default_rng(seed)
    windows = []
    for name in labels.element_classes:
        found = _draw_pure_windows(
            labels, genome, candidates[labels.classes.index(name)], name, n_per_class, window_bp, rng
        )
        if len(found) < n_per_class:
            warnings.warn(f"class {name!r}: only {len(found)} windows of {window_bp} bp found", stacklevel=2)
        windows.extend(found)
    return windows


def _draw_pure_windows(
    labels: GenomeLabels,
    genome: Any,
    runs: list[tuple[str, int, int]],
    name: str,
    wanted: int,
    window_bp: int,
    rng: np.random.Generator,
) -> list[LabelledWindow]:
    if not runs:
        return []
    weights = np.array([n_starts for _, _, n_starts in runs], dtype=np.float64)
    picks = rng.choice(len(runs), size=20 * wanted, p=weights / weights.sum())
    seen, windows = set(), []
    for pick in picks:
        chrom, run_start, n_starts = runs[pick]
        start = run_start + int(rng.integers(n_starts))
        if (chrom, start) in seen:
            continue
        seen.add((chrom, start))
        window = _window(labels, genome, chrom, start, start + window_bp, name)
        if "N" not in window.sequence:
            windows.append(window)
        if len(windows) == wanted:
            break
    return windows


def sample_mixed_windows(
    labels: GenomeLabels, genome: Any, n_windows: int, window_bp: int, seed: int = 0, min_classes: int = 2
) -> list[LabelledWindow]:
    """Up to ``n_windows`` windows of ``window_bp`` bases drawn uniformly over the genome that hold at least
    ``min_classes`` classes and no ``N`` (for the attention analysis)."""
    chroms = [chrom for chrom, length in labels.lengths.items() if length >= window_bp]
    if not chroms:
        raise ValueError(f"no contig is at least {window_bp} bp long")
    weights = np.array([labels.lengths[chrom] - window_bp + 1 for chrom in chroms], dtype=np.float64)
    rng = np.random.default_rng(seed)
    windows: list[LabelledWindow] = []
    for _ in range(200 * n_windows):
        chrom = chroms[rng.choice(len(chroms), p=weights / weights.sum())]
        start = int(rng.integers(labels.lengths[chrom] - window_bp + 1))
        base_labels = labels.labels(chrom, start, start + window_bp)
        if len(np.unique(base_labels)) < min_classes:
            continue
        window = _window(labels, genome, chrom, start, start + window_bp, "mixed")
        if "N" not in window.sequence:
            windows.append(window)
        if len(windows) == n_windows:
            break
    if not windows:
        raise ValueError(f"no window of {window_bp} bp with at least {min_classes} classes found")
    return windows


def token_classes(sequence: str, base_labels: np.ndarray, rules: Any = None) -> np.ndarray:
    """Class index of each token of ``sequence`` (``<cls>`` excluded): the class of the token's centre base.
    ``rules``: the tokens' generation (:func:`benchmarks.generation.token_rules`; default 6-mers)."""
    from tokenization import token_starts

    starts = token_starts(sequence) if rules is None else rules.token_starts(sequence)
    ends = np.append(starts[1:], len(sequence))
    return base_labels[(starts + ends - 1) // 2]


def whole_genome_labels(genome: Any, name: str = "all") -> GenomeLabels:
    """Labels putting every base of ``genome`` in one class ``name``."""
    return GenomeLabels((name,), dict(genome.lengths), {}, background_is_element=True)


def sample_element_centred_windows(
    labels: GenomeLabels, genome: Any, n_windows: int, window_bp: int, seed: int = 0
) -> list[LabelledWindow]:
    """Up to ``n_windows`` windows of ``window_bp`` bases (fewer at contig ends) centred on bases drawn
    uniformly among the bases of the element classes; windows may hold several classes; windows with ``N``
    are skipped."""
    wanted = {labels.classes.index(name) for name in labels.element_classes}
    runs = []
    for chrom in labels.lengths:
        starts, ends, classes = labels.runs(chrom)
        runs += [
            (chrom, int(s), int(e)) for s, e, c in zip(starts, ends, classes, strict=True) if int(c) in wanted
        ]
    if not runs:
        raise ValueError("no bases of any element class in the genome")
    weights = np.array([end - start for _, start, end in runs], dtype=np.float64)
    rng = np.random.default_rng(seed)
    windows: list[LabelledWindow] = []
    for pick in rng.choice(len(runs), size=20 * n_windows, p=weights / weights.sum()):
        chrom, run_start, run_end = runs[pick]
        centre = int(rng.integers(run_start, run_end))
        start = max(0, min(centre - window_bp // 2, labels.lengths[chrom] - window_bp))
        window = _window(labels, genome, chrom, start, min(start + window_bp, labels.lengths[chrom]), "mixed")
        if "N" not in window.sequence:
            windows.append(window)
        if len(windows) == n_windows:
            break
    return windows


def parse_region(text: str, genome: Any) -> tuple[str, int, int]:
    """``(contig, start, end)`` (0-based half-open) of a ``CHROM:START-END`` region (1-based inclusive)."""
    match = re.fullmatch(r"(.+):([\d,]+)-([\d,]+)", text.strip())
    if not match:
        raise ValueError(f"region {text!r} is not of the form CHROM:START-END")
    chrom = genome.contig_for(match.group(1))
    if chrom is None:
        raise ValueError(f"region {text!r}: contig {match.group(1)!r} is not in the FASTA")
    start, end = int(match.group(2).replace(",", "")) - 1, int(match.group(3).replace(",", ""))
    if not 0 <= start < end <= genome.lengths[chrom]:
        raise ValueError(f"region {text!r} is empty or outside {chrom} (1..{genome.lengths[chrom]})")
    return chrom, start, end


def region_window(labels: GenomeLabels, genome: Any, chrom: str, start: int, end: int) -> LabelledWindow:
    """The window ``chrom[start:end]`` with its base labels."""
    return _window(labels, genome, chrom, start, end, f"{chrom}:{start + 1}-{end}")


def encode_windows(sequences: list[str], config: Any) -> dict[str, np.ndarray]:
    """:func:`tokenization.encode_batch` of window sequences for the model of ``config``, with an error naming
    the context limit when a window does not fit."""
    from tokenization import encode_batch

    context = config.max_tokens
    try:
        return encode_batch(sequences, config.tokenizer_version, max_length=context)
    except ValueError as error:
        raise ValueError(
            f"a window does not fit the model's context of {context} tokens (about {6 * (context - 1)} bp of "
            f"A/C/G/T); use a shorter window ({error})"
        ) from None


def window_inputs(sequences: list[str], rules: Any) -> list[tuple[np.ndarray, int]]:
    """Model inputs of window sequences under ``rules`` (:func:`benchmarks.generation.token_rules`): per window
    ``(input ids, real tokens)``, ``<cls>`` first where the generation has one, NTv3 windows padded with ``N``
    to ``length_multiple`` (``real tokens``: the window's own tokens, ``<cls>`` and padding excluded).

    Raises:
        ValueError: a window that does not fit the model's context (its index, token count and the limit).
    """
    inputs = [(rules.input_ids(content), real) for content, real in rules.encode(sequences)]
    for index, (ids, _) in enumerate(inputs):
        if len(ids) > rules.max_tokens:
            raise ValueError(
                f"window {index} ({len(ids)} tokens) does not fit the model's context of {rules.max_tokens} "
                f"tokens (about {rules.window_bp(rules.max_tokens)} bp of A/C/G/T); use a shorter window"
            )
    return inputs
