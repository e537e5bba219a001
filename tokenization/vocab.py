"""The two official Nucleotide Transformer vocabularies (v1 and v2 id layouts) and the input policy.

Both layouts hold the same 4107 strings: six special tokens, the 4096 6-mers over the alphabet in the
order A, T, C, G (product order), the single nucleotides A, T, C, G and N.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

Version = Literal["v1", "v2"]

ALPHABET = "ATCG"
KMER = 6
UNK, PAD, MASK, CLS, EOS, BOS = "<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"
SPECIAL_TOKENS = (UNK, PAD, MASK, CLS, EOS, BOS)
SINGLE_TOKENS = (*ALPHABET, "N")
KMER_TOKENS = tuple("".join(letters) for letters in itertools.product(ALPHABET, repeat=KMER))

#: Tokens per layout, in id order.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "v1": (UNK, PAD, MASK, CLS, *KMER_TOKENS, *SINGLE_TOKENS, EOS, BOS),
    "v2": (UNK, PAD, MASK, CLS, EOS, BOS, *KMER_TOKENS, *SINGLE_TOKENS),
}

#: The context length of each generation, in tokens including ``<cls>``.
DEFAULT_MODEL_MAX_LENGTH = {"v1": 1000, "v2": 2048}

#: NT v3 single-base layout (official ``get_ntv3_tokenizer``): the six special tokens, then A, T, C, G, N
#: (ids 6-10). Not in :data:`LAYOUTS`, which holds the 6-mer layouts.
NTV3_LAYOUT: tuple[str, ...] = (*SPECIAL_TOKENS, *SINGLE_TOKENS)

#: Nucleotide codes used by the array tokenizer: index into ALPHABET, N = 4.
NUCLEOTIDE_CODE = {letter: code for code, letter in enumerate(SINGLE_TOKENS)}

#: IUPAC ambiguity letters (other than N) that the lenient policy turns into N.
IUPAC_AMBIGUOUS = "RYSWKMBDHV"

SPECIAL_TOKEN_PATTERN = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS))


def check_version(version: str) -> Version:
    """Return ``version`` if it names a known id layout, else raise a ValueError naming the choices."""
    if version not in LAYOUTS:
        raise ValueError(f"unknown tokenizer version {version!r}: expected one of {sorted(LAYOUTS)}")
    return version  # type: ignore[return-value]


@functools.cache
def _frozen_vocabulary(version: str) -> Mapping[str, int]:
    return MappingProxyType({token: index for index, token in enumerate(LAYOUTS[check_version(version)])})


def vocabulary(version: str) -> dict[str, int]:
    """Token -> id for the v1 or v2 layout (a fresh dict the caller may change)."""
    return dict(_frozen_vocabulary(version))


def kmer_offset(version: str) -> int:
    """Id of the first 6-mer (``AAAAAA``): 4 in v1, 6 in v2."""
    return _frozen_vocabulary(version)[KMER_TOKENS[0]]


def single_offset(version: str) -> int:
    """Id of the single nucleotide ``A``; T, C, G and N follow it."""
    return _frozen_vocabulary(version)["A"]


def _first_invalid(text: str, invalid: re.Pattern[str]) -> tuple[int, str] | None:
    """Position and character of the first match of ``invalid`` outside literal special tokens."""
    cursor = 0
    for special in [*SPECIAL_TOKEN_PATTERN.finditer(text), None]:
        end = special.start() if special else len(text)
        found = invalid.search(text, cursor, end)
        if found:
            return found.start(), found.group()
        if special:
            cursor = special.end()
    return None


_STRICT_INVALID = re.compile(r"[^ACGTN]")
_LENIENT_INVALID = re.compile(rf"[^ACGTNUacgtnu{IUPAC_AMBIGUOUS}{IUPAC_AMBIGUOUS.lower()}\s]")


def validate_sequence(text: str, *, strict: bool, index: int | None = None) -> None:
    """Raise a ValueError naming the first character that the input policy does not accept.

    Lenient policy (default): upper- or lowercase A/C/G/T/N, U (read as T), the IUPAC ambiguity letters
    (read as N) and whitespace (removed). Strict policy: uppercase A/C/G/T/N only. Literal special tokens
    such as ``<mask>`` are accepted in both.
    """
    bad = _first_invalid(text, _STRICT_INVALID if strict else _LENIENT_INVALID)
    if bad is None:
        return
    position, char = bad
    where = f"sequence {index}" if index is not None else "sequence"
    allowed = "A, C, G, T, N" if strict else "A/C/G/T/N/U, IUPAC ambiguity letters and whitespace"
    context = text[max(0, position - 10) : position + 10]
    raise ValueError(
        f"{where}: invalid character {char!r} at position {position} (0-based) in ...{context}...; "
        f"allowed: {allowed}" + ("" if strict else " (or build the tokenizer with strict=True)")
    )


def is_clean_sequence(text: str) -> bool:
    """True when ``text`` holds only uppercase A/C/G/T/N outside literal special tokens (``<mask>``...).

    Such text is valid under both policies and unchanged by normalisation, so it can skip both.
    """
    return _first_invalid(text, _STRICT_INVALID) is None


_NORMALIZE_TABLE = str.maketrans(
    {
        **{letter.lower(): letter for letter in "ACGTN"},
        "U": "T",
        "u": "T",
        **{letter: "N" for letter in IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower()},
        **{space: None for space in " \t\n\r\v\f"},
    }
)


def normalize_sequence(text: str) -> str:
    """Apply the lenient policy: uppercase, U -> T, IUPAC ambiguity letters -> N, whitespace removed.

    Literal special tokens are kept as they are. Call :func:`validate_sequence` first to reject characters
    outside the policy.
    """
    if "<" not in text:
        return text.translate(_NORMALIZE_TABLE)
    pieces = SPECIAL_TOKEN_PATTERN.split(text)
    specials = SPECIAL_TOKEN_PATTERN.findall(text)
    normalized = [piece.translate(_NORMALIZE_TABLE) for piece in pieces]
    return "".join(
        part for pair in itertools.zip_longest(normalized, specials, fillvalue="") for part in pair
    )
