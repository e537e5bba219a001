"""One place that turns a model argument (``--model``, or a ``model`` parameter of the Python API) into a model.

A spec is, in this order:

- an existing folder: a strict load. Our layout (``config.json`` with ``model_type: nucleotide_transformer``)
  loads when every backbone weight is in the weights file with the shape the config implies; an official
  ESM (v1) or v2 Hub folder is converted on load with ``nt convert``'s key mapping (through transformers'
  ``key_mapping`` hook); an official JAX folder, NTv3 Hub folder or NTv3 JAX export is refused with the
  ``nt convert`` command that converts it.
  Anything else (no ``config.json``, no weights, unreadable or truncated weights, weights that do not fit the
  config) is one error line naming the folder and what is wrong.
- a preset name of ``PRESETS`` (NT v1/v2) or of the NTv3 presets: random weights (seeded), announced once per process on stderr (logger
  ``modeling_nt.loading``, level WARNING).
- a Hub repository id (``owner/name``, e.g. ``InstaDeepAI/nucleotide-transformer-v2-50m-multi-species``): its
  config and weight files (never its code) are fetched into the Hugging Face cache by ``huggingface_hub``
  (``revision``, ``cache_dir``, ``local_files_only``, ``HF_HUB_OFFLINE`` honoured) and loaded as a folder.
- anything else: "no such folder" when it looks like a path (or is an id the Hub cache and network cannot
  serve), else "unknown model" listing the presets.

Official folders loaded in place log the conversion report once (logger ``modeling_nt.modeling_nt``, level
INFO: the conversion on load is ``NTPreTrainedModel.from_pretrained``'s, so the NT classes do the same).

Not a Hub-travelling file: it may import the rest of this package.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedConfig, PreTrainedModel

from .configuration_nt import PRESETS as NT_PRESETS
from .configuration_nt import NTConfig, config_from_hub
from .configuration_ntv3 import PRESETS as NTV3_PRESETS
from .configuration_ntv3 import NTv3Config
from .convert import LAYOUTS, convert_command, detect_layout
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

logger = logging.getLogger(__name__)

#: File name endings that make a spec a path even where it does not exist.
PATH_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".json",
    ".joblib",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".npz",
)
#: Weight files (any of them, or their sharded index) a checkpoint folder must hold.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: ``config.json`` fields that fix the architecture: a config lacking one would silently take a default.
REQUIRED_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "position_embedding_type",
    "max_position_embeddings",
    "ffn_activation",
    "add_bias_ffn",
    "tokenizer_version",
)
#: Every preset name a spec may give: NT v1/v2 and NTv3 architectures.
PRESETS = {**NT_PRESETS, **NTV3_PRESETS}
#: ``config.json`` fields that fix an NTv3 architecture.
REQUIRED_NTV3_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "token_embed_dim",
    "conv_init_embed_dim",
    "num_downsamples",
    "upsample_type",
)
#: The NTv3 class playing each NT class's role: callers ask for a role (``NTModel``, ``NTForMaskedLM``, a
#: classifier) and get the class of the checkpoint's generation.
NTV3_CLASSES: dict[type[PreTrainedModel], type[PreTrainedModel]] = {
    NTModel: NTv3Model,
    NTForMaskedLM: NTv3ForMaskedLM,
    NTForSequenceClassification: NTv3ForSequenceClassification,
    NTForTokenClassification: NTv3ForTokenClassification,
}
#: Head parameters: absent from a base-model checkpoint, new in a classifier (NTv3 post-trained checkpoints
#: add track, annotation and conditions heads).
HEAD_PREFIXES = ("lm_head.", "classifier.", "track_heads.", "annotation_head.", "condition_heads.")
#: A Hub model repository id, ``owner/name``.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
#: Files of a Hub repository that loading needs (configs and weights; never code).
HUB_FILES = ["*.json", "*.safetensors", "*.bin"]
#: How many key names an error line lists per kind.
SHOWN_KEYS = 3

_ANNOUNCED: set[str] = set()


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` is meant as a path: it has a path separator, starts with ``.`` or ``~``, or ends with a
    weight/config file suffix."""
    return "/" in spec or "\\" in spec or spec.startswith((".", "~")) or spec.lower().endswith(PATH_SUFFIXES)


def resolve_spec(
    spec: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path | str:
    """The checkpoint folder (a ``Path``) or the preset name (a ``str``) that ``spec`` names: an existing
    folder, a preset, or a Hub repository id (``owner/name``) whose snapshot is fetched through
    ``huggingface_hub`` (``revision``, ``cache_dir``, ``local_files_only`` and ``HF_HUB_OFFLINE`` honoured).

    Raises:
        FileNotFoundError: a path-like spec that does not exist and is no reachable Hub repository
            ("no such folder", with what was looked for and where).
        NotADirectoryError: an existing file (a checkpoint is a folder).
        ValueError: neither a folder nor a preset ("unknown model", with the presets).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(
            f"{text} is a file, not a checkpoint folder: give the folder that holds config.json and the weights"
        )
    if isinstance(spec, str) and text in PRESETS:
        return text
    if isinstance(spec, str) and HUB_ID.fullmatch(text) and not text.lower().endswith(PATH_SUFFIXES):
        return hub_snapshot(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    if isinstance(spec, Path) or looks_like_path(text):
        raise FileNotFoundError(f"no such folder: {text}")
    raise ValueError(
        f"unknown model {text!r}: not a folder and not a preset (known presets: {', '.join(PRESETS)})"
    )


def hub_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """The local snapshot folder of the Hub model repository ``repo_id`` (config and weight files only: no
    code file is fetched, so no remote code can run), downloaded into the Hugging Face cache when needed and
    allowed. Raises FileNotFoundError (one line: the id, the revision and the cache looked in) otherwise."""
    from huggingface_hub import constants, snapshot_download

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=HUB_FILES,
        )
    except Exception as error:  # offline, not cached, no such repo, gated, no network: one line each
        where = cache_dir or constants.HF_HUB_CACHE
        offline = (
            " (offline: HF_HUB_OFFLINE or local_files_only)"
            if (local_files_only or constants.HF_HUB_OFFLINE)
            else ""
        )
        raise FileNotFoundError(
            f"no such folder: {repo_id}, and Hub repository {repo_id}@{revision or 'main'} is not in the cache "
            f"{where}{offline} nor downloadable ({type(error).__name__}: {_first_line(error)[:160]})"
        ) from None
    return Path(folder)


def announce_random_weights(preset: str) -> None:
    """Say once per process and preset, on stderr (logger WARNING), that ``preset`` has random weights."""
    if preset in _ANNOUNCED:
        return
    _ANNOUNCED.add(preset)
    logger.warning(
        "random weights: preset %r is an untrained architecture, so its outputs are meaningless "
        "(for tests and demos; give a checkpoint folder for real results)",
        preset,
    )


def load_model(
    spec: str | Path,
    model_class: type[NTPreTrainedModel] = NTForMaskedLM,
    *,
    seed: int | None = 0,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    **config_overrides: Any,
) -> NTPreTrainedModel:
    """The ``model_class`` model (eval mode, fp32, CPU) that ``spec`` names (module docstring); for an NTv3
    checkpoint or preset, the NTv3 class in ``model_class``'s role (:func:`class_for`).

    Args:
        spec: checkpoint folder, preset name or Hub repository id (``InstaDeepAI/<repo>``: the official
            layouts are converted on load).
        model_class: ``NTModel`` (backbone; any head in the checkpoint is dropped), ``NTForMaskedLM`` (the LM
            head must be in the checkpoint) or a classifier class (a missing ``classifier.*`` head is new).
        seed: torch seed set before building a preset's random weights (None: the caller's RNG state).
        revision, cache_dir, local_files_only: for a Hub id (see :func:`hub_snapshot`).
        config_overrides: config fields to change (e.g. ``num_labels``, ``pooling``).

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: one line naming the spec or folder and the problem.
    """
    target = resolve_spec(spec, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    if isinstance(target, str):
        announce_random_weights(target)
        if seed is not None:
            torch.manual_seed(seed)
        config = preset_config(target, **config_overrides)
        return class_for(config, model_class)(config).eval()
    return load_folder(target, model_class, **config_overrides)


def preset_config(name: str, **overrides: Any) -> PreTrainedConfig:
    """The config of the preset ``name``: an :class:`NTConfig` (v1/v2) or an :class:`NTv3Config`."""
    config_class = NTv3Config if name in NTV3_PRESETS else NTConfig
    return config_class.from_preset(name, **overrides)


def class_for(config: PreTrainedConfig, model_class: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """The class of ``config``'s generation that plays ``model_class``'s role (:data:`NTV3_CLASSES` for an
    NTv3 config; ``model_class`` itself otherwise)."""
    if isinstance(config, NTv3Config):
        return NTV3_CLASSES.get(model_class, model_class)
    return model_class


def load_config(spec: str | Path, **hub_options: Any) -> PreTrainedConfig:
    """The config of a checkpoint folder or Hub id (checked as by :func:`load_model`, weights not read) or a
    preset; ``hub_options`` as in :func:`load_model`."""
    target = resolve_spec(spec, **hub_options)
    if isinstance(target, str):
        return preset_config(target)
    return _folder_config(target, check_folder(target))


def check_folder(folder: Path) -> str:
    """The layout (``convert.LAYOUTS``) of a checkpoint folder that has a config and weights to load.

    Raises ValueError / FileNotFoundError naming the folder: empty, no ``config.json``, config not JSON, another
    ``model_type``, a JAX folder (with the convert command), no weight file.
    """
    entries = sorted(path.name for path in folder.iterdir())
    if not entries:
        raise FileNotFoundError(f"{folder}: empty folder (no config.json, no weights)")
    layout = detect_layout(folder)
    if layout == "jax":
        raise ValueError(
            f"{folder} is an official JAX checkpoint (hyperparams.json + joblib): convert it first with "
            f"`{convert_command('jax', folder)}`"
        )
    if layout in ("ntv3-jax", "ntv3-hub"):
        raise ValueError(
            f"{folder} is an official NTv3 checkpoint ({layout}): convert it first with "
            f"`{convert_command(layout, folder)}`"
        )
    if not (folder / "config.json").is_file():
        subfolders = [p.name for p in sorted(folder.iterdir()) if (p / "config.json").is_file()][:SHOWN_KEYS]
        hint = f" (checkpoints inside: {', '.join(subfolders)}; give one of them)" if subfolders else ""
        raise FileNotFoundError(f"{folder}: no config.json{hint}")
    if layout is None:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        raise ValueError(
            f"{folder}/config.json: model_type {model_type!r} is not an NT checkpoint "
            f"(expected one of the layouts {', '.join(LAYOUTS)})"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES[::2])}) beside config.json")
    if (folder / "model.safetensors").is_file():
        check_safetensors_header(folder / "model.safetensors")
    return layout


def check_safetensors_header(path: Path) -> None:
    """Read the header of a safetensors file (not the tensors): a truncated or foreign file fails here."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt"):
            pass
    except Exception as error:  # SafetensorError and OSError: a bad file, named in one line
        raise ValueError(
            f"{path}: cannot read the weights ({_first_line(error)}); is the file complete?"
        ) from None


def _folder_config(folder: Path, layout: str, **overrides: Any) -> PreTrainedConfig:
    """The config of a checked folder: ours (required fields present, values valid; NT or NTv3) or an official
    NT v1/v2 one."""
    raw = json.loads((folder / "config.json").read_text())
    try:
        if layout in ("nt", "ntv3"):
            config_class, required = (
                (NTConfig, REQUIRED_CONFIG_FIELDS)
                if layout == "nt"
                else (NTv3Config, REQUIRED_NTV3_CONFIG_FIELDS)
            )
            missing = [name for name in required if name not in raw]
            if missing:
                raise ValueError(f"lacks the required field(s) {', '.join(missing)}")
            config = config_class.from_dict({**raw, **overrides})
        else:
            config = config_from_hub(raw, layout)
            for name, value in overrides.items():
                setattr(config, name, value)
    except KeyError as error:
        raise ValueError(f"{folder}/config.json: lacks the required field {error.args[0]!r}") from None
    except (ValueError, TypeError) as error:
        raise ValueError(f"{folder}/config.json: {_first_line(error)}") from None
    for name in REQUIRED_CONFIG_FIELDS[:5]:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{folder}/config.json: {name} must be a positive integer, got {value!r}")
    return config


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar: :func:`load_folder` checks and reports itself."""
    from transformers.utils import logging as hf_logging

    logger_ = logging.getLogger("transformers.modeling_utils")  # logs the load report (its level gates more)
    bar = hf_logging.is_progress_bar_enabled()
    logger_.addFilter(_no_load_report)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        logger_.removeFilter(_no_load_report)
        if bar:
            hf_logging.enable_progress_bar()


def _no_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in str(record.msg)


def load_folder(
    folder: str | Path, model_class: type[NTPreTrainedModel] = NTForMaskedLM, **config_overrides: Any
) -> NTPreTrainedModel:
    """Strictly load the checkpoint folder ``folder`` as ``model_class`` (see :func:`load_model`)."""
    return _load_folder(Path(folder), model_class, {}, **config_overrides)


def check_model(spec: str | Path, **hub_options: Any) -> NTConfig:
    """Check, without reading any tensor, that ``spec`` names a preset or a checkpoint whose backbone weights
    all fit its config (the weights are mapped on the meta device); returns its config. Commands call it
    before reading their inputs, so a bad ``--model`` is refused before any work. Errors as
    :func:`load_model`."""
    from .modeling_nt import NTModel

    target = resolve_spec(spec, **hub_options)
    if isinstance(target, str):
        return preset_config(target)
    return _load_folder(target, NTModel, {"device_map": "meta"}).config


def _load_folder(
    folder: Path, model_class: type[NTPreTrainedModel], load_options: dict[str, Any], **config_overrides: Any
) -> NTPreTrainedModel:
    layout = check_folder(folder)
    config = _folder_config(folder, layout, **config_overrides)
    model_class = class_for(config, model_class)
    conditioned = bool(getattr(config, "condition_vocab_sizes", None))
    if issubclass(model_class, NTv3ForTracksPrediction) and not conditioned:
        raise ValueError(
            f"{folder} is a pre-trained NTv3 checkpoint (no species condition): {model_class.__name__} needs a "
            "post-trained one (e.g. converted from InstaDeepAI/NTv3_100M_post); load this one as NTv3ForMaskedLM"
        )
    try:  # an official layout is converted on load by NTPreTrainedModel.from_pretrained (report logged there)
        with _quiet_transformers():
            model, info = model_class.from_pretrained(
                str(folder),
                config=config,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **load_options,
            )
    except Exception as error:  # any reader failure is a bad checkpoint, named in one line
        if isinstance(error, ValueError) and _first_line(error).startswith(f"{folder}/"):
            raise ValueError(_first_line(error)) from None  # ours (a tied decoder that differs): says it all
        raise ValueError(
            f"{folder}: cannot read the weights ({type(error).__name__}: {_first_line(error)}); "
            "is the file complete?"
        ) from None
    _check_loading_info(folder, layout, model_class, config, info)
    return model.eval()


def _check_loading_info(
    folder: Path, layout: str, model_class: type[NTPreTrainedModel], config: NTConfig, info: dict
) -> None:
    """Raise one line unless every backbone weight (and the LM head of a masked LM) came from the file."""
    new_head = () if issubclass(model_class, (NTForMaskedLM, NTv3ForMaskedLM)) else ("classifier.",)
    missing = sorted(
        (key for key in info["missing_keys"] if not key.startswith(new_head)), key=_backbone_first
    )
    unexpected = sorted(
        (key for key in info["unexpected_keys"] if not key.startswith(HEAD_PREFIXES)),
        key=_backbone_first,
    )
    mismatched = sorted(info["mismatched_keys"], key=lambda item: _backbone_first(item[0]))
    if not (missing or unexpected or mismatched):
        return
    problems = []
    for kind, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
            problems.append(f"{len(keys)} {kind} ({shown})")
    if mismatched:
        shown = ", ".join(
            f"{key} {list(saved)} vs {list(expected)}" for key, saved, expected in mismatched[:SHOWN_KEYS]
        )
        problems.append(f"{len(mismatched)} mis-shaped, file vs config ({shown})")
    hint = (
        f"; read as an official {layout} checkpoint (`nt convert --from {layout}` layout)"
        if layout not in ("nt", "ntv3")  # ours (NT v1/v2, NTv3): no official layout to name
        else ""
    )
    if missing and all(key.startswith("lm_head.") for key in missing):
        hint += "; the checkpoint has no masked-LM head (a backbone or classifier checkpoint)"
    raise ValueError(f"{folder}: weights do not fit config.json: {'; '.join(problems)}{hint}")


def _backbone_first(key: str) -> tuple[bool, str]:
    return key.startswith(HEAD_PREFIXES), key


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
