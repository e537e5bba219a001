"""Bad inputs to ``nt convert --from auto`` and to conversions of a Hub id: one stderr line naming the source and
the problem (exit 2). Hub cases run offline against a temporary Hugging Face cache (``offline_hub``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_bad_input
from test_checkpoint_loading import V2_REPO, cache_repo, save_tiny
from test_convert import hub_state_dict, write_jax, write_v2_hub


def ours(tmp_path: Path, cache: Path) -> list[object]:
    return ["convert", "--from", "auto", save_tiny(tmp_path / "mine"), tmp_path / "out"]


def empty(tmp_path: Path, cache: Path) -> list[object]:
    (tmp_path / "download").mkdir()
    return ["convert", "--from", "auto", tmp_path / "download", tmp_path / "out"]


def bert(tmp_path: Path, cache: Path) -> list[object]:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    return ["convert", "--from", "auto", folder, tmp_path / "out"]


def jax_without_weights(tmp_path: Path, cache: Path) -> list[object]:
    folder, _ = write_jax(tmp_path / "jax_model", "v1", old_names=False)
    (folder / "pytree_ckpt.joblib").unlink()
    return ["convert", "--from", "auto", folder, tmp_path / "out"]


def hub_id_not_cached(tmp_path: Path, cache: Path) -> list[object]:
    return ["convert", "--from", "auto", V2_REPO, tmp_path / "out"]


def hub_id_of_another_layout(tmp_path: Path, cache: Path) -> list[object]:
    cache_repo(cache, V2_REPO, write_v2_hub(tmp_path / "v2", hub_state_dict("v2")))
    return ["convert", "--from", "esm", V2_REPO, tmp_path / "out"]


def hub_id_of_another_model(tmp_path: Path, cache: Path) -> list[object]:
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    cache_repo(cache, "google-bert/bert-base-uncased", staged)
    return ["convert", "--from", "auto", "google-bert/bert-base-uncased", tmp_path / "out"]


CASES: dict[str, tuple[Callable[[Path, Path], list[object]], list[str]]] = {
    "auto on a checkpoint that is already ours": (
        ours,
        ["mine", "already a checkpoint of this package", "use it as it is"],
    ),
    "auto on an empty download folder": (empty, ["download", "empty folder"]),
    "auto on another model's folder": (bert, ["config.json", "'bert'", "not an official NT layout"]),
    "auto on a JAX folder without its joblib": (jax_without_weights, ["pytree_ckpt.joblib", "not found"]),
    "Hub id not in the offline cache": (
        hub_id_not_cached,
        ["no such folder", V2_REPO, "not in the cache", "offline"],
    ),
    "--from esm on a v2 Hub id": (
        hub_id_of_another_layout,
        [V2_REPO, "nt-v2-hub checkpoint, not esm", "--from nt-v2-hub"],
    ),
    "auto on another model's Hub id": (
        hub_id_of_another_model,
        ["Hub repository google-bert/bert-base-uncased", "'bert'", "not an official NT layout"],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_conversion_source_is_one_line(case: str, offline_hub: Path, tmp_path: Path, run_nt) -> None:
    build, words = CASES[case]
    assert_bad_input(run_nt(*build(tmp_path, offline_hub)), *words)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
