"""Save a complete NT checkpoint: config with a full ``auto_map``, safetensors weights, code files, tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import tokenizer_for
from .configuration_nt import AUTO_MAP

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .configuration_nt import NTConfig
    from .modeling_nt import NTPreTrainedModel


def save_checkpoint(
    model: NTPreTrainedModel, out_dir: str | Path, tokenizer: PreTrainedTokenizerBase | None = None
) -> Path:
    """Write ``model`` to ``out_dir`` so that it loads with any NT Auto class, also where this package is not
    installed (``trust_remote_code=True``): ``config.json`` (full ``auto_map``), ``model.safetensors``,
    ``configuration_nt.py``/``modeling_nt.py`` and the tokenizer files (``tokenizer_for(model.config)`` when
    ``tokenizer`` is None). Returns the directory."""
    out_dir = Path(out_dir)
    had_auto_map, auto_map = hasattr(model.config, "auto_map"), getattr(model.config, "auto_map", None)
    full_map = getattr(model.config, "checkpoint_auto_map", AUTO_MAP)  # SegmentNT, NTv3: their own classes
    model.config.auto_map = {**full_map, **(auto_map or {})}
    try:
        model.save_pretrained(out_dir, safe_serialization=True)
    finally:  # the caller's config is left as it was
        if had_auto_map:
            model.config.auto_map = auto_map
        else:
            del model.config.auto_map
    save_tokenizer(model.config, out_dir, tokenizer)
    return out_dir


def save_tokenizer(
    config: NTConfig, out_dir: str | Path, tokenizer: PreTrainedTokenizerBase | None = None
) -> Path:
    """Write the tokenizer files of a checkpoint (``tokenizer_for(config)`` when ``tokenizer`` is None) into
    ``out_dir``, so that ``AutoTokenizer.from_pretrained(out_dir)`` loads it. Used where the weights are written
    by another writer (``Trainer.save_model`` in pretraining). Returns the directory."""
    out_dir = Path(out_dir)
    (tokenizer if tokenizer is not None else tokenizer_for(config)).save_pretrained(out_dir)
    return out_dir
