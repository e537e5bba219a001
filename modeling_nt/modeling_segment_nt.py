"""PyTorch SegmentNT: per-nucleotide segmentation of genomic elements on the NT v2 encoder.

Architecture (official ``nucleotide_transformer/heads.py`` ``UNetHead`` and ``UNET1DSegmentationHead``, and the
Hub remote code): the encoder's last hidden state (after the final LayerNorm) without ``<cls>`` goes through a
1-D U-Net: ``num_downsamples`` down blocks (two kernel-3 'same' convolutions, each followed by SiLU, then average
pooling by 2; the pre-pooling output is kept as skip), as many up blocks in reverse order of widths (two kernel-3
stride-1 transposed convolutions, each followed by SiLU, then nearest upsampling by 2, plus the skip), a final
block (kernel-3 convolution, SiLU, kernel-3 convolution to ``2 * (hidden_size // 2)`` channels), SiLU, and a
linear layer to ``6 * num_classes * 2`` logits per token, read as 6 nucleotides x classes x {absent, present}.

This file travels to the Hugging Face Hub with every SegmentNT checkpoint: it imports only torch, transformers,
``configuration_segment_nt`` and ``modeling_nt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from .configuration_segment_nt import SegmentNTConfig
from .modeling_nt import NTModel, NTPreTrainedModel

_KERNEL = 3
_CONVS_PER_BLOCK = 2


def check_segmentation_sequence(
    sequence: str, num_downsamples: int = 2, nucleotides_per_token: int = 6
) -> int:
    """Check that ``sequence`` can be segmented by SegmentNT and return its number of 6-mer tokens.

    The official models take only whole 6-mers (an ``N`` would become single-nucleotide tokens and shift every
    following position), and the U-Net needs a token count divisible by ``2 ** num_downsamples``: the length must
    be a multiple of ``nucleotides_per_token * 2 ** num_downsamples`` (24 for SegmentNT). Lowercase is accepted
    (the tokenizer upper-cases it). Raises ValueError naming the 0-based position of the first ``N`` (or other
    non-ACGT character), or the length and the nearest valid lengths."""
    upper = sequence.upper()
    first_n = upper.find("N")
    if first_n >= 0:
        raise ValueError(
            f"N at nucleotide {first_n} (0-based): SegmentNT needs A/C/G/T only (each position must fall in "
            "a 6-mer token); cut the sequence around N runs"
        )
    for position, base in enumerate(upper):
        if base not in "ACGT":
            raise ValueError(
                f"character {sequence[position]!r} at nucleotide {position} (0-based) is not A/C/G/T"
            )
    step = nucleotides_per_token * 2**num_downsamples
    if not upper or len(upper) % step:
        below, above = len(upper) // step * step, (len(upper) // step + 1) * step
        raise ValueError(
            f"sequence length {len(upper)} is not a multiple of {step} ({nucleotides_per_token}-mer tokens "
            f"divisible by 2**{num_downsamples}); use "
            + (f"{below} or {above}" if below else f"{above}")
            + " nucleotides"
        )
    return len(upper) // nucleotides_per_token


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Per-class presence probability: ``softmax(logits, -1)[..., 1]`` ([B, L_nt, num_classes, 2] ->
    [B, L_nt, num_classes])."""
    return torch.softmax(logits.float(), dim=-1)[..., 1]


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, loss: str = "cross_entropy", gamma: float = 2.0
) -> torch.Tensor:
    """Mean loss over the non-ignored labels (``-100`` = ignored) of ``logits`` [B, L_nt, C, 2] against
    ``labels`` [B, L_nt, C] in {0, 1}: cross-entropy of the softmax over absent/present, or the focal loss
    ``-(1 - p_t) ** gamma * log(p_t)`` (Lin et al. 2017) for ``loss="focal"``. Raises ValueError for labels of
    another shape."""
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} do not match logits {tuple(logits.shape[:-1])}"
        )
    flat_logits = logits.float().reshape(-1, 2)
    flat_labels = labels.to(logits.device).reshape(-1).long()
    keep = flat_labels != -100
    if not keep.any():
        return flat_logits.sum() * 0.0
    log_p = F.log_softmax(flat_logits[keep], dim=-1).gather(1, flat_labels[keep, None]).squeeze(1)
    if loss == "focal":
        return (-((1 - log_p.exp()) ** gamma) * log_p).mean()
    return -log_p.mean()


@dataclass
class SegmentationOutput(ModelOutput):
    """Output of :class:`NTForSegmentation`.

    Args:
        loss: mean loss over non-ignored labels (when ``labels`` are given).
        logits: [B, L_nt, num_classes, 2], ``L_nt = 6 x`` tokens without ``<cls>``; softmax over the last axis
            (:func:`probabilities`) gives the presence probability per nucleotide and class.
        hidden_states, attentions: of the encoder, when asked for.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class NTConvStack(nn.Module):
    """``_CONVS_PER_BLOCK`` kernel-3 'same' convolutions over [B, C, L] (transposed stride-1 ones when
    ``transposed``), each followed by SiLU except the last when ``last_activation`` is False."""

    def __init__(self, in_channels: int, out_channels: int, transposed: bool, last_activation: bool) -> None:
        super().__init__()
        conv = nn.ConvTranspose1d if transposed else nn.Conv1d
        widths = [in_channels] + [out_channels] * _CONVS_PER_BLOCK
        self.convs = nn.ModuleList(
            conv(widths[i], widths[i + 1], kernel_size=_KERNEL, stride=1, padding=_KERNEL // 2)
            for i in range(_CONVS_PER_BLOCK)
        )
        self.last_activation = last_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.last_activation or i < len(self.convs) - 1:
                x = F.silu(x)
        return x


class NTSegmentationHead(nn.Module):
    """The 1-D U-Net and the per-nucleotide projection: token states [B, T, d] -> logits [B, 6T, C, 2]."""

    def __init__(self, config: SegmentNTConfig) -> None:
        super().__init__()
        channels = list(config.head_channels)
        self.down_blocks = nn.ModuleList(
            NTConvStack(width_in, width_out, transposed=False, last_activation=True)
            for width_in, width_out in zip([config.hidden_size, *channels[:-1]], channels, strict=True)
        )
        reversed_channels = channels[::-1]
        self.up_blocks = nn.ModuleList(
            NTConvStack(width_in, width_out, transposed=True, last_activation=True)
            for width_in, width_out in zip(
                [channels[-1], *reversed_channels[:-1]], reversed_channels, strict=True
            )
        )
        final_width = 2 * (config.hidden_size // 2)
        self.final_block = NTConvStack(channels[0], final_width, transposed=False, last_activation=False)
        self.fc = nn.Linear(final_width, config.nucleotides_per_token * config.num_classes * 2)
        self.nucleotides_per_token = config.nucleotides_per_token
        self.num_classes = config.num_classes

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = hidden_states.shape
        x = hidden_states.transpose(1, 2)
        skips = []
        for block in self.down_blocks:
            x = block(x)
            skips.append(x)
            x = F.avg_pool1d(x, kernel_size=2, stride=2)
        for block, skip in zip(self.up_blocks, reversed(skips), strict=True):
            x = F.interpolate(block(x), scale_factor=2, mode="nearest") + skip
        x = F.silu(self.final_block(x)).transpose(1, 2)
        logits = self.fc(x)
        return logits.reshape(batch, tokens * self.nucleotides_per_token, self.num_classes, 2)


class NTForSegmentation(NTPreTrainedModel):
    """SegmentNT: the NT encoder and a U-Net head giving, for every nucleotide, absent/present logits per class.

    ``NTForSegmentation(config)`` with a :class:`SegmentNTConfig` (``SegmentNTConfig.from_preset("segment_nt")``
    for the released architecture); ``model.config.features`` names the classes.
    """

    config_class = SegmentNTConfig
    config: SegmentNTConfig

    def __init__(self, config: SegmentNTConfig) -> None:
        super().__init__(config)
        self.nt = NTModel(config)
        self.head = NTSegmentationHead(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """The NT init, except the head's convolutions and final linear layer: Haiku's default, as the official
        JAX head was built with (``hk.Conv1D`` / ``hk.Conv1DTranspose`` / ``hk.Linear`` without ``w_init``):
        weights truncated normal (at 2 std) with std ``1 / sqrt(fan_in)``, ``fan_in`` = kernel x input
        channels, zero biases. With NT's std 0.02 the ten convolutions of a U-Net shrink the signal ~0.3x each,
        and a new head trains only after a long plateau at the prior."""
        super()._init_weights(module)
        head = getattr(self, "head", None)
        # the only convolutions are the head's (called per leaf layer: transformers skips parameterless modules)
        if not (
            isinstance(module, nn.Conv1d | nn.ConvTranspose1d) or (head is not None and module is head.fc)
        ):
            return
        weight = module.weight  # Conv1d [out, in, k]; ConvTranspose1d [in, out, k]; Linear [out, in]
        inputs = weight.shape[0] if isinstance(module, nn.ConvTranspose1d) else weight.shape[1]
        std = (inputs * (weight.shape[2] if weight.dim() == 3 else 1)) ** -0.5
        init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)
        init.zeros_(module.bias)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SegmentationOutput:
        """Segment ``input_ids`` [B, T + 1] (``<cls>`` first, right-padded, ``attention_mask`` 1 on real tokens;
        T divisible by ``2 ** num_downsamples``). Returns ``logits`` [B, 6T, num_classes, 2] and, with ``labels``
        [B, 6T, num_classes] in {0, 1} (-100 = ignored, e.g. padding), the loss of ``config.loss``. Padding
        positions get logits too: mask them with the labels. Raises ValueError when T is not divisible (check
        sequences first with :func:`check_segmentation_sequence`)."""
        step = 2**self.config.num_downsamples
        tokens = input_ids.shape[1] - 1
        if tokens <= 0 or tokens % step:
            raise ValueError(
                f"{tokens} tokens after <cls>: SegmentNT needs a token count divisible by {step} "
                f"(2**num_downsamples); see check_segmentation_sequence"
            )
        outputs = self.nt(input_ids, attention_mask=attention_mask, **kwargs)
        logits = self.head(outputs.last_hidden_state[:, 1:])
        loss = None
        if labels is not None:
            loss = segmentation_loss(logits, labels, self.config.loss, self.config.focal_gamma)
        return SegmentationOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """See :func:`probabilities`."""
        return probabilities(logits)


__all__ = [
    "NTForSegmentation",
    "SegmentationOutput",
    "check_segmentation_sequence",
    "probabilities",
    "segmentation_loss",
]
