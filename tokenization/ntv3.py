"""The NT v3 single-base tokenizer: one token per nucleotide, nothing added, lengths a multiple of ``2 ** n``.

NT v3 models (Boshar et al., bioRxiv 2025) read one token per base with the vocabulary of the official
``get_ntv3_tokenizer()``: ``<unk>``=0 ``<pad>``=1 ``<mask>``=2 ``<cls>``=3 ``<eos>``=4 ``<bos>``=5 A=6 T=7 C=8
G=9 N=10 (:data:`tokenization.vocab.NTV3_LAYOUT`); no token is prepended or appended. Their U-Net halves the
sequence ``num_downsamples`` times (7 for the released models, 5 for the ablation), so an input must be a
multiple of ``2 ** num_downsamples`` tokens (128, 32) long. Two ways to get there:

- ``<pad>`` padding: what :class:`NTv3Tokenizer` does whenever padding is requested (``padding=True`` /
  ``"max_length"``, ``tokenizer.pad`` in data collators) and what :func:`encode_ntv3_batch` always does. The
  padding gets attention_mask 0, and the transformer core masks out, as attention keys, the downsampled
  blocks whose ``2 ** n`` tokens are all padding (as the official pre-trained model does; the official
  post-trained model takes no mask). Use it for batches of sequences of different lengths whose outputs on
  the padding are discarded. The models never saw ``<pad>`` in training, and the convolutions still read it:
  outputs near the padding, and blocks that mix bases and padding, are affected.
- ``N`` padding with :func:`pad_sequence_to_multiple`, which the official documentation recommends ("the models
  were not trained on [PAD] tokens"): N was seen in training, and it is attended like any base. Use it where
  outputs near the ends of a sequence matter, to compare with the official code, and with the post-trained
  (track / annotation) models.

The Hub's own ``NTv3Tokenizer`` (same ids) uppercases and turns any other character into ``<unk>``; here
U -> T and IUPAC letters -> N, and other characters are refused.

The input policy (lowercase, U -> T, IUPAC ambiguity letters -> N, whitespace removed; anything else a
ValueError naming the character and its position) is the 6-mer tokenizer's: :func:`tokenization.vocab.
validate_sequence` and :func:`tokenization.vocab.normalize_sequence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers.utils import PaddingStrategy

from .arrays import _SEPARATOR, _encode_codes
from .inputs import as_sequence_list
from .tokenizer import TOKENIZER_SETTINGS, NTTokenizer, _rust_normalizer, too_long_error
from .vocab import (
    NTV3_LAYOUT,
    PAD,
    SINGLE_TOKENS,
    SPECIAL_TOKEN_PATTERN,
    UNK,
    normalize_sequence,
    validate_sequence,
)

#: Downsampling steps of the released NT v3 models; inputs are padded to multiples of ``2 ** 7 = 128``.
RELEASED_NUM_DOWNSAMPLES = 7
DEFAULT_PAD_TO_MULTIPLE_OF = 2**RELEASED_NUM_DOWNSAMPLES
#: Longest input in bases by default: the 1 Mb (2**20 bp) context of the longest-context released models.
NTV3_MAX_LENGTH = 2**20

_VOCAB = {token: index for index, token in enumerate(NTV3_LAYOUT)}
#: Id of each nucleotide code of the batch path (A, T, C, G, N = codes 0-4).
_ID_OF_CODE = np.array([_VOCAB[letter] for letter in SINGLE_TOKENS], dtype=np.int64)


def ntv3_vocabulary() -> dict[str, int]:
    """Token -> id of the NT v3 layout (a fresh dict the caller may change)."""
    return dict(_VOCAB)


def _check_multiple(multiple: int | None, name: str) -> None:
    if multiple is not None and (isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1):
        raise ValueError(f"{name} must be a positive int (2 ** num_downsamples, e.g. 128), got {multiple!r}")


def _rust_ntv3_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(WordLevel(vocab=ntv3_vocabulary(), unk_token=UNK))
    tokenizer.normalizer = _rust_normalizer()
    # Every character its own token (a character outside the vocabulary is one <unk>, in a generic reload).
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    # Explicitly nothing added (a missing post-processor would be rebuilt by transformers).
    tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B", special_tokens=[])
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


class NTv3Tokenizer(NTTokenizer):
    """NT v3 tokenizer: one token per nucleotide (A=6 T=7 C=8 G=9 N=10), no ``<cls>`` or ``<eos>`` added.

    Input policy, ``strict``, literal special tokens (``<mask>``), the length limit (``model_max_length``
    tokens = bases, unless ``truncation=True``) and the saved files are those of :class:`NTTokenizer`.

    Padding: when padding is requested and no ``pad_to_multiple_of`` is given, batches are right-padded with
    ``<pad>`` (attention_mask 0) to a multiple of :attr:`pad_to_multiple_of` (``2 ** num_downsamples``, 128
    for the released models), in ``__call__`` and in :meth:`pad` (data collators). Without padding
    (the ``transformers`` default) ids are returned as they are, whatever their length. See the module
    docstring for ``<pad>`` versus ``N`` padding. A generic reload of the saved files
    (``AutoTokenizer.from_pretrained``) gives the same ids, but pads to a multiple only when asked
    (``pad_to_multiple_of=128``).
    """

    length_note: ClassVar[str] = ""
    package_only_kwargs: ClassVar[tuple[str, ...]] = ("strict", "pad_to_multiple_of")

    def __init__(
        self, *args: Any, pad_to_multiple_of: int | None = DEFAULT_PAD_TO_MULTIPLE_OF, **kwargs: Any
    ) -> None:
        _check_multiple(pad_to_multiple_of, "pad_to_multiple_of")
        super().__init__(*args, **kwargs)
        self.pad_to_multiple_of = pad_to_multiple_of

    def _encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any):
        if (
            kwargs.get("padding_strategy", PaddingStrategy.DO_NOT_PAD) != PaddingStrategy.DO_NOT_PAD
            and kwargs.get("pad_to_multiple_of") is None
        ):
            kwargs["pad_to_multiple_of"] = self.pad_to_multiple_of
        return super()._encode_plus(text, text_pair, **kwargs)

    def pad(
        self,
        encoded_inputs: Any,
        padding: Any = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        **kwargs: Any,
    ):
        """``transformers`` ``pad``, to a multiple of :attr:`pad_to_multiple_of` unless another is given."""
        if pad_to_multiple_of is None:
            pad_to_multiple_of = self.pad_to_multiple_of
        return super().pad(
            encoded_inputs,
            padding=padding,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            **kwargs,
        )


def build_ntv3_tokenizer(
    *,
    strict: bool = False,
    model_max_length: int | None = None,
    pad_to_multiple_of: int | None = DEFAULT_PAD_TO_MULTIPLE_OF,
) -> NTv3Tokenizer:
    """Build the NT v3 single-base tokenizer.

    Args:
        strict: accept only uppercase A/C/G/T/N (and literal special tokens); see :class:`NTTokenizer`.
        model_max_length: longest input in tokens (= bases); default :data:`NTV3_MAX_LENGTH` (1 Mb).
        pad_to_multiple_of: length multiple of padded batches, ``2 ** config.num_downsamples`` (128 for the
            released models, 32 for the 5-downsample ablation); None pads to the longest sequence only.

    Raises:
        ValueError: ``pad_to_multiple_of`` is not a positive int.
    """
    return NTv3Tokenizer(
        tokenizer_object=_rust_ntv3_tokenizer(),
        strict=strict,
        pad_to_multiple_of=pad_to_multiple_of,
        model_max_length=model_max_length or NTV3_MAX_LENGTH,
        **TOKENIZER_SETTINGS,
    )


def pad_sequence_to_multiple(
    sequence: str,
    multiple: int = DEFAULT_PAD_TO_MULTIPLE_OF,
    *,
    fill: str = "N",
    side: Literal["right", "left", "both"] = "right",
    strict: bool = False,
) -> str:
    """``sequence`` after the input policy, padded with ``fill`` to a multiple of ``multiple`` tokens.

    The padding the official NT v3 documentation recommends: ``N``, which the models saw in training, rather
    than ``<pad>``, which they did not. ``multiple`` is ``2 ** num_downsamples`` (128 for the released
    models). ``side="both"`` centres the sequence (the extra base, if odd, goes right), which suits the
    post-trained models whose track outputs cover the centre of the input. Literal special tokens count as
    one token each.

    Raises:
        ValueError: a character outside the input policy (named with its position), ``multiple`` not a
            positive int, ``fill`` not one of A, T, C, G, N, or an unknown ``side``.
    """
    _check_multiple(multiple, "multiple")
    if fill not in SINGLE_TOKENS:
        raise ValueError(f"fill must be one nucleotide letter of {', '.join(SINGLE_TOKENS)}, got {fill!r}")
    if side not in ("right", "left", "both"):
        raise ValueError(f"side must be 'right', 'left' or 'both', got {side!r}")
    validate_sequence(sequence, strict=strict)
    normalized = sequence if strict else normalize_sequence(sequence)
    missing = -len(SPECIAL_TOKEN_PATTERN.sub("*", normalized)) % multiple
    left = {"right": 0, "left": missing, "both": missing // 2}[side]
    return fill * left + normalized + fill * (missing - left)


def encode_ntv3_batch(
    sequences: Sequence[str],
    *,
    strict: bool = False,
    max_length: int | None = None,
    truncation: bool = False,
    pad_to_multiple_of: int | None = DEFAULT_PAD_TO_MULTIPLE_OF,
) -> dict[str, np.ndarray]:
    """Tokenize a batch into right-padded numpy arrays, without a Python loop per nucleotide.

    The same ids as ``build_ntv3_tokenizer()(sequences, padding=True)`` for every input the policy accepts
    (literal special tokens such as ``<mask>`` excepted: they raise a ValueError here). ``sequences`` is a list
    of DNA strings; a bare ``str`` is one sequence.

    Returns:
        ``{"input_ids": int64 [B, T], "attention_mask": int64 [B, T]}``: one token per base, ``<pad>`` (id 1,
        mask 0) on the right; T the longest sequence rounded up to ``pad_to_multiple_of`` (default 128). For N
        padding, pass each sequence through :func:`pad_sequence_to_multiple` first.

    Raises:
        ValueError: a character outside the input policy (sequence index and position named), or a sequence
            longer than ``max_length`` (default :data:`NTV3_MAX_LENGTH`) bases without ``truncation=True``.
    """
    _check_multiple(pad_to_multiple_of, "pad_to_multiple_of")
    sequences = as_sequence_list(sequences)
    limit = max_length or NTV3_MAX_LENGTH
    codes, lengths = _encode_codes(sequences, strict)
    too_long = np.flatnonzero(lengths > limit)
    if too_long.size and not truncation:
        index = int(too_long[0])
        raise too_long_error(index, int(lengths[index]), limit)
    kept = np.minimum(lengths, limit)
    width = int(kept.max()) if len(sequences) else 0
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    bases = codes[codes != _SEPARATOR]
    row = np.repeat(np.arange(len(sequences)), lengths)
    column = np.arange(bases.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = column < limit
    input_ids = np.full((len(sequences), width), _VOCAB[PAD], dtype=np.int64)
    input_ids[row[keep], column[keep]] = _ID_OF_CODE[bases[keep]]
    attention_mask = (np.arange(width)[None, :] < kept[:, None]).astype(np.int64)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
