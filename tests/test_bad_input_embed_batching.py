"""Bad batching flags: ``nt embed --max-batch-tokens`` / ``--batch-size`` and ``nt probe --n-jobs`` values a user
plausibly types (zero, a size with a unit, a negative count) are refused with one line naming the flag, before
any model is loaded or output written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_bad_input


def _fasta(tmp: Path) -> Path:
    path = tmp / "in.fa"
    path.write_text(">a\nACGTACGTACGTAAAC\n>b\nTTGACCA\n")
    return path


def _embed(tmp: Path, *flags: str) -> list:
    return ["embed", "--model", "tiny", "--fasta", _fasta(tmp), "--out", tmp / "e.parquet", *flags]


def _probe(tmp: Path, *flags: str) -> list:
    data = Path(__file__).resolve().parents[1] / "data/gue/prom/prom_300_tata"
    return ["probe", "--model", "tiny", "--benchmark", "gue", "--task", "prom_300_tata", "--data-dir", data,
            "--out", tmp / "r.json", *flags]  # fmt: skip


CASES = [
    # (id, argv builder, expected words)
    ("zero-token-budget", lambda tmp: _embed(tmp, "--max-batch-tokens", "0"), ["--max-batch-tokens", "0"]),
    ("budget-with-a-unit", lambda tmp: _embed(tmp, "--max-batch-tokens", "8k"), ["--max-batch-tokens", "8k"]),
    ("zero-batch-size", lambda tmp: _embed(tmp, "--batch-size", "0"), ["--batch-size", "0"]),
    ("zero-jobs", lambda tmp: _probe(tmp, "--n-jobs", "0"), ["--n-jobs", "0"]),
    ("negative-jobs", lambda tmp: _probe(tmp, "--n-jobs", "-4"), ["--n-jobs", "-4"]),
]


@pytest.mark.parametrize(("argv", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_batching_flag_is_one_line(argv, words, run_nt, tmp_path):
    result = run_nt(*argv(tmp_path))
    assert_bad_input(result, *words)
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "r.json").exists()
