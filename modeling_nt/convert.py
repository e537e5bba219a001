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
from .configuration_nt import (
    NTConfig,
    config_from_hub,
    official_layout,
    require_int_fields,
    with_published_context,
)
from .modeling_nt import (
    _HUB_KEYS,
    _LEGACY_LAYER_NORM,
    _LEGACY_PARAM,
    NTForMaskedLM,
    hub_unused_keys,
    tie_official_decoder,
)

SOURCES = ("esm", "nt-v2-hub", "jax")
#: What ``--from`` / ``source`` accepts: a layout of ``SOURCES``, or ``auto`` (read from the files).
FROM_CHOICES = (*SOURCES, "auto", "segment-nt-jax", "segment-nt-hub", "ntv3", "ntv3-jax", "ntv3-hub")
#: ``--from`` values that stand for several layouts, told apart by the files: ``ntv3`` = either official NTv3
#: layout (the NNX parameter export or the Hub remote-code folder).
SOURCE_FAMILIES = {"ntv3": ("ntv3-jax", "ntv3-hub")}
REPORT_FILE = "conversion_report.json"

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

#: Integer fields a JAX ``hyperparams.json`` must have.
_JAX_REQUIRED = (
    "alphabet_size",
    "embed_dim",
    "num_layers",
    "attention_heads",
    "ffn_embed_dim",
    "max_positions",
    "pad_token_id",
    "mask_token_id",
)
#: ``ffn_activation_name`` of the official code (``nucleotide_transformer/utils.py``, ``get_activation_fn``:
#: ``jax.nn.<name>``, except ``gelu-no-approx`` = ``jax.nn.gelu(approximate=False)``; absent means
#: ``gelu-no-approx``) -> our ``ffn_activation``, keyed by (name, ``use_glu_in_ffn``). ``jax.nn.gelu`` defaults to
#: the tanh approximation; ``jax.nn.swish`` is ``jax.nn.silu``.
_JAX_FFN = {
    ("gelu", False): "gelu_pytorch_tanh",
    ("gelu-no-approx", False): "gelu",
    ("swish", True): "swiglu",
    ("silu", True): "swiglu",
}
#: Every name the official code accepts (some have no NT equivalent here).
_JAX_ACTIVATIONS = ("gelu", "gelu-no-approx", "relu", "swish", "silu", "sin")


@dataclass
class ConversionReport:
    """What a conversion did: source, parameter count and the source keys it dropped."""

    source: str
    source_path: str
    num_parameters: int
    num_source_tensors: int
    ignored_keys: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    #: our key -> the source key it was copied from because the source ties them (not stored in the source).
    tied_keys: dict[str, str] = field(default_factory=dict)
    #: whether ``source`` was detected from the files (``--from auto``) rather than given.
    detected: bool = False
    #: the local snapshot folder read when ``source_path`` is a Hub repository id (else None).
    hub_snapshot: str | None = None

    def summary(self) -> str:
        """A few human-readable lines."""
        ignored = ", ".join(self.ignored_keys[:4]) + (" ..." if len(self.ignored_keys) > 4 else "")
        tied = "".join(
            f"\n  tied: {ours} = {source} (config.json: tie_word_embeddings=true)"
            for ours, source in self.tied_keys.items()
        )
        detected = " (layout detected: --from auto)" if self.detected else ""
        snapshot = f"\n  Hub snapshot: {self.hub_snapshot}" if self.hub_snapshot else ""
        return (
            f"converted {self.source} checkpoint {self.source_path}{detected}{snapshot}\n"
            f"  parameters: {self.num_parameters:,}\n"
            f"  source tensors: {self.num_source_tensors}; missing keys: 0; unexpected keys: 0; "
            f"known-unused keys dropped: {len(self.ignored_keys)}"
            + (f" ({ignored})" if ignored else "")
            + tied
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
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" at line {error.lineno}: {error.msg}" if isinstance(error, json.JSONDecodeError) else ""
        raise ValueError(f"{path}: invalid JSON{where}") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got a {type(content).__name__}")
    return content


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
                try:
                    state_dict.update(loader(directory / file))
                except Exception as error:  # a truncated or foreign file: name it in one line
                    message = next(iter(str(error).splitlines()), "") or type(error).__name__
                    raise ValueError(f"{directory / file}: cannot read the weights ({message})") from None
            return state_dict
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin (nor a sharded index)")


#: Every checkpoint layout :func:`detect_layout` names: ours, then the official ones (``SOURCES``, then the
#: official NTv3 layouts of ``convert_ntv3``).
LAYOUTS = ("nt", "ntv3", *SOURCES, "ntv3-jax", "ntv3-hub")


def detect_layout(folder: str | Path) -> str | None:
    """The layout of a checkpoint folder, read from its files.

    Returns ``"nt"`` (ours: ``config.json`` with ``model_type: nucleotide_transformer``), ``"ntv3"`` (ours,
    ``model_type: ntv3``), ``"esm"`` (v1 Hub:
    ``model_type: esm``, learned positions), ``"nt-v2-hub"`` (v2 Hub: ``model_type: esm`` with rotary positions
    or an ``auto_map`` to the remote ``esm_config``), ``"jax"`` (``hyperparams.json`` and no ``config.json``),
    ``"ntv3-hub"`` / ``"ntv3-jax"`` (official NTv3 Hub folder / JAX export, ``convert_ntv3.ntv3_layout``),
    or None (no ``config.json``, or another ``model_type``). Raises ValueError for a ``config.json`` that is
    not a JSON object.
    """
    from .convert_ntv3 import PARAMS_FILE, ntv3_layout

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        if (folder / "hyperparams.json").is_file():
            return "jax"
        return "ntv3-jax" if (folder / PARAMS_FILE).is_file() else None
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: not a JSON object")
    if config.get("model_type") == NTConfig.model_type:
        return "nt"
    official_ntv3 = ntv3_layout(config, folder)
    if official_ntv3 is not None:
        return official_ntv3
    if config.get("model_type") == "ntv3":
        return "ntv3"
    return official_layout(config)


def check_source_layout(source: str, src: Path) -> str:
    """The layout of the conversion source folder ``src``: ``source`` checked against its files, or read from
    them for ``source="auto"``. Refuses, in one line, a source that is not an existing folder of an official
    layout (of layout ``source`` where one is given)."""
    if not src.exists():
        raise FileNotFoundError(f"no such folder: {src}")
    if not src.is_dir():
        raise NotADirectoryError(f"{src} is a file, not a checkpoint folder")
    if not any(src.iterdir()):
        raise FileNotFoundError(f"{src}: empty folder (no config.json, no hyperparams.json)")
    layout = detect_layout(src)
    if layout in ("nt", "ntv3"):
        raise ValueError(
            f"{src} is already a checkpoint of this package (model_type {layout}): use it as it is"
        )
    if layout is None and (src / "config.json").is_file():
        model_type = _read_json(src / "config.json").get("model_type")
        raise ValueError(f"{src}/config.json: model_type {model_type!r} is not an official NT layout")
    if layout is None:
        raise FileNotFoundError(
            f"{src}: neither config.json (esm, nt-v2-hub, ntv3-hub, ntv3-jax) nor hyperparams.json (jax)"
        )
    if source not in ("auto", layout) and layout not in SOURCE_FAMILIES.get(source, ()):
        raise ValueError(f"{src} is a {layout} checkpoint, not {source}: use --from {layout}")
    return layout


def source_folder(src: str | Path, **hub_options: Any) -> Path:
    """The local folder of a conversion source: ``src`` itself, or, for a Hub repository id (a ``str``
    ``owner/name`` that is not an existing path), its snapshot of config and weight files (never code) in the Hugging Face cache
    (``loading.hub_snapshot``: ``revision``, ``cache_dir``, ``local_files_only``, ``HF_HUB_OFFLINE``)."""
    from .loading import HUB_ID, PATH_SUFFIXES, hub_snapshot

    if not isinstance(src, str) or Path(src).expanduser().exists() or not HUB_ID.fullmatch(src):
        return Path(src)
    if src.lower().endswith(PATH_SUFFIXES):
        return Path(src)
    return hub_snapshot(src, **hub_options)


def convert_command(layout: str, src: str | Path) -> str:
    """The ``nt convert`` command line that converts the official checkpoint ``src`` of ``layout``."""
    return f"nt convert --from {layout} {src} OUT"


def _hub_state_dict(
    source_state: dict[str, torch.Tensor], config: NTConfig
) -> tuple[dict[str, torch.Tensor], list[str]]:
    state_dict, ignored = {}, []
    unused = hub_unused_keys(config)
    for source_key, tensor in source_state.items():
        key = _LEGACY_LAYER_NORM.sub(lambda match: _LEGACY_PARAM[match.group(1)], source_key)
        if unused.fullmatch(key):
            ignored.append(source_key)
        elif (target := _rename(key, _HUB_PATTERNS)) is not None:
            state_dict[target] = tensor
        else:
            raise ValueError(f"unexpected key {source_key!r} {tuple(tensor.shape)} in the source checkpoint")
    return state_dict, ignored


def hyperparams_to_config(
    hyperparams: dict[str, Any], layer_norm_eps: float = 1e-5, file: str | Path = "hyperparams.json"
) -> NTConfig:
    """Our config from a JAX ``hyperparams.json`` (v1 files lack the v2-only keys; spec defaults apply;
    ``file``: its name in errors).

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
            raise ValueError(f"{file}: {name}={value!r} is not supported (expected {supported!r})")
    require_int_fields(hyperparams, _JAX_REQUIRED, file)
    rotary = bool(hyperparams.get("use_rotary_embedding", False))
    pad_token_id = hyperparams["pad_token_id"]
    config = NTConfig(
        tokenizer_version="v2" if hyperparams["alphabet_size"] == 4107 else "v1",
        vocab_size=hyperparams["alphabet_size"],
        hidden_size=hyperparams["embed_dim"],
        num_hidden_layers=hyperparams["num_layers"],
        num_attention_heads=hyperparams["attention_heads"],
        intermediate_size=hyperparams["ffn_embed_dim"],
        position_embedding_type="rotary" if rotary else "absolute",
        max_position_embeddings=hyperparams["max_positions"] + pad_token_id + 1,
        ffn_activation=jax_ffn_activation(hyperparams, file),
        add_bias_ffn=bool(hyperparams.get("add_bias_ffn", True)),
        token_dropout=bool(hyperparams.get("token_dropout", False)),
        mask_ratio_train=hyperparams.get("masking_ratio", 0.15) * hyperparams.get("masking_prob", 0.8),
        layer_norm_eps=layer_norm_eps,
        pad_token_id=pad_token_id,
        mask_token_id=hyperparams["mask_token_id"],
    )
    return with_published_context(config)


def jax_ffn_activation(hyperparams: dict[str, Any], file: str | Path = "hyperparams.json") -> str:
    """Our ``ffn_activation`` for the FFN of a JAX ``hyperparams.json``, mapped as the official code maps
    ``ffn_activation_name`` (default ``"gelu-no-approx"``) and ``use_glu_in_ffn`` (default false): ``"gelu"`` is
    ``jax.nn.gelu``'s tanh approximation (our ``"gelu_pytorch_tanh"``), ``"gelu-no-approx"`` the exact erf GELU
    (our ``"gelu"``), ``"swish"``/``"silu"`` with GLU our ``"swiglu"``. Raises ValueError for other names and
    combinations."""
    name = hyperparams.get("ffn_activation_name", "gelu-no-approx")
    glu = hyperparams.get("use_glu_in_ffn", False)
    known = "gelu (tanh approximation), gelu-no-approx (exact erf), swish or silu with use_glu_in_ffn=true"
    if name not in _JAX_ACTIVATIONS:
        raise ValueError(f"{file}: unknown ffn_activation_name {name!r}; known: {known}")
    if (name, glu) not in _JAX_FFN:
        raise ValueError(
            f"{file}: ffn_activation_name {name!r} with use_glu_in_ffn={str(glu).lower()} is not an "
            f"NT FFN; supported: {known}"
        )
    return _JAX_FFN[(name, glu)]


def _jax_module_path(path: str) -> str:
    """Strip the root module (``esm_transformer``) and normalise the older spellings."""
    path = path.split("/", 1)[1] if "/" in path else path
    for old, new in _JAX_ALIASES:
        path = path.replace(old, new)
    return path


def _jax_state_dict(
    params: dict[str, dict[str, np.ndarray]], file: str | Path = "pytree_ckpt.joblib"
) -> dict[str, torch.Tensor]:
    state_dict = {}
    for module_path, module_params in params.items():
        prefix = _rename(_jax_module_path(module_path), _JAX_PATTERNS)
        if prefix is None:
            raise ValueError(f"{file}: unexpected Haiku module {module_path!r}")
        for name, array in module_params.items():
            if name not in _JAX_PARAMS:
                raise ValueError(f"unexpected Haiku parameter {module_path}/{name}")
            if np.asarray(array).dtype.kind not in "fiu":
                raise ValueError(f"{file}: {module_path}/{name} is not a numeric array")
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
) -> tuple[torch.nn.Module, dict]:
    """Read the official checkpoint folder ``src`` of layout ``source`` (``auto``: read from its files); returns
    our model (``NTForMaskedLM``; for the NTv3 layouts ``convert_ntv3.load_ntv3_source``'s) and the report
    fields (``source``: the layout read)."""
    if source not in FROM_CHOICES:
        raise ValueError(f"unknown source layout {source!r}; choose one of {FROM_CHOICES}")
    src = Path(src)
    source = check_source_layout(source, src)
    if source in ("ntv3-jax", "ntv3-hub"):
        from .convert_ntv3 import load_ntv3_source

        return load_ntv3_source(source, src, layer_norm_eps)
    if source == "jax":
        hyperparams_file, params_file = src / "hyperparams.json", src / "pytree_ckpt.joblib"
        _refuse_segment_nt(_read_json(hyperparams_file), hyperparams_file, "segment-nt-jax")
        config = hyperparams_to_config(_read_json(hyperparams_file), layer_norm_eps or 1e-5, hyperparams_file)
        params = _load_joblib(params_file)
        state_dict, ignored = _jax_state_dict(params, params_file), []
        num_source = sum(len(module) for module in params.values())
        tied = {}
    else:
        hub_config = _read_json(src / "config.json")
        _refuse_segment_nt(hub_config, src / "config.json", "segment-nt-hub")
        config = config_from_hub(hub_config, source, src / "config.json")
        if layer_norm_eps is not None:
            config.layer_norm_eps = layer_norm_eps
        source_state = load_torch_state_dict(src)
        state_dict, ignored = _hub_state_dict(source_state, config)
        tied = tie_official_decoder(state_dict, hub_config, src)
        num_source = len(source_state)
    model = _build_model(config, state_dict, src)
    fields = {
        "source": source,
        "num_source_tensors": num_source,
        "ignored_keys": sorted(ignored),
        "tied_keys": tied,
    }
    return model, fields


def _refuse_segment_nt(values: dict[str, Any], file: Path, layout: str) -> None:
    """A SegmentNT checkpoint (its config lists ``features``) converts with its own layout, not as a masked LM."""
    if "features" in values:
        raise ValueError(f"{file} lists 'features': a SegmentNT checkpoint: use --from {layout}")


def _load_joblib(path: Path) -> dict[str, dict[str, np.ndarray]]:
    import joblib

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    warnings.warn(
        f"loading {path}: joblib files are pickles and can run code; only convert files you trust",
        stacklevel=3,
    )
    try:
        params = joblib.load(path)
    except Exception as error:  # unpickling garbage raises anything: KeyError, EOFError, UnpicklingError...
        raise ValueError(
            f"{path}: not a readable joblib file (corrupt or truncated: {type(error).__name__})"
        ) from error
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
    **hub_options: Any,
) -> ConversionReport:
    """Convert the official checkpoint ``src`` (layout ``source``: ``esm``, ``nt-v2-hub``, ``jax``, the SegmentNT
    and NTv3 layouts (``modeling_nt.convert_segment``, ``modeling_nt.convert_ntv3``), or ``auto``
    to read it from the files, :func:`detect_layout`) into our checkpoint directory ``out`` (config,
    safetensors, tokenizer, code files and ``conversion_report.json``). ``src`` is a folder or a Hub repository
    id (``InstaDeepAI/<repo>``: its config and weight files are fetched through ``huggingface_hub``;
    ``hub_options``: ``revision``, ``cache_dir``, ``local_files_only``, as for ``loading.hub_snapshot``)."""
    out = Path(out)
    if Path(src).is_dir() and out.resolve() == Path(src).resolve():
        raise ValueError(f"{out} is the source folder: write the converted checkpoint to a new folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    folder = source_folder(src, **hub_options)
    try:
        if source.startswith("segment-nt-"):  # SegmentNT: NTForSegmentation (modeling_nt.convert_segment)
            from .convert_segment import load_segment_source

            model, fields = load_segment_source(source, folder, layer_norm_eps)
        else:
            model, fields = load_source(source, folder, layer_norm_eps)
    except (ValueError, OSError) as error:
        if str(folder) == str(src):
            raise
        kind = ValueError if isinstance(error, ValueError) else OSError
        raise kind(f"Hub repository {src}: {error}") from None  # the snapshot path alone hides the id
    report = ConversionReport(
        source_path=str(src),
        detected=source == "auto",
        hub_snapshot=str(folder) if str(folder) != str(src) else None,
        num_parameters=model.num_parameters(),
        config=model.config.to_diff_dict(),
        **fields,
    )
    save_checkpoint(model, out)
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2, default=str))
    return report
