"""Shared fixtures: the optional real-data folder (`../shared/data`, or $NT_SHARED_DATA)."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass
class CliResult:
    """What one in-process ``nt`` call returned and printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_nt(capsys):
    """Run ``nt ARGV...`` in this process: returns a :class:`CliResult` (argparse exits become codes)."""
    from benchmarks.cli import main

    def run(*argv: object) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 2
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_bad_input(result: CliResult, *words: str) -> None:
    """The contract for bad input: exit status 2, exactly one line on stderr, no traceback, and every one of
    ``words`` (case-insensitive) in that line."""
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2, f"exit {result.code}, stderr: {result.err!r}"
    assert "Traceback" not in result.err, result.err
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {result.err!r}"
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"


@pytest.fixture
def announces_random_weights(caplog, monkeypatch):
    """A context manager asserting that its block announces a preset's random weights (logger
    ``modeling_nt.loading``, once per process: the record of presets already announced is reset first)."""
    import contextlib
    import logging

    from modeling_nt import loading

    @contextlib.contextmanager
    def announced(preset: str = "tiny"):
        monkeypatch.setattr(loading, "_ANNOUNCED", set())
        with caplog.at_level(logging.WARNING, logger="modeling_nt.loading"):
            yield
        assert f"random weights: preset {preset!r}" in caplog.text

    return announced


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face cache, made the default, with outgoing traffic disabled (HF_HUB_OFFLINE=1): fill
    it with ``test_checkpoint_loading.cache_repo``."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache
