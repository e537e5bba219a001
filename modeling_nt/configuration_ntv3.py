"""Configuration of Nucleotide Transformer v3 (NTv3; Boshar et al., bioRxiv 2025): single-nucleotide tokens, a
convolutional downsampling tower, a transformer core on the compressed sequence and a deconvolution tower back
to base resolution, optionally conditioned on species (the post-trained models).

This file travels to the Hugging Face Hub with every NTv3 checkpoint: it imports only ``transformers``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PreTrainedConfig

#: Every Auto class a saved NTv3 checkpoint loads with (``trust_remote_code=True`` where the package is absent).
NTV3_AUTO_MAP = {
    "AutoConfig": "configuration_ntv3.NTv3Config",
    "AutoModel": "modeling_ntv3.NTv3Model",
    "AutoModelForMaskedLM": "modeling_ntv3.NTv3ForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_ntv3.NTv3ForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_ntv3.NTv3ForTokenClassification",
}

#: The official single-base vocabulary (``get_ntv3_tokenizer``): 6 special tokens, then the nucleotides.
NTV3_VOCAB = ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>", "A", "T", "C", "G", "N")

UPSAMPLE_TYPES = ("conv_transpose", "repeat+conv")

_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "token_embed_dim": 8,
    "conv_init_embed_dim": 16,
    "num_downsamples": 3,
}


def _released(width: int, layers: int, heads: int, downsamples: int = 7, **fields: Any) -> dict[str, Any]:
    """A released architecture: tower widths constant (``conv_init_embed_dim == hidden_size``), FFN 4x,
    token embeddings of 16 (/work facts: the Hub configs of the 8M, 100M and 650M models)."""
    return {
        "hidden_size": width,
        "conv_init_embed_dim": width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * width,
        "token_embed_dim": 16,
        "num_downsamples": downsamples,
        **fields,
    }


#: The post-trained heads, as far as they are published: 24 species (species vocabulary 6 + 24 = 30), 9 of them
#: with functional tracks (15,889 in all; human 7,362, mouse 2,450, arabidopsis 1,899 are known, the split of the
#: remaining 4,178 over six species is a placeholder) and 21 annotation classes. Names other than those are
#: placeholders: a converted checkpoint carries the real ones in its config. Parameter counts depend only on
#: these numbers, not on the names.
_SPECIES = ["human", "mouse", "arabidopsis_thaliana", *(f"species_{i}" for i in range(3, 24))]
_TRACKS = [7362, 2450, 1899, 700, 700, 700, 700, 700, 678]
_POST_HEADS = {
    "condition_vocab_sizes": [30],
    "condition_names": ["species"],
    "species_to_token_id": {name: 6 + i for i, name in enumerate(_SPECIES)},
    "bigwig_tracks_per_species": {
        name: [f"{name}_track_{t}" for t in range(count)]
        for name, count in zip(_SPECIES, _TRACKS, strict=False)
    },
    "bed_element_names": [
        "protein_coding_gene",
        "exon",
        "intron",
        "splice_donor",
        "splice_acceptor",
        *(f"element_{i}" for i in range(5, 21)),
    ],
    "keep_target_center_fraction": 0.375,
}
_8M, _100M, _650M = (256, 2, 8), (768, 6, 12), (1536, 12, 24)

#: Architecture presets: every released checkpoint (``ntv3-<size>-<stage>[-<context>]``, parameter counts in
#: tests/test_ntv3_model.py against the published ones where published) and ``tiny-v3`` (MLM) /
#: ``tiny-v3-post`` (species-conditioned, 2 species with 3 and 2 tracks, 3 annotation classes) for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "ntv3-8m-pre": _released(*_8M, trained_max_length=2**20),
    "ntv3-8m-pre-8kb": _released(*_8M, trained_max_length=2**13),
    "ntv3-100m-pre": _released(*_100M, trained_max_length=2**20),
    "ntv3-100m-pre-8kb": _released(*_100M, trained_max_length=2**13),
    "ntv3-650m-pre": _released(*_650M, trained_max_length=2**20),
    "ntv3-650m-pre-8kb": _released(*_650M, trained_max_length=2**13),
    "ntv3-5downsample-pre": _released(*_650M, downsamples=5, trained_max_length=2**20),
    "ntv3-5downsample-pre-8kb": _released(*_650M, downsamples=5, trained_max_length=2**13),
    "ntv3-100m-post": _released(*_100M, trained_max_length=2**20, **_POST_HEADS),
    "ntv3-100m-post-131kb": _released(*_100M, trained_max_length=2**17, **_POST_HEADS),
    "ntv3-650m-post": _released(*_650M, trained_max_length=2**20, **_POST_HEADS),
    "ntv3-650m-post-131kb": _released(*_650M, trained_max_length=2**17, **_POST_HEADS),
    "ntv3-5downsample-post": _released(*_650M, downsamples=5, trained_max_length=2**20, **_POST_HEADS),
    "ntv3-5downsample-post-131kb": _released(*_650M, downsamples=5, trained_max_length=2**17, **_POST_HEADS),
    "tiny-v3": dict(_TINY),
    "tiny-v3-post": {
        **_TINY,
        "conv_init_embed_dim": 32,
        "condition_vocab_sizes": [8],
        "condition_names": ["species"],
        "species_to_token_id": {"human": 6, "mouse": 7},
        "bigwig_tracks_per_species": {"human": ["DNase", "H3K4me3", "CTCF"], "mouse": ["DNase", "ATAC"]},
        "bed_element_names": ["exon", "intron", "promoter"],
        "keep_target_center_fraction": 0.375,
    },
}

#: Hub repository (``InstaDeepAI/<id>``) of each released preset: ``ntv3-8m-pre-8kb`` -> ``NTv3_8M_pre_8kb``.
HUB_IDS: dict[str, str] = {
    name: "NTv3_" + name.removeprefix("ntv3-").replace("-", "_").replace("m_", "M_", 1)
    for name in PRESETS
    if not name.startswith("tiny")
}


def linspace_widths(start: int, stop: int, steps: int) -> list[int]:
    """``numpy.linspace(start, stop, steps + 1).astype(int)`` without numpy: float64 ``start + i * step``
    truncated toward zero, the last value exactly ``stop`` (the official ``filter_list`` of the towers)."""
    if steps == 0:
        return [int(start)]
    step = (stop - start) / steps
    return [int(start + i * step) for i in range(steps)] + [int(stop)]


class NTv3Config(PreTrainedConfig):
    r"""Configuration of the NTv3 models (:mod:`modeling_nt.modeling_ntv3`).

    Args:
        vocab_size: token rows (11: :data:`NTV3_VOCAB`).
        hidden_size: width of the transformer core (official ``embed_dim``).
        num_hidden_layers, num_attention_heads: transformer core sizes (head size ``hidden_size / heads``).
        intermediate_size: SwiGLU FFN width F: ``fc1(d, 2F)`` (no bias), ``silu(gate) * up``, ``fc2(F, d)``.
        token_embed_dim: width of the token (and species) embeddings.
        conv_init_embed_dim: width of the stem and of the base-resolution output. The tower widths are
            :attr:`tower_widths`: ``linspace(conv_init_embed_dim, hidden_size, num_downsamples + 1)`` truncated.
        num_downsamples: halvings of the sequence before the core (7 for the released models, 5 for the
            ablation): the input length must be a multiple of ``2 ** num_downsamples`` (128, 32).
        layer_norm_eps: epsilon of the tower and core LayerNorms (1e-5; the output heads use 1e-6).
        num_lm_head_hidden_layers: ``Linear + GELU`` layers of the LM head before its projection.
        use_skip_connection: add each down-tower input to the matching up-tower output (U-Net skips).
        upsample_type: ``"conv_transpose"`` (stride-2 transposed convolution, kernel 5) or ``"repeat+conv"``
            (each position repeated twice, then a kernel-5 convolution).
        rotary_base: RoPE base of the core (10000; positions are downsampled positions ``0 .. L / 2**n - 1``).
        condition_vocab_sizes: one vocabulary size per discrete condition (post-trained models: one, the species
            tokens, special tokens included); empty for the pre-trained models.
        condition_names: names of the conditions (``["species"]``), used for the conditions heads' outputs.
        species_to_token_id: species name -> species token id (ids below ``num_species_special_tokens`` are
            special tokens, not species).
        bigwig_tracks_per_species: species -> names of its functional tracks (one output head per species, in
            species-token order).
        bed_element_names: genome-annotation classes of the annotation head (absent/present logits each).
        keep_target_center_fraction: share of the positions, centred, the track and annotation heads predict
            (0.375 in the released post-trained models; the MLM logits keep the full length).
        num_species_special_tokens: species token ids reserved for special tokens (6).
        trained_max_length: longest input (bp) the model was trained on, where known.
        pooling: sequence-classification pooling over real nucleotides of the base-resolution output (``"mean"``).
    """

    model_type = "ntv3"

    vocab_size: int = len(NTV3_VOCAB)
    hidden_size: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 16
    intermediate_size: int = 2048
    token_embed_dim: int = 16
    conv_init_embed_dim: int = 512
    num_downsamples: int = 7
    layer_norm_eps: float = 1e-5
    num_lm_head_hidden_layers: int = 0
    use_skip_connection: bool = True
    upsample_type: str = "conv_transpose"
    rotary_base: float = 10000.0
    rotary_rescaling_factor: float = 1.0
    condition_vocab_sizes: list[int] | None = None
    condition_names: list[str] | None = None
    species_to_token_id: dict[str, int] | None = None
    bigwig_tracks_per_species: dict[str, list[str]] | None = None
    bed_element_names: list[str] | None = None
    keep_target_center_fraction: float = 1.0
    num_species_special_tokens: int = 6
    trained_max_length: int | None = None
    initializer_range: float = 0.02
    pooling: str = "mean"
    classifier_dropout: float = 0.0
    pad_token_id: int | None = 1
    mask_token_id: int | None = 2
    tie_word_embeddings: bool = False
    model_name: str | None = None

    #: The core's FFN is SwiGLU without biases (read by the shared NT feed-forward module).
    ffn_activation: ClassVar[str] = "swiglu"
    add_bias_ffn: ClassVar[bool] = False

    def __post_init__(self, **kwargs: Any) -> None:
        # an official Hub config.json has the same model_type "ntv3" and the official field names
        if "embed_dim" in kwargs:
            raise ValueError(
                "config.json is an official NTv3 Hub config (field 'embed_dim'), not this package's: convert the "
                "checkpoint first with `nt convert --from ntv3-hub SRC OUT`"
            )
        super().__post_init__(**kwargs)
        self.condition_vocab_sizes = [int(size) for size in self.condition_vocab_sizes or []]
        default_names = [f"condition_{i}" for i in range(len(self.condition_vocab_sizes))]
        self.condition_names = list(self.condition_names or default_names)
        self.species_to_token_id = dict(self.species_to_token_id or {})
        self.bigwig_tracks_per_species = {
            k: list(v) for k, v in (self.bigwig_tracks_per_species or {}).items()
        }
        self.bed_element_names = list(self.bed_element_names or [])
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(NTV3_AUTO_MAP)
        self._check()

    def _check(self) -> None:
        if self.upsample_type not in UPSAMPLE_TYPES:
            raise ValueError(
                f"NTv3Config.upsample_type must be one of {UPSAMPLE_TYPES}, got {self.upsample_type!r}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.num_downsamples < 0:
            raise ValueError(f"NTv3Config.num_downsamples must be >= 0, got {self.num_downsamples}")
        if not 0.0 < self.keep_target_center_fraction <= 1.0:
            raise ValueError(
                f"keep_target_center_fraction must be in (0, 1], got {self.keep_target_center_fraction}"
            )
        if len(self.condition_names) != len(self.condition_vocab_sizes):
            raise ValueError(
                f"{len(self.condition_names)} condition_names for {len(self.condition_vocab_sizes)} conditions"
            )
        if self.has_output_heads:
            self._check_species()

    def _check_species(self) -> None:
        if len(self.condition_vocab_sizes) != 1:
            raise ValueError("track and annotation heads need exactly one condition: the species")
        for species, token_id in self.species_to_token_id.items():
            if not species.startswith("<") and not (
                self.num_species_special_tokens <= token_id < self.condition_vocab_sizes[0]
            ):
                raise ValueError(
                    f"species {species!r} has token id {token_id}, outside "
                    f"[{self.num_species_special_tokens}, {self.condition_vocab_sizes[0]})"
                )
        unknown = sorted(set(self.bigwig_tracks_per_species) - set(self.species_to_token_id))
        if unknown:
            raise ValueError(
                f"bigwig_tracks_per_species names species without a token id: {', '.join(unknown)}"
            )
        dotted = [name for name in self.bigwig_tracks_per_species if "." in name]
        if dotted:
            raise ValueError(f"species names cannot contain '.': {', '.join(dotted)}")
        if self.conv_init_embed_dim != self.hidden_size:
            raise ValueError(
                "track and annotation heads read the base-resolution output: conv_init_embed_dim "
                f"({self.conv_init_embed_dim}) must equal hidden_size ({self.hidden_size}), as in the official models"
            )

    @property
    def checkpoint_auto_map(self) -> dict[str, str]:
        """The ``auto_map`` a saved checkpoint carries: :data:`NTV3_AUTO_MAP`, with ``AutoModel`` loading the
        post-trained model (``NTv3ForTracksPrediction``) for a checkpoint with track/annotation heads."""
        if self.has_output_heads:
            return {
                "AutoConfig": NTV3_AUTO_MAP["AutoConfig"],
                "AutoModel": "modeling_ntv3.NTv3ForTracksPrediction",
            }
        return dict(NTV3_AUTO_MAP)

    @property
    def has_output_heads(self) -> bool:
        """Whether the model has functional-track or genome-annotation heads (post-trained models)."""
        return bool(self.bigwig_tracks_per_species or self.bed_element_names)

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @property
    def tower_widths(self) -> list[int]:
        """Channel widths from the stem to the core: ``num_downsamples + 1`` values from ``conv_init_embed_dim``
        to ``hidden_size`` (official ``filter_list``)."""
        return linspace_widths(self.conv_init_embed_dim, self.hidden_size, self.num_downsamples)

    @property
    def length_multiple(self) -> int:
        """Input lengths (bp) must be multiples of this: ``2 ** num_downsamples``."""
        return 2**self.num_downsamples

    @property
    def species_heads(self) -> list[tuple[str, int]]:
        """(species, number of tracks) of the track heads, in species-token order (the official head order)."""
        species = sorted(self.bigwig_tracks_per_species, key=self.species_to_token_id.__getitem__)
        return [(name, len(self.bigwig_tracks_per_species[name])) for name in species]

    @property
    def supported_species(self) -> list[str]:
        """Species names the model is conditioned on (special tokens excluded), sorted."""
        return sorted(name for name in self.species_to_token_id if not name.startswith("<"))

    def species_token(self, species: str) -> int:
        """Token id of ``species``; raises ValueError naming the supported species for an unknown name."""
        if species not in self.supported_species:
            raise ValueError(
                f"unknown species {species!r}; this model knows: {', '.join(self.supported_species)}"
            )
        return self.species_to_token_id[species]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> NTv3Config:
        """The configuration of a named preset (see ``PRESETS``), with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown NTv3 preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


__all__ = ["HUB_IDS", "NTV3_AUTO_MAP", "NTV3_VOCAB", "PRESETS", "NTv3Config", "linspace_widths"]
