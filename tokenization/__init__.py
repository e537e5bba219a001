"""The Nucleotide Transformer 6-mer tokenizer (v1 and v2 id layouts).

- :func:`build_tokenizer`: a ``transformers`` fast tokenizer, saved as plain ``tokenizer.json``.
- :func:`encode_batch`: the numpy batch path for data pipelines (same ids, no per-nucleotide loop).
- :func:`token_index_of_position` / :func:`token_starts`: nucleotide position -> token arithmetic.
"""

from .arrays import encode_batch, token_index_of_position, token_starts
from .inputs import FastaRecordChecker, as_sequence_list, require_file
from .tokenizer import NTTokenizer, build_tokenizer
from .vocab import (
    DEFAULT_MODEL_MAX_LENGTH,
    LAYOUTS,
    normalize_sequence,
    validate_sequence,
    vocabulary,
)

__all__ = [
    "DEFAULT_MODEL_MAX_LENGTH",
    "LAYOUTS",
    "FastaRecordChecker",
    "NTTokenizer",
    "as_sequence_list",
    "build_tokenizer",
    "encode_batch",
    "normalize_sequence",
    "require_file",
    "token_index_of_position",
    "token_starts",
    "validate_sequence",
    "vocabulary",
]
