"""Configuration of SegmentNT: an NT v2 encoder with a 1-D U-Net segmentation head (de Almeida et al., Nature
Methods 2025), with the presets of the two released checkpoints.

This file travels to the Hugging Face Hub with every SegmentNT checkpoint: it imports only ``transformers`` and
``configuration_nt``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .configuration_nt import PRESETS as NT_PRESETS
from .configuration_nt import NTConfig

#: Every Auto class a saved SegmentNT checkpoint loads with (``trust_remote_code=True`` where the package is
#: absent). Per-nucleotide outputs are token classification in transformers' terms.
SEGMENT_AUTO_MAP = {
    "AutoConfig": "configuration_segment_nt.SegmentNTConfig",
    "AutoModelForTokenClassification": "modeling_segment_nt.NTForSegmentation",
}

#: The 14 element classes of the released checkpoints, in their output order (official repository,
#: ``nucleotide_transformer/enformer/features.py``; the JAX ``hyperparams.json`` of SegmentNT lists them too).
SEGMENT_NT_FEATURES = (
    "protein_coding_gene",
    "lncRNA",
    "exon",
    "intron",
    "splice_donor",
    "splice_acceptor",
    "5UTR",
    "3UTR",
    "CTCF-bound",
    "polyA_signal",
    "enhancer_Tissue_specific",
    "enhancer_Tissue_invariant",
    "promoter_Tissue_specific",
    "promoter_Tissue_invariant",
)

#: Tokens (``<cls>`` included) the NT v2 backbone was pretrained on; the rotary rescaling factor is measured
#: against it (official ``docs/segment_nt.md``).
BACKBONE_CONTEXT_TOKENS = 2048
#: SegmentNT training windows: 30 kb = 5000 6-mer tokens, 5001 with ``<cls>``.
SEGMENT_NT_CONTEXT_TOKENS = 5001
#: Rotary rescaling factor SegmentNT was trained with (NT_SPEC section 1): 5000 / 2048.
SEGMENT_NT_RESCALING_FACTOR = 2.44140625

_RELEASED = {
    **NT_PRESETS["nt-v2-500m-multi-species"],
    "rotary_rescaling_factor": SEGMENT_NT_RESCALING_FACTOR,
    "trained_max_tokens": SEGMENT_NT_CONTEXT_TOKENS,
    "max_position_embeddings": SEGMENT_NT_CONTEXT_TOKENS + 2,  # rotary: only the tokenizer's length
    "num_downsamples": 2,
}

#: Both released models share the architecture (NT v2 500M backbone, head widths 1024/2048, 14 classes); they
#: differ in training data (human; human + multi-species annotations). A ``tiny`` preset serves tests.
PRESETS: dict[str, dict[str, Any]] = {
    "segment_nt": dict(_RELEASED),
    "segment_nt_multi_species": dict(_RELEASED),
    "tiny": {**NT_PRESETS["tiny"], "num_downsamples": 2, "features": ["exon", "intron", "splice_donor"]},
}


def rescaling_factor_for(num_tokens: int) -> float:
    """The rotary rescaling factor for inference on ``num_tokens`` tokens (``<cls>`` included) longer than the
    30 kb training windows, as the official notebook computes it: ``num_tokens / 2048`` (e.g. 50,004 bp =
    8,334 tokens + ``<cls>`` -> 4.0698...). Below 5,001 tokens keep the training factor
    (:data:`SEGMENT_NT_RESCALING_FACTOR`). Raises ValueError for a non-positive count."""
    if num_tokens <= 0:
        raise ValueError(f"num_tokens must be positive, got {num_tokens}")
    return num_tokens / BACKBONE_CONTEXT_TOKENS


class SegmentNTConfig(NTConfig):
    r"""Configuration of :class:`~modeling_nt.modeling_segment_nt.NTForSegmentation`: every :class:`NTConfig`
    field of the backbone (v2), plus the segmentation head.

    Args:
        features: names of the element classes, in output order (``num_classes = len(features)``; default the
            14 classes of the released checkpoints, :data:`SEGMENT_NT_FEATURES`).
        num_downsamples: U-Net levels; each halves the token axis by average pooling, so the number of 6-mer
            tokens (``<cls>`` excluded) must be divisible by ``2 ** num_downsamples`` (2 in SegmentNT: 4).
        head_channels: output channels of the U-Net levels (default ``hidden_size * 2 ** i``: 1024, 2048 in
            SegmentNT, as the official ``UNetHead``). Every convolution has kernel 3, 'same' padding and SiLU.
        nucleotides_per_token: nucleotides each token's output is expanded to (6: the final linear layer gives
            ``6 * num_classes * 2`` logits per token, read as 6 nucleotides x classes x {absent, present}).
        loss: ``"cross_entropy"`` (softmax over absent/present, mean over non-ignored labels) or ``"focal"``.
        focal_gamma: the focal loss exponent ``gamma`` in ``-(1 - p_t) ** gamma * log(p_t)``.
        rotary_rescaling_factor: (from :class:`NTConfig`) the RoPE base becomes
            ``10000 * s ** (head_dim / (head_dim - 2))``, as the official ``RotaryEmbedding`` does. The released
            presets hold the training value 2.44140625 (30 kb windows). For inference on 30-50 kb pass
            ``rotary_rescaling_factor=rescaling_factor_for(num_tokens)`` to ``from_pretrained`` (a config
            override; the non-persistent rotary frequencies are recomputed from it).
    """

    model_type = "segment_nt"
    checkpoint_auto_map: ClassVar[dict[str, str]] = SEGMENT_AUTO_MAP

    features: list[str] | None = None
    num_downsamples: int = 2
    head_channels: list[int] | None = None
    nucleotides_per_token: int = 6
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.features is None:
            self.features = list(SEGMENT_NT_FEATURES)
        self.features = list(self.features)
        if self.head_channels is None:
            self.head_channels = [self.hidden_size * 2**i for i in range(self.num_downsamples)]
        self.head_channels = [int(width) for width in self.head_channels]
        if self.auto_map is None or self.auto_map.get("AutoConfig") == "configuration_nt.NTConfig":
            self.auto_map = dict(SEGMENT_AUTO_MAP)
        self._check_head()

    def _check_head(self) -> None:
        if not self.features or len(set(self.features)) != len(self.features):
            raise ValueError(f"SegmentNTConfig.features must be distinct class names, got {self.features!r}")
        if self.num_downsamples < 1:
            raise ValueError(f"SegmentNTConfig.num_downsamples must be >= 1, got {self.num_downsamples}")
        if len(self.head_channels) != self.num_downsamples:
            raise ValueError(
                f"SegmentNTConfig.head_channels has {len(self.head_channels)} widths for "
                f"num_downsamples={self.num_downsamples}"
            )
        if self.loss not in ("cross_entropy", "focal"):
            raise ValueError(f"SegmentNTConfig.loss must be 'cross_entropy' or 'focal', got {self.loss!r}")

    @property
    def num_classes(self) -> int:
        """Number of element classes (``len(features)``)."""
        return len(self.features)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SegmentNTConfig:
        """The configuration of a named SegmentNT preset (see ``PRESETS``), with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown SegmentNT preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


__all__ = ["PRESETS", "SEGMENT_NT_FEATURES", "SegmentNTConfig", "rescaling_factor_for"]
