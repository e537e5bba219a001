"""One home for the side-by-side speed measurements of ``benchmarks/perf``.

Rules every workload follows (:func:`compare`):

- **Threads fixed and equal on both sides.** :func:`pin_threads` sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS`` and the Rust tokenizer pool (``RAYON_NUM_THREADS``; ``TOKENIZERS_PARALLELISM`` is
  ``false`` for one thread, else ``true``) in the environment, then ``torch.set_num_threads`` and a global
  ``threadpoolctl`` limit. The Rust pool reads ``RAYON_NUM_THREADS`` when it is created, at the first parallel
  ``encode_batch`` of the process, so :func:`pin_threads` must run before any tokenization: the entry points
  (``python -m benchmarks.perf`` and each workload's ``main``) call it first thing. Subprocesses inherit it.
- **CPU time and wall time**, both recorded. CPU time is ``time.process_time()``: user + system time of all
  threads of this process, which other processes on a shared machine disturb much less than wall time.
  Ratios are ``reference / ours`` (above 1: ours is faster).
- **Interleaved rounds** after an untimed warm-up of each side: each round runs both sides once, in an order
  drawn at random (seeded) per round; the median and min-max over rounds are reported for each side and for the
  per-round ratio (both sides of a ratio ran back to back, under the same load).
- **Outputs compared in the same run**: the caller's ``difference(ours_output, reference_output)`` (for
  example the max absolute difference of embeddings) on the outputs of the last round.

Results: :func:`print_rows` writes the table to stdout and :func:`write_json` writes
``benchmarks/perf/results/<name>.json`` with machine metadata.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Fix every thread pool of this process (and its subprocesses) to ``threads`` threads.

    Call it before the first tokenization (the Rust pool is created then) and before timing anything.
    """
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


@dataclass
class Comparison:
    """Timings of ``ours`` and ``reference`` over interleaved rounds, and how their outputs differ.

    ``cpu_s``/``wall_s`` map each side to its seconds per round; ``order`` lists which side ran first in each
    round. ``work`` is the amount of work of one call of ours (``unit``: tokens, FLOPs...), ``reference_work``
    that of the reference (default: the same). A ratio is ours' rate over the reference's rate in the same
    round, ``(work / ours_s) / (reference_work / reference_s)``: with equal work, ``reference_s / ours_s``.
    ``goal`` is the CPU-time ratio to reach (``None``: reported only).
    """

    name: str
    ours: str
    reference: str
    work: float
    unit: str
    difference: float | None
    difference_name: str
    goal: float | None
    reference_work: float | None = None
    order: list[list[str]] = field(default_factory=list)
    cpu_s: dict[str, list[float]] = field(default_factory=dict)
    wall_s: dict[str, list[float]] = field(default_factory=dict)
    notes: str = ""

    def ratios(self, clock: str) -> list[float]:
        """Per-round ``reference / ours`` seconds on ``clock`` (``"cpu"`` or ``"wall"``)."""
        seconds = self.cpu_s if clock == "cpu" else self.wall_s
        scale = self.work / self._reference_work
        return [scale * ref / ours for ref, ours in zip(seconds["reference"], seconds["ours"], strict=True)]

    @property
    def _reference_work(self) -> float:
        return self.work if self.reference_work is None else self.reference_work

    def summary(self) -> dict[str, Any]:
        """Median and min-max of each side's rates and of the ratios; whether the goal is met."""
        cpu_ratio = spread(self.ratios("cpu"))
        return {
            "ours_per_cpu_s": spread([self.work / s for s in self.cpu_s["ours"]]),
            "reference_per_cpu_s": spread([self._reference_work / s for s in self.cpu_s["reference"]]),
            "ours_per_wall_s": spread([self.work / s for s in self.wall_s["ours"]]),
            "reference_per_wall_s": spread([self._reference_work / s for s in self.wall_s["reference"]]),
            "cpu_ratio": cpu_ratio,
            "wall_ratio": spread(self.ratios("wall")),
            "met": None if self.goal is None else cpu_ratio["median"] >= self.goal,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"summary": self.summary()}


def spread(values: list[float]) -> dict[str, float]:
    """``{"median", "min", "max"}`` of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def timed(function: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, process CPU seconds, wall seconds)`` of one call."""
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.process_time() - started_cpu, time.perf_counter() - started_wall


def compare(
    name: str,
    *,
    ours: tuple[str, Callable[[], Any]],
    reference: tuple[str, Callable[[], Any]],
    rounds: int,
    work: float,
    unit: str,
    reference_work: float | None = None,
    difference: Callable[[Any, Any], float] | None = None,
    difference_name: str = "max |diff|",
    goal: float | None = None,
    warmup: bool = True,
    seed: int = 0,
    notes: str = "",
) -> Comparison:
    """Time ``ours`` against ``reference`` (``(label, callable)`` pairs) over ``rounds`` interleaved rounds.

    Each round runs both callables once in a random order (``random.Random(seed)``), after one untimed call
    of each when ``warmup``. ``difference(ours_output, reference_output)`` is applied to the last round's
    outputs. ``work``/``reference_work``/``unit``: see :class:`Comparison`.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    sides = {"ours": ours[1], "reference": reference[1]}
    if warmup:
        for function in sides.values():
            function()
    result = Comparison(
        name, ours[0], reference[0], work, unit, None, difference_name, goal, reference_work, notes=notes
    )
    result.cpu_s = {side: [] for side in sides}
    result.wall_s = {side: [] for side in sides}
    outputs: dict[str, Any] = {}
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(sides)
        rng.shuffle(order)
        result.order.append(order)
        for side in order:
            outputs[side], cpu, wall = timed(sides[side])
            result.cpu_s[side].append(cpu)
            result.wall_s[side].append(wall)
    if difference is not None:
        result.difference = float(difference(outputs["ours"], outputs["reference"]))
    return result


def _ratio_text(values: dict[str, float]) -> str:
    return f"{values['median']:.2f}x [{values['min']:.2f}-{values['max']:.2f}]"


def _rate_text(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}/cpu-s" if value >= 100 else f"{value:,.3g} {unit}/cpu-s"


def table_row(comparison: Comparison) -> dict[str, str]:
    """The printed row of a comparison: rates, ratios, output difference, goal and whether it is met."""
    summary = comparison.summary()
    goal = "-" if comparison.goal is None else f">= {comparison.goal:g}x"
    met = {None: "-", True: "yes", False: "NO"}[summary["met"]]
    diff = "-" if comparison.difference is None else f"{comparison.difference:.2g}"
    return {
        "workload": comparison.name,
        "ours": f"{comparison.ours}: {_rate_text(summary['ours_per_cpu_s']['median'], comparison.unit)}",
        "reference": f"{comparison.reference}: "
        + _rate_text(summary["reference_per_cpu_s"]["median"], comparison.unit),
        "CPU-time ratio": _ratio_text(summary["cpu_ratio"]),
        "wall ratio": _ratio_text(summary["wall_ratio"]),
        "output diff": f"{diff} ({comparison.difference_name})" if diff != "-" else "-",
        "goal": goal,
        "met": met,
    }


def print_rows(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Print ``rows`` as an aligned plain-text table (columns: the first row's keys by default)."""
    if not rows:
        return
    columns = columns or list(rows[0])
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]
    print(" | ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)))
    print("-+-".join("-" * width for width in widths))
    for row in cells:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def metadata() -> dict[str, Any]:
    """Machine and library versions, thread settings, time."""
    import tokenizers
    import torch
    import transformers

    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "torch_threads": torch.get_num_threads(),
        "thread_environment": {
            name: os.environ.get(name) for name in (*THREAD_VARIABLES, "TOKENIZERS_PARALLELISM")
        },
    }


def write_json(name: str, payload: dict[str, Any], folder: Path | None = None) -> Path:
    """Write ``payload`` plus :func:`metadata` to ``<folder>/<name>.json`` (default ``results/``)."""
    folder = folder or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"metadata": metadata(), **payload}, indent=2, default=_jsonable))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Comparison):
        return value.as_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def reset_peak_rss() -> None:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux ``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def rss_mb(field_name: str = "VmRSS") -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak since start or :func:`reset_peak_rss`) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field_name} not found in /proc/self/status")


def peak_rss_delta_mb(function: Callable[[], Any]) -> float:
    """Peak RSS increase (MB) during ``function()`` over the RSS just before it, in this process."""
    reset_peak_rss()
    baseline = rss_mb("VmRSS")
    function()
    return max(rss_mb("VmHWM") - baseline, 0.0)


def run_worker(module: str, argv: list[str]) -> dict[str, Any]:
    """Run ``python -m module argv...`` in a fresh process and return the JSON of its last stdout line.

    Each side of a memory comparison runs in its own process so that they do not share a high-water mark.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *argv], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory worker {module} {' '.join(argv)} failed: {tail}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
