"""Range checks of the numeric parameters of the package's Python functions.

A value out of range raises one ``ValueError`` line naming the parameter, instead of being silently misused
(``trials=0`` running one trial, ``steps=-5`` training for epochs). The ``nt`` command line checks the same
ranges when parsing its flags (``benchmarks/cli/_args.py``).
"""

from __future__ import annotations

import math


def require_at_least(minimum: int, **values: int | None) -> None:
    """Each of ``values`` (name=value; None is skipped) must be an integer >= ``minimum``."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


def require_positive(**values: float | None) -> None:
    """Each of ``values`` (name=value; None is skipped) must be a finite number > 0."""
    for name, value in values.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be > 0, got {value}")
