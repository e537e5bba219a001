"""Conversion of the official NTv3 checkpoints (``nt convert --from ntv3-jax|ntv3-hub``) into
``NTv3ForMaskedLM`` (pre-trained) or ``NTv3ForTracksPrediction`` (post-trained, species-conditioned).

Two source layouts:

- ``ntv3-jax``: a folder with ``params.npz`` (the Flax NNX parameter state of the official JAX model, keyed by
  its '.'-joined paths: ``embed_layer.embedding``, ``conv_tower_blocks.0.conv.conv.kernel``,
  ``transformer_blocks.1.sa_layer.query_head.linear.kernel``, ``lm_head.head.kernel``,
  ``conditions_embed_layers.0.embedding``, ``bigwig_head.species_heads.2.head.kernel``, ...) and
  ``config.json`` (the fields of the official ``NTv3PreTrainedConfig`` / ``NTv3PostTrainedConfig``). Export
  them from a loaded official model (``model``, e.g. from ``nucleotide_transformer_v3.pretrained``) with::

      import dataclasses, json
      import numpy as np
      from flax import nnx, traverse_util

      flat = traverse_util.flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
      np.savez("SRC/params.npz", **{".".join(map(str, p)): np.asarray(v, np.float32) for p, v in flat.items()})
      with open("SRC/config.json", "w") as f:
          json.dump(dataclasses.asdict(model.config), f, default=str)

  Layouts: ``Linear.kernel`` [in, out]; ``Conv.kernel`` [k, in, out]; the stride-2 transposed convolution's
  ``kernel`` [k, out, in] (``lax.conv_transpose``, kernel not flipped) and the up tower's kernel-1 residual
  ``kernel`` [1, out, in] (a stride-1 transposed convolution); ``LayerNorm.scale``/``bias``;
  ``Embed.embedding`` [vocab, dim].
- ``ntv3-hub``: a Hub remote-code folder (``InstaDeepAI/NTv3_*_pre`` / ``NTv3_*_post``): ``config.json`` (the same
  official field names; ``model_type`` ``ntv3`` or ``ntv3_posttrained``) and ``model.safetensors`` /
  ``pytorch_model.bin`` with ``core.*`` keys in PyTorch layout. Each tensor is first mapped to its official
  JAX path by the inverse of the official loader's rules (``nucleotide_transformer_v3/pretrained.py``: conv
  weights ``transpose(2, 1, 0)``, Linear weights ``.T``, ``layer_norm.weight`` -> ``scale``, ``cond_tables`` ->
  ``conditions_embed_layers``), then converted as ``ntv3-jax``; the rotary ``inv_freq`` buffers are dropped.

Our layout: ``nn.Linear`` [out, in] (kernel transposed); ``nn.Conv1d`` [out, in, k] (stem, down tower,
``repeat+conv`` upsampling); the ``conv_transpose`` upsampling is a ``ConvTranspose1d`` [in, out, k] holding the
official kernel transposed AND reversed along k (``NTv3TransposedConv``); the up tower's residual is a
``Conv1d`` [out, in, 1]. Species head ``s`` of the official bigwig head (species sorted by token id, species
without tracks keeping their index) becomes ``track_heads.<species name>``.

Config: the official fields (``alphabet_size`` or ``vocab_size``, ``embed_dim`` or ``hidden_size``,
``num_layers``, ``attention_heads``, ``ffn_embed_dim``, ``token_embed_dim``, ``conv_init_embed_dim``,
``num_downsamples``, ``layer_norm_eps``, ``num_hidden_layers_head``, ``use_skip_connection``; post-trained:
``conditions_vocab_size``, ``conditions_names``, ``species_to_token_id``, ``bigwigs_per_species``,
``bed_elements_names``, ``keep_target_center_fraction``, ``num_species_special_tokens``) become
:class:`NTv3Config`'s; a missing field is refused, except ``deconv_upsample_type``, which defaults to
``conv_transpose`` as in the official config parser (``pretrained.parse_hf_config_to_ntv3_config``). The official
model picks a row's track head by ``species token - num_species_special_tokens``: a ``bigwigs_per_species`` whose
species, sorted by token, do not have the tokens 6, 7, ... (a species left out) is refused.

Every source tensor is used exactly once: a missing, unexpected or mis-shaped tensor is one error line naming
the file and key.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .configuration_ntv3 import UPSAMPLE_TYPES, NTv3Config
from .convert import _read_json, load_torch_state_dict
from .modeling_ntv3 import NTv3ForMaskedLM, NTv3ForTracksPrediction, NTv3TransposedConv

NTV3_SOURCES = ("ntv3-jax", "ntv3-hub")
PARAMS_FILE = "params.npz"
#: ``model_type`` of the official Hub configs (pre-trained, conditioned, post-trained).
HUB_MODEL_TYPES = ("ntv3", "ntv3_conditioned", "ntv3_posttrained")

#: Our config field <- the official names (first found wins) of the fields that fix the architecture.
_REQUIRED_INTS = {
    "vocab_size": ("alphabet_size", "vocab_size"),
    "hidden_size": ("embed_dim", "hidden_size"),
    "num_hidden_layers": ("num_layers", "num_hidden_layers"),
    "num_attention_heads": ("attention_heads", "num_attention_heads"),
    "intermediate_size": ("ffn_embed_dim", "intermediate_size"),
    "token_embed_dim": ("token_embed_dim",),
    "conv_init_embed_dim": ("conv_init_embed_dim",),
    "num_downsamples": ("num_downsamples",),
    "num_lm_head_hidden_layers": ("num_hidden_layers_head",),
}
#: Post-trained fields the official ``NTv3PostTrainedConfig`` holds (all required here).
_POST_FIELDS = {
    "species_to_token_id": dict,
    "bigwigs_per_species": dict,
    "bed_elements_names": list,
    "keep_target_center_fraction": (int, float),
    "num_species_special_tokens": int,
}


def ntv3_layout(config: dict[str, Any], folder: Path) -> str | None:
    """``"ntv3-hub"`` for an official NTv3 Hub ``config.json`` (an official ``model_type`` with the official
    field ``embed_dim``, or an ``auto_map`` to the official remote code), ``"ntv3-jax"`` for an official JAX
    export (no ``model_type``; ``num_downsamples`` in ``config.json`` or a ``params.npz`` beside it), else None."""
    model_type = config.get("model_type")
    remote = str(config.get("auto_map") or "")
    if model_type in HUB_MODEL_TYPES and ("embed_dim" in config or "modeling_ntv3_p" in remote):
        return "ntv3-hub"
    if model_type is None and ("num_downsamples" in config or (folder / PARAMS_FILE).is_file()):
        return "ntv3-jax"
    return None


def _field(values: dict[str, Any], names: tuple[str, ...], file: Path) -> Any:
    for name in names:
        if name in values and values[name] is not None:
            return values[name]
    raise ValueError(f"{file}: required field {names[0]!r} is missing (it fixes the architecture)")


def _typed(value: Any, kind: type | tuple[type, ...], name: str, file: Path) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{file}: field {name!r} has the wrong type: {value!r}")
    return value


def official_config(values: dict[str, Any], file: Path) -> NTv3Config:
    """Our :class:`NTv3Config` from the official config fields ``values`` (a JAX export's or a Hub
    ``config.json``; ``file`` names it in errors). Raises ValueError (one line) for a missing or ill-typed field,
    an unsupported ``deconv_upsample_type`` / ``deconv_phase`` / ``key_size``, or more than one condition."""
    fields: dict[str, Any] = {
        ours: _typed(_field(values, names, file), int, names[0], file)
        for ours, names in _REQUIRED_INTS.items()
    }
    fields["layer_norm_eps"] = _typed(
        _field(values, ("layer_norm_eps",), file), (int, float), "layer_norm_eps", file
    )
    fields["use_skip_connection"] = _typed(
        _field(values, ("use_skip_connection",), file), bool, "use_skip_connection", file
    )
    upsample = values.get("deconv_upsample_type") or "conv_transpose"  # the official parser's default
    if upsample not in UPSAMPLE_TYPES:
        raise ValueError(f"{file}: deconv_upsample_type {upsample!r} is not one of {UPSAMPLE_TYPES}")
    fields["upsample_type"] = upsample
    if values.get("deconv_phase", "odd") != "odd":
        raise ValueError(f"{file}: deconv_phase {values['deconv_phase']!r} is not supported (only 'odd')")
    key_size, heads = values.get("key_size"), fields["num_attention_heads"]
    if key_size is not None and _typed(key_size, int, "key_size", file) * heads != fields["hidden_size"]:
        raise ValueError(
            f"{file}: key_size {key_size} x {heads} heads != embed_dim {fields['hidden_size']} (not supported)"
        )
    for name in ("pad_token_id", "mask_token_id"):
        if values.get(name) is not None:
            fields[name] = _typed(values[name], int, name, file)
    if values.get("conditions_vocab_size") is not None:
        fields.update(_post_fields(values, file))
    try:
        config = NTv3Config(**fields)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{file}: {error}") from None
    _check_head_order(config, file)
    return config


def _check_head_order(config: NTv3Config, file: Path) -> None:
    """The official model picks a row's track head by ``species token - num_species_special_tokens`` and orders
    the heads by species token: the two agree (and match our per-species heads) only when the species of
    ``bigwigs_per_species``, sorted by token, have the tokens ``num_species_special_tokens, +1, ...``."""
    for index, (species, _) in enumerate(config.species_heads):
        token = config.species_to_token_id[species]
        if token != config.num_species_special_tokens + index:
            raise ValueError(
                f"{file}: species {species!r} (token {token}) is head {index} of bigwigs_per_species, but the "
                f"official model reads head {token - config.num_species_special_tokens} for it: list every species "
                "(also those without tracks) in bigwigs_per_species"
            )


def _post_fields(values: dict[str, Any], file: Path) -> dict[str, Any]:
    sizes = _typed(values["conditions_vocab_size"], list, "conditions_vocab_size", file)
    if len(sizes) != 1:
        raise ValueError(
            f"{file}: conditions_vocab_size {sizes}: only the species-conditioned models (one condition) convert"
        )
    post = {}
    for name, kind in _POST_FIELDS.items():
        if values.get(name) is None:
            raise ValueError(f"{file}: required field {name!r} of a post-trained config is missing")
        post[name] = _typed(values[name], kind, name, file)
    return {
        "condition_vocab_sizes": [_typed(size, int, "conditions_vocab_size", file) for size in sizes],
        "condition_names": values.get("conditions_names") or None,
        "species_to_token_id": post["species_to_token_id"],
        "bigwig_tracks_per_species": post["bigwigs_per_species"],
        "bed_element_names": post["bed_elements_names"],
        "keep_target_center_fraction": float(post["keep_target_center_fraction"]),
        "num_species_special_tokens": post["num_species_special_tokens"],
    }


# --- official parameter paths <- our modules -------------------------------------------------------------------

_TOWERS = (("down_blocks", "conv_tower_blocks"), ("up_blocks", "deconv_tower_blocks"))


def _module_table() -> list[tuple[re.Pattern[str], str]]:
    """Our module path (regex) -> the official module path (``str.format`` of the match groups)."""
    table = {
        r"ntv3\.embed_tokens": "embed_layer",
        r"ntv3\.condition_embeddings\.(\d+)": "conditions_embed_layers.{0}",
        r"ntv3\.stem": "stem.conv",
        r"ntv3\.layers\.(\d+)\.attention_layer_norm": "transformer_blocks.{0}.self_attention_layer_norm",
        r"ntv3\.layers\.(\d+)\.ffn_layer_norm": "transformer_blocks.{0}.final_layer_norm",
        r"ntv3\.layers\.(\d+)\.attention\.(query|key|value)": "transformer_blocks.{0}.sa_layer.{1}_head.linear",
        r"ntv3\.layers\.(\d+)\.attention\.output": "transformer_blocks.{0}.sa_layer.mha_output",
        r"ntv3\.layers\.(\d+)\.ffn\.(fc1|fc2)": "transformer_blocks.{0}.{1}",
        r"ntv3\.layers\.(\d+)\.ffn_gate\.gates\.(\d+)": "transformer_blocks.{0}.modulation_layers.{1}",
        r"lm_head\.hidden_layers\.(\d+)": "lm_head.hidden_layers.{0}",
        r"lm_head\.decoder": "lm_head.head",
        r"condition_heads\.(\d+)": "conditions_heads.{0}",
        r"track_heads\.([^.]+)\.layer_norm": "bigwig_head.species_heads.{0}.layer_norm",
        r"track_heads\.([^.]+)\.linear": "bigwig_head.species_heads.{0}.head",
        r"annotation_head\.layer_norm": "bed_head.layer_norm",
        r"annotation_head\.linear": "bed_head.head",
    }
    names = {"attention_layer_norm": "self_attention_layer_norm", "ffn_layer_norm": "final_layer_norm"}
    for ours, official in names.items():
        table[rf"ntv3\.layers\.(\d+)\.{ours}\.modulations\.(\d+)"] = (
            f"transformer_blocks.{{0}}.{official}.modulation_layers.{{1}}"
        )
    for ours, official in _TOWERS:
        prefix = rf"ntv3\.{ours}\.(\d+)"
        table |= {
            rf"{prefix}\.conv_block\.layer_norm": official + ".{0}.conv.layer_norm",
            rf"{prefix}\.conv_block\.layer_norm\.modulations\.(\d+)": official
            + ".{0}.conv.layer_norm.modulation_layers.{1}",
            rf"{prefix}\.conv_block\.conv": official + ".{0}.conv.conv",
            rf"{prefix}\.residual_block\.block\.layer_norm": official + ".{0}.res_conv.conv_block.layer_norm",
            rf"{prefix}\.residual_block\.block\.layer_norm\.modulations\.(\d+)": official
            + ".{0}.res_conv.conv_block.layer_norm.modulation_layers.{1}",
            rf"{prefix}\.residual_block\.block\.conv": official + ".{0}.res_conv.conv_block.conv",
            rf"{prefix}\.residual_block\.gate\.gates\.(\d+)": official
            + ".{0}.res_conv.modulation_layers.{1}",
        }
    return [(re.compile(pattern), target) for pattern, target in table.items()]


_MODULES = _module_table()
_UP_RESIDUAL = re.compile(r"ntv3\.up_blocks\.\d+\.residual_block\.block\.conv")

#: How an official array becomes ours: (our array from the official one, the official shape from ours).
Transform = tuple[Callable[[np.ndarray], np.ndarray], Callable[[tuple[int, ...]], tuple[int, ...]]]
_COPY: Transform = (lambda a: a, lambda s: s)
_REVERSED_AXES: Transform = (
    lambda a: a.transpose(),
    lambda s: s[::-1],
)  # Linear .T, Conv [k,in,out]->[out,in,k]
_TRANSPOSED_CONV: Transform = (
    lambda a: a[::-1].transpose(2, 1, 0),
    lambda s: s[::-1],
)  # [k,out,in]->[in,out,k]
_UP_RESIDUAL_CONV: Transform = (lambda a: a.transpose(1, 2, 0), lambda s: (s[2], s[0], s[1]))  # [1,out,in]


def _official_param(module: nn.Module, path: str, name: str) -> tuple[str, Transform]:
    """The official parameter name of our ``path.name`` (``module`` is ``path``) and its transform."""
    if name == "bias":
        return "bias", _COPY
    if isinstance(module, nn.Embedding):
        return "embedding", _COPY
    if isinstance(module, nn.LayerNorm):
        return "scale", _COPY
    if isinstance(module, NTv3TransposedConv):
        return "kernel", _TRANSPOSED_CONV
    if _UP_RESIDUAL.fullmatch(path):
        return "kernel", _UP_RESIDUAL_CONV
    return "kernel", _REVERSED_AXES  # nn.Linear, nn.Conv1d (stem, down tower, repeat+conv, down residual)


def _official_module(path: str, species_index: dict[str, int]) -> str:
    for pattern, target in _MODULES:
        match = pattern.fullmatch(path)
        if match:
            groups = list(match.groups())
            if path.startswith("track_heads."):
                groups[0] = str(species_index[groups[0]])
            return target.format(*groups)
    raise AssertionError(f"no official name for our module {path}")  # a model change the table must follow


def official_key_map(model: nn.Module) -> dict[str, tuple[str, Transform, tuple[int, ...]]]:
    """Official parameter path -> (our state-dict key, transform, our shape) for every tensor of ``model``."""
    config = model.config
    species_index = {species: i for i, (species, _) in enumerate(config.species_heads)}
    table = {}
    for key, tensor in model.state_dict().items():
        path, name = key.rsplit(".", 1)
        official_name, transform = _official_param(model.get_submodule(path), path, name)
        table[f"{_official_module(path, species_index)}.{official_name}"] = (
            key,
            transform,
            tuple(tensor.shape),
        )
    return table


def _check_keys(
    params: dict[str, np.ndarray], table: dict, config: NTv3Config, file: Path, names: dict[str, str]
) -> None:
    """One line for the first missing or unexpected official key (named as in the source: ``names``)."""
    missing = sorted(set(table) - set(params))
    extra = sorted(set(params) - set(table))
    if extra:
        key = extra[0]
        match = re.fullmatch(r"bigwig_head\.species_heads\.(\d+)\..+", key)
        heads = config.species_heads
        if match and int(match.group(1)) >= len(heads):
            raise ValueError(
                f"{file}: {names.get(key, key)}: species head {match.group(1)} but config.json lists "
                f"{len(heads)} species in bigwigs_per_species (heads 0..{len(heads) - 1}, by species token id)"
            )
        if match:
            species = heads[int(match.group(1))][0]
            raise ValueError(
                f"{file}: {names.get(key, key)}: species head {match.group(1)} ({species}) has no tracks in "
                "config.json's bigwigs_per_species"
            )
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ValueError(
            f"{file}: unexpected key {names.get(key, key)!r}{more}: not a parameter of the architecture in "
            "config.json"
        )
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        key = hub_key(missing[0]) if names else missing[0]  # a Hub source: named as the Hub names it
        raise ValueError(f"{file}: missing key {key!r}{more} for config.json")


def official_to_state_dict(
    params: dict[str, np.ndarray], model: nn.Module, file: Path, names: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Our state dict (fp32) for ``model`` from the official flat parameters ``params``. Every key of ``params``
    is used exactly once; raises ValueError (one line naming ``file`` and the key, as the source names it:
    ``names`` maps official paths to source keys) for a missing, unexpected, non-float or mis-shaped one."""
    names = names or {}
    table = official_key_map(model)
    _check_keys(params, table, model.config, file, names)
    state = {}
    for official, (key, (transform, official_shape), shape) in table.items():
        array = params[official]
        source = names.get(official, official)
        if array.dtype.kind != "f":
            raise ValueError(f"{file}: {source} has dtype {array.dtype}, not a float array")
        expected = official_shape(shape)
        if tuple(array.shape) != expected:
            raise ValueError(
                f"{file}: {source} has shape {tuple(array.shape)}, config.json implies {expected}"
            )
        state[key] = torch.from_numpy(np.ascontiguousarray(transform(np.asarray(array, np.float32))))
    return state


# --- Hub `core.` layout -> official paths ---------------------------------------------------------------------

_HUB_UNUSED = re.compile(r"core\..*\.rotary_embedding\.(inv_freq|cos_cached|sin_cached)")


def hub_key(official: str) -> str:
    """The Hub ``core.*`` key of an official parameter path (the official loader's naming)."""
    path, name = official.rsplit(".", 1)
    if name == "embedding":
        path = re.sub(r"^conditions_embed_layers\.", "cond_tables.", path)
    return f"core.{path}.{'bias' if name == 'bias' else 'weight'}"


def hub_to_official(
    state: dict[str, torch.Tensor], file: Path
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """The official flat parameters of a Hub ``core.*`` state dict, by the inverse of the official loader's
    rules; returns (params, official path -> Hub key, dropped Hub keys). Raises ValueError for a key outside
    ``core.``."""
    params, names, dropped = {}, {}, []
    for key, tensor in state.items():
        if _HUB_UNUSED.fullmatch(key):
            dropped.append(key)
            continue
        if not key.startswith("core."):
            raise ValueError(f"{file}: unexpected key {key!r} (the NTv3 Hub weights are all under 'core.')")
        path, name = key.removeprefix("core.").rsplit(".", 1)
        array = tensor.detach().to(torch.float32).numpy() if tensor.is_floating_point() else tensor.numpy()
        if name == "weight" and (path == "embed_layer" or re.fullmatch(r"cond_tables\.\d+", path)):
            path = path.replace("cond_tables", "conditions_embed_layers")
            official = f"{path}.embedding"
        elif name == "weight" and path.endswith("layer_norm"):
            official = f"{path}.scale"
        elif name == "weight" and array.ndim in (2, 3):
            official, array = f"{path}.kernel", array.transpose()  # Linear .T; conv [a, b, k] -> [k, b, a]
        else:
            official = f"{path}.{name}"
        params[official], names[official] = array, key
    return params, names, sorted(dropped)


# --- loading ---------------------------------------------------------------------------------------------------


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found (an ntv3-jax folder holds params.npz and config.json; see `nt convert --help`)"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive (write it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as error:  # zipfile/pickle/format errors: one line naming the file
        message = next(iter(str(error).splitlines()), "") or type(error).__name__
        raise ValueError(f"{path}: not a readable .npz file ({message})") from None


def _build(config: NTv3Config, params: dict, file: Path, names: dict[str, str] | None = None) -> nn.Module:
    model_class = NTv3ForTracksPrediction if config.condition_vocab_sizes else NTv3ForMaskedLM
    with torch.device("meta"):
        model = model_class(config)
    state = official_to_state_dict(params, model, file, names)
    model.load_state_dict(state, strict=True, assign=True)
    model.ntv3.rotary_emb.inv_freq = model.ntv3.rotary_emb.compute_inv_freq(config)
    return model.eval()


def load_ntv3_source(
    source: str, src: str | Path, layer_norm_eps: float | None = None
) -> tuple[nn.Module, dict]:
    """Read the official NTv3 checkpoint folder ``src`` of layout ``source`` (``ntv3-jax`` or ``ntv3-hub``);
    returns our model (fp32, eval: ``NTv3ForTracksPrediction`` for a species-conditioned config, else
    ``NTv3ForMaskedLM``) and the conversion report fields. ``layer_norm_eps`` overrides the config's."""
    src = Path(src)
    config_file = src / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{src}: no config.json (the official config fields) beside the weights")
    config = official_config(_read_json(config_file), config_file)
    if layer_norm_eps is not None:
        config.layer_norm_eps = layer_norm_eps
    if source == "ntv3-jax":
        params, names, dropped = _load_npz(src / PARAMS_FILE), {}, []
        num_source, file = len(params), src / PARAMS_FILE
    else:
        state = load_torch_state_dict(src)
        params, names, dropped = hub_to_official(state, src)
        num_source, file = len(state), src
    model = _build(config, params, file, names)
    fields = {"source": source, "num_source_tensors": num_source, "ignored_keys": dropped, "tied_keys": {}}
    return model, fields
