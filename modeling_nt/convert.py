"""Conversion of the official NT checkpoints into our checkpoints (NT_SPEC section 2, "Parameter layouts").

Three source layouts:

- ``esm``: a ``transformers`` ``EsmForMaskedLM`` directory, as in the v1 Hub repos;
- ``nt-v2-hub``: a v2 Hub repo (remote-code ESM variant: same key names, gated ``intermediate.dense`` of width 2F,
  an unused absolute position table and per-layer ``inv_freq`` buffers, which are dropped);
- ``jax``: a ``jax_model/`` folder with ``hyperparams.json`` and the Haiku ``pytree_ckpt.joblib`` (a pickle: only
  loaded by this explicit conversion, with a warning).

Every conversion checks that each source tensor is used or known to be unused and that no weight is missing, and
returns a :class:`ConversionReport`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .configuration_nt import NTConfig
from .modeling_nt import NTForMaskedLM

SOURCES = ("esm", "nt-v2-hub", "jax")
REPORT_FILE = "conversion_report.json"

#: ESM / v2 Hub key -> our key (``{i}``: layer index).
_HUB_KEYS = {
    "esm.embeddings.word_embeddings.weight": "nt.embeddings.word_embeddings.weight",
    "esm.embeddings.position_embeddings.weight": "nt.embeddings.position_embeddings.weight",
    "esm.encoder.emb_layer_norm_after.{p}": "nt.final_layer_norm.{p}",
    "esm.encoder.layer.{i}.attention.LayerNorm.{p}": "nt.layers.{i}.attention_layer_norm.{p}",
    "esm.encoder.layer.{i}.attention.self.query.{p}": "nt.layers.{i}.attention.query.{p}",
    "esm.encoder.layer.{i}.attention.self.key.{p}": "nt.layers.{i}.attention.key.{p}",
    "esm.encoder.layer.{i}.attention.self.value.{p}": "nt.layers.{i}.attention.value.{p}",
    "esm.encoder.layer.{i}.attention.output.dense.{p}": "nt.layers.{i}.attention.output.{p}",
    "esm.encoder.layer.{i}.LayerNorm.{p}": "nt.layers.{i}.ffn_layer_norm.{p}",
    "esm.encoder.layer.{i}.intermediate.dense.{p}": "nt.layers.{i}.ffn.fc1.{p}",
    "esm.encoder.layer.{i}.output.dense.{p}": "nt.layers.{i}.ffn.fc2.{p}",
    "lm_head.dense.{p}": "lm_head.dense.{p}",
    "lm_head.layer_norm.{p}": "lm_head.layer_norm.{p}",
    "lm_head.decoder.weight": "lm_head.decoder.weight",
    "lm_head.bias": "lm_head.bias",
}

#: Source keys that are known to be unused by the model (dropped, listed in the report).
_HUB_UNUSED = (
    r"esm\.embeddings\.position_ids",
    r"esm\.contact_head\..*",
    r".*rotary_embeddings\.inv_freq",
)
#: transformers 5 writes LayerNorm weight/bias of ESM files under the legacy names gamma/beta.
_LEGACY_LAYER_NORM = re.compile(r"(?<=LayerNorm\.)(gamma|beta)$")
_LEGACY_PARAM = {"gamma": "weight", "beta": "bias"}
#: The absolute position table that v2 (rotary) Hub files carry without using it.
_HUB_UNUSED_ROTARY = (r"esm\.embeddings\.position_embeddings\.weight",)

#: Haiku module path (after the root) -> our key prefix, and Haiku param name -> our param suffix.
_JAX_MODULES = {
    "~/embed": "nt.embeddings.word_embeddings",
    "~/esm_learned_positional_embeddings/~/embed": "nt.embeddings.position_embeddings",
    "attention_layer_{i}/~/self_attention_layer_norm": "nt.layers.{i}.attention_layer_norm",
    "attention_layer_{i}/~/self_attention/query": "nt.layers.{i}.attention.query",
    "attention_layer_{i}/~/self_attention/key": "nt.layers.{i}.attention.key",
    "attention_layer_{i}/~/self_attention/value": "nt.layers.{i}.attention.value",
    "attention_layer_{i}/~/self_attention/mha_output": "nt.layers.{i}.attention.output",
    "attention_layer_{i}/~/final_layer_norm": "nt.layers.{i}.ffn_layer_norm",
    "attention_layer_{i}/~/fc1": "nt.layers.{i}.ffn.fc1",
    "attention_layer_{i}/~/fc2": "nt.layers.{i}.ffn.fc2",
    "~/roberta_lm_head/~/emb_layer_norm_after": "nt.final_layer_norm",
    "~/roberta_lm_head/~/lm_head_fc_1": "lm_head.dense",
    "~/roberta_lm_head/~/lm_head_layer_norm": "lm_head.layer_norm",
    "~/roberta_lm_head/~/lm_final_fc": "lm_head.decoder",
}
_JAX_PARAMS = {"w": "weight", "b": "bias", "scale": "weight", "offset": "bias", "embeddings": "weight"}
#: Older spellings in Haiku module paths.
_JAX_ALIASES = (
    ("/~/mha_layer_norm", "/~/self_attention_layer_norm"),
    ("/~/mha/", "/~/self_attention/"),
    ("~/esm_roberta_lm_head/", "~/roberta_lm_head/"),
)


@dataclass
class ConversionReport:
    """What a conversion did: source, parameter count and the source keys it dropped."""

    source: str
    source_path: str
    num_parameters: int
    num_source_tensors: int
    ignored_keys: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines."""
        ignored = ", ".join(self.ignored_keys[:4]) + (" ..." if len(self.ignored_keys) > 4 else "")
        return (
            f"converted {self.source} checkpoint {self.source_path}\n"
            f"  parameters: {self.num_parameters:,}\n"
            f"  source tensors: {self.num_source_tensors}; missing keys: 0; unexpected keys: 0; "
            f"known-unused keys dropped: {len(self.ignored_keys)}" + (f" ({ignored})" if ignored else "")
        )


def _key_pattern(template: str) -> re.Pattern[str]:
    escaped = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(escaped)


_HUB_PATTERNS = [(_key_pattern(source), target) for source, target in _HUB_KEYS.items()]
_JAX_PATTERNS = [(_key_pattern(source), target) for source, target in _JAX_MODULES.items()]


def _rename(key: str, patterns: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in patterns:
        match = pattern.fullmatch(key)
        if match:
            return target.format(**match.groupdict())
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from error


def load_torch_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hub model directory: ``model.safetensors``, ``pytorch_model.bin`` or their sharded index."""
    from safetensors.torch import load_file

    for name, loader in (
        ("model.safetensors", load_file),
        ("pytorch_model.bin", lambda path: torch.load(path, map_location="cpu", weights_only=True)),
    ):
        index = directory / f"{name}.index.json"
        files = sorted(set(_read_json(index)["weight_map"].values())) if index.is_file() else [name]
        if all((directory / file).is_file() for file in files):
            state_dict: dict[str, torch.Tensor] = {}
            for file in files:
                state_dict.update(loader(directory / file))
            return state_dict
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin (nor a sharded index)")


def config_from_hub(hub_config: dict[str, Any], source: str) -> NTConfig:
    """Our config from an ESM (v1) or v2 remote-code Hub ``config.json``."""
    if hub_config.get("emb_layer_norm_before"):
        raise ValueError("config.json: emb_layer_norm_before=true is not an NT architecture")
    position_type = hub_config.get("position_embedding_type", "absolute")
    if source == "esm" and position_type != "absolute":
        raise ValueError(f"config.json: position_embedding_type {position_type!r}: use --from nt-v2-hub")
    if source == "nt-v2-hub" and position_type != "rotary":
        raise ValueError(f"config.json: position_embedding_type {position_type!r}: use --from esm")
    is_v2 = source == "nt-v2-hub"
    return NTConfig(
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


def _hub_state_dict(
    source_state: dict[str, torch.Tensor], config: NTConfig
) -> tuple[dict[str, torch.Tensor], list[str]]:
    state_dict, ignored = {}, []
    rotary = config.position_embedding_type == "rotary"
    unused = re.compile("|".join(_HUB_UNUSED + (_HUB_UNUSED_ROTARY if rotary else ())))
    for source_key, tensor in source_state.items():
        key = _LEGACY_LAYER_NORM.sub(lambda match: _LEGACY_PARAM[match.group(1)], source_key)
        if unused.fullmatch(key):
            ignored.append(source_key)
        elif (target := _rename(key, _HUB_PATTERNS)) is not None:
            state_dict[target] = tensor
        else:
            raise ValueError(f"unexpected key {source_key!r} {tuple(tensor.shape)} in the source checkpoint")
    return state_dict, ignored


def hyperparams_to_config(hyperparams: dict[str, Any], layer_norm_eps: float = 1e-5) -> NTConfig:
    """Our config from a JAX ``hyperparams.json`` (v1 files lack the v2-only keys; spec defaults apply).

    ``layer_norm_eps`` defaults to the Haiku value 1e-5 the JAX models were trained with (Hub configs say 1e-12).
    """
    unsupported = {
        "embed_scale": (hyperparams.get("embed_scale", 1.0), 1.0),
        "emb_layer_norm_before": (hyperparams.get("emb_layer_norm_before", False), False),
        "add_bias_kv": (hyperparams.get("add_bias_kv", False), False),
        "lm_head": (hyperparams.get("lm_head", "roberta"), "roberta"),
    }
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise ValueError(f"hyperparams.json: {name}={value!r} is not supported (expected {supported!r})")
    rotary = bool(hyperparams.get("use_rotary_embedding", False))
    glu = bool(hyperparams.get("use_glu_in_ffn", False))
    activation = hyperparams.get("ffn_activation_name", "gelu")
    if glu != (activation == "swish") or activation not in ("gelu", "swish"):
        raise ValueError(f"hyperparams.json: FFN {activation!r} with use_glu_in_ffn={glu} is not an NT FFN")
    pad_token_id = hyperparams["pad_token_id"]
    return NTConfig(
        tokenizer_version="v2" if hyperparams["alphabet_size"] == 4107 else "v1",
        vocab_size=hyperparams["alphabet_size"],
        hidden_size=hyperparams["embed_dim"],
        num_hidden_layers=hyperparams["num_layers"],
        num_attention_heads=hyperparams["attention_heads"],
        intermediate_size=hyperparams["ffn_embed_dim"],
        position_embedding_type="rotary" if rotary else "absolute",
        max_position_embeddings=hyperparams["max_positions"] + pad_token_id + 1,
        ffn_activation="swiglu" if glu else "gelu",
        add_bias_ffn=bool(hyperparams.get("add_bias_ffn", True)),
        token_dropout=bool(hyperparams.get("token_dropout", False)),
        mask_ratio_train=hyperparams.get("masking_ratio", 0.15) * hyperparams.get("masking_prob", 0.8),
        layer_norm_eps=layer_norm_eps,
        pad_token_id=pad_token_id,
        mask_token_id=hyperparams["mask_token_id"],
    )


def _jax_module_path(path: str) -> str:
    """Strip the root module (``esm_transformer``) and normalise the older spellings."""
    path = path.split("/", 1)[1] if "/" in path else path
    for old, new in _JAX_ALIASES:
        path = path.replace(old, new)
    return path


def _jax_state_dict(params: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    state_dict = {}
    for module_path, module_params in params.items():
        prefix = _rename(_jax_module_path(module_path), _JAX_PATTERNS)
        if prefix is None:
            raise ValueError(f"unexpected Haiku module {module_path!r} in pytree_ckpt.joblib")
        for name, array in module_params.items():
            if name not in _JAX_PARAMS:
                raise ValueError(f"unexpected Haiku parameter {module_path}/{name}")
            tensor = torch.from_numpy(np.asarray(array, dtype=np.float32))
            if name == "w":
                tensor = tensor.T
            if prefix == "lm_head.decoder" and name == "b":
                state_dict["lm_head.bias"] = tensor
                continue
            state_dict[f"{prefix}.{_JAX_PARAMS[name]}"] = tensor
    return state_dict


def _build_model(config: NTConfig, state_dict: dict[str, torch.Tensor], source_path: Path) -> NTForMaskedLM:
    """An ``NTForMaskedLM`` holding ``state_dict`` (fp32), built without random initialisation."""
    with torch.device("meta"):
        model = NTForMaskedLM(config)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    extra = sorted(set(state_dict) - expected)
    if missing or extra:
        raise ValueError(
            f"{source_path}: weights do not fit the NT layout: missing {missing}, unexpected {extra}"
        )
    tensors = {key: tensor.to(torch.float32).contiguous() for key, tensor in state_dict.items()}
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"{source_path}: weights do not fit config.json: {error}") from error
    if model.nt.rotary_emb is not None:
        model.nt.rotary_emb.inv_freq = model.nt.rotary_emb.compute_inv_freq(config)
    return model.eval()


def load_source(
    source: str, src: str | Path, layer_norm_eps: float | None = None
) -> tuple[NTForMaskedLM, dict]:
    """Read an official checkpoint of layout ``source``; returns our model and the report fields."""
    if source not in SOURCES:
        raise ValueError(f"unknown source layout {source!r}; choose one of {SOURCES}")
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a directory")
    if source == "jax":
        config = hyperparams_to_config(_read_json(src / "hyperparams.json"), layer_norm_eps or 1e-5)
        params = _load_joblib(src / "pytree_ckpt.joblib")
        state_dict, ignored = _jax_state_dict(params), []
        num_source = sum(len(module) for module in params.values())
    else:
        config = config_from_hub(_read_json(src / "config.json"), source)
        if layer_norm_eps is not None:
            config.layer_norm_eps = layer_norm_eps
        source_state = load_torch_state_dict(src)
        state_dict, ignored = _hub_state_dict(source_state, config)
        num_source = len(source_state)
    model = _build_model(config, state_dict, src)
    fields = {"num_source_tensors": num_source, "ignored_keys": sorted(ignored)}
    return model, fields


def _load_joblib(path: Path) -> dict[str, dict[str, np.ndarray]]:
    import joblib

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    warnings.warn(
        f"loading {path}: joblib files are pickles and can run code; only convert files you trust",
        stacklevel=3,
    )
    params = joblib.load(path)
    if not isinstance(params, dict) or not all(isinstance(value, dict) for value in params.values()):
        raise ValueError(f"{path}: expected a two-level dict (Haiku params), got {type(params).__name__}")
    return params


def convert_checkpoint(
    source: str,
    src: str | Path,
    out: str | Path,
    *,
    layer_norm_eps: float | None = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert the official checkpoint ``src`` (layout ``source``: ``esm``, ``nt-v2-hub`` or ``jax``) into our
    checkpoint directory ``out`` (config, safetensors, tokenizer, code files and ``conversion_report.json``)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    model, fields = load_source(source, src, layer_norm_eps)
    report = ConversionReport(
        source=source,
        source_path=str(src),
        num_parameters=model.num_parameters(),
        config=model.config.to_diff_dict(),
        **fields,
    )
    save_checkpoint(model, out)
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2, default=str))
    return report
