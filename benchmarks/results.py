"""The results schema shared by every benchmark method (probing, IA3/LoRA/full fine-tuning, BPNet, ...).

One :class:`BenchmarkResult` is the score of one model with one method (and layer, for probes) on one task:
the per-fold scores of the 10-fold cross-validation on the training split, their mean and 2 s.d., and the
score on the official test split. Results are stored as JSON files holding
``{"schema_version": 1, "results": [<result>, ...]}``; :func:`load_results` also accepts a single result
object or a bare list, and checks every record.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .metrics import mean_and_2sd

SCHEMA_VERSION = 1
PACKAGE_NAME = "nucleotide-transformer-hf"
KNOWN_METHODS = (
    "probe",
    "mlp-probe",
    "ia3",
    "lora",
    "full",
    "bpnet",
    "bpnet-large",
    "raw-tokens",
    "zero-shot",
)


#: Folder names the Trainer and ``nt pretrain`` give every run (``final/``, ``checkpoint-N/``): they name no model.
GENERIC_CHECKPOINT_FOLDER = re.compile(r"^(final|checkpoint-\d+)$")


def model_name_of(model: Any) -> str:
    """The model's name in results, leaderboards and cards: the one default of every ``--model-name``.

    ``model`` is a checkpoint folder, a preset or Hub name, or a loaded model (or its config). In order:

    1. the ``model_name`` recorded in the checkpoint's ``config.json`` (``nt pretrain`` records its output
       folder's name there);
    2. a checkpoint folder's name, or for the generic names ``final`` and ``checkpoint-N`` the name of the run
       folder holding it (``runs/chr20/final`` -> ``chr20``);
    3. a preset or Hub name as given (``tiny``, ``InstaDeepAI/nucleotide-transformer-v2-50m-multi-species``);
    4. for a loaded model: rules 1-3 on its config (``model_name``, then ``name_or_path``), else its class name.
    """
    if isinstance(model, str | Path):
        path = Path(model)
        if not path.is_dir():
            return str(model)
        recorded = _recorded_model_name(path / "config.json")
        if recorded:
            return recorded
        path = path.resolve()
        return path.parent.name if GENERIC_CHECKPOINT_FOLDER.match(path.name) else path.name
    config = getattr(model, "config", model)
    recorded = getattr(config, "model_name", None)
    if isinstance(recorded, str) and recorded:
        return recorded
    name_or_path = getattr(config, "name_or_path", "") or getattr(config, "_name_or_path", "")
    return model_name_of(name_or_path) if name_or_path else type(model).__name__


def _recorded_model_name(config_path: Path) -> str | None:
    """``model_name`` of a checkpoint's ``config.json``; None when absent or unreadable (loading reports that)."""
    try:
        name = json.loads(config_path.read_text()).get("model_name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def package_version() -> str:
    """Installed version of this package, or ``"unknown"`` when it runs from a source tree only."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE_NAME)
    except PackageNotFoundError:
        return "unknown"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclasses.dataclass
class BenchmarkResult:
    """Score of one model / method (/ layer) on one benchmark task.

    ``mean`` and ``two_sd`` are derived from ``fold_scores`` when left out; when given they must agree with
    them. A result needs fold scores, a test score, or both. ``method`` is free text, usually one of
    :data:`KNOWN_METHODS`.
    """

    model: str
    task: str
    benchmark: str
    method: str
    metric: str = "mcc"
    fold_scores: list[float] = dataclasses.field(default_factory=list)
    mean: float | None = None
    two_sd: float | None = None
    test_score: float | None = None
    layer: int | None = None
    n_params: int | None = None
    trainable_params: int | None = None
    seed: int | None = None
    time: str = dataclasses.field(default_factory=_utc_now)
    package_version: str = dataclasses.field(default_factory=package_version)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_fields(self)
        self.fold_scores = [float(score) for score in self.fold_scores]
        if not self.fold_scores:
            if self.mean is not None or self.two_sd is not None:
                raise ValueError("mean/two_sd given without fold_scores")
            return
        mean, two_sd = mean_and_2sd(self.fold_scores)
        for name, derived in (("mean", mean), ("two_sd", two_sd)):
            given = getattr(self, name)
            if given is not None and not math.isclose(given, derived, rel_tol=1e-6, abs_tol=1e-9):
                raise ValueError(f"{name}={given} does not match the fold scores ({derived:.6g})")
            setattr(self, name, derived)

    @property
    def key(self) -> tuple[str, str, str, str, int | None]:
        """Identity of the run: (benchmark, task, model, method, layer); used to skip finished runs."""
        return (self.benchmark, self.task, self.model, self.method, self.layer)

    @property
    def score(self) -> float:
        """Headline score: the cross-validated mean when there are folds, else the test score."""
        return self.mean if self.mean is not None else self.test_score

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """JSON text of this result."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> BenchmarkResult:
        """Build (and validate) a result from a dict; unknown or missing fields are errors."""
        if not isinstance(record, dict):
            raise ValueError(f"a result must be a JSON object, got {type(record).__name__}")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(record) - names)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; allowed: {sorted(names)}")
        missing = sorted(name for name in ("model", "task", "benchmark", "method") if name not in record)
        if missing:
            raise ValueError(f"missing required field(s) {missing}")
        return cls(**record)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResult:
        """Parse one result from JSON text."""
        return cls.from_dict(json.loads(text))


def _check_fields(result: BenchmarkResult) -> None:
    for name in ("model", "task", "benchmark", "method", "metric", "time", "package_version"):
        value = getattr(result, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"field {name!r} must be a non-empty string, got {value!r}")
    if not isinstance(result.fold_scores, list | tuple) or not all(
        _is_number(score) for score in result.fold_scores
    ):
        raise ValueError(f"fold_scores must be a list of numbers, got {result.fold_scores!r}")
    for name in ("mean", "two_sd", "test_score"):
        value = getattr(result, name)
        if value is not None and not _is_number(value):
            raise ValueError(f"field {name!r} must be a number or null, got {value!r}")
    for name in ("layer", "n_params", "trainable_params", "seed"):
        value = getattr(result, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"field {name!r} must be an integer or null, got {value!r}")
    if not isinstance(result.extra, dict):
        raise ValueError(f"field 'extra' must be an object, got {result.extra!r}")
    if not result.fold_scores and result.test_score is None:
        raise ValueError("a result needs fold_scores, a test_score, or both")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def save_results(results: Iterable[BenchmarkResult], path: str | Path, overwrite: bool = False) -> Path:
    """Write results to one JSON file (atomically). An existing file is kept unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    payload = {"schema_version": SCHEMA_VERSION, "results": [result.to_dict() for result in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def load_results(paths: str | Path | Sequence[str | Path]) -> list[BenchmarkResult]:
    """Read results from JSON files, or from every ``*.json`` file of the given folders.

    Errors name the file and the index of the bad record.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    results = []
    for path in _expand(paths):
        for index, record in enumerate(_records(path)):
            try:
                results.append(BenchmarkResult.from_dict(record))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}: result #{index}: {error}") from None
    return results


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            if not found:
                raise FileNotFoundError(f"results folder {path} holds no *.json result files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif any(character in str(path) for character in "*?["):
            raise FileNotFoundError(
                f"results file or folder not found: {path} (a pattern that matched no file, left unexpanded)"
            )
        else:
            raise FileNotFoundError(f"results file or folder not found: {path}")
    return files


def _records(path: Path) -> list[Any]:
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if isinstance(payload, dict) and "results" in payload:
        version = payload.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
            )
        payload = payload["results"]
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise ValueError(f"{path}: expected a results object or list, got {type(payload).__name__}")
    return payload
