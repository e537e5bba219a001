"""Save a complete NT checkpoint: config with a full ``auto_map``, safetensors weights, code files, tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import tokenizer_for
from .configuration_nt import AUTO_MAP

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .modeling_nt import NTPreTrainedModel


def save_checkpoint(
    model: NTPreTrainedModel, out_dir: str | Path, tokenizer: PreTrainedTokenizerBase | None = None
) -> Path:
    """Write ``model`` to ``out_dir`` so that it loads with any NT Auto class, also where this package is not
    installed (``trust_remote_code=True``): ``config.json`` (full ``auto_map``), ``model.safetensors``,
    ``configuration_nt.py``/``modeling_nt.py`` and the tokenizer files (``tokenizer_for(model.config)`` when
    ``tokenizer`` is None). Returns the directory."""
    out_dir = Path(out_dir)
    model.config.auto_map = {**AUTO_MAP, **(getattr(model.config, "auto_map", None) or {})}
    model.save_pretrained(out_dir, safe_serialization=True)
    (tokenizer if tokenizer is not None else tokenizer_for(model.config)).save_pretrained(out_dir)
    return out_dir
