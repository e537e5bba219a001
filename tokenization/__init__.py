"""The Nucleotide Transformer 6-mer tokenizer (v1 and v2 id layouts).

- :func:`build_tokenizer`: a ``transformers`` fast tokenizer, saved as plain ``tokenizer.json``.
- :func:`encode_batch`: the numpy batch path for data pipelines (same ids, no per-nucleotide loop).
- :func:`token_index_of_position` / :func:`token_starts`: nucleotide position -> token arithmetic.

NT v3 (single-base tokens, :mod:`tokenization.ntv3`): :func:`build_ntv3_tokenizer`, :func:`encode_ntv3_batch`
and :func:`pad_sequence_to_multiple` (N padding to a multiple of ``2 ** num_downsamples``).
"""

from .arrays import encode_batch, token_index_of_position, token_starts
from .inputs import FastaRecordChecker, as_sequence_list, require_file
from .ntv3 import (
    NTv3Tokenizer,
    build_ntv3_tokenizer,
    encode_ntv3_batch,
    ntv3_vocabulary,
    pad_sequence_to_multiple,
)
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
    "NTv3Tokenizer",
    "as_sequence_list",
    "build_ntv3_tokenizer",
    "build_tokenizer",
    "encode_batch",
    "encode_ntv3_batch",
    "normalize_sequence",
    "ntv3_vocabulary",
    "pad_sequence_to_multiple",
    "require_file",
    "token_index_of_position",
    "token_starts",
    "validate_sequence",
    "vocabulary",
]
