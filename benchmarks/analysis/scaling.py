"""Scaling: benchmark performance against parameter count and training tokens (NT_SPEC section 7).

From :class:`~benchmarks.results.BenchmarkResult` records, the best result per (benchmark, task, model,
method) is kept (:func:`benchmarks.leaderboard.best_results`, i.e. the best probing layer), and its headline
score averaged per model, method and task group (``histone`` / ``regulatory`` / ``splicing`` from the task
registry; ``extra["group"]`` or ``"other"`` for unregistered tasks), plus ``all tasks``. The parameter count is
the result's ``n_params``; training tokens are ``extra["training_tokens"]``; a ``model_info`` mapping
``{model: {"n_params": ..., "training_tokens": ...}}`` fills in what the results lack.

Outputs in ``out_dir``: ``scaling.csv`` / ``.json`` and ``scaling.png`` (score against parameters and against
training tokens, log x axes, one line per task group; optionally the paper's fine-tuned mean MCC of the
NT v1 models, NT_SPEC sections 2-4, as reference points).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .outputs import prepare_out_dir, pyplot, save_figure, write_csv, write_json

ALL_TASKS = "all tasks"
OUTPUT_FILES = ("scaling.csv", "scaling.json", "scaling.png")
ROW_COLUMNS = ("model", "method", "group", "n_tasks", "score", "metric", "n_params", "training_tokens")
#: Parameters and training tokens of the paper's NT v1 models (NT_SPEC sections 2 and 3).
PAPER_MODEL_SIZES = {
    "NT-MS 2.5B": (2_548_000_000, 300_000_000_000),
    "NT-1000G 2.5B": (2_548_000_000, 300_000_000_000),
    "NT-1000G 500M": (485_700_000, 50_000_000_000),
    "NT-HR 500M": (485_700_000, 50_000_000_000),
}


def read_model_info(path: str | Path) -> dict[str, dict[str, float]]:
    """``{model: {"n_params": ..., "training_tokens": ...}}`` from a JSON file (either key may be absent)."""
    from tokenization import require_file

    path = require_file(path, "model info")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    expected = f'{path}: expected {{model: {{"n_params": ..., "training_tokens": ...}}}}'
    if not isinstance(info, dict):
        raise ValueError(expected)
    for model, fields in info.items():
        if not isinstance(fields, dict) or set(fields) - {"n_params", "training_tokens"}:
            raise ValueError(f"{expected}; bad entry for {model!r}")
    return info


def _group_of(result: Any) -> str:
    from benchmarks.tasks import TASKS

    spec = TASKS.get(result.benchmark, {}).get(result.task)
    return spec.group if spec else str(result.extra.get("group", "other"))


def _size_of(results: Sequence[Any], key: str, info: dict[str, Any]) -> int | None:
    values = [result.n_params if key == "n_params" else result.extra.get(key) for result in results]
    value = next((value for value in values if value is not None), info.get(key))
    if value is not None and (not isinstance(value, int | float) or value <= 0):
        raise ValueError(f"{key} of model {results[0].model!r} must be a positive number, got {value!r}")
    return None if value is None else int(value)


def scaling_rows(results: Iterable[Any], model_info: dict[str, dict[str, float]] | None = None) -> list[dict]:
    """Mean score per (model, method, group) with the model's parameters and training tokens."""
    from benchmarks.leaderboard import best_results

    model_info = model_info or {}
    by_key: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for result in best_results(results):
        by_key[(result.model, result.method)].append(result)
    rows = []
    for (model, method), kept in sorted(by_key.items()):
        info = model_info.get(model, {})
        sizes = {key: _size_of(kept, key, info) for key in ("n_params", "training_tokens")}
        groups: dict[str, list[Any]] = defaultdict(list)
        for result in kept:
            groups[_group_of(result)].append(result)
        groups[ALL_TASKS] = kept
        for group, members in sorted(groups.items()):
            metrics = sorted({result.metric for result in members})
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "group": group,
                    "n_tasks": len(members),
                    "score": float(np.mean([result.score for result in members])),
                    "metric": "/".join(metrics),
                    **sizes,
                }
            )
    return rows


def analyze_scaling(
    results: Sequence[Any],
    out_dir: str | Path,
    *,
    model_info: dict[str, dict[str, float]] | None = None,
    paper_reference: bool = False,
    overwrite: bool = False,
) -> dict:
    """Scaling table and plot (module docstring); returns the JSON summary."""
    rows = scaling_rows(results, model_info)
    if not any(row["n_params"] or row["training_tokens"] for row in rows):
        raise ValueError(
            "no result has a parameter count (n_params) or training tokens (extra.training_tokens); "
            "give them with --model-info"
        )
    out_dir = prepare_out_dir(out_dir, OUTPUT_FILES, overwrite)
    missing = sorted({row["model"] for row in rows if not row["n_params"] and not row["training_tokens"]})
    summary = {
        "n_results": len(results),
        "models": sorted({row["model"] for row in rows}),
        "models_without_sizes": missing,
        "groups": sorted({row["group"] for row in rows}),
        "rows": rows,
    }
    write_csv(out_dir / "scaling.csv", rows, ROW_COLUMNS)
    write_json(out_dir / "scaling.json", summary)
    plot_scaling(rows, out_dir / "scaling.png", paper_reference)
    return summary


def plot_scaling(rows: Sequence[dict], path: str | Path, paper_reference: bool = False) -> Path:
    """Score against parameters and against training tokens: one line per task group (and method, when
    several), each model a point."""
    from benchmarks.leaderboard import REFERENCE_MEAN_MCC

    plt = pyplot()
    methods = sorted({row["method"] for row in rows})
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for axis, key, label in (
        (axes[0], "n_params", "parameters"),
        (axes[1], "training_tokens", "training tokens"),
    ):
        lines: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for row in rows:
            if row[key]:
                lines[(row["group"], row["method"])].append(row)
        for (group, method), points in sorted(lines.items()):
            points.sort(key=lambda row: row[key])
            name = group if len(methods) == 1 else f"{group} ({method})"
            width = 2.5 if group == ALL_TASKS else 1.2
            axis.plot(
                [p[key] for p in points],
                [p["score"] for p in points],
                marker="o",
                linewidth=width,
                label=name,
            )
            if group == ALL_TASKS:
                for point in points:
                    axis.annotate(
                        point["model"],
                        (point[key], point["score"]),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        if paper_reference:
            x = [PAPER_MODEL_SIZES[model][0 if key == "n_params" else 1] for model in PAPER_MODEL_SIZES]
            y = [REFERENCE_MEAN_MCC[model] for model in PAPER_MODEL_SIZES]
            axis.scatter(x, y, marker="*", s=120, color="black", label="paper, fine-tuned mean MCC", zorder=3)
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("mean score over tasks")
        axis.set_title(f"score vs {label}")
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend(fontsize=8)
    figure.suptitle("Scaling of benchmark performance")
    return save_figure(figure, path)
