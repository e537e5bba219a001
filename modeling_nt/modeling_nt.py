"""PyTorch Nucleotide Transformer (NT) models, v1 and v2 (NT_SPEC section 2).

Pre-LayerNorm encoder blocks with biased q/k/v/output projections, learned ESM-style positions and GELU FFN
with token dropout (v1) or rotary positions and a bias-free SwiGLU FFN (v2), a final LayerNorm and an untied
RoBERTa-style LM head. Attention goes through the ``transformers`` attention interface (eager, sdpa,
flex_attention, flash_attention_2). This file travels to the Hugging Face Hub with every checkpoint: it imports
only torch, transformers and ``configuration_nt``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import (
    create_bidirectional_mask,
    find_packed_sequence_indices,
    packed_sequence_mask_function,
)
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_nt import NTConfig, config_from_hub, official_layout

logger = logging.getLogger(__name__)

#: ESM / v2 Hub key -> our key (``{i}``: layer index, ``{p}``: ``weight``/``bias``): the one table of the official
#: layouts, read when an official checkpoint is loaded in place (``NTPreTrainedModel.from_pretrained``) and by
#: ``nt convert`` (``modeling_nt.convert``).
_HUB_KEYS = {
    "esm.embeddings.word_embeddings.weight": "nt.embeddings.word_embeddings.weight",
    "esm.embeddings.position_embeddings.weight": "nt.embeddings.position_embeddings.weight",
    "esm.encoder.emb_layer_norm_after.{p}": "nt.final_layer_norm.{p}",
    "esm.encoder.layer.{i}.attention.LayerNorm.{p}": "nt.layers.{i}.attention_layer_norm.{p}",
    "esm.encoder.layer.{i}.attention.self.query.{p}": "nt.layers.{i}.attention.query.{p}",
    "esm.encoder.layer.{i}.attention.self.key.{p}": "nt.layers.{i}.attention.key.{p}",
    "esm.encoder.layer.{i}.attention.self.value.{p}": "nt.layers.{i}.attention.value.{p}",
    "esm.encoder.layer.{i}.attention.output.dense.{p}": "nt.layers.{i}.attention.output.{p}",
    "esm.encoder.layer.{i}.LayerNorm.{p}": "nt.layers.{i}.ffn_layer_norm.{p}",
    "esm.encoder.layer.{i}.intermediate.dense.{p}": "nt.layers.{i}.ffn.fc1.{p}",
    "esm.encoder.layer.{i}.output.dense.{p}": "nt.layers.{i}.ffn.fc2.{p}",
    "lm_head.dense.{p}": "lm_head.dense.{p}",
    "lm_head.layer_norm.{p}": "lm_head.layer_norm.{p}",
    "lm_head.decoder.weight": "lm_head.decoder.weight",
    "lm_head.bias": "lm_head.bias",
}
#: Source keys that are known to be unused by the model (dropped, listed in the conversion report).
_HUB_UNUSED = (
    r"esm\.embeddings\.position_ids",
    r"esm\.contact_head\..*",
    r".*rotary_embeddings\.inv_freq",
)
#: The absolute position table that v2 (rotary) Hub files carry without using it.
_HUB_UNUSED_ROTARY = (r"esm\.embeddings\.position_embeddings\.weight",)
#: transformers 5 writes LayerNorm weight/bias of ESM files under the legacy names gamma/beta.
_LEGACY_LAYER_NORM = re.compile(r"(?<=LayerNorm\.)(gamma|beta)$")
_LEGACY_PARAM = {"gamma": "weight", "beta": "bias"}


def hub_unused_keys(config: NTConfig) -> re.Pattern[str]:
    """Source keys of an ESM / v2 Hub checkpoint that the NT model of ``config`` does not use."""
    rotary = config.position_embedding_type == "rotary"
    return re.compile("|".join(_HUB_UNUSED + (_HUB_UNUSED_ROTARY if rotary else ())))


def hub_key_mapping(config: NTConfig) -> dict[str, str]:
    """The renaming of :data:`_HUB_KEYS` (legacy LayerNorm ``gamma``/``beta`` included) as
    ``from_pretrained(key_mapping=...)`` regexes (``{i}`` -> ``(\\d+)`` / ``\\1``), so that loading an official
    checkpoint in place renames each tensor exactly as ``nt convert`` does. Keys unused by ``config`` are left
    unmapped (they stay unexpected under their source names; see :func:`hub_unused_keys`)."""
    legacy = {param: old for old, param in _LEGACY_PARAM.items()}
    unused = hub_unused_keys(config)
    mapping = {}
    for source, target in _HUB_KEYS.items():
        for param in ("weight", "bias") if "{p}" in source else ("",):
            if unused.fullmatch(source.format(i=0, p=param)):
                continue
            names = f"(?:{param}|{legacy[param]})" if "LayerNorm" in source else param
            pattern = "^" + re.escape(source).replace(r"\{i\}", r"(\d+)").replace(r"\{p\}", names)
            renamed = target.replace("{i}", r"\1").replace("{p}", param)
            if pattern.replace("\\", "").lstrip("^") != renamed:
                mapping[pattern] = renamed
    return mapping


def tie_official_decoder(
    state_dict: dict[str, torch.Tensor], hub_config: dict[str, Any], source: Any
) -> dict[str, str]:
    """Fill in the MLM decoder of an official checkpoint whose ``config.json`` ties it to the word embeddings
    (``tie_word_embeddings``, true by default in ``EsmConfig``: ``save_pretrained`` then omits
    ``lm_head.decoder.weight`` and ``EsmForMaskedLM`` decodes with the embeddings). ``state_dict`` holds our
    keys (the embeddings, and the decoder where stored). Returns ``{our key: source key}`` for the report;
    raises ValueError (naming ``source``) if a stored decoder differs from the embeddings it is tied to."""
    decoder, embeddings = "lm_head.decoder.weight", "nt.embeddings.word_embeddings.weight"
    if not hub_config.get("tie_word_embeddings", True) or embeddings not in state_dict:
        return {}
    if decoder in state_dict and not torch.equal(state_dict[decoder], state_dict[embeddings]):
        raise ValueError(
            f"{source}/config.json: tie_word_embeddings=true, but the stored lm_head.decoder.weight differs "
            "from the word embeddings; set tie_word_embeddings to false to convert the stored decoder"
        )
    state_dict[decoder] = state_dict[embeddings].clone()  # an untied copy: our LM head has its own decoder
    return {decoder: "esm.embeddings.word_embeddings.weight"}


#: The official load in progress (``NTPreTrainedModel.from_pretrained``): its layout, raw ``config.json`` and
#: what the load report adjusted (dropped unused keys, tied decoder).
_OFFICIAL_LOAD: ContextVar[dict[str, Any] | None] = ContextVar("nt_official_load", default=None)
#: ``from_pretrained`` options that say where ``config.json`` is read from.
_DOWNLOAD_OPTIONS = (
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "proxies",
)


def _no_config_json(name: Any, download: dict[str, Any], error: OSError) -> str:
    """One line: the Hub id, its revision and the cache where no ``config.json`` was found (a local folder
    without one reads as an empty config: transformers then names the folder)."""
    from transformers.utils.hub import constants

    reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    offline = ", offline" if (download.get("local_files_only") or constants.HF_HUB_OFFLINE) else ""
    cache = download.get("cache_dir") or constants.HF_HUB_CACHE
    return (
        f"{name}: no config.json found: not a folder, and Hub repository {name}@{download.get('revision') or 'main'}"
        f" is out of reach (cache {cache}{offline}): {reason}"
    )


def _official_config_dict(
    pretrained_model_name_or_path: Any, options: dict[str, Any]
) -> dict[str, Any] | None:
    """The raw ``config.json`` of a folder or Hub id when it is an official layout, else None (ours, or a
    config that ``PreTrainedModel.from_pretrained`` reports itself). Raises OSError, one line naming what was
    looked for and where, when there is no ``config.json`` to read and no config object was given."""
    from transformers import PreTrainedConfig

    if pretrained_model_name_or_path is None:
        return None
    download = {name: options[name] for name in _DOWNLOAD_OPTIONS if options.get(name) is not None}
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **download)
    except ValueError:
        return None
    except OSError as error:
        if options.get("config") is not None:  # the config comes from elsewhere: transformers decides
            return None
        raise OSError(_no_config_json(pretrained_model_name_or_path, download, error)) from None
    return config_dict if official_layout(config_dict) else None


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (channel j, channel j + k/2): ``(x1, x2) -> (-x2, x1)``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(
    query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``query``/``key`` [B, H, L, k] in fp32 with ``cos``/``sin`` [B, L, k] (both halves of the last
    axis equal, as :class:`NTRotaryEmbedding` gives them): ``x * cos + rotate_half(x) * sin``, computed as
    ``x * cos`` plus ``-x2 * sin`` / ``x1 * sin`` added in place to its halves, without building
    ``rotate_half(x)`` (one product and one concatenation less per tensor; about 5% of a 4-layer 256-wide v2
    training step on CPU)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = cos.shape[-1] // 2
    sin_half = sin[..., :half]
    rotated = []
    for x in (query, key):
        x = x.float()
        out = x * cos
        out[..., :half].addcmul_(x[..., half:], sin_half, value=-1)
        out[..., half:].addcmul_(x[..., :half], sin_half)
        rotated.append(out)
    return rotated[0].to(query.dtype), rotated[1].to(key.dtype)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention; returns the output [B, L, H, k] and the weights [B, H, L, L]."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def position_ids_from_input_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """ESM position ids: real tokens get ``padding_idx + 1, +2, ...``; padding keeps ``padding_idx``."""
    not_pad = input_ids.ne(padding_idx).int()
    return (torch.cumsum(not_pad, dim=1) * not_pad).long() + padding_idx


class NTRotaryEmbedding(nn.Module):
    """Rotary position embedding (rotate-half pairing), cos/sin computed in fp32.

    ``inv_freq`` stays fp32 under any dtype cast of the model (``model.to(torch.bfloat16)``, ``.half()``): a bf16
    ``inv_freq`` would put phases 0.36 rad off at position 2047 for head size 32.
    """

    def __init__(self, config: NTConfig) -> None:
        super().__init__()
        self.config = config
        self.inv_freq = nn.Buffer(self.compute_inv_freq(config), persistent=False)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> NTRotaryEmbedding:
        """Apply ``fn`` (device moves, dtype casts) but keep ``inv_freq``'s fp32 dtype and values."""
        inv_freq = self.inv_freq
        super()._apply(fn, recurse)
        if self.inv_freq.dtype != inv_freq.dtype:
            # a meta tensor has no values to keep (they are set by ``_init_weights``); only its dtype is kept
            source = self.inv_freq if inv_freq.is_meta else inv_freq
            self.inv_freq = source.to(device=self.inv_freq.device, dtype=inv_freq.dtype)
        return self

    @staticmethod
    def compute_inv_freq(config: NTConfig) -> torch.Tensor:
        """``1 / base ** (2i / k)``, with the SegmentNT base rescaling for longer inputs."""
        dim = config.head_dim
        base = config.rotary_base
        if config.rotary_rescaling_factor != 1.0:
            base = base * config.rotary_rescaling_factor ** (dim / (dim - 2))
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))

    @torch.no_grad()
    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 ``cos``, ``sin`` of shape [B, L, k] for integer ``position_ids`` [B, L]."""
        freqs = position_ids[..., None].float() * self.inv_freq.float()
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos(), angles.sin()


class NTEmbeddings(nn.Module):
    """Token embeddings, ESM token dropout (v1) and learned ESM-style positions (v1)."""

    def __init__(self, config: NTConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = None
        if config.position_embedding_type == "absolute":
            self.position_embeddings = nn.Embedding(
                config.max_position_embeddings, config.hidden_size, padding_idx=config.pad_token_id
            )

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        sequence_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings [B, L, d]. ``sequence_ids`` [B, L] (packed rows, see :meth:`NTModel.forward`) make the
        token-dropout rescaling count ``<mask>`` tokens per packed sequence instead of per row."""
        if inputs_embeds is None:
            self._check_input_ids(input_ids, position_ids)
        embeddings = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        if self.config.token_dropout and input_ids is not None:
            embeddings = self._token_dropout(embeddings, input_ids, attention_mask, sequence_ids)
        if self.position_embeddings is not None:
            if position_ids is None:
                position_ids = self._default_position_ids(input_ids, embeddings)
            embeddings = embeddings + self.position_embeddings(position_ids)
        if attention_mask is not None:
            embeddings = embeddings * attention_mask.unsqueeze(-1).to(embeddings.dtype)
        return embeddings

    def _check_input_ids(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> None:
        """Clear errors for ids outside the vocabulary (e.g. a v2 tokenizer on a v1 model) and for inputs longer
        than the learned position table (with ``position_ids`` given, e.g. packed rows: positions past it)."""
        out_of_range = (input_ids < 0) | (input_ids >= self.config.vocab_size)
        if out_of_range.any():
            row, column = (int(i) for i in out_of_range.nonzero()[0])
            raise ValueError(
                f"token id {int(input_ids[row, column])} at sequence {row}, position {column} is outside the "
                f"vocabulary of {self.config.vocab_size} rows (tokenizer layout {self.config.tokenizer_version})"
            )
        if self.position_embeddings is None:
            return
        if position_ids is not None:
            if int(position_ids.max()) >= self.config.max_position_embeddings:
                raise ValueError(
                    f"position id {int(position_ids.max())} is outside the learned position table of "
                    f"{self.config.max_position_embeddings} rows ({self.config.max_tokens}-token context)"
                )
        elif input_ids.shape[1] > self.config.max_tokens:
            raise ValueError(
                f"input of {input_ids.shape[1]} tokens exceeds the {self.config.max_tokens}-token context of "
                "learned positions"
            )

    def _token_dropout(
        self,
        embeddings: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        sequence_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ESM token dropout: ``<mask>`` embeddings zeroed, the rest scaled by ``(1 - mask_ratio_train) / (1 -
        observed <mask> ratio)``, the ratio taken per sequence (per row, or per packed sequence)."""
        is_mask = input_ids == self.config.mask_token_id
        embeddings = embeddings.masked_fill(is_mask.unsqueeze(-1), 0.0)
        not_pad = attention_mask if attention_mask is not None else input_ids.ne(self.config.pad_token_id)
        if sequence_ids is None:
            mask_ratio_observed = is_mask.sum(-1).float() / not_pad.sum(-1).clamp(min=1)
            scale = (1 - self.config.mask_ratio_train) / (1 - mask_ratio_observed)
            return (embeddings * scale[:, None, None]).to(embeddings.dtype)
        segments = sequence_ids - sequence_ids.min()  # non-negative ids for the per-sequence counts
        width = int(segments.max()) + 1
        masks = torch.zeros(segments.shape[0], width, device=segments.device)
        tokens = torch.zeros_like(masks)
        masks.scatter_add_(1, segments, is_mask.float())
        tokens.scatter_add_(1, segments, not_pad.float())
        mask_ratio_observed = (masks / tokens.clamp(min=1)).gather(1, segments)
        scale = (1 - self.config.mask_ratio_train) / (1 - mask_ratio_observed)
        return (embeddings * scale[..., None]).to(embeddings.dtype)

    def _default_position_ids(self, input_ids: torch.Tensor | None, embeddings: torch.Tensor) -> torch.Tensor:
        padding_idx = self.config.pad_token_id
        if input_ids is not None:
            return position_ids_from_input_ids(input_ids, padding_idx)
        length = embeddings.shape[1]
        positions = torch.arange(padding_idx + 1, length + padding_idx + 1, device=embeddings.device)
        return positions.unsqueeze(0).expand(embeddings.shape[:2])


class NTAttention(nn.Module):
    """Multi-head self-attention with biased ``query``/``key``/``value``/``output`` projections."""

    def __init__(self, config: NTConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query = self.query(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.key(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.value(hidden_states).view(hidden_shape).transpose(1, 2)
        if position_embeddings is not None:
            query, key = apply_rotary_pos_emb(query, key, *position_embeddings)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self, query, key, value, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.output(attn_output), attn_weights


class NTFeedForward(nn.Module):
    """``fc1 -> GELU -> fc2`` (v1; exact or tanh GELU, ``config.ffn_activation``) or
    ``fc1(d, 2F) -> silu(gate) * up -> fc2`` (v2, SwiGLU).

    ``fc2`` takes the intermediate activation as input, so IA3 with ``feedforward_modules=["fc2"]`` rescales it.
    """

    def __init__(self, config: NTConfig) -> None:
        super().__init__()
        self.is_glu = config.ffn_activation == "swiglu"
        self.gelu_approximate = "tanh" if config.ffn_activation == "gelu_pytorch_tanh" else "none"
        fc1_width = 2 * config.intermediate_size if self.is_glu else config.intermediate_size
        self.fc1 = nn.Linear(config.hidden_size, fc1_width, bias=config.add_bias_ffn)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.add_bias_ffn)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The activation is written in place where that is safe (saves an [B, L, F] buffer: 6-8% of a small
        model's CPU forward): SwiGLU multiplies ``silu(gate)`` by ``up`` in place (autograd keeps what it
        needs); GELU overwrites ``fc1``'s output only when no gradient flows and no forward hook can hold it."""
        hidden_states = self.fc1(hidden_states)
        if self.is_glu:
            gate, up = hidden_states.chunk(2, dim=-1)
            return self.fc2(nn.functional.silu(gate).mul_(up))
        if self._may_overwrite(hidden_states):
            return self.fc2(torch.ops.aten.gelu_(hidden_states, approximate=self.gelu_approximate))
        return self.fc2(nn.functional.gelu(hidden_states, approximate=self.gelu_approximate))

    def _may_overwrite(self, fc1_output: torch.Tensor) -> bool:
        """Whether ``fc1_output`` is needed by nobody else: no autograd graph and no forward hook on ``fc1``
        (a hook may have kept the tensor, e.g. to record activations)."""
        if torch.is_grad_enabled() and fc1_output.requires_grad:
            return False
        return not (self.fc1._forward_hooks or nn.modules.module._global_forward_hooks)


class NTLayer(GradientCheckpointingLayer):
    """Pre-LN block: ``x + attention(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, config: NTConfig, layer_idx: int) -> None:
        super().__init__()
        self.attention_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = NTAttention(config, layer_idx)
        self.ffn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = NTFeedForward(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attn_output, _ = self.attention(
            self.attention_layer_norm(hidden_states),
            attention_mask=attention_mask,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = hidden_states + attn_output
        return hidden_states + self.ffn(self.ffn_layer_norm(hidden_states))


class NTLMHead(nn.Module):
    """Untied RoBERTa-style head: ``dense -> GELU -> LayerNorm -> decoder + bias``."""

    def __init__(self, config: NTConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden_states = self.layer_norm(nn.functional.gelu(self.dense(features)))
        return self.decoder(hidden_states) + self.bias


class NTPreTrainedModel(PreTrainedModel):
    """Weight initialisation, attention backends and output capture shared by all NT models."""

    config: NTConfig
    config_class = NTConfig
    base_model_prefix = "nt"
    supports_gradient_checkpointing = True
    accepts_loss_kwargs = False
    _no_split_modules: ClassVar[list[str]] = ["NTLayer", "NTEmbeddings"]
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\."]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs: ClassVar[dict[str, Any]] = {
        "hidden_states": NTLayer,
        "attentions": OutputRecorder(NTAttention, index=1),
    }

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        """``PreTrainedModel.from_pretrained`` (folder or Hub id; ``revision``, ``cache_dir``,
        ``local_files_only``, ``HF_HUB_OFFLINE`` honoured), which also loads the official NT checkpoints: a v1
        (stock ESM) or v2 (remote-code ESM) ``config.json`` is converted by ``NTConfig`` and the weights are
        renamed on load through transformers' ``key_mapping`` hook with the table ``nt convert`` uses
        (:func:`hub_key_mapping`); known-unused tensors are dropped and a tied decoder is filled in, as ``nt
        convert`` does. The conversion report is logged once (logger ``modeling_nt.modeling_nt``, INFO). Only
        ``config.json`` and weight files are read: no code of the official repository is fetched or run. The
        loaded model saves in our layout."""
        hub_config = _official_config_dict(pretrained_model_name_or_path, kwargs)
        if hub_config is None:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        layout = official_layout(hub_config)
        config = kwargs.get("config")
        if not isinstance(config, NTConfig):
            config = config_from_hub(hub_config, layout, f"{pretrained_model_name_or_path}/config.json")
        kwargs["key_mapping"] = {**hub_key_mapping(config), **(kwargs.get("key_mapping") or {})}
        want_info = kwargs.pop("output_loading_info", False)
        load = {"layout": layout, "hub_config": hub_config, "source": pretrained_model_name_or_path}
        token = _OFFICIAL_LOAD.set(load)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        finally:
            _OFFICIAL_LOAD.reset(token)
        model._weight_conversions = None  # converted for good: save_pretrained writes our key names
        dropped, tied = load.get("dropped", []), load.get("tied", {})
        logger.info(
            "%s: official %s checkpoint converted on load with the `nt convert` key mapping; %d known-unused "
            "tensors dropped (%s)%s",
            pretrained_model_name_or_path,
            layout,
            len(dropped),
            ", ".join(dropped[:3]) + (", ..." if len(dropped) > 3 else ""),
            "".join(f"; {ours} = word embeddings (tie_word_embeddings)" for ours in tied),
        )
        return (model, info) if want_info else model

    def _adjust_missing_and_unexpected_keys(self, loading_info: Any) -> None:
        """transformers' rules, plus, while an official checkpoint loads: its known-unused tensors are dropped
        (not unexpected) and a decoder tied to the word embeddings is filled in (not missing), so the load
        report and ``output_loading_info`` list only real problems."""
        super()._adjust_missing_and_unexpected_keys(loading_info)
        load = _OFFICIAL_LOAD.get()
        if load is None:
            return
        unused = hub_unused_keys(self.config)
        load["dropped"] = sorted(key for key in loading_info.unexpected_keys if unused.fullmatch(key))
        loading_info.unexpected_keys = {
            key for key in loading_info.unexpected_keys if not unused.fullmatch(key)
        }
        load["tied"] = self._tie_official_decoder(loading_info.missing_keys, load)
        loading_info.missing_keys = loading_info.missing_keys - set(load["tied"])

    def _tie_official_decoder(self, missing_keys: set[str], load: dict[str, Any]) -> dict[str, str]:
        """Fill the LM decoder of an official masked LM by :func:`tie_official_decoder`'s rule."""
        decoder, embeddings = "lm_head.decoder.weight", "nt.embeddings.word_embeddings.weight"
        if not isinstance(self, NTForMaskedLM) or embeddings in missing_keys:
            return {}
        weights = self.nt.embeddings.word_embeddings.weight.detach()
        state = {embeddings: weights}
        if decoder not in missing_keys and not weights.is_meta:
            state[decoder] = self.lm_head.decoder.weight.detach()
        tied = tie_official_decoder(state, load["hub_config"], load["source"])
        if tied:
            with torch.no_grad():
                self.lm_head.decoder.weight.copy_(state[decoder])
        return tied

    def _init_weights(self, module: nn.Module) -> None:
        """Standard init, plus the zero LM bias and the non-persistent rotary frequencies."""
        super()._init_weights(module)
        if isinstance(module, NTLMHead):
            init.zeros_(module.bias)
        elif isinstance(module, NTRotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq(module.config))


class NTModel(NTPreTrainedModel):
    """The NT encoder without head; ``last_hidden_state`` is taken after the final LayerNorm.

    This is the fast path for embeddings (no LM head). ``output_hidden_states=True`` gives
    ``num_hidden_layers + 1`` states: the embedding output, each block's output, and the last one after the final
    LayerNorm; an int or a list of ints selects only those indices.
    """

    def __init__(self, config: NTConfig) -> None:
        super().__init__(config)
        self.embeddings = NTEmbeddings(config)
        self.rotary_emb = NTRotaryEmbedding(config) if config.position_embedding_type == "rotary" else None
        self.layers = nn.ModuleList([NTLayer(config, i) for i in range(config.num_hidden_layers)])
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        last_layer: int | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        """Encode ``input_ids`` [B, L] (right-padded, ``attention_mask`` 1 on real tokens).

        Without ``attention_mask``, ``input_ids`` equal to ``config.pad_token_id`` are masked, as in the official
        NT code. ``position_ids`` default to the ESM ids (v1) or ``0 .. L-1`` from ``<cls>`` (v2).

        **Packed sequences** (the transformers convention of ``DataCollatorWithFlattening``): given
        ``position_ids`` [B, L] and no ``attention_mask``, a new sequence starts wherever the position does not
        follow the previous one by 1 (:func:`transformers.masking_utils.find_packed_sequence_indices`); tokens
        attend only within their own sequence (a block-diagonal mask for eager / sdpa, a BlockMask for
        flex_attention), padding included, and v1 token dropout rescales per sequence. Each sequence then gives
        the same states as alone in its own row. ``flash_attention_2`` is refused for packed rows (ValueError).

        ``last_layer`` (``0 .. num_hidden_layers``): run only the blocks up to hidden state ``last_layer`` and
        return it as ``last_hidden_state`` (after the final LayerNorm only when it is ``num_hidden_layers``);
        ``hidden_states`` then holds ``last_layer + 1`` entries (none when ``last_layer`` is 0).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        num_layers = self.config.num_hidden_layers
        last_layer = num_layers if last_layer is None else last_layer
        if not 0 <= last_layer <= num_layers:
            raise ValueError(f"last_layer must be in [0, {num_layers}], got {last_layer}")
        packed = None
        if position_ids is not None and attention_mask is None:
            reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
            position_ids = position_ids.expand(reference.shape)
            packed = find_packed_sequence_indices(position_ids)
        if attention_mask is None and input_ids is not None and self.config.pad_token_id is not None:
            attention_mask = input_ids.ne(self.config.pad_token_id).long()
        if packed is not None and attention_mask is not None:
            packed = packed.masked_fill(attention_mask == 0, -1)  # padding: a sequence of its own, never seen
        hidden_states = self.embeddings(input_ids, attention_mask, position_ids, inputs_embeds, packed)
        mask = self._attention_mask(hidden_states, attention_mask, packed)
        position_embeddings = None
        if self.rotary_emb is not None:
            if position_ids is None:
                position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device).unsqueeze(0)
            position_embeddings = self.rotary_emb(position_ids)
        for layer in self.layers[:last_layer]:
            hidden_states = layer(
                hidden_states, attention_mask=mask, position_embeddings=position_embeddings, **kwargs
            )
        if last_layer == num_layers:
            hidden_states = self.final_layer_norm(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states)

    def _attention_mask(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, packed: torch.Tensor | None
    ) -> Any:
        """The attention interface's mask: padding only, or for packed rows one block per sequence id."""
        if packed is None:
            return create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
            )
        if "flash" in (self.config._attn_implementation or ""):
            raise ValueError(
                f"packed sequences (restarting position_ids without attention_mask) need the eager, sdpa or "
                f"flex_attention implementation, not {self.config._attn_implementation}"
            )
        return create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=None,
            and_mask_function=packed_sequence_mask_function(packed),
        )


class NTForMaskedLM(NTPreTrainedModel):
    """NT encoder with the masked-language-modelling head (logits over the vocabulary)."""

    def __init__(self, config: NTConfig) -> None:
        super().__init__(config)
        self.nt = NTModel(config)
        self.lm_head = NTLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sparse_logits: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        """MLM logits [B, L, vocab_size]; ``labels`` [B, L] (-100 = ignored) give the mean cross-entropy ``loss``.

        ``sparse_logits`` runs the LM head only at the N positions whose label is not -100 (15% of tokens in
        pretraining; the head is about a quarter of a small model's training step): ``logits`` is then
        [N, vocab_size], the rows in the row-major order of ``labels != -100`` (as ModernBERT's
        ``sparse_prediction``), and ``loss`` is the dense one. The default (None) is sparse while training with
        ``labels`` (``model.train()``) and dense otherwise; ``sparse_logits=True`` without ``labels`` is a
        ValueError.
        """
        if sparse_logits is None:
            sparse_logits = self.training and labels is not None
        if sparse_logits and labels is None:
            raise ValueError("sparse_logits=True needs labels: logits are computed only where labels != -100")
        outputs = self.nt(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if sparse_logits:
            labels = labels.to(hidden_states.device)
            if labels.shape != hidden_states.shape[:-1]:
                raise ValueError(
                    f"labels of shape {list(labels.shape)} do not match the {list(hidden_states.shape[:-1])} "
                    "token positions of the input"
                )
            selected = labels != -100  # CrossEntropyLoss's ignore_index
            hidden_states, labels = hidden_states[selected], labels[selected]
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(
                logits.view(-1, self.config.vocab_size), labels.to(logits.device).view(-1)
            )
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


def pool_hidden_states(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str, has_cls: bool = True
) -> torch.Tensor:
    """[B, L, d] -> [B, d]: the ``<cls>`` state, or the mean over non-padding tokens (``pooling="mean"``),
    ``<cls>`` (position 0) excluded when ``has_cls`` (NT v1/v2; NTv3 inputs have no ``<cls>``)."""
    if pooling == "cls":
        return hidden_states[:, 0]
    weights = torch.ones(hidden_states.shape[:2], device=hidden_states.device)
    if attention_mask is not None:
        weights = attention_mask.to(weights)
    if has_cls:
        weights[:, 0] = 0.0
    weights = weights.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def sequence_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: NTConfig
) -> torch.Tensor:
    """Regression (MSE), single-label (cross-entropy) or multi-label (BCE) loss, inferred as in transformers."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if config.num_labels == 1:
            logits, labels = logits.view(-1), labels.view(-1)
        return MSELoss()(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return CrossEntropyLoss()(logits.view(-1, config.num_labels), labels.view(-1))
    return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


class NTForSequenceClassification(NTPreTrainedModel):
    """NT encoder with a linear ``classifier`` on the pooled state (``config.pooling``); classification or
    regression according to ``config.problem_type``/``num_labels``."""

    def __init__(self, config: NTConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.nt = NTModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        """Per-sequence logits [B, num_labels]; ``labels`` give the loss of ``config.problem_type``."""
        outputs = self.nt(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        if attention_mask is None and input_ids is not None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        pooled = pool_hidden_states(outputs.last_hidden_state, attention_mask, self.config.pooling)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels.to(logits.device), self.config)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class NTForTokenClassification(NTPreTrainedModel):
    """NT encoder with a linear per-token ``classifier``."""

    def __init__(self, config: NTConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.nt = NTModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TokenClassifierOutput:
        """Per-token logits [B, L, num_labels]; ``labels`` [B, L] (-100 = ignored) give the cross-entropy."""
        outputs = self.nt(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.to(logits.device).view(-1))
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "NTForMaskedLM",
    "NTForSequenceClassification",
    "NTForTokenClassification",
    "NTModel",
    "NTPreTrainedModel",
]
