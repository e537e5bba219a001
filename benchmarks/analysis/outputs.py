"""Output helpers shared by the analyses: the output folder (never overwriting finished results unless asked),
CSV/JSON writers and matplotlib figures on the Agg backend."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def prepare_out_dir(out_dir: str | Path, file_names: Sequence[str], overwrite: bool = False) -> Path:
    """Create ``out_dir``; raise FileExistsError when one of ``file_names`` is already there (a finished run)
    unless ``overwrite``."""
    out_dir = Path(out_dir)
    existing = [name for name in file_names if (out_dir / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {', '.join(existing)} (a finished analysis); pass --overwrite or choose "
            "another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def prepare_run_dir(
    out_dir: str | Path, file_names: Sequence[str], overwrite: bool, fingerprint: Any, record_name: str
) -> Path:
    """Make ``out_dir`` ready for an analysis run whose run fingerprint (:mod:`modeling_nt.fingerprint`) is
    ``fingerprint``, so that its outputs never mix with those of another run.

    Outputs of a finished run (all of ``file_names``) are kept unless ``overwrite``. Outputs of an interrupted
    run are redone when it was the same run (same fingerprint, recorded in ``out_dir/record_name``); another
    run's are refused, naming each difference. Whatever is redone or overwritten is removed first, and the new
    fingerprint is recorded.

    Raises:
        FileExistsError: a finished analysis is there and ``overwrite`` is false.
        FingerprintMismatch: outputs of an interrupted run with another model, input or setting.
    """
    from modeling_nt.fingerprint import check_fingerprint, record_fingerprint

    out_dir = Path(out_dir)
    record = out_dir / record_name
    existing = [name for name in file_names if (out_dir / name).exists()]
    if existing and not overwrite:
        if len(existing) == len(file_names):
            prepare_out_dir(out_dir, file_names, overwrite)  # raises: a finished analysis
        check_fingerprint(record, fingerprint, partial=out_dir, restart="pass --overwrite")
    for name in existing:
        (out_dir / name).unlink()
    record_fingerprint(record, fingerprint)
    return out_dir


def _atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def write_csv(
    path: str | Path, rows: Iterable[dict[str, Any]], columns: Sequence[str], delimiter: str = ","
) -> Path:
    """Write dict rows as CSV (or TSV with ``delimiter="\\t"``), atomically; floats keep full precision."""
    path = Path(path)
    partial = _atomic_path(path)
    with partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore", delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON (atomically, NaN written as null)."""
    path = Path(path)
    partial = _atomic_path(path)
    partial.write_text(json.dumps(_without_nan(payload), indent=2) + "\n")
    os.replace(partial, path)
    return path


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path) -> Path:
    """Save a figure as PNG (150 dpi, tight) and close it."""
    path = Path(path)
    partial = _atomic_path(path)
    figure.savefig(partial, dpi=150, bbox_inches="tight", format="png")
    pyplot().close(figure)
    os.replace(partial, path)
    return path


def class_colors(classes: Sequence[str]) -> dict[str, Any]:
    """A fixed colour per class (tab10 order)."""
    cmap = pyplot().get_cmap("tab10")
    return {name: cmap(index % 10) for index, name in enumerate(classes)}
