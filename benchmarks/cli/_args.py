"""Argument types and checks shared by every ``nt`` command (the one home of these rules).

Numeric flags are range-checked when the command line is parsed: each ``type=`` callable below raises
``argparse.ArgumentTypeError``, which the parser turns into one line naming the flag, e.g.
``nt embed: error: argument --batch-size: must be >= 1, got 0 (see nt embed --help)``.
:func:`check_writable` refuses an output path that cannot be written before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


def _parse(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        value = int(_parse(text, int))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int_at_least_{minimum}"
    return parse


#: An integer >= 1 (batch sizes, steps, trials, folds, threads, window lengths, ...).
positive_int = int_at_least(1)
#: An integer >= 0 (overlaps, flanks, patience, seeds, ...).
non_negative_int = int_at_least(0)
#: Cross-validation folds: at least 2.
fold_count = int_at_least(2)


def fold_count_or_zero(text: str) -> int:
    """An argparse type: 0 (no cross-validation) or at least 2 folds."""
    value = int(_parse(text, int))
    if value != 0 and value < 2:
        raise argparse.ArgumentTypeError(f"must be 0 (no cross-validation) or >= 2 folds, got {value}")
    return value


def float_in(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a finite float in the interval from ``low`` to ``high`` (``None``: unbounded);
    ``low_open`` / ``high_open`` exclude the bounds."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    low_text = "-inf" if low is None else f"{low:g}"
    high_text = "inf" if high is None else f"{high:g}"
    interval = f"{left}{low_text}, {high_text}{right}"

    def parse(text: str) -> float:
        value = float(_parse(text, float))
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            if high is None and low is not None:
                raise argparse.ArgumentTypeError(
                    f"must be {'>' if low_open else '>='} {low_text}, got {value:g}"
                )
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {value:g}")
        return value

    parse.__name__ = f"float_in_{interval}"
    return parse


#: A float > 0 (learning rates, epsilons).
positive_float = float_in(0.0, low_open=True)
#: A float >= 0 (weight decay).
non_negative_float = float_in(0.0)
#: A share in [0, 1).
fraction = float_in(0.0, 1.0, high_open=True)
#: A probability in [0, 1].
probability = float_in(0.0, 1.0)
#: A probability in (0, 1] (a share that must select something: masking rates).
positive_probability = float_in(0.0, 1.0, low_open=True)
#: A level in (0, 1) (false discovery rates, significance levels).
open_unit = float_in(0.0, 1.0, low_open=True, high_open=True)


def check_writable(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, before any work, an output ``path`` that could not be created: its nearest existing ancestor
    must be a folder we may write into (an existing ``path`` itself must be writable).

    Raises:
        NotADirectoryError: a parent of ``path`` is a file.
        PermissionError: the nearest existing folder (or ``path``) is not writable.
    """
    path = Path(path)
    ancestor = path.absolute()
    if ancestor.exists():
        if not os.access(ancestor, os.W_OK):
            raise PermissionError(f"{flag} {path}: not writable")
        return path
    ancestor = ancestor.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{flag} {path}: cannot be created, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path}: cannot be created, folder {ancestor} is not writable")
    return path


def check_writable_file(path: str | Path, flag: str = "--out") -> Path:
    """:func:`check_writable` for an output *file*: an existing ``path`` must not be a folder.

    Raises:
        IsADirectoryError: ``path`` is an existing folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path}: is a folder, not a file (give a file name for the output)")
    return check_writable(path, flag)


def check_not_an_input(out: str | Path, flag: str = "--out", **inputs: str | Path | None) -> None:
    """Refuse an output path that is one of the command's input files (``inputs``: flag name -> path, with
    ``_`` for ``-``; None skipped), which would be overwritten or taken for partial results.

    Raises:
        ValueError: ``out`` is the same file as an input ("--out X is the --vcf input file").
    """
    out = Path(out)
    for name, path in inputs.items():
        if (
            path is not None
            and out.exists()
            and Path(path).exists()
            and out.resolve() == Path(path).resolve()
        ):
            raise ValueError(
                f"{flag} {out} is the --{name.replace('_', '-')} input file: choose another {flag}"
            )


def check_writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """:func:`check_writable` for an output *folder*: an existing ``path`` must also be a folder.

    Raises:
        NotADirectoryError: ``path`` is an existing file (or a parent of it is).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{flag} {path}: is a file, not a folder (give a folder for the outputs)")
    return check_writable(path, flag)


#: Help of every ``--model`` flag: what ``modeling_nt.loading.load_model`` accepts.
MODEL_HELP = (
    "checkpoint folder (ours, or an official ESM / v2 Hub folder: converted on load), Hub id such as "
    "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species (config and weights only; honours HF_HUB_OFFLINE), "
    "or a preset name such as 'tiny' (random weights, for tests and demos)"
)


def hub_repo_id(text: str) -> str:
    """An argparse type: a Hub model repository id (``name`` or ``owner/name``), checked by ``huggingface_hub``."""
    from benchmarks.publish import check_repo_id

    try:
        return check_repo_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
