"""Configuration of the Nucleotide Transformer (NT) models, v1 and v2, with named presets.

This file travels to the Hugging Face Hub with every checkpoint: it imports only ``transformers``.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig

#: Every Auto class a saved checkpoint can be loaded with (``trust_remote_code=True`` where the package is absent).
AUTO_MAP = {
    "AutoConfig": "configuration_nt.NTConfig",
    "AutoModel": "modeling_nt.NTModel",
    "AutoModelForMaskedLM": "modeling_nt.NTForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_nt.NTForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_nt.NTForTokenClassification",
}

_V1 = {
    "tokenizer_version": "v1",
    "vocab_size": 4105,
    "position_embedding_type": "absolute",
    "max_position_embeddings": 1002,
    "ffn_activation": "gelu",
    "add_bias_ffn": True,
    "token_dropout": True,
}
_V2 = {
    "tokenizer_version": "v2",
    "vocab_size": 4107,
    "position_embedding_type": "rotary",
    "max_position_embeddings": 2050,
    "ffn_activation": "swiglu",
    "add_bias_ffn": False,
    "token_dropout": False,
}

#: Context (tokens, ``<cls>`` included) the released models were pretrained at (NT_SPEC section 1): v1 1000 tokens
#: (at most 5,994 bp), v2 2048 tokens (12,282 bp). Recorded as ``trained_max_tokens`` in the released presets
#: and in checkpoints converted from the official layouts.
PUBLISHED_CONTEXT_TOKENS = {"v1": 1000, "v2": 2048}
_V1_RELEASED = {**_V1, "trained_max_tokens": PUBLISHED_CONTEXT_TOKENS["v1"]}
_V2_RELEASED = {**_V2, "trained_max_tokens": PUBLISHED_CONTEXT_TOKENS["v2"]}


def _sizes(layers: int, hidden: int, heads: int, ffn: int) -> dict[str, int]:
    return {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
    }


#: Architecture of the released models (NT_SPEC section 2) and small test presets. The v2-250m head count is not
#: published ([open] in the spec): 16 heads like every other v2 model (head size 48); it changes no parameter count.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**_V2, **_sizes(2, 64, 4, 128)},
    "tiny-v1": {**_V1, **_sizes(2, 64, 4, 256)},
    "nt-v1-500m-human-ref": {**_V1_RELEASED, **_sizes(24, 1280, 20, 5120)},
    "nt-v1-500m-1000g": {**_V1_RELEASED, **_sizes(24, 1280, 20, 5120)},
    "nt-v1-2.5b-1000g": {**_V1_RELEASED, **_sizes(32, 2560, 20, 10240)},
    "nt-v1-2.5b-multi-species": {**_V1_RELEASED, **_sizes(32, 2560, 20, 10240)},
    "nt-v2-50m-multi-species": {**_V2_RELEASED, **_sizes(12, 512, 16, 2048)},
    "nt-v2-100m-multi-species": {**_V2_RELEASED, **_sizes(22, 512, 16, 2048)},
    "nt-v2-250m-multi-species": {**_V2_RELEASED, **_sizes(24, 768, 16, 3072)},
    "nt-v2-500m-multi-species": {**_V2_RELEASED, **_sizes(29, 1024, 16, 4096)},
}

#: Hub repository (``InstaDeepAI/<id>``) of each released preset.
HUB_IDS = {
    "nt-v1-500m-human-ref": "nucleotide-transformer-500m-human-ref",
    "nt-v1-500m-1000g": "nucleotide-transformer-500m-1000g",
    "nt-v1-2.5b-1000g": "nucleotide-transformer-2.5b-1000g",
    "nt-v1-2.5b-multi-species": "nucleotide-transformer-2.5b-multi-species",
    "nt-v2-50m-multi-species": "nucleotide-transformer-v2-50m-multi-species",
    "nt-v2-100m-multi-species": "nucleotide-transformer-v2-100m-multi-species",
    "nt-v2-250m-multi-species": "nucleotide-transformer-v2-250m-multi-species",
    "nt-v2-500m-multi-species": "nucleotide-transformer-v2-500m-multi-species",
}


class NTConfig(PreTrainedConfig):
    r"""Configuration of an NT encoder (both generations).

    Args:
        vocab_size: embedding rows: 4105 for v1 checkpoints (no ``<eos>``/``<bos>`` rows), 4107 for v2.
        tokenizer_version: id layout of the matching tokenizer, ``"v1"`` or ``"v2"`` (NT_SPEC section 1). This is
            the field to read to build the tokenizer (``modeling_nt.tokenizer_for(config)``).
        hidden_size, num_hidden_layers, num_attention_heads: transformer sizes.
        intermediate_size: FFN width F. GELU FFN: ``fc1(d, F)``; SwiGLU FFN: ``fc1(d, 2F)``, gated down to F.
        position_embedding_type: ``"absolute"`` (v1: learned, ESM-style ids starting at ``pad_token_id + 1``)
            or ``"rotary"`` (v2).
        max_position_embeddings: rows of the learned position table (v1: 1002 = 1000 tokens + 2 offset rows).
            For rotary models it only sets the default tokenizer length (2050 - 2 = 2048 tokens).
        rotary_base: RoPE base (10000).
        rotary_rescaling_factor: base rescaling for inputs longer than the training context, as in SegmentNT:
            ``base * factor ** (head_dim / (head_dim - 2))``; 1.0 means none (SegmentNT used 2.44140625 for 30 kb).
        ffn_activation: ``"gelu"`` (exact erf GELU, v1), ``"gelu_pytorch_tanh"`` (the tanh approximation
            ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, ``jax.nn.gelu``'s default: JAX checkpoints whose
            ``hyperparams.json`` says ``ffn_activation_name: "gelu"``) or ``"swiglu"`` (v2).
        add_bias_ffn: biases in ``fc1``/``fc2`` (True in v1, False in v2).
        token_dropout: ESM token dropout (v1): ``<mask>`` embeddings zeroed, all embeddings rescaled by
            ``(1 - mask_ratio_train) / (1 - observed mask ratio)``.
        mask_ratio_train: 0.15 * 0.8, the share of ``<mask>`` inputs during pretraining.
        layer_norm_eps: LayerNorm epsilon (1e-12 as in the Hub configs; the JAX code used 1e-5).
        initializer_range: std of the normal initialisation of new weights.
        pooling: sequence-classification pooling: ``"cls"`` (the ``<cls>`` token) or ``"mean"`` (mean over
            non-padding tokens, ``<cls>`` excluded).
        classifier_dropout: dropout before the classification heads.
        trained_max_tokens: context length in tokens (``<cls>`` included) of the records the model was pretrained
            on, recorded by ``nt pretrain`` (e.g. 64 for a run with ``max_tokens: 64``, while ``max_tokens`` stays
            what the architecture accepts); the published context (``PUBLISHED_CONTEXT_TOKENS``: 1000 for v1,
            2048 for v2) in the released presets and in checkpoints converted from the official layouts; None
            where unknown (test presets, older checkpoints). Sets :attr:`default_window_tokens`.
        model_name: the model's name in results and model cards (``benchmarks.results.model_name_of``),
            recorded by ``nt pretrain`` (its output folder's name); None: the name is taken from the folder or
            preset the model was loaded from. ``_name_or_path`` cannot serve: transformers does not save it.
    """

    model_type = "nucleotide_transformer"

    vocab_size: int = 4107
    tokenizer_version: str = "v2"
    hidden_size: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 16
    intermediate_size: int = 2048
    position_embedding_type: str = "rotary"
    max_position_embeddings: int = 2050
    rotary_base: float = 10000.0
    rotary_rescaling_factor: float = 1.0
    ffn_activation: str = "swiglu"
    add_bias_ffn: bool = False
    token_dropout: bool = False
    mask_ratio_train: float = 0.15 * 0.8
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pooling: str = "cls"
    classifier_dropout: float = 0.0
    pad_token_id: int | None = 1
    mask_token_id: int | None = 2
    cls_token_id: int | None = 3
    tie_word_embeddings: bool = False
    trained_max_tokens: int | None = None
    model_name: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self._check_choices()
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)

    def _check_choices(self) -> None:
        choices = {
            "tokenizer_version": ("v1", "v2"),
            "position_embedding_type": ("absolute", "rotary"),
            "ffn_activation": ("gelu", "gelu_pytorch_tanh", "swiglu"),
            "pooling": ("cls", "mean"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"NTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens, ``<cls>`` included: the position table minus the ESM offset rows
        (1000 for v1, 2048 for v2; rotary models take longer inputs with ``rotary_rescaling_factor``)."""
        return self.max_position_embeddings - self.pad_token_id - 1

    @property
    def default_window_tokens(self) -> int:
        """Tokens per window (``<cls>`` included) that long inputs are cut into by default (``nt embed``,
        ``nt score-variants``, probing): the context the model was trained at (``trained_max_tokens``), not
        above :attr:`max_tokens`; where that is unknown (None), :attr:`max_tokens`. The one home of this rule.
        """
        trained = self.trained_max_tokens
        return min(trained, self.max_tokens) if trained else self.max_tokens

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> NTConfig:
        """The configuration of a named preset (see ``PRESETS``), with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown NT preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path: Any, **kwargs: Any
    ) -> tuple[dict[str, Any], dict]:
        """As ``PreTrainedConfig.get_config_dict`` (a folder or a Hub id, through ``huggingface_hub``), except that
        the ``config.json`` of an official checkpoint (:func:`official_layout`) is converted into ours
        (:func:`config_from_hub`), so ``NTConfig.from_pretrained("InstaDeepAI/<repo>")`` gives the NT config of
        that model. No code of the official repository is fetched or run."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        layout = official_layout(config_dict)
        if layout is not None:
            file = f"{pretrained_model_name_or_path}/config.json"
            config_dict = config_from_hub(
                config_dict, layout, file
            ).to_diff_dict()  # no id2label: num_labels free
        return config_dict, kwargs


#: Layouts of the official Hub checkpoints (``model_type: esm``) that the NT classes convert on load: ``esm``
#: (v1 repos, stock ESM) and ``nt-v2-hub`` (v2 repos, InstaDeep's remote-code ESM variant, whose code never runs).
OFFICIAL_LAYOUTS = ("esm", "nt-v2-hub")
#: Integer fields the ``config.json`` of an official checkpoint must have.
_HUB_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def official_layout(config_dict: dict[str, Any]) -> str | None:
    """The official layout (``OFFICIAL_LAYOUTS``) of a checkpoint ``config.json`` (as a dict): ``"esm"`` (v1 Hub:
    ``model_type: esm``, learned positions), ``"nt-v2-hub"`` (v2 Hub: ``model_type: esm`` with rotary
    positions or an ``auto_map`` to the remote ``esm_config``), else None (ours, or another model)."""
    if config_dict.get("model_type") != "esm":
        return None
    remote_v2 = "esm_config" in str(config_dict.get("auto_map") or {})
    return "nt-v2-hub" if remote_v2 or config_dict.get("position_embedding_type") == "rotary" else "esm"


def require_int_fields(values: dict[str, Any], names: tuple[str, ...], file: Any) -> None:
    """Raise a one-line ValueError naming ``file`` if a field of ``names`` is missing or not an integer."""
    for name in names:
        if name not in values:
            raise ValueError(f"{file}: required field {name!r} is missing")
        if not isinstance(values[name], int) or isinstance(values[name], bool):
            raise ValueError(f"{file}: field {name!r} must be an integer, got {values[name]!r}")


def config_from_hub(hub_config: dict[str, Any], source: str, file: Any = "config.json") -> NTConfig:
    """Our config from an ESM (v1, ``source="esm"``) or v2 remote-code (``"nt-v2-hub"``) Hub ``config.json``
    (``file``: its name in errors). Raises ValueError (one line naming ``file``) for a config that is not an
    NT architecture."""
    require_int_fields(hub_config, _HUB_REQUIRED, file)
    if hub_config.get("emb_layer_norm_before"):
        raise ValueError(f"{file}: emb_layer_norm_before=true is not an NT architecture")
    position_type = hub_config.get("position_embedding_type", "absolute")
    if source == "esm" and position_type != "absolute":
        raise ValueError(f"{file}: position_embedding_type {position_type!r}: use --from nt-v2-hub")
    if source == "nt-v2-hub" and position_type != "rotary":
        raise ValueError(f"{file}: position_embedding_type {position_type!r}: use --from esm")
    is_v2 = source == "nt-v2-hub"
    config = NTConfig(
        tokenizer_version="v2" if is_v2 else "v1",
        vocab_size=hub_config["vocab_size"],
        hidden_size=hub_config["hidden_size"],
        num_hidden_layers=hub_config["num_hidden_layers"],
        num_attention_heads=hub_config["num_attention_heads"],
        intermediate_size=hub_config["intermediate_size"],
        position_embedding_type=position_type,
        max_position_embeddings=hub_config.get("max_position_embeddings", 1002),
        ffn_activation="swiglu" if is_v2 else "gelu",
        add_bias_ffn=hub_config.get("add_bias_fnn", not is_v2),
        token_dropout=hub_config.get("token_dropout", False),
        layer_norm_eps=hub_config.get("layer_norm_eps", 1e-12),
        pad_token_id=hub_config.get("pad_token_id", 1),
        mask_token_id=hub_config.get("mask_token_id", 2),
    )
    return with_published_context(config)


def with_published_context(config: NTConfig) -> NTConfig:
    """``config`` with ``trained_max_tokens`` set to the published context of its generation
    (``PUBLISHED_CONTEXT_TOKENS``: v1 1000, v2 2048 tokens) when its context is that of the released models;
    another context (not an official architecture) stays unknown (None: windows default to ``max_tokens``)."""
    published = PUBLISHED_CONTEXT_TOKENS[config.tokenizer_version]
    config.trained_max_tokens = published if config.max_tokens == published else None
    return config
