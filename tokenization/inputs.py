"""Checks shared by every public entry point that takes sequences or reads FASTA records.

- :func:`as_sequence_list`: the one rule for "a list of sequences" arguments: a bare ``str`` is *one*
  sequence (as for ``transformers`` tokenizers), never a list of one-letter sequences.
- :class:`FastaRecordChecker`: the record-level rules of every FASTA reader of the package (the benchmark
  reader :func:`benchmarks.embeddings.iter_fasta` and the streamed genome reader of pretraining): record names
  are unique, every record has a sequence, and a file holds at least one record.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def as_sequence_list(sequences: str | Iterable[str], name: str = "sequences") -> list[str]:
    """``sequences`` as a new list of strings; a bare ``str`` is one sequence (``"ACGT"`` -> ``["ACGT"]``).

    Raises:
        TypeError: ``sequences`` is ``bytes`` or not iterable, or an item is not a ``str`` (the message names
            the argument and the item's index).
    """
    if isinstance(sequences, str):
        return [sequences]
    if isinstance(sequences, bytes | bytearray):
        raise TypeError(
            f"{name} must be a str or a list of str, got {type(sequences).__name__}; decode it first"
        )
    try:
        items = list(sequences)
    except TypeError:
        raise TypeError(f"{name} must be a str or a list of str, got {type(sequences).__name__}") from None
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(item).__name__}")
    return items


class FastaRecordChecker:
    """Record-level checks of one FASTA file, fed record by record while it is read.

    Call :meth:`record` for each record (1-based numbers are given in messages) and :meth:`finish` at the end.
    Every problem raises a one-line ``ValueError`` naming the file, the record number and its name.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.first_seen: dict[str, int] = {}

    @property
    def count(self) -> int:
        """Records seen so far."""
        return len(self.first_seen)

    def record(self, name: str, length: int) -> int:
        """Check one record (``length`` in bp); return its 1-based number."""
        number = self.start(name)
        self.end(length)
        return number

    def start(self, name: str) -> int:
        """Check a record's name when its header is read (streaming readers); return its 1-based number."""
        number = self.count + 1
        if name in self.first_seen:
            raise ValueError(
                f"{self.path}: record {number} has the same name {name!r} as record {self.first_seen[name]}; "
                "record names must be unique"
            )
        self.first_seen[name] = number
        return number

    def end(self, length: int) -> None:
        """Check the length (bp) of the record last started."""
        if length == 0:
            name = next(reversed(self.first_seen))
            raise ValueError(
                f"{self.path}: record {self.count} ({name!r}) has a header but no sequence (empty record)"
            )

    def finish(self) -> int:
        """Raise if the file held no record; return the number of records."""
        if not self.first_seen:
            raise ValueError(f"{self.path}: no FASTA records (an empty file, or no line starting with '>')")
        return self.count


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` when it is an existing file; the one check of every file argument.

    Raises:
        IsADirectoryError: ``path`` is a folder ("PATH: is a folder, not a WHAT file").
        FileNotFoundError: nothing is there ("WHAT file not found: PATH").
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path
