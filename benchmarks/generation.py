"""What differs between NT generations downstream of the model: the one home of those rules.

``nt embed`` (:mod:`benchmarks.embeddings`), ``nt score-variants`` (:mod:`benchmarks.variants`) and ``nt probe``
(:mod:`benchmarks.probing`) ask :func:`token_rules` for a :class:`TokenRules` object and never branch on the
model class themselves.

- **NT v1/v2** (:class:`KmerRules`): 6-mer tokens (single bases at N and at run ends), ``<cls>`` at input
  position 0, windows counted in tokens with ``<cls>`` (``config.default_window_tokens``; at most
  ``config.max_tokens``), hidden states ``0 .. num_hidden_layers`` (0 = embeddings, the last after the final
  LayerNorm), all at token resolution.
- **NTv3** (:class:`SingleBaseRules`): one token per nucleotide, no ``<cls>`` (output position i is nucleotide
  i), input lengths a multiple of ``config.length_multiple`` (``2 ** num_downsamples``). A sequence is padded
  with ``N`` (id 10) at its right end to the next multiple, as the official documentation advises (the models
  never saw ``<pad>`` in training), and the padded positions are dropped from every output. Windows are counted
  in bases: ``config.trained_max_length`` where the config records it, else
  :data:`tokenization.ntv3.NTV3_MAX_LENGTH` (1 Mb), which is also the longest. Hidden-state indices:
  ``0 .. num_hidden_layers`` are the transformer core's states (0 = the core's input, after the down tower;
  i = the output of core layer i), downsampled to one vector per block of ``2 ** num_downsamples`` bases
  (``[L / 2**n, hidden_size]``); ``num_hidden_layers + 1`` (= ``-1``, the default) is the U-Net's output at base
  resolution (``[L, conv_init_embed_dim]``, after the up tower).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: A window position's state row: position ``p`` of a layer with stride ``s`` is row ``p // s``.
BASE_RESOLUTION = 1
#: Default NTv3 variant window (bp): the input length of the NTv3 benchmark (NTv3Bench, 32 kb).
VARIANT_WINDOW_BP = 2**15


class TokenRules(ABC):
    """Token and position rules of one generation (see the module docstring); built by :func:`token_rules`.

    Attributes:
        generation: ``"v1"``, ``"v2"`` or ``"v3"``.
        cls_offset: input positions before the first sequence token (1: ``<cls>``; 0).
        nucleotides_per_token: bases per (full) token: 6 for 6-mers, 1.
        length_multiple: input lengths must be multiples of this (1: any length).
        max_tokens: longest input in tokens, ``<cls>`` included.
        default_window_tokens: tokens per window by default (the context the model was trained at).
        last_layer: hidden-state index of the model's final output (the default layer).
        pad_id, mask_id, cls_id: ids of ``<pad>``, ``<mask>`` and ``<cls>``.
        vocab: token -> id of the generation's tokenizer.
        same_width_passes: a forward pass may only hold inputs of one length (convolutions would read the
            ``<pad>`` of shorter rows).
        packing: several windows may share one input row (block-diagonal attention).
    """

    generation: str
    cls_offset: int
    nucleotides_per_token: int
    length_multiple: int = 1
    max_tokens: int
    default_window_tokens: int
    last_layer: int
    pad_id: int
    mask_id: int
    cls_id: int
    same_width_passes: bool = False
    packing: bool = True

    def content_width(self, window_tokens: int) -> int:
        """Sequence tokens in a window of ``window_tokens`` input tokens."""
        return window_tokens - self.cls_offset

    def layer_stride(self, layer: int) -> int:
        """Input positions per state row of hidden state ``layer`` (1: one row per token)."""
        return BASE_RESOLUTION

    @abstractmethod
    def encode(self, sequences: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        """``(sequence token ids, real token count)`` of whole sequences: no ``<cls>``, padded (NTv3: with
        ``N``) to :attr:`length_multiple`; the real count excludes that padding. Raises ValueError for a
        character outside the input policy (sequence index and position named)."""
        raise NotImplementedError

    @abstractmethod
    def input_ids(self, content: np.ndarray) -> np.ndarray:
        """One model input from sequence token ids: ``<cls>`` prepended where the generation has it."""
        raise NotImplementedError

    def pad_ids(self, ids: Sequence[int]) -> list[int]:
        """Tokenizer ids of one input (``<cls>`` included where there is one) padded to :attr:`length_multiple`
        (NTv3: with ``N``); unchanged where any length is accepted."""
        return list(ids)

    def fill_padding(self, batch: Any) -> Any:
        """A padded tokenizer batch (``input_ids`` and ``attention_mask`` [B, T], torch or numpy) with the
        generation's padding token at its padded positions (attention_mask 0), changed in place and returned:
        unchanged (``<pad>``) for NT v1/v2, ``N`` for NTv3 (the attention_mask still marks the padding)."""
        return batch

    @abstractmethod
    def check_window_tokens(self, window_tokens: Any) -> int:
        """``window_tokens`` (``--window-tokens``) checked: ValueError (one line) unless the model takes it."""
        raise NotImplementedError

    def window_overlap(self, overlap: int, width: int) -> int:
        """The overlap in tokens between windows of ``width`` sequence tokens: at most half a window."""
        return min(overlap, width // 2)

    @abstractmethod
    def window_bp(self, window_tokens: int) -> int:
        """Bases of a window of ``window_tokens`` tokens of full tokens (variant windows)."""
        raise NotImplementedError

    @property
    def min_window_bp(self) -> int:
        """The shortest variant window: one full token."""
        return self.nucleotides_per_token

    @property
    def default_variant_window_bp(self) -> int:
        """The variant window (bp) ``nt score-variants`` uses without ``--window``: the context the model was
        trained at (:attr:`default_window_tokens`)."""
        return self.window_bp(self.default_window_tokens)

    @abstractmethod
    def token_span(self, sequence: str, start: int, end: int) -> tuple[int, int]:
        """Input positions (``<cls>`` counted) of the tokens holding the first and the last base of
        ``sequence[start:end]`` (0-based, half-open, ``end > start``)."""
        raise NotImplementedError

    @abstractmethod
    def same_token_boundaries(self, ref: str, alt: str) -> bool:
        """Whether two sequences of equal length tokenize into tokens at the same positions."""
        raise NotImplementedError

    @abstractmethod
    def token_starts(self, sequence: str) -> np.ndarray:
        """0-based base where each token of ``sequence`` starts (``<cls>`` and padding excluded): ``int64
        [tokens]``; positions refer to the sequence after the input policy (whitespace removed)."""
        raise NotImplementedError

    @property
    def chance_accuracy(self) -> float:
        """Accuracy of a uniform guess of a full token among the A/C/G/T tokens: 1/4096 (6-mers), 1/4."""
        return 1 / 4**self.nucleotides_per_token

    @abstractmethod
    def raw_token_ids(self, sequences: Sequence[str], max_tokens: int | None = None) -> np.ndarray:
        """Input ids of each sequence right-padded with ``<pad>`` to the longest (cut at ``max_tokens``,
        default :attr:`max_tokens`): ``int64 [N, T]``."""
        raise NotImplementedError

    @abstractmethod
    def forward(
        self, model: Any, inputs: dict[str, Any], layers: Sequence[int], *, logits: bool = False
    ) -> tuple[Any, dict[int, Any]]:
        """Run ``model`` (a backbone, or with ``logits`` a masked LM) on ``inputs``; returns ``(logits or None,
        {layer: states [B, rows, d]})`` for the requested hidden-state indices."""
        raise NotImplementedError


class KmerRules(TokenRules):
    """NT v1/v2: 6-mer tokens with ``<cls>`` first (module docstring)."""

    cls_offset = 1
    nucleotides_per_token = 6

    def __init__(self, version: str, config: Any = None) -> None:
        from tokenization import DEFAULT_MODEL_MAX_LENGTH, vocabulary
        from tokenization.vocab import check_version

        self.generation = check_version(version)
        self.vocab = vocabulary(version)
        self.pad_id, self.mask_id, self.cls_id = (
            self.vocab["<pad>"],
            self.vocab["<mask>"],
            self.vocab["<cls>"],
        )
        if config is None:
            self.max_tokens = self.default_window_tokens = DEFAULT_MODEL_MAX_LENGTH[version]
            self.last_layer = 0
        else:
            self.max_tokens = int(config.max_tokens)
            self.default_window_tokens = int(getattr(config, "default_window_tokens", self.max_tokens))
            self.last_layer = int(config.num_hidden_layers)

    def encode(self, sequences: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        from tokenization import encode_batch

        encoded = encode_batch(list(sequences), self.generation, max_length=2**62)
        lengths = encoded["attention_mask"].sum(axis=1) - 1
        return [
            (encoded["input_ids"][row, 1 : 1 + length], int(length)) for row, length in enumerate(lengths)
        ]

    def input_ids(self, content: np.ndarray) -> np.ndarray:
        return np.concatenate([[self.cls_id], content]).astype(np.int64)

    def check_window_tokens(self, window_tokens: Any) -> int:
        _require_int(window_tokens)
        limit = self.max_tokens
        if not 2 <= window_tokens <= limit:
            raise ValueError(
                f"window_tokens (--window-tokens) must be in [2, {limit}] tokens (<cls> included; this model "
                f"takes at most {limit}), got {window_tokens}"
            )
        return int(window_tokens)

    def window_bp(self, window_tokens: int) -> int:
        return (window_tokens - 1) * self.nucleotides_per_token

    def token_span(self, sequence: str, start: int, end: int) -> tuple[int, int]:
        from tokenization import token_index_of_position

        first, last = token_index_of_position(sequence, [start, end - 1])
        return int(first), int(last)

    def same_token_boundaries(self, ref: str, alt: str) -> bool:
        from tokenization import token_starts

        return np.array_equal(token_starts(ref), token_starts(alt))

    def token_starts(self, sequence: str) -> np.ndarray:
        from tokenization import token_starts

        return np.asarray(token_starts(sequence), np.int64)

    def raw_token_ids(self, sequences: Sequence[str], max_tokens: int | None = None) -> np.ndarray:
        from tokenization import encode_batch

        limit = max_tokens or self.max_tokens
        return encode_batch(sequences, self.generation, max_length=limit, truncation=True)["input_ids"]

    def forward(
        self, model: Any, inputs: dict[str, Any], layers: Sequence[int], *, logits: bool = False
    ) -> tuple[Any, dict[int, Any]]:
        if logits:
            output = model(**inputs, output_hidden_states=bool(layers))
            return output.logits, {layer: output.hidden_states[layer] for layer in layers}
        deepest = max(layers)  # only the blocks up to the deepest requested layer run
        output = model(**inputs, output_hidden_states=list(layers), last_layer=deepest)
        return None, {
            layer: output.last_hidden_state if layer == deepest else output.hidden_states[layer]
            for layer in layers
        }


class SingleBaseRules(TokenRules):
    """NTv3: one token per base, no ``<cls>``, ``N`` padding to ``2 ** num_downsamples`` (module docstring)."""

    generation = "v3"
    cls_offset = 0
    nucleotides_per_token = 1
    same_width_passes = True
    packing = False

    def __init__(self, config: Any) -> None:
        from tokenization import ntv3_vocabulary
        from tokenization.ntv3 import NTV3_MAX_LENGTH

        self.vocab = vocab = ntv3_vocabulary()
        self.pad_id, self.mask_id, self.n_id = vocab["<pad>"], vocab["<mask>"], vocab["N"]
        self.cls_id = vocab["<cls>"]  # in the vocabulary, never added to inputs
        self.length_multiple = int(config.length_multiple)
        self.num_core_layers = int(config.num_hidden_layers)
        self.last_layer = self.num_core_layers + 1
        self.max_tokens = NTV3_MAX_LENGTH
        trained = getattr(config, "trained_max_length", None)
        self.default_window_tokens = min(int(trained), self.max_tokens) if trained else self.max_tokens

    def layer_stride(self, layer: int) -> int:
        return BASE_RESOLUTION if layer == self.last_layer else self.length_multiple

    @property
    def default_variant_window_bp(self) -> int:
        """32,768 bp (the input length of the NTv3 benchmark), or the trained context where shorter: one window
        per variant of the 1 Mb trained context would take minutes per variant on a CPU. ``--window`` up to
        1 Mb gives the model more context."""
        return min(VARIANT_WINDOW_BP, self.window_bp(self.default_window_tokens))

    def padded_length(self, length: int) -> int:
        """``length`` rounded up to :attr:`length_multiple` (at least one multiple)."""
        return max(1, -(-length // self.length_multiple)) * self.length_multiple

    def encode(self, sequences: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        from tokenization import encode_ntv3_batch

        encoded = encode_ntv3_batch(list(sequences), max_length=2**62, pad_to_multiple_of=None)
        lengths = encoded["attention_mask"].sum(axis=1)
        return [
            (np.asarray(self.pad_ids(encoded["input_ids"][row, :length]), np.int64), int(length))
            for row, length in enumerate(lengths)
        ]

    def input_ids(self, content: np.ndarray) -> np.ndarray:
        return np.asarray(content, np.int64)

    def pad_ids(self, ids: Sequence[int]) -> list[int]:
        return list(ids) + [self.n_id] * (self.padded_length(len(ids)) - len(ids))

    def fill_padding(self, batch: Any) -> Any:
        batch["input_ids"][batch["attention_mask"] == 0] = self.n_id
        return batch

    def check_window_tokens(self, window_tokens: Any) -> int:
        _require_int(window_tokens)
        multiple, limit = self.length_multiple, self.max_tokens
        if not multiple <= window_tokens <= limit or window_tokens % multiple:
            raise ValueError(
                f"window_tokens (--window-tokens) must be a multiple of {multiple} (2**num_downsamples) bases "
                f"from {multiple} to {limit} for this NTv3 model (one token per base), got {window_tokens}"
            )
        return int(window_tokens)

    def window_overlap(self, overlap: int, width: int) -> int:
        """Rounded up to whole blocks of ``2 ** num_downsamples`` bases (windows then share the core's block
        grid), at most half a window rounded down to whole blocks."""
        multiple = self.length_multiple
        return min(-(-overlap // multiple) * multiple, width // 2 // multiple * multiple)

    def window_bp(self, window_tokens: int) -> int:
        return window_tokens

    def token_span(self, sequence: str, start: int, end: int) -> tuple[int, int]:
        if not 0 <= start < end <= len(sequence):
            raise ValueError(f"bases [{start}, {end}) are outside the sequence of length {len(sequence)}")
        return start, end - 1

    def same_token_boundaries(self, ref: str, alt: str) -> bool:
        return len(ref) == len(alt)

    def token_starts(self, sequence: str) -> np.ndarray:
        from tokenization import encode_ntv3_batch

        encoded = encode_ntv3_batch([sequence], max_length=2**62, pad_to_multiple_of=None)
        return np.arange(int(encoded["attention_mask"].sum()))

    def raw_token_ids(self, sequences: Sequence[str], max_tokens: int | None = None) -> np.ndarray:
        from tokenization import encode_ntv3_batch

        limit = max_tokens or self.max_tokens
        encoded = encode_ntv3_batch(sequences, max_length=limit, truncation=True, pad_to_multiple_of=None)
        return encoded["input_ids"]

    def forward(
        self, model: Any, inputs: dict[str, Any], layers: Sequence[int], *, logits: bool = False
    ) -> tuple[Any, dict[int, Any]]:
        backbone = model.base_model if logits else model  # a backbone as given (maybe torch.compile'd)
        core = any(layer != self.last_layer for layer in layers)
        output = backbone(**inputs, output_hidden_states=core)
        states = {
            layer: output.last_hidden_state if layer == self.last_layer else output.hidden_states[layer]
            for layer in layers
        }
        return (model.lm_head(output.last_hidden_state) if logits else None), states


def _require_int(window_tokens: Any) -> None:
    if isinstance(window_tokens, bool) or not isinstance(window_tokens, int | np.integer):
        raise ValueError(f"window_tokens (--window-tokens) must be an integer, got {window_tokens!r}")


def token_rules(source: Any) -> TokenRules:
    """The rules of a model's generation: ``source`` is a config (NT ``tokenizer_version`` v1/v2, or an NTv3
    config, ``model_type == "ntv3"``), a model (its ``config``), a version string ``"v1"`` / ``"v2"`` (6-mer
    rules with the generation's published context), or already a :class:`TokenRules`."""
    if isinstance(source, TokenRules):
        return source
    if isinstance(source, str):
        return KmerRules(source)
    from modeling_nt import generation_of

    config = getattr(source, "config", source)
    if generation_of(config) == "v3":
        return SingleBaseRules(config)
    return KmerRules(config.tokenizer_version, config)


def is_ntv3(source: Any) -> bool:
    """Whether ``source`` is an NTv3 model: a model or config (:func:`modeling_nt.generation_of`), an NTv3
    preset name, or a checkpoint folder of an NTv3 layout (ours or an official one,
    :func:`modeling_nt.convert.detect_layout`; config read, weights not loaded). Anything else (an NT model, a
    Hub id not fetched, a path that does not exist, an unreadable config) is False: the loader reports its own
    problems."""
    from modeling_nt import generation_of
    from modeling_nt.configuration_ntv3 import PRESETS
    from modeling_nt.convert import detect_layout

    if not isinstance(source, str | Path):
        return generation_of(source) == "v3"
    folder = Path(source).expanduser()
    if folder.is_dir():
        try:
            return detect_layout(folder) in ("ntv3", "ntv3-jax", "ntv3-hub")
        except (OSError, ValueError):
            return False  # an unreadable config is the loader's to report
    return isinstance(source, str) and source in PRESETS


#: Where NTv3 models are refused, and why: the one table of the commands that take NT v1/v2 models only.
NTV3_UNSUPPORTED = {
    "nt segment": "SegmentNT is a U-Net head on the 6-mer token embeddings of an NT v2 backbone (<cls> first, "
    "2 downsamples); an NTv3 model is a U-Net of its own with one output per base",
}


def refuse_ntv3(source: Any, where: str, *, flag: str = "--model", name: Any = None) -> None:
    """Refuse an NTv3 model (:func:`is_ntv3`) where ``where``, a key of :data:`NTV3_UNSUPPORTED`, takes NT v1/v2
    models only. ``name``: how to name the model (default ``source``, or its class for a loaded model).

    Raises:
        ValueError: one line: ``"<flag> <name> is an NTv3 model; <where> does not support NTv3: <why>"``.
    """
    if is_ntv3(source):
        name = name or (source if isinstance(source, str | Path) else type(source).__name__)
        raise ValueError(
            f"{flag} {name} is an NTv3 model; {where} does not support NTv3: {NTV3_UNSUPPORTED[where]}"
        )


def refuse_conditioned(model: Any, name: Any, *, flag: str = "--model") -> None:
    """Refuse a post-trained NTv3 model (species-conditioned: ``config.condition_vocab_sizes``) where the model
    is run without a condition (embeddings, variant scores, probes, the analyses).

    Raises:
        ValueError: one line naming the model, its species and what to give instead.
    """
    config = getattr(model, "config", model)
    if is_ntv3(config) and getattr(config, "condition_vocab_sizes", None):
        species = ", ".join(config.supported_species) or "none named"
        raise ValueError(
            f"{flag} {name} is a post-trained NTv3 model, conditioned on a species ({species}); this command runs "
            "models without a species condition: give a pre-trained NTv3 model (e.g. tiny-v3, ntv3-100m-pre) "
            "or an NT v1/v2 model"
        )


def same_width_batches(lengths: Sequence[int], batch_size: int, rules: TokenRules) -> list[list[int]]:
    """Indices of consecutive inputs of ``lengths`` tokens, at most ``batch_size`` per forward pass; where the
    generation needs it (:attr:`TokenRules.same_width_passes`, NTv3) a pass only holds inputs of one length."""
    batches: list[list[int]] = []
    for index, length in enumerate(lengths):
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and not (rules.same_width_passes and lengths[last[0]] != length):
            last.append(index)
        else:
            batches.append([index])
    return batches


def mean_over(states: Any, start: int, end: int, stride: int = BASE_RESOLUTION) -> Any:
    """Mean over input positions ``[start, end)`` of the state row covering each position (position ``p`` is
    row ``p // stride``): a plain row mean at stride 1; rows of downsampled states (NTv3 core layers) are
    weighted by how many of their positions lie in the range. ``states``: numpy or torch ``[rows, d]``;
    returns ``[d]`` of the same kind."""
    if stride == BASE_RESOLUTION:
        return states[start:end].mean(0)
    first, last = start // stride, (end - 1) // stride
    lows = np.arange(first, last + 1) * stride
    weights = (np.minimum(end, lows + stride) - np.maximum(start, lows)).astype(np.float32)
    rows = states[first : last + 1]
    if not isinstance(rows, np.ndarray):
        import torch

        weights = torch.as_tensor(weights, dtype=rows.dtype, device=rows.device)
    return (rows * weights[:, None]).sum(0) / float(end - start)


def rows_of(length: int, stride: int) -> int:
    """State rows holding ``length`` input positions at ``stride`` (a partly padded last block counts)."""
    return -(-length // stride)


__all__ = [
    "NTV3_UNSUPPORTED",
    "KmerRules",
    "SingleBaseRules",
    "TokenRules",
    "is_ntv3",
    "mean_over",
    "refuse_conditioned",
    "refuse_ntv3",
    "rows_of",
    "same_width_batches",
    "token_rules",
]
