"""Vectorised NT tokenization with numpy: the batch path for data pipelines and position arithmetic.

Gives the same ids as :func:`tokenization.build_tokenizer` for every sequence the input policy accepts,
without a Python loop per nucleotide: all sequences of a batch are concatenated and cut into runs at every N
and at every sequence boundary, and token starts are found with cumulative maxima/minima.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .inputs import as_sequence_list
from .tokenizer import too_long_error
from .vocab import (
    CLS,
    DEFAULT_MODEL_MAX_LENGTH,
    IUPAC_AMBIGUOUS,
    KMER,
    NUCLEOTIDE_CODE,
    PAD,
    check_version,
    kmer_offset,
    single_offset,
    validate_sequence,
    vocabulary,
)

_N_CODE = NUCLEOTIDE_CODE["N"]
_SEPARATOR = 5
_INVALID = 255
_WHITESPACE = b" \t\n\r\v\f"
KMER_PLACE_VALUES = 4 ** np.arange(KMER - 1, -1, -1)


def _code_table(strict: bool) -> bytes:
    table = bytearray([_INVALID]) * 256
    for letter, code in NUCLEOTIDE_CODE.items():
        table[ord(letter)] = code
    if not strict:
        for letter, code in NUCLEOTIDE_CODE.items():
            table[ord(letter.lower())] = code
        for letter in "Uu":
            table[ord(letter)] = NUCLEOTIDE_CODE["T"]
        for letter in IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower():
            table[ord(letter)] = _N_CODE
    return bytes(table)


_TABLES = {strict: _code_table(strict) for strict in (False, True)}


def _encode_codes(sequences: Sequence[str], strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Nucleotide codes of all sequences joined by a separator code, and each sequence's length."""
    table = _TABLES[strict]
    delete = b"" if strict else _WHITESPACE
    parts = []
    for index, sequence in enumerate(sequences):
        codes = sequence.encode("ascii", errors="replace").translate(table, delete)
        if _INVALID in codes:
            validate_sequence(sequence, strict=strict, index=index)  # raises with the position
            raise ValueError(
                f"sequence {index}: literal special tokens such as <mask> are not accepted by the batch path; "
                "use the fast tokenizer (build_tokenizer() or build_ntv3_tokenizer()) for such text"
            )
        parts.append(codes)
    lengths = np.fromiter((len(part) for part in parts), dtype=np.int64, count=len(parts))
    joined = bytes([_SEPARATOR]).join(parts)
    return np.frombuffer(joined, dtype=np.uint8), lengths


def _runs_repeat(run_starts: np.ndarray, counts: np.ndarray, step: int) -> np.ndarray:
    """Positions ``start + step * i`` for ``i < count`` of every run, concatenated run after run."""
    total = int(counts.sum())
    first_of_run = np.cumsum(counts) - counts
    return np.repeat(run_starts - step * first_of_run, counts) + step * np.arange(total)


def _tokens(codes: np.ndarray, version: str) -> tuple[np.ndarray, np.ndarray]:
    """Start position and id of every token, in sequence order, for joined nucleotide codes.

    Runs of A/C/G/T between breaks (N or a sequence separator) are cut into 6-mers from their start; the
    last ``length % 6`` bases of a run and every N are single-nucleotide tokens.
    """
    size = codes.size
    breaks = np.flatnonzero(codes >= _N_CODE)
    run_starts = np.concatenate([[0], breaks + 1])
    run_lengths = np.concatenate([breaks, [size]]) - run_starts
    kmers_per_run = run_lengths // KMER
    kmer_starts = _runs_repeat(run_starts, kmers_per_run, KMER)
    tail_starts = _runs_repeat(run_starts + KMER * kmers_per_run, run_lengths - KMER * kmers_per_run, 1)
    n_starts = breaks[codes[breaks] == _N_CODE]

    place_values = KMER_PLACE_VALUES.astype(np.int64)
    kmer_windows = codes[kmer_starts[:, None] + np.arange(KMER)]
    ids = np.empty(size, dtype=np.int64)
    ids[kmer_starts] = kmer_offset(version) + kmer_windows @ place_values
    singles = np.concatenate([tail_starts, n_starts])
    ids[singles] = single_offset(version) + codes[singles].astype(np.int64)
    is_start = np.zeros(size, dtype=bool)
    is_start[kmer_starts] = True
    is_start[singles] = True
    return np.flatnonzero(is_start), ids[is_start]


def encode_batch(
    sequences: Sequence[str],
    version: str = "v2",
    *,
    strict: bool = False,
    max_length: int | None = None,
    truncation: bool = False,
    pad_to_multiple_of: int | None = None,
) -> dict[str, np.ndarray]:
    """Tokenize a batch into right-padded numpy arrays.

    ``sequences`` is a list of DNA strings; a bare ``str`` is one sequence (see
    :func:`tokenization.as_sequence_list`). Returns ``{"input_ids": int64 [B, T], "attention_mask": int64 [B, T]}`` with ``<cls>`` first and
    ``<pad>`` on the right, T the longest sequence (rounded up to ``pad_to_multiple_of``). The same input
    policy as the fast tokenizer applies. A sequence longer than ``max_length`` tokens (default: the
    generation's context) raises a ValueError unless ``truncation=True``.
    """
    sequences = as_sequence_list(sequences)
    version = check_version(version)
    vocab = vocabulary(version)
    limit = max_length or DEFAULT_MODEL_MAX_LENGTH[version]
    codes, _ = _encode_codes(sequences, strict)
    token_positions, token_ids = _tokens(codes, version)
    token_sequence = np.searchsorted(np.flatnonzero(codes == _SEPARATOR), token_positions)
    counts = np.bincount(token_sequence, minlength=len(sequences)) + 1  # + <cls>
    too_long = np.flatnonzero(counts > limit)
    if too_long.size and not truncation:
        index = int(too_long[0])
        raise too_long_error(index, int(counts[index]), limit, " (with <cls>)")
    counts = np.minimum(counts, limit)
    width = int(counts.max()) if len(sequences) else 1
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(sequences), width), vocab[PAD], dtype=np.int64)
    input_ids[:, 0] = vocab[CLS]
    first_token = np.concatenate([[0], np.cumsum(np.bincount(token_sequence, minlength=len(sequences)))[:-1]])
    column = np.arange(token_ids.size) - first_token[token_sequence] + 1
    keep = column < counts[token_sequence]
    input_ids[token_sequence[keep], column[keep]] = token_ids[keep]
    attention_mask = (np.arange(width)[None, :] < counts[:, None]).astype(np.int64)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def token_starts(sequence: str, *, strict: bool = False) -> np.ndarray:
    """0-based nucleotide position where each token (after ``<cls>``) starts, for one sequence.

    Positions refer to the sequence after the input policy (whitespace removed).
    """
    codes, _ = _encode_codes([sequence], strict)
    return _tokens(codes, "v2")[0]


def token_index_of_position(sequence: str, positions: int | Sequence[int] | np.ndarray) -> np.ndarray | int:
    """Index in ``input_ids`` (``<cls>`` = 0) of the token covering each 0-based nucleotide position.

    Raises a ValueError for positions outside the sequence.
    """
    starts = token_starts(sequence)
    length = (
        len(sequence)
        if not any(c.isspace() for c in sequence)
        else int(_encode_codes([sequence], False)[1][0])
    )
    wanted = np.asarray(positions, dtype=np.int64)
    outside = np.flatnonzero((wanted < 0) | (wanted >= length))
    if outside.size:
        raise ValueError(
            f"position {int(wanted.flat[outside[0]])} is outside the sequence of length {length} (0-based positions)"
        )
    index = np.searchsorted(
        starts, wanted, side="right"
    )  # tokens starting at or before the position, + <cls>
    return int(index) if index.ndim == 0 else index
