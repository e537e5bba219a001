"""The NT 6-mer tokenizer as a `transformers` fast tokenizer backed by the `tokenizers` library."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, ClassVar

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import TokenizersBackend
from transformers.tokenization_utils_base import TruncationStrategy

from .vocab import (
    BOS,
    CLS,
    DEFAULT_MODEL_MAX_LENGTH,
    EOS,
    IUPAC_AMBIGUOUS,
    MASK,
    PAD,
    UNK,
    check_version,
    is_clean_sequence,
    validate_sequence,
    vocabulary,
)

#: Held while a call runs, so that no thread sees a pipeline whose normaliser is switched off (module-level: a
#: tokenizer object stays picklable).
_BACKEND_LOCK = threading.Lock()

#: Special tokens, padding side and outputs of every NT tokenizer (6-mer and NTv3 single-base).
TOKENIZER_SETTINGS: dict[str, Any] = {
    "unk_token": UNK,
    "pad_token": PAD,
    "mask_token": MASK,
    "cls_token": CLS,
    "eos_token": EOS,
    "bos_token": BOS,
    "padding_side": "right",
    "model_input_names": ["input_ids", "attention_mask"],
}

#: Greedy left-to-right match: a full 6-mer of A/C/G/T, else a single nucleotide (N always alone).
KMER_SPLIT_PATTERN = "[ACGT]{6}|[ACGTN]"


def _rust_normalizer() -> normalizers.Normalizer:
    """The lenient input policy inside the Rust pipeline, so that a generic reload behaves the same."""
    iupac = IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower()
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(r"\s+"), ""),
            *(normalizers.Replace(letter.lower(), letter) for letter in "ACGTN"),
            normalizers.Replace(Regex("[Uu]"), "T"),
            normalizers.Replace(Regex(f"[{iupac}]"), "N"),
        ]
    )


def too_long_error(index: int, length: int, limit: int, note: str = "") -> ValueError:
    """The one message for a sequence over the length limit (``note``: what the count includes)."""
    return ValueError(
        f"sequence {index} is {length} tokens long{note}, more than the limit of {limit} "
        "tokens; pass truncation=True to cut it, or split it into windows"
    )


def _rust_tokenizer(version: str) -> Tokenizer:
    vocab = vocabulary(version)
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.normalizer = _rust_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(KMER_SPLIT_PATTERN), behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A", pair=f"{CLS} $A $B", special_tokens=[(CLS, vocab[CLS])]
    )
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


class NTTokenizer(TokenizersBackend):
    """NT 6-mer tokenizer: ``<cls>`` + non-overlapping 6-mers, restarting after every N.

    Input policy: by default sequences are uppercased, U becomes T, IUPAC ambiguity letters become N and
    whitespace is removed; any other character raises a ValueError naming it and its 0-based position.
    With ``strict=True`` only uppercase A/C/G/T/N are accepted. Literal special tokens (``<mask>``) pass
    through in both modes. Sequences longer than ``model_max_length`` tokens raise a ValueError unless
    ``truncation=True``.

    Speed: a call whose texts are all clean (uppercase A/C/G/T/N and literal special tokens; one regex scan
    each) skips the Rust normaliser, which would change nothing; other calls run it. Ids and offsets are the
    same either way. Calls from several threads are serialised by a lock.

    Saved files are a plain ``tokenizer.json`` + ``tokenizer_config.json`` that ``AutoTokenizer`` reloads
    without remote code (as a generic fast tokenizer applying the same normalisation; characters outside
    the policy then become ``<unk>`` instead of raising).
    """

    #: What a length in tokens includes, in the too-long message.
    length_note: ClassVar[str] = " (with <cls>)"
    #: Constructor options of this package only: left out of ``tokenizer_config.json`` (the generic class
    #: that reloads it would keep but ignore them).
    package_only_kwargs: ClassVar[tuple[str, ...]] = ("strict",)

    def __init__(self, *args: Any, strict: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strict = strict

    def _encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any):
        clean = not kwargs.get("is_split_into_words", False)
        for texts in (text, text_pair):
            for index, sequence in enumerate([texts] if isinstance(texts, str) else texts or []):
                if isinstance(sequence, str):
                    if is_clean_sequence(sequence):
                        continue
                    clean = False
                    validate_sequence(sequence, strict=self.strict, index=index)
                else:
                    clean = False
        # On clean input (uppercase A/C/G/T/N and literal special tokens) the normaliser's Replace steps change
        # nothing: the call skips them (same ids and offsets, faster). The lock keeps a concurrent call from
        # another thread from running while the pipeline is without its normaliser.
        with _BACKEND_LOCK:
            normalizer = self._tokenizer.normalizer
            if clean:
                self._tokenizer.normalizer = None
            try:
                encoded = super()._encode_plus(text, text_pair, **kwargs)
            finally:
                if clean:
                    self._tokenizer.normalizer = normalizer
        if (
            kwargs.get("truncation_strategy", TruncationStrategy.DO_NOT_TRUNCATE)
            == TruncationStrategy.DO_NOT_TRUNCATE
        ):
            self._check_lengths(encoded, kwargs.get("max_length"))
        return encoded

    def _check_lengths(self, encoded: Any, max_length: int | None) -> None:
        limit = max_length if max_length is not None else self.model_max_length
        for index, encoding in enumerate(encoded.encodings or []):
            if len(encoding) <= limit:  # padded length: an upper bound of the real one, O(1)
                continue
            length = sum(encoding.attention_mask)
            if length > limit:
                raise too_long_error(index, length, limit, self.length_note)

    def _eventual_warn_about_too_long_sequence(self, ids: list[int], max_length: int | None, verbose: bool):
        """Length errors are raised by ``_check_lengths``; the base class warning would only repeat them."""

    def save_pretrained(
        self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        """Save ``tokenizer.json`` and a ``tokenizer_config.json`` naming the generic fast tokenizer class."""
        files = super().save_pretrained(save_directory, *args, **kwargs)
        config_path = os.path.join(save_directory, "tokenizer_config.json")
        with open(config_path) as handle:
            config = json.load(handle)
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        for key in self.package_only_kwargs:
            config.pop(key, None)
        with open(config_path, "w") as handle:
            json.dump(config, handle, indent=2)
        return files


def build_tokenizer(
    version: str = "v2", *, strict: bool = False, model_max_length: int | None = None
) -> NTTokenizer:
    """Build the NT tokenizer for the ``"v1"`` or ``"v2"`` id layout.

    Args:
        version: id layout, ``"v1"`` (500M/2.5B models) or ``"v2"`` (50M-500M multispecies v2 models).
        strict: accept only uppercase A/C/G/T/N (and literal special tokens); see :class:`NTTokenizer`.
        model_max_length: longest input in tokens including ``<cls>``; defaults to the generation's
            context (1000 for v1, 2048 for v2).
    """
    version = check_version(version)
    return NTTokenizer(
        tokenizer_object=_rust_tokenizer(version),
        strict=strict,
        model_max_length=model_max_length or DEFAULT_MODEL_MAX_LENGTH[version],
        **TOKENIZER_SETTINGS,
    )
