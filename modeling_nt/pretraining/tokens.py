"""The generation-dependent pieces of masked-LM pretraining, in one place.

Everything else (genome chunking, the stream, masking, Trainer wiring) is shared by the three generations; it
asks this module for the id layout and the encoding of a batch of records:

- ``"v1"`` / ``"v2"``: 6-mer tokens with ``<cls>`` first (:func:`tokenization.encode_batch`), records truncated
  to ``max_tokens`` tokens;
- ``"v3"``: one token per nucleotide (A=6 T=7 C=8 G=9 N=10), nothing added
  (:func:`tokenization.encode_ntv3_batch`); records are cut by the data stream to lengths that are multiples
  of ``2 ** num_downsamples`` (:mod:`.curriculum`).

In every layout the six special tokens are never MLM targets nor random replacements; the nucleotide tokens
(N included, as the single-letter N token of v1/v2) and the 6-mers are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Generation = Literal["v1", "v2", "v3"]
GENERATIONS: tuple[str, ...] = ("v1", "v2", "v3")


def check_generation(version: str) -> str:
    """``version`` if it names a token layout (``v1``, ``v2``, ``v3``), else a one-line ValueError."""
    if version not in GENERATIONS:
        raise ValueError(f"unknown token layout {version!r}: expected one of {', '.join(GENERATIONS)}")
    return version


def generation_of(model_config: Any) -> str:
    """The token layout of a model config (:func:`modeling_nt.generation_of`), checked."""
    from .. import generation_of as generation

    return check_generation(generation(model_config))


def mlm_vocabulary(version: str) -> dict[str, int]:
    """Token -> id of the layout ``version`` (a fresh dict)."""
    from tokenization import ntv3_vocabulary, vocabulary

    return ntv3_vocabulary() if check_generation(version) == "v3" else vocabulary(version)


def encode_records(sequences: Sequence[str], version: str, max_tokens: int | None) -> dict[str, np.ndarray]:
    """Token ids of genome records: ``{"input_ids", "attention_mask"}`` int64 [B, T], right-padded.

    v1/v2 truncate each record to ``max_tokens`` tokens (``<cls>`` included); v3 to ``max_tokens`` bases
    (None: no limit beyond the tokenizer's), without rounding T up (the stream gives exact lengths).
    """
    from tokenization import encode_batch, encode_ntv3_batch

    if check_generation(version) == "v3":
        return encode_ntv3_batch(
            list(sequences), max_length=max_tokens, truncation=True, pad_to_multiple_of=None
        )
    return encode_batch(list(sequences), version, max_length=max_tokens, truncation=True)


def unigram_name(version: str) -> str:
    """What the unigram baseline of the layout counts: ``"6-mer unigram"`` or ``"nucleotide unigram"``."""
    return "nucleotide unigram" if check_generation(version) == "v3" else "6-mer unigram"
