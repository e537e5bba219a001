"""Bad input to the commands that read or write finished outputs: `nt leaderboard` (result files), `nt data
prepare` / `nt data push` (prepared task folders) and `nt demo --out` (issue 12, sections 4 and 8).

Each case is a mistake a user makes with their own files; it builds them in tmp_path and expects exit status
2, one stderr line naming the file or flag and the problem, and nothing written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUNDLED_DATA, assert_bad_input

GOOD_RESULT = {
    "model": "nt-tiny",
    "task": "H3",
    "benchmark": "original",
    "method": "probe",
    "test_score": 0.5,
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _results(path: Path, *records: dict, version: int = 1) -> Path:
    return _write(path, json.dumps({"schema_version": version, "results": list(records)}))


def _prepared(folder: Path) -> Path:
    """A folder as `nt data prepare` writes it (parquet content is not read by a dry run)."""
    for split in ("train", "test"):
        _write(folder / f"{split}.parquet", "PAR1")
    return folder


# (case id, setup(tmp) -> argv, words the one error line must hold)
Case = tuple[str, Callable[[Path], list], list[str]]
# fmt: off
CASES: list[Case] = [
    # nt leaderboard: result files
    ("leaderboard-missing-file", lambda t: ["leaderboard", t / "probe.json", "--out", t / "lb"],
     ["probe.json", "not found"]),
    ("leaderboard-unexpanded-glob", lambda t: ["leaderboard", t / "results" / "*.json", "--out", t / "lb"],
     ["*.json", "not found", "pattern"]),
    ("leaderboard-empty-folder", lambda t: [(t / "results").mkdir() or "leaderboard", t / "results", "--out",
                                            t / "lb"], ["results", "no *.json"]),
    ("leaderboard-not-json", lambda t: ["leaderboard", _write(t / "r.json", "model\ttask\tmcc\nnt\tH3\t0.5\n"),
                                        "--out", t / "lb"], ["r.json", "not valid JSON", "line 1"]),
    ("leaderboard-truncated-json", lambda t: ["leaderboard", _write(t / "r.json", '{"schema_version": 1, "res'),
                                              "--out", t / "lb"], ["r.json", "not valid JSON"]),
    ("leaderboard-empty-file", lambda t: ["leaderboard", _write(t / "r.json", ""), "--out", t / "lb"],
     ["r.json", "not valid JSON"]),
    ("leaderboard-schema-version", lambda t: ["leaderboard", _results(t / "r.json", GOOD_RESULT, version=2),
                                              "--out", t / "lb"], ["r.json", "schema_version 2"]),
    ("leaderboard-unknown-field", lambda t: ["leaderboard", _results(t / "r.json", {**GOOD_RESULT, "mcc": 0.5}),
                                             "--out", t / "lb"], ["r.json", "result #0", "unknown field", "mcc"]),
    ("leaderboard-missing-field", lambda t: ["leaderboard", _results(t / "r.json", GOOD_RESULT, {"model": "x"}),
                                             "--out", t / "lb"], ["r.json", "result #1", "missing", "task"]),
    ("leaderboard-score-as-text", lambda t: ["leaderboard",
                                             _results(t / "r.json", {**GOOD_RESULT, "test_score": "0.5"}),
                                             "--out", t / "lb"], ["r.json", "test_score", "number"]),
    ("leaderboard-no-score", lambda t: ["leaderboard", _results(t / "r.json", {**GOOD_RESULT, "test_score": None}),
                                        "--out", t / "lb"], ["r.json", "fold_scores", "test_score"]),
    ("leaderboard-json-of-numbers", lambda t: ["leaderboard", _write(t / "r.json", "[0.51, 0.62]"), "--out",
                                               t / "lb"], ["r.json", "result #0", "JSON object"]),
    ("leaderboard-no-results-in-file", lambda t: ["leaderboard", _results(t / "r.json"), "--out", t / "lb"],
     ["r.json", "no results"]),
    ("leaderboard-out-is-a-file", lambda t: ["leaderboard", _results(t / "r.json", GOOD_RESULT), "--out",
                                             _write(t / "lb.md", "")], ["--out", "lb.md", "not a folder"]),
    ("leaderboard-card-model-absent", lambda t: ["leaderboard", _results(t / "r.json", GOOD_RESULT), "--out",
                                                 t / "lb", "--card-model", "nt-v2-50m"],
     ["no results for model 'nt-v2-50m'", "nt-tiny"]),
    ("leaderboard-card-size-unknown", lambda t: ["leaderboard", _results(t / "r.json", GOOD_RESULT), "--out",
                                                 t / "lb", "--card-model", "nt-tiny", "--card-size", "v3-1b"],
     ["--card-size", "v3-1b", "v2-50m"]),
    ("leaderboard-card-size-unguessable", lambda t: ["leaderboard",
                                                     _results(t / "r.json", {**GOOD_RESULT, "model": "my-model"}),
                                                     "--out", t / "lb", "--card-model", "my-model"],
     ["my-model", "cannot tell the model size", "v2-50m"]),
    # nt data prepare
    ("prepare-unknown-task", lambda t: ["data", "prepare", "--benchmark", "original", "--task", "H3K4me9",
                                        "--data-dir", t, "--out", t / "out"], ["H3K4me9"]),
    ("prepare-data-dir-missing", lambda t: ["data", "prepare", "--benchmark", "gue", "--task", "prom_300_tata",
                                            "--data-dir", t / "gue", "--out", t / "out"], ["data folder not found", "gue"]),
    ("prepare-unknown-split", lambda t: ["data", "prepare", "--benchmark", "gue", "--task", "prom_300_tata",
                                         "--data-dir", BUNDLED_DATA / "gue", "--splits", "validation",
                                         "--out", t / "out"], ["validation", "split"]),
    ("prepare-out-holds-parquet", lambda t: ["data", "prepare", "--benchmark", "gue", "--task", "prom_300_tata",
                                             "--data-dir", BUNDLED_DATA / "gue", "--out",
                                             _prepared(t / "out")], ["overwrite", "train.parquet"]),
    # nt data push
    ("push-folder-missing", lambda t: ["data", "push", t / "prepared", "--repo-id", "me/tasks", "--dry-run"],
     ["prepared", "not found"]),
    ("push-folder-without-parquet", lambda t: ["data", "push", _write(t / "p" / "train.csv", "a\n").parent,
                                               "--repo-id", "me/tasks", "--dry-run"], ["p", "no <split>.parquet"]),
    ("push-folder-is-a-file", lambda t: ["data", "push", _write(t / "train.parquet", "PAR1"), "--repo-id",
                                         "me/tasks", "--dry-run"], ["train.parquet", "is a file, not a folder"]),
    ("push-repo-id-with-space", lambda t: ["data", "push", _prepared(t / "prom"), "--repo-id", "me/my tasks",
                                           "--dry-run"], ["--repo-id", "me/my tasks"]),
    ("push-repo-id-three-parts", lambda t: ["data", "push", _prepared(t / "prom"), "--repo-id", "me/tasks/v1",
                                            "--dry-run"], ["--repo-id", "me/tasks/v1"]),
    ("push-config-name-with-task-folders", lambda t: ["data", "push", _prepared(t / "all" / "prom").parent.parent
                                                      / "all", "--repo-id", "me/tasks", "--config-name", "prom",
                                                      "--dry-run"], ["--config-name", "sub-folder"]),
    # nt demo --out
    ("demo-out-is-a-file", lambda t: ["demo", "--out", _write(t / "demo_output", "notes\n")],
     ["--out", "demo_output", "not a folder"]),
]
# fmt: on


@pytest.mark.parametrize(("setup", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_naming_it(run_nt, tmp_path, setup, words) -> None:
    argv = setup(tmp_path)
    before = {path for path in tmp_path.rglob("*")}
    result = run_nt(*argv)
    assert_bad_input(result, *words)
    created = {path for path in tmp_path.rglob("*")} - before
    assert not created, f"a refused command left {sorted(map(str, created))}"


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25
