"""PyTorch Nucleotide Transformer v3 (NTv3; Boshar et al., bioRxiv 2025), exact to the official JAX/Flax code.

Single-nucleotide tokens [B, L] -> token embedding -> stem (kernel-15 convolution, GELU) -> ``num_downsamples``
down blocks (LayerNorm -> kernel-5 convolution -> GELU, a residual kernel-1 block, average pooling by 2) -> a
pre-LN transformer core on the [B, L / 2**n, d] sequence (rotary positions, SwiGLU FFN without biases, no final
LayerNorm) -> as many up blocks (LayerNorm -> stride-2 transposed or repeat-then kernel-5 convolution -> GELU, a
residual kernel-1 block, plus the U-Net skip) back to base resolution [B, L, conv_init_embed_dim]. GELU is the
tanh approximation (``jax.nn.gelu``'s default). Post-trained models condition every LayerNorm (adaptive scale
and shift) and every residual branch but attention (multiplicative gate) on a species embedding, and add
functional-track and genome-annotation heads on the centre of the sequence.

Attention goes through the ``transformers`` attention interface (eager, sdpa, flex_attention,
flash_attention_2) and runs only on the downsampled sequence: a 1 Mb input with 7 downsamples attends over 8,192
positions. This file travels to the Hugging Face Hub with every NTv3 checkpoint: it imports only torch,
transformers, ``configuration_ntv3`` and ``modeling_nt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import CrossEntropyLoss
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    MaskedLMOutput,
    ModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_ntv3 import NTv3Config
from .modeling_nt import (
    NTAttention,
    NTFeedForward,
    NTRotaryEmbedding,
    pool_hidden_states,
    sequence_classification_loss,
)

_TOWER_KERNEL = 5
_STEM_KERNEL = 15
_HALO = _TOWER_KERNEL // 2  # input positions a tower block's output depends on, each side
_TOWER_LAYER_NORM_EPS = 1e-5
_HEAD_LAYER_NORM_EPS = 1e-6  # flax.nnx.LayerNorm's default, used by the official output heads


def gelu(x: torch.Tensor) -> torch.Tensor:
    """The tanh-approximated GELU of the official code (``jax.nn.gelu(x)``, ``approximate=True``)."""
    return F.gelu(x, approximate="tanh")


def check_sequence_length(length: int, multiple: int) -> None:
    """Raise ValueError unless ``length`` (bp) is a positive multiple of ``multiple`` (``2 ** num_downsamples``),
    naming the nearest valid lengths (pad with ``N``, or crop, to reach one), or saying the input is empty."""
    if length > 0 and length % multiple == 0:
        return
    if length == 0:
        raise ValueError(
            f"empty input (0 bp): NTv3 needs at least {multiple} bp (a multiple of 2**num_downsamples)"
        )
    below, above = length // multiple * multiple, (length // multiple + 1) * multiple
    nearest = f"{below} or {above}" if below else f"{above}"
    raise ValueError(
        f"sequence length {length} is not a multiple of {multiple} (2**num_downsamples); pad with N or crop "
        f"to {nearest} bp"
    )


def crop_center(values: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Keep the centre of the position axis (1) of ``values`` [B, L, ...]: ``int((1 - keep_fraction) * L)``
    positions are cut, half (rounded down) at each end (official ``crop_sequence_center``; 0.375 of 32,768 bp
    keeps 12,288)."""
    cut = int((1.0 - keep_fraction) * values.shape[1]) // 2
    return values[:, cut : values.shape[1] - cut]


def along_length(
    function: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    halo: int,
    window: int | None,
    add_to: torch.Tensor | None = None,
) -> torch.Tensor:
    """``function(inputs)`` [B, L', ...] (plus ``add_to`` [B, L', ...]) for ``inputs`` [B, L, ...], at once
    (``window`` None or at least L) or ``window`` positions of ``inputs`` at a time.

    Each window is read with ``halo`` more positions on each side (clipped at the ends) and its result trimmed
    back to the window, so the result is the same as at once when output position ``j`` depends only on the
    inputs within ``halo`` of ``j * L / L'`` and ``function`` treats the true ends as on the whole length: the
    towers' 'same' convolutions (halo ``kernel // 2``), pooling by 2 (``window`` and ``halo`` even) and
    upsampling by 2. Windowed, only the result is allocated at full length, or nothing: the result is added
    into ``add_to`` in place (for inference, where nobody else holds ``add_to``).
    """
    length, output = inputs.shape[1], add_to
    if window is None or window >= length:
        result = function(inputs)
        return result if add_to is None else result + add_to
    for start in range(0, length, window):
        stop = min(start + window, length)
        first, last = max(start - halo, 0), min(stop + halo, length)
        result = function(inputs[:, first:last])
        scale, width = result.shape[1], last - first  # output positions per input position: scale / width
        part = result[:, (start - first) * scale // width : (stop - first) * scale // width]
        target = slice(start * scale // width, stop * scale // width)
        if output is None:
            output = result.new_empty(result.shape[0], length * scale // width, *result.shape[2:])
        if add_to is None:
            output[:, target].copy_(part)
        else:
            output = output.to(torch.promote_types(output.dtype, part.dtype))  # as ``part + add_to`` would
            output[:, target].add_(part)
    return output


class NTv3LayerNorm(nn.LayerNorm):
    """LayerNorm over the last axis, adaptive when the model is conditioned: for each condition embedding
    ``c`` [B, e], ``[shift | scale] = modulations[i](c)``; output ``LN(x) * prod(1 + scale) + sum(shift)``.
    The modulations start at zero, so a new condition leaves the model unchanged (official
    ``AdaptiveLayerNorm``)."""

    def __init__(self, dim: int, eps: float, condition_dims: Sequence[int] = ()) -> None:
        super().__init__(dim, eps=eps)
        self.modulations = nn.ModuleList(nn.Linear(width, 2 * dim) for width in condition_dims)

    def forward(self, x: torch.Tensor, conditions: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        x = super().forward(x)
        if not self.modulations:
            return x
        scale, shift = 1.0, 0.0
        for modulation, condition in zip(self.modulations, conditions, strict=True):
            shift_i, scale_i = modulation(condition).unsqueeze(1).chunk(2, dim=-1)
            scale, shift = scale * (1.0 + scale_i), shift + shift_i
        return x * scale + shift


class NTv3ConditionGate(nn.Module):
    """Multiplicative gate of a residual branch: ``prod_i (1 + gates[i](c_i))`` [B, 1, dim] (zero-initialised),
    or None for an unconditioned model."""

    def __init__(self, dim: int, condition_dims: Sequence[int]) -> None:
        super().__init__()
        self.gates = nn.ModuleList(nn.Linear(width, dim) for width in condition_dims)

    def forward(self, conditions: Sequence[torch.Tensor]) -> torch.Tensor | None:
        gate = None
        for linear, condition in zip(self.gates, conditions, strict=True):
            factor = 1.0 + linear(condition).unsqueeze(1)
            gate = factor if gate is None else gate * factor
        return gate


class NTv3TransposedConv(nn.ConvTranspose1d):
    """Stride-2 upsampling convolution, [B, C_in, L] -> [B, C_out, 2L], equal to the official
    ``lax.conv_transpose(..., padding="SAME")`` (which does not flip its kernel): the weight here is PyTorch's
    [C_in, C_out, k] with the kernel axis reversed relative to the official [k, C_out, C_in] (the converters do
    this), padding ``k - 1 - ceil(k / 2)``, and the one extra output position PyTorch gives is cropped."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=2, padding=kernel_size - 1 - -(-kernel_size // 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[..., : 2 * x.shape[-1]]


class NTv3RepeatConv(nn.Conv1d):
    """Upsampling by repeating every position twice, then a 'same' convolution (official ``repeat+conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.repeat_interleave(2, dim=-1))


def _upsampling_conv(config: NTv3Config, in_channels: int, out_channels: int) -> nn.Module:
    if config.upsample_type == "conv_transpose":
        return NTv3TransposedConv(in_channels, out_channels, _TOWER_KERNEL)
    return NTv3RepeatConv(in_channels, out_channels, _TOWER_KERNEL)


class NTv3ConvBlock(nn.Module):
    """``LayerNorm -> convolution -> GELU`` on channels-last [B, L, C_in] -> [B, L', C_out] (L' = 2L when
    ``conv`` upsamples)."""

    def __init__(self, in_channels: int, conv: nn.Module, condition_dims: Sequence[int]) -> None:
        super().__init__()
        self.layer_norm = NTv3LayerNorm(in_channels, _TOWER_LAYER_NORM_EPS, condition_dims)
        self.conv = conv

    def forward(self, x: torch.Tensor, conditions: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        x = self.layer_norm(x, conditions)
        return gelu(self.conv(x.transpose(1, 2)).transpose(1, 2))


class NTv3ResidualBlock(nn.Module):
    """``x + gate * ConvBlock_k1(x)`` (the gate only in conditioned models)."""

    def __init__(self, channels: int, condition_dims: Sequence[int]) -> None:
        super().__init__()
        self.block = NTv3ConvBlock(channels, nn.Conv1d(channels, channels, 1), condition_dims)
        self.gate = NTv3ConditionGate(channels, condition_dims)

    def forward(self, x: torch.Tensor, conditions: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        update = self.block(x, conditions)
        gate = self.gate(conditions)
        return x + (update if gate is None else gate * update)


class NTv3DownBlock(nn.Module):
    """Kernel-5 block (C_in -> C_out), residual block, then average pooling by 2: [B, L, C_in] ->
    [B, L / 2, C_out]."""

    def __init__(self, in_channels: int, out_channels: int, condition_dims: Sequence[int]) -> None:
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, _TOWER_KERNEL, padding=_TOWER_KERNEL // 2)
        self.conv_block = NTv3ConvBlock(in_channels, conv, condition_dims)
        self.residual_block = NTv3ResidualBlock(out_channels, condition_dims)

    def forward(self, x: torch.Tensor, conditions: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        x = self.residual_block(self.conv_block(x, conditions), conditions)
        return x.unflatten(1, (-1, 2)).mean(dim=2)


class NTv3UpBlock(nn.Module):
    """Upsampling kernel-5 block (C_in -> C_out), then a residual block: [B, L, C_in] -> [B, 2L, C_out]."""

    def __init__(
        self, config: NTv3Config, in_channels: int, out_channels: int, condition_dims: Sequence[int]
    ) -> None:
        super().__init__()
        conv = _upsampling_conv(config, in_channels, out_channels)
        self.conv_block = NTv3ConvBlock(in_channels, conv, condition_dims)
        self.residual_block = NTv3ResidualBlock(out_channels, condition_dims)

    def forward(self, x: torch.Tensor, conditions: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        return self.residual_block(self.conv_block(x, conditions), conditions)


class NTv3Layer(GradientCheckpointingLayer):
    """Pre-LN transformer block of the core: ``x + attention(LN(x))``, then ``x + gate * FFN(LN(x))`` (the
    LayerNorms adaptive and the FFN gated in conditioned models; the attention branch is never gated)."""

    def __init__(self, config: NTv3Config, layer_idx: int) -> None:
        super().__init__()
        condition_dims = _condition_dims(config)
        self.attention_layer_norm = NTv3LayerNorm(config.hidden_size, config.layer_norm_eps, condition_dims)
        self.attention = NTAttention(config, layer_idx)
        self.ffn_layer_norm = NTv3LayerNorm(config.hidden_size, config.layer_norm_eps, condition_dims)
        self.ffn = NTFeedForward(config)
        self.ffn_gate = NTv3ConditionGate(config.hidden_size, condition_dims)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        conditions: Sequence[torch.Tensor] = (),
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attn_output, _ = self.attention(
            self.attention_layer_norm(hidden_states, conditions),
            attention_mask=attention_mask,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = hidden_states + attn_output
        update = self.ffn(self.ffn_layer_norm(hidden_states, conditions))
        gate = self.ffn_gate(conditions)
        return hidden_states + (update if gate is None else gate * update)


def _condition_dims(config: NTv3Config) -> list[int]:
    """Width of each condition embedding (all ``token_embed_dim``, as upstream)."""
    return [config.token_embed_dim] * len(config.condition_vocab_sizes)


@dataclass
class NTv3ModelOutput(ModelOutput):
    """Outputs of :class:`NTv3Model`.

    Args:
        last_hidden_state: base-resolution output of the up tower [B, L, conv_init_embed_dim] (official
            ``embedding``).
        core_hidden_state: output of the transformer core [B, L / 2**n, hidden_size] (official
            ``after_transformer_embedding``).
        hidden_states: with ``output_hidden_states``: the core's input and each core layer's output
            (``num_hidden_layers + 1`` tensors [B, L / 2**n, hidden_size]; official ``embeddings_i`` is entry i).
        attentions: with ``output_attentions`` (eager attention): per core layer [B, H, L / 2**n, L / 2**n].
    """

    last_hidden_state: torch.Tensor | None = None
    core_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class NTv3PreTrainedModel(PreTrainedModel):
    """Weight initialisation, attention backends and output capture shared by the NTv3 models."""

    config: NTv3Config
    config_class = NTv3Config
    base_model_prefix = "ntv3"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    accepts_loss_kwargs = False
    _no_split_modules: ClassVar[list[str]] = ["NTv3Layer", "NTv3DownBlock", "NTv3UpBlock"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs: ClassVar[dict[str, Any]] = {
        "hidden_states": NTv3Layer,
        "attentions": OutputRecorder(NTAttention, index=1),
    }

    def _init_weights(self, module: nn.Module) -> None:
        """Standard init; condition modulations and gates at zero (a condition starts as the identity), the
        non-persistent rotary frequencies recomputed."""
        super()._init_weights(module)
        if isinstance(module, NTv3LayerNorm):
            for linear in module.modulations:
                init.zeros_(linear.weight)
                init.zeros_(linear.bias)
        elif isinstance(module, NTv3ConditionGate):
            for linear in module.gates:
                init.zeros_(linear.weight)
                init.zeros_(linear.bias)
        elif isinstance(module, NTRotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq(module.config))


class NTv3Model(NTv3PreTrainedModel):
    """The NTv3 U-Net without heads: tokens [B, L] -> base-resolution states [B, L, conv_init_embed_dim].

    Conditioned models (``config.condition_vocab_sizes`` not empty) take one token per condition and row
    (``condition_ids``: a [B] tensor per condition) and modulate every LayerNorm and gate every residual branch
    but attention with its embedding.

    Without autograd (inference), the towers and the LM head stream: they run ``stream_window`` positions at a
    time with the exact halo of each layer (:func:`along_length`), and the up tower adds into the U-Net skips
    in place, so that at full length only the skips, the output and the core's short sequence exist (8M
    model at 1 Mb: 2.0 GB of skips, about 2.4 GB in all instead of 6.8 GB at once). Same outputs (within
    float rounding); set ``stream_window = None`` to run each layer over the whole length.
    """

    #: Positions per window of the streamed towers (even: the down blocks pool by 2); None: no streaming.
    stream_window: int | None = 2**14

    def __init__(self, config: NTv3Config) -> None:
        super().__init__(config)
        condition_dims = _condition_dims(config)
        widths = config.tower_widths
        self.embed_tokens = nn.Embedding(config.vocab_size, config.token_embed_dim)
        self.condition_embeddings = nn.ModuleList(
            nn.Embedding(size, config.token_embed_dim) for size in config.condition_vocab_sizes
        )
        self.stem = nn.Conv1d(
            config.token_embed_dim, config.conv_init_embed_dim, _STEM_KERNEL, padding=_STEM_KERNEL // 2
        )
        self.down_blocks = nn.ModuleList(
            NTv3DownBlock(c_in, c_out, condition_dims) for c_in, c_out in pairwise(widths)
        )
        self.rotary_emb = NTRotaryEmbedding(config)
        self.layers = nn.ModuleList(NTv3Layer(config, i) for i in range(config.num_hidden_layers))
        widths = widths[::-1]
        self.up_blocks = nn.ModuleList(
            NTv3UpBlock(config, c_in, c_out, condition_dims) for c_in, c_out in pairwise(widths)
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        condition_ids: Sequence[torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> NTv3ModelOutput:
        """Encode ``input_ids`` [B, L] (L a multiple of ``2 ** num_downsamples``).

        ``attention_mask`` [B, L] (1 on real bases; default ``input_ids != pad``, or all ones for a conditioned
        model: the official post-trained model masks nothing) is reduced to the core's resolution as upstream:
        a downsampled position is attended when any base of its block of ``2 ** num_downsamples`` is real.
        Padding still passes through the convolutions, so pad with ``N`` (the
        models never saw ``<pad>``) unless the padded ends are discarded. Raises ValueError for a length that
        is not a multiple, or missing/extra ``condition_ids``.
        """
        self._check_input_ids(input_ids)
        conditions = self._condition_embeddings(condition_ids, input_ids.shape[0])
        if attention_mask is None:
            attention_mask = (
                torch.ones_like(input_ids) if conditions else input_ids.ne(self.config.pad_token_id)
            )
        window = self._streaming_window(self.embed_tokens, self.stem, self.down_blocks, self.up_blocks)
        hidden_states = along_length(self._stem, input_ids, _STEM_KERNEL // 2, window)
        skips = []
        for block in self.down_blocks:
            skips.append(hidden_states)
            hidden_states = along_length(partial(block, conditions=conditions), hidden_states, _HALO, window)
        hidden_states = self._core(hidden_states, attention_mask, conditions, **kwargs)
        core_hidden_state = hidden_states
        for block in self.up_blocks:
            skip = skips.pop() if self.config.use_skip_connection else None
            hidden_states = along_length(
                partial(block, conditions=conditions), hidden_states, _HALO, window, add_to=skip
            )
        return NTv3ModelOutput(last_hidden_state=hidden_states, core_hidden_state=core_hidden_state)

    def _streaming_window(self, *modules: nn.Module) -> int | None:
        """:attr:`stream_window` when ``modules`` may run window by window (:func:`along_length`): no autograd
        graph is being recorded and no forward hook watches them (a hook would see windows, not the whole
        tensors); None otherwise. Raises ValueError for an odd window."""
        if not self.stream_window or torch.is_grad_enabled():
            return None
        if self.stream_window % 2:
            raise ValueError(
                f"stream_window must be even (the down blocks pool by 2), got {self.stream_window}"
            )
        hooked = nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks
        for module in (child for parent in modules for child in parent.modules()):
            hooked = hooked or module._forward_hooks or module._forward_pre_hooks
        return None if hooked else self.stream_window

    def _stem(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embedding, kernel-15 stem convolution and GELU: [B, L] -> [B, L, conv_init_embed_dim]."""
        hidden_states = self.embed_tokens(input_ids)
        return gelu(self.stem(hidden_states.transpose(1, 2)).transpose(1, 2))

    def _core(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        conditions: Sequence[torch.Tensor],
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        """The transformer core on the downsampled sequence [B, L', d], with the block-level padding mask."""
        batch, length = hidden_states.shape[:2]
        block_mask = attention_mask.reshape(batch, length, -1).any(dim=-1).long()
        mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=block_mask
        )
        position_ids = torch.arange(length, device=hidden_states.device).unsqueeze(0)
        position_embeddings = self.rotary_emb(position_ids)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                attention_mask=mask,
                position_embeddings=position_embeddings,
                conditions=conditions,
                **kwargs,
            )
        return hidden_states

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        """ValueError (one line) unless ``input_ids`` is an integer [B, L] tensor of vocabulary ids with L a
        multiple of ``2 ** num_downsamples``."""
        if input_ids.dim() != 2 or input_ids.is_floating_point():
            hint = " (add a batch axis: input_ids[None])" if input_ids.dim() == 1 else ""
            raise ValueError(
                f"input_ids must be an integer tensor [batch, length], got {input_ids.dtype} of shape "
                f"{list(input_ids.shape)}{hint}"
            )
        check_sequence_length(input_ids.shape[1], self.config.length_multiple)
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"token id {bad} is outside the vocabulary (ids 0-{self.config.vocab_size - 1})")

    def _condition_embeddings(
        self, condition_ids: Sequence[torch.Tensor] | None, batch: int
    ) -> list[torch.Tensor]:
        """One embedding [B, token_embed_dim] per condition; ValueError when their number or shapes are wrong."""
        expected = len(self.condition_embeddings)
        condition_ids = list(condition_ids or [])
        if len(condition_ids) != expected:
            names = ", ".join(self.config.condition_names) or "none"
            hint = (
                " (a post-trained model: use NTv3ForTracksPrediction with species_ids, one species token per row)"
                if expected
                else ""
            )
            raise ValueError(
                f"this model takes {expected} condition id tensor(s) ({names}), got {len(condition_ids)}{hint}"
            )
        embeddings = []
        for name, ids, table in zip(
            self.config.condition_names, condition_ids, self.condition_embeddings, strict=True
        ):
            if ids.shape != (batch,):
                raise ValueError(f"{name} ids must have shape [{batch}] (one per row), got {list(ids.shape)}")
            embeddings.append(table(ids))
        return embeddings


class NTv3LMHead(nn.Module):
    """``GELU -> [Linear -> GELU] * num_lm_head_hidden_layers -> Linear(vocab)`` on base-resolution states."""

    def __init__(self, config: NTv3Config) -> None:
        super().__init__()
        width = config.conv_init_embed_dim
        self.hidden_layers = nn.ModuleList(
            nn.Linear(width, width) for _ in range(config.num_lm_head_hidden_layers)
        )
        self.decoder = nn.Linear(width, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = gelu(hidden_states)
        for layer in self.hidden_layers:
            hidden_states = gelu(layer(hidden_states))
        return self.decoder(hidden_states)


def masked_lm_outputs(
    backbone: NTv3Model, lm_head: NTv3LMHead, hidden_states: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """MLM logits [B, L, vocab_size] of the base-resolution ``hidden_states`` (streamed as the towers are, see
    :func:`along_length`) and, with ``labels`` [B, L] (-100 = ignored), their mean cross-entropy."""
    logits = along_length(lm_head, hidden_states, 0, backbone._streaming_window(lm_head))
    if labels is None:
        return logits, None
    return logits, CrossEntropyLoss()(logits.flatten(0, -2), labels.to(logits.device).flatten())


class NTv3ForMaskedLM(NTv3PreTrainedModel):
    """NTv3 with its masked-language-modelling head: logits [B, L, vocab_size] at every base."""

    def __init__(self, config: NTv3Config) -> None:
        super().__init__(config)
        self.ntv3 = NTv3Model(config)
        self.lm_head = NTv3LMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        condition_ids: Sequence[torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        """MLM logits [B, L, vocab_size]; ``labels`` [B, L] (-100 = ignored) give the mean cross-entropy."""
        outputs = self.ntv3(input_ids, attention_mask=attention_mask, condition_ids=condition_ids, **kwargs)
        logits, loss = masked_lm_outputs(self.ntv3, self.lm_head, outputs.last_hidden_state, labels)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class NTv3ForTokenClassification(NTv3PreTrainedModel):
    """NTv3 with a linear per-nucleotide ``classifier`` on the base-resolution states."""

    def __init__(self, config: NTv3Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ntv3 = NTv3Model(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.conv_init_embed_dim, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        condition_ids: Sequence[torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TokenClassifierOutput:
        """Per-nucleotide logits [B, L, num_labels]; ``labels`` [B, L] (-100 = ignored) give the cross-entropy."""
        outputs = self.ntv3(input_ids, attention_mask=attention_mask, condition_ids=condition_ids, **kwargs)
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.to(logits.device).view(-1))
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class NTv3ForSequenceClassification(NTv3PreTrainedModel):
    """NTv3 with a linear ``classifier`` on the mean of the base-resolution states over real nucleotides;
    classification or regression according to ``config.problem_type``/``num_labels``."""

    def __init__(self, config: NTv3Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ntv3 = NTv3Model(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.conv_init_embed_dim, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        condition_ids: Sequence[torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        """Per-sequence logits [B, num_labels]; ``labels`` give the loss of ``config.problem_type``."""
        outputs = self.ntv3(input_ids, attention_mask=attention_mask, condition_ids=condition_ids, **kwargs)
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        pooled = pool_hidden_states(outputs.last_hidden_state, attention_mask, "mean", has_cls=False)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels.to(logits.device), self.config)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class NTv3TrackHead(nn.Module):
    """Functional tracks of one species: ``LayerNorm -> Linear -> softplus`` (non-negative signal)."""

    def __init__(self, width: int, num_tracks: int) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(width, eps=_HEAD_LAYER_NORM_EPS)
        self.linear = nn.Linear(width, num_tracks)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.linear(self.layer_norm(hidden_states)))


class NTv3AnnotationHead(nn.Module):
    """Genome annotation: ``LayerNorm -> Linear`` to [.., E, 2] absent/present logits per element class."""

    def __init__(self, width: int, num_elements: int) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(width, eps=_HEAD_LAYER_NORM_EPS)
        self.linear = nn.Linear(width, 2 * num_elements)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear(self.layer_norm(hidden_states)).unflatten(-1, (-1, 2))


@dataclass
class NTv3TracksOutput(ModelOutput):
    """Outputs of :class:`NTv3ForTracksPrediction`.

    Args:
        loss: MLM cross-entropy when ``labels`` are given.
        logits: MLM logits [B, L, vocab_size] over the full length (official ``logits``).
        track_predictions: functional-track signal (softplus) of each row's species [B, L_c, T_max] on the centre
            L_c = the kept fraction of L; tracks beyond the species' count are 0 (official
            ``bigwig_tracks_logits``).
        annotation_logits: [B, L_c, E, 2] absent/present logits per element class (official
            ``bed_tracks_logits``); ``softmax(-1)[..., 1]`` is the probability.
        condition_logits: per condition, logits over its vocabulary [B, V] predicted from the core (official
            ``<name>_logits``).
        last_hidden_state, core_hidden_state, hidden_states, attentions: as :class:`NTv3ModelOutput`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    track_predictions: torch.Tensor | None = None
    annotation_logits: torch.Tensor | None = None
    condition_logits: tuple[torch.Tensor, ...] | None = None
    last_hidden_state: torch.Tensor | None = None
    core_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class NTv3ForTracksPrediction(NTv3PreTrainedModel):
    """The post-trained NTv3: species-conditioned U-Net with the MLM head, a functional-track head per species
    (``track_heads[species]``) and the genome-annotation head, both on the centre
    (``keep_target_center_fraction``) of the base-resolution output; conditions heads on the mean core state.
    """

    def __init__(self, config: NTv3Config) -> None:
        super().__init__(config)
        if not config.condition_vocab_sizes:
            raise ValueError(
                "NTv3ForTracksPrediction needs a species-conditioned config (condition_vocab_sizes)"
            )
        width = config.conv_init_embed_dim
        self.ntv3 = NTv3Model(config)
        self.lm_head = NTv3LMHead(config)
        self.condition_heads = nn.ModuleList(
            nn.Linear(config.hidden_size, size) for size in config.condition_vocab_sizes
        )
        self.track_heads = nn.ModuleDict(
            {species: NTv3TrackHead(width, count) for species, count in config.species_heads if count}
        )
        self.annotation_head = (
            NTv3AnnotationHead(width, len(config.bed_element_names)) if config.bed_element_names else None
        )
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor,
        species_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> NTv3TracksOutput:
        """``input_ids`` [B, L] and one species token per row ``species_ids`` [B] (``config.species_token``).
        Raises ValueError for a species id that is a special token or names no species of the model."""
        self._check_species(species_ids, input_ids.shape[0])
        outputs = self.ntv3(input_ids, attention_mask=attention_mask, condition_ids=[species_ids], **kwargs)
        logits, loss = masked_lm_outputs(self.ntv3, self.lm_head, outputs.last_hidden_state, labels)
        core_mean = gelu(outputs.core_hidden_state.mean(dim=1))
        centre = crop_center(outputs.last_hidden_state, self.config.keep_target_center_fraction)
        return NTv3TracksOutput(
            loss=loss,
            logits=logits,
            track_predictions=self._tracks(centre, species_ids),
            annotation_logits=None if self.annotation_head is None else self.annotation_head(centre),
            condition_logits=tuple(head(core_mean) for head in self.condition_heads),
            last_hidden_state=outputs.last_hidden_state,
            core_hidden_state=outputs.core_hidden_state,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _check_species(self, species_ids: torch.Tensor, batch: int) -> None:
        if species_ids.shape != (batch,):
            raise ValueError(
                f"species_ids must have shape [{batch}] (one per row), got {list(species_ids.shape)}"
            )
        known = {token for name, token in self.config.species_to_token_id.items() if not name.startswith("<")}
        unknown = sorted(set(species_ids.tolist()) - known)
        if unknown:
            raise ValueError(
                f"species id(s) {unknown} name no species of this model (known: "
                + ", ".join(
                    f"{name}={self.config.species_to_token_id[name]}"
                    for name in self.config.supported_species
                )
                + ")"
            )

    def _tracks(self, centre: torch.Tensor, species_ids: torch.Tensor) -> torch.Tensor | None:
        """Each row's species head, zero-padded to the largest track count [B, L_c, T_max]."""
        counts = [count for _, count in self.config.species_heads]
        if not any(counts):
            return None
        tracks = centre.new_zeros(*centre.shape[:2], max(counts))
        for species, head in self.track_heads.items():
            rows = species_ids == self.config.species_to_token_id[species]
            if rows.any():
                predictions = head(centre[rows])
                tracks[rows, :, : predictions.shape[-1]] = predictions
        return tracks


__all__ = [
    "NTv3ForMaskedLM",
    "NTv3ForSequenceClassification",
    "NTv3ForTokenClassification",
    "NTv3ForTracksPrediction",
    "NTv3Model",
    "NTv3PreTrainedModel",
    "check_sequence_length",
    "crop_center",
]
