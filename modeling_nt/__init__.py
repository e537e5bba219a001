"""Nucleotide Transformer models on the Hugging Face stack.

Importing this package registers the NT classes with the ``transformers`` Auto classes, so our checkpoints load
without ``trust_remote_code``; saved checkpoints carry the code files and a full ``auto_map`` so they also load
where this package is not installed (``trust_remote_code=True``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_nt import HUB_IDS, PRESETS, NTConfig
from .configuration_ntv3 import NTv3Config
from .configuration_segment_nt import SegmentNTConfig
from .modeling_nt import (
    NTForMaskedLM,
    NTForSequenceClassification,
    NTForTokenClassification,
    NTModel,
    NTPreTrainedModel,
)
from .modeling_ntv3 import (
    NTv3ForMaskedLM,
    NTv3ForSequenceClassification,
    NTv3ForTokenClassification,
    NTv3ForTracksPrediction,
    NTv3Model,
)
from .modeling_segment_nt import NTForSegmentation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Each model type and the Auto classes its models load with. SegmentNT has per-nucleotide outputs, so its Auto
#: class is AutoModelForTokenClassification. NTv3 uses the same Auto classes as NT v1/v2; a post-trained NTv3
#: checkpoint's auto_map sends AutoModel to NTv3ForTracksPrediction (remote code, as the official Hub repos); in
#: process, load it by its class.
_AUTO_CLASSES: dict[type, dict[type, type]] = {
    NTConfig: {
        AutoModel: NTModel,
        AutoModelForMaskedLM: NTForMaskedLM,
        AutoModelForSequenceClassification: NTForSequenceClassification,
        AutoModelForTokenClassification: NTForTokenClassification,
    },
    SegmentNTConfig: {AutoModelForTokenClassification: NTForSegmentation},
    NTv3Config: {
        AutoModel: NTv3Model,
        AutoModelForMaskedLM: NTv3ForMaskedLM,
        AutoModelForSequenceClassification: NTv3ForSequenceClassification,
        AutoModelForTokenClassification: NTv3ForTokenClassification,
    },
}
for _config_class, _classes in _AUTO_CLASSES.items():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    _config_class.register_for_auto_class()
    for _auto_class, _model_class in _classes.items():
        _auto_class.register(_config_class, _model_class, exist_ok=True)
        _model_class.register_for_auto_class(_auto_class.__name__)
NTv3ForTracksPrediction.register_for_auto_class("AutoModel")  # its checkpoints' AutoModel (code files saved)


def generation_of(config: Any) -> str:
    """The NT generation of a model config (or of a model: its ``config``): ``"v3"`` for an NTv3 config
    (``model_type == "ntv3"``), else the config's 6-mer layout ``tokenizer_version`` (``"v1"`` / ``"v2"``). The
    one place that tells the generations apart; everything generation-dependent asks it."""
    config = getattr(config, "config", config)
    if getattr(config, "model_type", None) == NTv3Config.model_type:
        return "v3"
    return config.tokenizer_version


def tokenizer_for(config: NTConfig) -> PreTrainedTokenizerBase:
    """The fast tokenizer matching ``config``: id layout ``config.tokenizer_version``, and a maximum length of
    ``config.max_tokens`` tokens (1000 for v1, 2048 for v2).

    NTv3 (``config.model_type == "ntv3"``): the single-base tokenizer, padding batches with ``<pad>`` to a
    multiple of ``2 ** config.num_downsamples``; maximum length ``config.max_tokens`` where the config has
    one, else 1 Mb (:func:`tokenization.build_ntv3_tokenizer`)."""
    if generation_of(config) == "v3":
        from tokenization import build_ntv3_tokenizer

        return build_ntv3_tokenizer(
            model_max_length=getattr(config, "max_tokens", None), pad_to_multiple_of=2**config.num_downsamples
        )
    from tokenization import build_tokenizer

    return build_tokenizer(version=config.tokenizer_version, model_max_length=config.max_tokens)


__all__ = [
    "HUB_IDS",
    "PRESETS",
    "NTConfig",
    "NTForMaskedLM",
    "NTForSegmentation",
    "NTForSequenceClassification",
    "NTForTokenClassification",
    "NTModel",
    "NTPreTrainedModel",
    "NTv3Config",
    "NTv3ForMaskedLM",
    "NTv3ForSequenceClassification",
    "NTv3ForTokenClassification",
    "NTv3ForTracksPrediction",
    "NTv3Model",
    "SegmentNTConfig",
    "generation_of",
    "tokenizer_for",
]
