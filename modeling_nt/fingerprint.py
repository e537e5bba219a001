"""One run fingerprint: what determines the rows of a resumable job, recorded beside its partial output and
checked whenever the job is resumed or rerun, so that results of two different runs are never mixed.

A :class:`RunFingerprint` is a flat, JSON-serialisable mapping ``name -> entry``. The name is what the user
changes (a flag such as ``--model``, ``--fasta``, ``--layers``), so a refusal names it. Each entry has a
``kind``; only its *identity* fields are compared (a moved file or checkpoint folder with the same content is
the same input, and its path is kept for the message only):

- ``checkpoint`` (a model folder, or the snapshot folder of a Hub repository id, resolved as the loader
  resolves it: :func:`modeling_nt.loading.resolve_spec`): sha256 of ``config.json`` and of every weight file
  (``*.safetensors``, ``*.bin``, ``*.pt``, ``*.pth``), streamed;
- ``preset`` (an NT or NTv3 preset name, ``modeling_nt.loading.PRESETS``: random weights from a fixed seed):
  the name;
- ``loaded`` (a model object): sha256 of its config and of its state dict's bytes;
- ``file``: size and sha256 of the content; ``folder``: sha256 over its files' relative paths and hashes;
- ``content`` (in-memory records: sequences, labels): count and sha256 of the values;
- ``value``: any JSON value (an argument that changes the results).

Large files are hashed once per process (cached by resolved path, size and modification time).

Life cycle, so that a run refused before doing any work leaves nothing behind: :func:`check_fingerprint`
before anything is written (where partial results exist, refuses a recorded fingerprint that differs, naming
every difference on one line), then :func:`record_fingerprint` once every input is validated and work is
about to start. :func:`check_or_record` does both at once where nothing can fail between them. A record
without results (a run killed before its first result) blocks nothing: the next run records its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

FINGERPRINT_FILE = "fingerprint.json"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_IDENTITY = {
    "checkpoint": ("config_sha256", "weights"),
    "preset": ("name",),
    "loaded": ("config_sha256", "weights_sha256"),
    "file": ("size", "sha256"),
    "folder": ("sha256",),
    "content": ("n", "sha256"),
    "value": ("value",),
}
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


class FingerprintMismatch(ValueError):
    """A resumed or rerun job differs from the run whose partial results are on disk."""


class RunFingerprint(dict):
    """What determines a job's rows: ``{name: entry}`` (see the module docstring), JSON-serialisable."""

    def differences(self, recorded: Mapping[str, Any]) -> list[str]:
        """One phrase per name whose entry differs between ``recorded`` (the earlier run) and this one."""
        return [
            _difference(name, recorded.get(name), self.get(name))
            for name in sorted(set(recorded) | set(self))
            if _identity(recorded.get(name)) != _identity(self.get(name))
        ]


def _identity(entry: Mapping[str, Any] | None) -> Any:
    if entry is None:
        return None
    return (entry["kind"], *(json.dumps(entry.get(key), sort_keys=True) for key in _IDENTITY[entry["kind"]]))


def describe(entry: Mapping[str, Any] | None) -> str:
    """A short human description of one fingerprint entry, for messages."""
    if entry is None:
        return "not given"
    kind = entry["kind"]
    if kind == "checkpoint":
        config = (entry["config_sha256"] or "none")[:12]
        weights = _digest_of(entry["weights"])[:12] if entry["weights"] else "none"
        return f"{entry['path']} (config sha256 {config}, weights sha256 {weights})"
    if kind == "preset":
        return f"preset {entry['name']} (random weights)"
    if kind == "loaded":
        name = f" {entry['name']}" if entry.get("name") else ""
        return (
            f"a loaded model{name} (config sha256 {entry['config_sha256'][:12]}, "
            f"weights sha256 {entry['weights_sha256'][:12]})"
        )
    if kind == "file":
        return f"{entry['path']} ({entry['size']} bytes, sha256 {entry['sha256'][:12]})"
    if kind == "folder":
        return f"{entry['path']} (sha256 {entry['sha256'][:12]})"
    if kind == "content":
        return f"{entry['n']} records (sha256 {entry['sha256'][:12]})"
    return json.dumps(entry["value"])


def _difference(name: str, was: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> str:
    same_place = was and now and was["kind"] == now["kind"] and was.get("path") and was["path"] == now["path"]
    if same_place and was["kind"] in ("file", "folder", "checkpoint"):
        return f"{name}: content changed (was {describe(was)}, now {describe(now)})"
    return f"{name}: was {describe(was)}, now {describe(now)}"


def _digest_of(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content (streamed; cached by resolved path, size and modification time)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        with path.open("rb") as handle:
            _FILE_HASHES[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _FILE_HASHES[key]


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """``file`` entry (size, sha256) of a file, or ``folder`` entry of a folder (its files, recursively).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        files = {
            str(file.relative_to(path)): file_sha256(file)
            for file in sorted(path.rglob("*"))
            if file.is_file()
        }
        return {"kind": "folder", "path": str(path), "sha256": _digest_of(files)}
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    return {"kind": "file", "path": str(path), "size": path.stat().st_size, "sha256": file_sha256(path)}


def content_fingerprint(*columns: Iterable[Any]) -> dict[str, Any]:
    """``content`` entry of in-memory records given column by column (e.g. names, sequences, labels):
    the number of records (of the first column) and the sha256 of every value, in order."""
    digest, count = hashlib.sha256(), None
    for column in columns:
        values = [value.item() if hasattr(value, "item") else value for value in column]
        count = len(values) if count is None else count
        digest.update(json.dumps(values, default=str).encode())
        digest.update(b"\x1e")
    return {"kind": "content", "n": count or 0, "sha256": digest.hexdigest()}


def model_fingerprint(model: Any) -> dict[str, Any]:
    """Entry of a model given as a checkpoint folder, a preset name, a Hub repository id or a loaded
    ``torch.nn.Module`` (kinds in the module docstring).

    Raises:
        FileNotFoundError, ValueError: a spec that names no folder, preset or Hub repository (the loader's own
            one-line errors, :func:`modeling_nt.loading.resolve_spec`).
    """
    if not isinstance(model, str | Path):
        return _loaded_fingerprint(model)
    from .loading import PRESETS, resolve_spec  # NT and NTv3 presets

    if not Path(model).is_dir() and str(model) in PRESETS:
        return {"kind": "preset", "name": str(model)}
    folder = resolve_spec(model)  # a Hub id: its cached (or now downloaded) snapshot, as the loader reads it
    entry = _checkpoint_fingerprint(Path(folder))
    if Path(folder) != Path(model):
        entry["path"] = f"{model} (Hub snapshot {Path(folder).name[:12]})"
    return entry


def _checkpoint_fingerprint(folder: Path) -> dict[str, Any]:
    config = folder / "config.json"
    weights = sorted({file for pattern in WEIGHT_PATTERNS for file in folder.glob(pattern) if file.is_file()})
    return {
        "kind": "checkpoint",
        "path": str(folder),
        "config_sha256": file_sha256(config) if config.is_file() else None,
        "weights": {file.name: file_sha256(file) for file in weights},
    }


def _loaded_fingerprint(model: Any) -> dict[str, Any]:
    import torch

    config = getattr(model, "config", None)
    values = config.to_dict() if hasattr(config, "to_dict") else {}
    for key in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        values.pop(key, None)
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return {
        "kind": "loaded",
        "name": getattr(config, "_name_or_path", "") or type(model).__name__,
        "config_sha256": _digest_of(values),
        "weights_sha256": digest.hexdigest(),
    }


def value_entry(value: Any) -> dict[str, Any]:
    """``value`` entry of an argument (tuples become lists, paths strings), as it reads back from JSON."""
    return {"kind": "value", "value": json.loads(json.dumps(value, default=str))}


def fingerprint_run(
    *,
    model: Any = None,
    model_flag: str = "--model",
    inputs: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> RunFingerprint:
    """The fingerprint of a run.

    Args:
        model: checkpoint folder, preset name, Hub id or loaded model (None: the job has no model).
        model_flag: the name the model goes under (``--model``; ``--preset`` for pretraining).
        inputs: ``{flag: file or folder path}``, or ``{name: entry}`` for an entry already built (e.g. by
            :func:`content_fingerprint`); None paths are skipped.
        settings: ``{flag: value}`` of every argument that changes the results (not batch sizes, devices,
            progress or chunking flags that only change how the work is cut).

    Raises:
        FileNotFoundError: an input file does not exist.
    """
    fingerprint = RunFingerprint()
    if model is not None:
        fingerprint[model_flag] = model_fingerprint(model)
    for name, source in (inputs or {}).items():
        if source is None:
            continue
        fingerprint[name] = dict(source) if isinstance(source, Mapping) else file_fingerprint(source)
    for name, value in (settings or {}).items():
        fingerprint[name] = value_entry(value)
    return fingerprint


def read_fingerprint(path: str | Path) -> RunFingerprint | None:
    """The fingerprint recorded at ``path`` (None when there is none)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return RunFingerprint(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FingerprintMismatch(
            f"{path}: unreadable run record ({error}); delete it to start over"
        ) from None


def check_fingerprint(
    path: str | Path,
    fingerprint: Mapping[str, Any],
    *,
    partial: str | Path | None = None,
    started: bool = True,
    restart: str | None = None,
) -> None:
    """Refuse to continue when partial results are on disk (``started``) and the run recorded at ``path``
    differs from ``fingerprint``.

    Args:
        path: the record (JSON) of the run whose partial results are on disk.
        partial: what holds those results (named in the message as the thing to delete); default ``path``.
        started: whether partial results exist. Without any, nothing can be mixed: an earlier record is not
            checked (the new run records its own). With some but no record (an older version wrote them), they
            are refused, since nothing says which run they belong to.
        restart: how to start over, for the message (default ``delete PARTIAL``).

    Raises:
        FingerprintMismatch: one line naming every difference (``--model: was A (...), now B (...)``).
    """
    check_recorded(
        read_fingerprint(path), fingerprint, path=path, partial=partial, started=started, restart=restart
    )


def check_recorded(
    recorded: Mapping[str, Any] | None,
    fingerprint: Mapping[str, Any],
    *,
    path: str | Path,
    partial: str | Path | None = None,
    started: bool = True,
    restart: str | None = None,
) -> None:
    """:func:`check_fingerprint` for a fingerprint ``recorded`` inside another file (``path``)."""
    partial = partial or path
    if not started:
        return
    if recorded is None:
        raise FingerprintMismatch(
            f"{partial} holds partial results without a record of the run that wrote them ({path}); "
            f"{restart or 'delete it'} to start over"
        )
    differences = RunFingerprint(fingerprint).differences(recorded)
    if differences:
        raise FingerprintMismatch(
            f"{partial} holds partial results of another run: {'; '.join(differences)}. Rerun with the recorded "
            f"inputs to resume, or {restart or f'delete {partial}'} to start over"
        )


def record_fingerprint(path: str | Path, fingerprint: Mapping[str, Any]) -> Path:
    """Write ``fingerprint`` to ``path`` atomically (creating its folder); call it when work starts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    partial.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def check_or_record(path: str | Path, fingerprint: Mapping[str, Any], **check: Any) -> Path:
    """:func:`check_fingerprint` (``check``: its keyword arguments), then :func:`record_fingerprint`."""
    check_fingerprint(path, fingerprint, **check)
    return record_fingerprint(path, fingerprint)
