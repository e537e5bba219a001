"""Genome FASTA readers and the NT chunking rules, streaming: memory does not grow with genome size.

A genome is cut, per contig (chromosome), into records of ``chunk_length + 2 * overlap`` bp (NT: 6,000 bp
chunks with 100 bp on each side, 6,200 bp records; v2: 12,000 bp chunks) that start every ``chunk_length``
bp, after a start offset drawn afresh in ``[0, max_offset)`` for every pass over the genome, so that the
6-mer frame moves between epochs. Sequences are uppercased and every non-ACGT letter becomes N; records with
more than ``max_n_fraction`` N are dropped, and so are the short tails (under ``min_length`` bp) at interval
ends. Held-out regions (``"20"``, ``"20:1-2000000"``) are cut out of the training split and are the
validation split.

Indexed files (plain FASTA with ``.fai``; bgzip with ``.fai`` + ``.gzi``) are read window by window with
``pysam.FastaFile``; other files (plain gzip, unindexed FASTA) are streamed line by line with a buffer of one
record.
"""

from __future__ import annotations

import contextlib
import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_ACGT_ONLY = bytes(c if chr(c) in "ACGT" else ord("N") for c in range(256))
_REGION = re.compile(r"^(?P<contig>.+):(?P<start>[\d,]+)-(?P<end>[\d,]+)$")


def normalize_genome_sequence(sequence: str) -> str:
    """Uppercase, and every letter other than A/C/G/T becomes N (the NT training-data rule)."""
    return sequence.upper().encode("ascii", errors="replace").translate(_ACGT_ONLY).decode("ascii")


@dataclass(frozen=True)
class Region:
    """A contig, or a 0-based half-open interval of one (``end=None``: to the contig's end)."""

    contig: str
    start: int = 0
    end: int | None = None

    def __str__(self) -> str:
        return (
            self.contig
            if self.end is None and self.start == 0
            else f"{self.contig}:{self.start + 1}-{self.end}"
        )


def parse_region(text: str) -> Region:
    """Parse ``"20"`` (whole contig) or ``"20:1,000,001-2,000,000"`` (1-based, inclusive) into a Region.

    The contig name may itself contain ``:`` (``"20:30000001-32000000:1-1000"`` names an interval of the
    contig ``20:30000001-32000000``).
    """
    text = text.strip()
    match = _REGION.match(text)
    if not match:
        if not text:
            raise ValueError("empty region")
        return Region(text)
    start, end = (int(match[key].replace(",", "")) for key in ("start", "end"))
    if start < 1 or end < start:
        raise ValueError(f"region {text!r}: expected 1-based START-END with 1 <= START <= END")
    return Region(match["contig"], start - 1, end)


#: Mitochondrion names tried when a contig is not found under its own name or with/without "chr".
_CONTIG_ALIASES = {"M": "MT", "chrM": "MT", "MT": "chrM"}


def match_contig(name: str, available: Iterable[str]) -> str | None:
    """The name under which ``available`` holds contig ``name``, or None when it is absent under every name.

    The one contig-name rule of the package (VCF vs FASTA, region vs FASTA): the name itself, then without
    and with a ``chr`` prefix (``chr20`` finds ``20``, ``20`` finds ``chr20``), then the mitochondrion
    aliases (``chrM``/``M`` find ``MT``, ``MT`` finds ``chrM``).
    """
    names = available if isinstance(available, set | frozenset | dict) else set(available)
    bare = name.removeprefix("chr")
    candidates = (name, bare, f"chr{bare}", _CONTIG_ALIASES.get(name), _CONTIG_ALIASES.get(bare))
    return next((candidate for candidate in candidates if candidate in names), None)


def contig_list(names: Iterable[str], limit: int = 10) -> str:
    """``"20, 21, X"`` for error messages: at most ``limit`` names, then how many there are in all."""
    names = list(names)
    shown = ", ".join(names[:limit]) or "none"
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def resolve_region(region: Region, available: Iterable[str], source: str | Path) -> Region:
    """``region`` renamed to the contig name ``available`` uses (:func:`match_contig`); a ValueError naming
    the contig, ``source`` and the available contigs when it is absent."""
    names = list(available)
    contig = match_contig(region.contig, names)
    if contig is None:
        raise ValueError(
            f"contig {region.contig!r} of region {region} is not in {source} "
            f"(its contigs: {contig_list(names)})"
        )
    return Region(contig, region.start, region.end)


@contextlib.contextmanager
def quiet_htslib() -> Iterator[None]:
    """htslib's own warnings and errors off while inside (they go to the C-level stderr in several lines);
    the package's errors name the file and the problem in one line instead."""
    import pysam

    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def open_fasta(path: str | Path):
    """``pysam.FastaFile`` on a plain (indexed or indexable) or BGZF FASTA; one-line errors for a missing
    file or one that cannot be indexed (plain gzip, not a FASTA)."""
    import pysam

    from tokenization import require_file

    path = require_file(path, "FASTA")
    try:
        with quiet_htslib():
            return pysam.FastaFile(str(path))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path}: cannot open as an indexed FASTA ({error}); if it is gzipped, it must be BGZF "
            "(bgzip) to be indexed, e.g. `zcat ref.fa.gz | bgzip > ref.fa.bgz && samtools faidx ref.fa.bgz`"
        ) from error


@dataclass(frozen=True)
class ChunkingConfig:
    """How a genome is cut into training records (defaults: the NT v1 recipe)."""

    chunk_length: int = 6000
    overlap: int = 100
    max_offset: int = 200
    min_length: int = 600
    max_n_fraction: float | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ("chrM", "MT", "M")

    def __post_init__(self) -> None:
        if self.chunk_length <= 0 or self.overlap < 0 or self.max_offset < 0 or self.min_length < 1:
            raise ValueError(
                "chunking needs chunk_length > 0, overlap >= 0, max_offset >= 0 and min_length >= 1, "
                f"got {self.chunk_length}, {self.overlap}, {self.max_offset}, {self.min_length}"
            )
        if self.max_n_fraction is not None and not 0 <= self.max_n_fraction <= 1:
            raise ValueError(f"max_n_fraction must lie in [0, 1], got {self.max_n_fraction}")

    @property
    def record_length(self) -> int:
        """Length of a full record: the chunk plus the overlap on each side."""
        return self.chunk_length + 2 * self.overlap

    def keeps_contig(self, name: str) -> bool:
        """Whether the include/exclude lists let this contig through."""
        return (self.include is None or name in self.include) and name not in self.exclude


@dataclass(frozen=True)
class GenomeRecord:
    """One training record: its contig, 0-based start and normalised sequence."""

    contig: str
    start: int
    sequence: str

    @property
    def name(self) -> str:
        return f"{self.contig}:{self.start + 1}-{self.start + len(self.sequence)}"


def split_intervals(
    contig: str, length: int | None, held_out: Iterable[Region], split: str
) -> list[tuple[int, int | None]]:
    """The 0-based intervals of ``contig`` that belong to ``split`` ("train" or "validation").

    Validation is the union of the held-out regions on this contig; train is the rest of the contig.
    ``length=None`` (a streamed contig) leaves the last training interval open-ended.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'validation'")
    mine = sorted((region.start, region.end) for region in held_out if region.contig == contig)
    if split == "validation":
        return [(start, end if end is not None else length) for start, end in mine]
    intervals: list[tuple[int, int | None]] = []
    cursor: int | None = 0
    for start, end in mine:
        if cursor is not None and start > cursor:
            intervals.append((cursor, start))
        cursor = None if end is None else max(cursor or 0, end)
        if cursor is None:
            break
    if cursor is not None and (length is None or cursor < length):
        intervals.append((cursor, length))
    return intervals


def chunk_windows(
    fetch: Callable[[int, int], str],
    contig: str,
    intervals: Iterable[tuple[int, int | None]],
    chunking: ChunkingConfig,
    offset: int = 0,
) -> Iterator[GenomeRecord]:
    """Cut each interval into records; ``fetch(start, end)`` returns the contig's bases (shorter at its end).

    Records start at ``interval_start + offset + k * chunk_length`` and span ``record_length`` bp, clipped to
    the interval. Starts are increasing, so a streaming ``fetch`` only ever moves forward.
    """
    for interval_start, interval_end in intervals:
        start = interval_start + offset
        while interval_end is None or start < interval_end:
            end = start + chunking.record_length
            if interval_end is not None:
                end = min(end, interval_end)
            raw = fetch(start, end)
            if len(raw) < chunking.min_length:
                break
            sequence = normalize_genome_sequence(raw)
            n_fraction = sequence.count("N") / len(sequence)
            if chunking.max_n_fraction is None or n_fraction <= chunking.max_n_fraction:
                yield GenomeRecord(contig, start, sequence)
            if len(raw) < end - start:
                break
            start += chunking.chunk_length


class _StreamedContig:
    """Forward-only window access to one contig of a FASTA text stream, buffering about one record."""

    def __init__(self, lines: Iterator[str], on_header: Callable[[str], None]) -> None:
        self._lines = lines
        self._on_header = on_header
        self._buffer = ""
        self._buffer_start = 0
        self.exhausted = False
        self.bases_read = 0

    def _read_line(self) -> bool:
        for line in self._lines:
            if line.startswith(">"):
                self._on_header(line)
                break
            bases = line.strip()
            self.bases_read += len(bases)
            self._buffer += bases
            return True
        self.exhausted = True
        return False

    def fetch(self, start: int, end: int) -> str:
        if start < self._buffer_start:
            raise ValueError(
                f"streamed FASTA can only be read forwards (asked for {start} after {self._buffer_start})"
            )
        while self._buffer_start + len(self._buffer) < end and not self.exhausted and self._read_line():
            if self._buffer_start + len(self._buffer) <= start:  # skip bases before the window unbuffered
                self._buffer_start += len(self._buffer)
                self._buffer = ""
        drop = max(0, start - self._buffer_start)
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return self._buffer[: end - start]

    def drain(self) -> None:
        while not self.exhausted:
            self._buffer = ""
            self._read_line()


def is_gzip(path: str | Path) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (plain gzip or bgzip), whatever its suffix."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _is_indexed(path: Path) -> bool:
    fai = Path(f"{path}.fai")
    if not fai.exists():
        return False
    return not is_gzip(path) or Path(f"{path}.gzi").exists()


def open_text(path: str | Path) -> IO[str]:
    """Open a plain or gzip-compressed (by content, not suffix) text file for reading."""
    return gzip.open(path, "rt") if is_gzip(path) else open(path)


@dataclass
class GenomeReader:
    """Streams the records of one FASTA file (plain, gzip or bgzip) for a split and a start offset."""

    path: str | Path
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    held_out: tuple[Region, ...] = ()

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise FileNotFoundError(f"genome FASTA {self.path} does not exist")

    def records(self, split: str = "train", offset: int = 0) -> Iterator[GenomeRecord]:
        """Records of ``split`` in genome order, cut after ``offset`` bases of each interval."""
        if _is_indexed(self.path):
            yield from self._indexed_records(split, offset)
            return
        try:
            yield from self._streamed_records(split, offset)
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:  # binary or a broken gzip stream
            raise ValueError(f"{self.path}: not a readable FASTA file ({error})") from None

    def _indexed_records(self, split: str, offset: int) -> Iterator[GenomeRecord]:
        import pysam

        from tokenization import FastaRecordChecker

        checker = FastaRecordChecker(self.path)
        with pysam.FastaFile(str(self.path)) as fasta:
            for contig, length in zip(fasta.references, fasta.lengths, strict=True):
                checker.record(contig, length)
            checker.finish()
            for contig, length in zip(fasta.references, fasta.lengths, strict=True):
                if not self.chunking.keeps_contig(contig):
                    continue
                intervals = split_intervals(contig, length, self.held_out, split)

                def fetch(start: int, end: int, contig: str = contig) -> str:
                    return fasta.fetch(contig, start, end)

                yield from chunk_windows(fetch, contig, intervals, self.chunking, offset)

    def _streamed_records(self, split: str, offset: int) -> Iterator[GenomeRecord]:
        from tokenization import FastaRecordChecker

        headers: list[str] = []
        with open_text(self.path) as handle:
            lines = iter(handle)
            for line in lines:
                if line.startswith(">"):
                    headers.append(line)
                    break
                if line.strip():
                    raise ValueError(f"{self.path}: not a FASTA file (first line does not start with '>')")
            checker = FastaRecordChecker(self.path)  # the record rules of every FASTA reader
            while headers:
                header = headers.pop()
                contig = header[1:].split(maxsplit=1)[0] if header[1:].strip() else ""
                checker.start(contig)
                stream = _StreamedContig(lines, headers.append)
                if self.chunking.keeps_contig(contig):
                    intervals = split_intervals(contig, None, self.held_out, split)
                    yield from chunk_windows(stream.fetch, contig, intervals, self.chunking, offset)
                stream.drain()
                checker.end(stream.bases_read)
            checker.finish()
