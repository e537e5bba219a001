"""Conversion of the official SegmentNT checkpoints (``nt convert --from segment-nt-jax|segment-nt-hub``).

- ``segment-nt-jax``: a folder with ``hyperparams.json`` (the NT v2 fields plus ``features`` and
  ``rescaling_factor``) and the Haiku ``pytree_ckpt.joblib``. The backbone modules are those of the NT JAX
  checkpoints (root ``dcnuc_v2_500M_multi_species``, mapped by ``modeling_nt.convert``); the head's root is
  ``u_net_head`` (the official loader renames it), with ``~/unet1_d_segmentation_head/~/downsample_block_{i}/~/
  conv{j}``, ``.../upsample_block_{i}/~/conv_transpose{j}``, ``.../final_conv1_d/~/conv{j}`` and ``~/fc``. Haiku
  convolution kernels are ``[K, in, out]`` (``Conv1D``) and ``[K, out, in]`` (``Conv1DTranspose``, applied
  without flipping, i.e. a cross-correlation); ours are PyTorch's ``[out, in, K]`` and ``ConvTranspose1d``'s
  ``[in, out, K]`` (a flipped-kernel correlation), so transposed kernels are also reversed along K. The LM head
  of the backbone is stored but unused (dropped, listed in the report).
- ``segment-nt-hub``: a Hub remote-code folder: ``config.json`` (``model_type: esm`` with rotary positions, plus
  ``features`` (the first revisions have only ``num_features: 14``), ``num_layers_head`` (U-Net levels, checked
  against the weights), ``rescaling_factor`` (``null`` in the first revisions: no rescaling, as their remote
  code reads it; 2.44140625 later)) and weights named ``esm.*`` (the v2 backbone table of
  ``modeling_nt._HUB_KEYS``), ``unet._downsample_blocks.{i}.conv_layers.{j}``, ``unet._upsample_blocks.{i}.
  conv_layers.{j}``, ``unet.final_block.conv_layers.{j}`` and ``fc``, all in PyTorch layout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .configuration_nt import config_from_hub, official_layout
from .configuration_segment_nt import (
    SEGMENT_NT_CONTEXT_TOKENS,
    SEGMENT_NT_FEATURES,
    SEGMENT_NT_RESCALING_FACTOR,
    SegmentNTConfig,
)
from .convert import (
    _JAX_PARAMS,
    _hub_state_dict,
    _jax_module_path,
    _jax_state_dict,
    _load_joblib,
    _read_json,
    hyperparams_to_config,
    load_torch_state_dict,
)
from .modeling_segment_nt import NTForSegmentation

SEGMENT_SOURCES = ("segment-nt-jax", "segment-nt-hub")

_JAX_HEAD = [
    (
        re.compile(r"~/unet1_d_segmentation_head/~/downsample_block_(\d+)/~/conv(\d+)"),
        "head.down_blocks.{}.convs.{}",
    ),
    (
        re.compile(r"~/unet1_d_segmentation_head/~/upsample_block_(\d+)/~/conv_transpose(\d+)"),
        "head.up_blocks.{}.convs.{}",
    ),
    (re.compile(r"~/unet1_d_segmentation_head/~/final_conv1_d/~/conv(\d+)"), "head.final_block.convs.{}"),
    (re.compile(r"~/fc"), "head.fc"),
]
_HUB_HEAD = [
    (
        re.compile(r"unet\._downsample_blocks\.(\d+)\.conv_layers\.(\d+)\.(weight|bias)"),
        "head.down_blocks.{}.convs.{}.{}",
    ),
    (
        re.compile(r"unet\._upsample_blocks\.(\d+)\.conv_layers\.(\d+)\.(weight|bias)"),
        "head.up_blocks.{}.convs.{}.{}",
    ),
    (re.compile(r"unet\.final_block\.conv_layers\.(\d+)\.(weight|bias)"), "head.final_block.convs.{}.{}"),
    (re.compile(r"fc\.(weight|bias)"), "head.fc.{}"),
]
#: Backbone modules stored in the JAX checkpoint but not used by SegmentNT (the masked-LM head).
_JAX_UNUSED = re.compile(r"~/(esm_)?roberta_lm_head/~/(lm_head_fc_1|lm_head_layer_norm|lm_final_fc)")


def _features(values: dict[str, Any], file: Path) -> list[str]:
    """The class names: the ``features`` list, or (Hub ``config.json`` of the first ``InstaDeepAI/segment_nt``
    revisions, which has only ``"num_features": 14``) the 14 released classes. A ``num_features`` that
    disagrees with the list is refused."""
    features, count = values.get("features"), values.get("num_features")
    if features is None and count == len(SEGMENT_NT_FEATURES):
        return list(SEGMENT_NT_FEATURES)
    if not isinstance(features, list) or not features or not all(isinstance(name, str) for name in features):
        raise ValueError(f"{file}: no 'features' list of class names: not a SegmentNT checkpoint")
    if count is not None and count != len(features):
        raise ValueError(f"{file}: num_features is {count!r} but 'features' lists {len(features)} classes")
    return features


def _rescaling_factor(values: dict[str, Any], file: Path) -> float:
    factor = values.get("rescaling_factor", SEGMENT_NT_RESCALING_FACTOR)
    if factor is None:
        return 1.0
    if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 0:
        raise ValueError(f"{file}: rescaling_factor must be a positive number, got {factor!r}")
    return float(factor)


def _segment_config(
    backbone: Any, features: list[str], factor: float, state: dict[str, torch.Tensor], file: Path
):
    """Our SegmentNT config: the backbone config, the class list and the head widths read off the weights."""
    downs = sorted({int(key.split(".")[2]) for key in state if key.startswith("head.down_blocks.")})
    if not downs or downs != list(range(len(downs))):
        raise ValueError(f"{file}: the weights have no U-Net downsample blocks 0..n (found {downs})")
    channels = [int(state[f"head.down_blocks.{i}.convs.0.weight"].shape[0]) for i in range(len(downs))]
    fields = {**backbone.to_dict(), "rotary_rescaling_factor": factor}
    for name in ("model_type", "auto_map", "transformers_version", "architectures", "dtype"):
        fields.pop(name, None)
    fields["trained_max_tokens"] = SEGMENT_NT_CONTEXT_TOKENS
    fields["max_position_embeddings"] = max(fields["max_position_embeddings"], SEGMENT_NT_CONTEXT_TOKENS + 2)
    return SegmentNTConfig(**fields, features=features, num_downsamples=len(downs), head_channels=channels)


def _jax_head(params: dict[str, dict[str, np.ndarray]], file: Path) -> tuple[dict, dict, list[str]]:
    """Split the Haiku params into backbone modules, our head tensors and the unused module names."""
    backbone, head, unused = {}, {}, []
    for module_path, module_params in params.items():
        path = _jax_module_path(module_path)
        if _JAX_UNUSED.fullmatch(path):
            unused += [f"{module_path}/{name}" for name in module_params]
            continue
        match, target = next(
            ((p.fullmatch(path), t) for p, t in _JAX_HEAD if p.fullmatch(path)), (None, None)
        )
        if match is None:
            backbone[module_path] = module_params
            continue
        prefix = target.format(*match.groups())
        for name, array in module_params.items():
            if name not in ("w", "b") or np.asarray(array).dtype.kind not in "fiu":
                raise ValueError(f"{file}: unexpected Haiku parameter {module_path}/{name}")
            value = np.asarray(array, dtype=np.float32)
            if name == "w" and prefix == "head.fc":
                value = value.T
            elif name == "w" and ".up_blocks." in prefix:
                value = value[::-1].transpose(
                    2, 1, 0
                )  # [K, out, in] correlation -> [in, out, K] transposed conv
            elif name == "w":
                value = value.transpose(2, 1, 0)  # [K, in, out] -> [out, in, K]
            head[f"{prefix}.{_JAX_PARAMS[name]}"] = torch.from_numpy(np.ascontiguousarray(value))
    return backbone, head, unused


def _load_jax(src: Path, layer_norm_eps: float | None) -> tuple[SegmentNTConfig, dict, list[str], int]:
    hyperparams_file, params_file = src / "hyperparams.json", src / "pytree_ckpt.joblib"
    if not hyperparams_file.is_file():
        raise FileNotFoundError(
            f"{src}: no hyperparams.json (a SegmentNT JAX folder has it and pytree_ckpt.joblib)"
        )
    hyperparams = _read_json(hyperparams_file)
    features = _features(hyperparams, hyperparams_file)
    factor = _rescaling_factor(hyperparams, hyperparams_file)
    backbone_config = hyperparams_to_config(hyperparams, layer_norm_eps or 1e-5, hyperparams_file)
    params = _load_joblib(params_file)
    backbone_params, head, unused = _jax_head(params, params_file)
    state = _jax_state_dict(backbone_params, params_file) | head
    config = _segment_config(backbone_config, features, factor, state, hyperparams_file)
    return config, state, unused, sum(len(module) for module in params.values())


def _load_hub(src: Path, layer_norm_eps: float | None) -> tuple[SegmentNTConfig, dict, list[str], int]:
    config_file = src / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{src}: no config.json (a SegmentNT Hub folder has it and the weights)")
    hub_config = _read_json(config_file)
    if official_layout(hub_config) != "nt-v2-hub":
        raise ValueError(
            f"{config_file}: model_type {hub_config.get('model_type')!r} with position_embedding_type "
            f"{hub_config.get('position_embedding_type')!r} is not a SegmentNT Hub config (esm, rotary)"
        )
    features = _features(hub_config, config_file)
    factor = _rescaling_factor(hub_config, config_file)
    backbone_config = config_from_hub(hub_config, "nt-v2-hub", config_file)
    if layer_norm_eps is not None:
        backbone_config.layer_norm_eps = layer_norm_eps
    source_state = load_torch_state_dict(src)
    head, backbone, unused = {}, {}, []
    for key, tensor in source_state.items():
        match, target = next(((p.fullmatch(key), t) for p, t in _HUB_HEAD if p.fullmatch(key)), (None, None))
        if match is not None:
            head[target.format(*match.groups())] = tensor
        elif key.startswith("lm_head."):
            unused.append(key)
        else:
            backbone[key] = tensor
    state, ignored = _hub_state_dict(backbone, backbone_config)
    state = {key: value for key, value in state.items() if key.startswith("nt.")} | head
    config = _segment_config(backbone_config, features, factor, state, config_file)
    levels = hub_config.get("num_layers_head")
    if levels is not None and levels != config.num_downsamples:
        raise ValueError(
            f"{config_file}: num_layers_head is {levels!r} but the weights hold {config.num_downsamples} "
            "U-Net downsample blocks"
        )
    return config, state, unused + ignored, len(source_state)


def load_segment_source(
    source: str, src: str | Path, layer_norm_eps: float | None = None
) -> tuple[Any, dict]:
    """Read the official SegmentNT checkpoint folder ``src`` of layout ``source`` (``segment-nt-jax`` or
    ``segment-nt-hub``); returns our :class:`NTForSegmentation` (fp32, eval) and the report fields. Raises
    ValueError / FileNotFoundError (one line naming the file) for a folder that is not that layout, a tensor
    that is not used, or a weight that is missing or of the wrong shape."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"no such folder: {src}")
    load = _load_jax if source == "segment-nt-jax" else _load_hub
    config, state, unused, num_source = load(src, layer_norm_eps)
    fc_rows = state["head.fc.weight"].shape[0] if "head.fc.weight" in state else None
    per_class = config.nucleotides_per_token * 2
    if fc_rows is not None and fc_rows != per_class * config.num_classes:
        raise ValueError(
            f"{src}: the final layer head.fc gives {fc_rows} outputs = {fc_rows / per_class:g} classes x 6 x 2, "
            f"but the config lists {config.num_classes} features"
        )
    with torch.device("meta"):
        model = NTForSegmentation(config)
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise ValueError(
            f"{src}: weights do not fit the SegmentNT layout: missing {missing[:4]}, unexpected {extra[:4]}"
        )
    tensors = {key: tensor.to(torch.float32).contiguous() for key, tensor in state.items()}
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:
        first = next(
            (line.strip() for line in str(error).splitlines() if "size mismatch" in line), str(error)
        )
        raise ValueError(f"{src}: weights do not fit the head widths: {first}") from None
    model.nt.rotary_emb.inv_freq = model.nt.rotary_emb.compute_inv_freq(config)
    fields = {
        "source": source,
        "num_source_tensors": num_source,
        "ignored_keys": sorted(unused),
        "tied_keys": {},
    }
    return model.eval(), fields
