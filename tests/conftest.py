"""Shared fixtures: the optional real-data folder (`../shared/data`, or $NT_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DATA = REPO_ROOT / "data"


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch and BLAS thread: tiny test models gain nothing from more, and on a busy 2-core machine
    extra OpenMP threads contend and run several times slower."""
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield


def _shared_data_dir() -> Path:
    return Path(os.environ.get("NT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder of the development machines; tests using it skip where it is absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not present (set NT_SHARED_DATA to use it)")
    return path


@pytest.fixture(scope="session")
def bundled_data() -> Path:
    """The small real data files shipped in the repository (see data/README.md)."""
    return BUNDLED_DATA
