"""Bad SegmentNT checkpoints given to ``nt push``: one stderr line naming the file and the tensor, exit 2,
nothing staged."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_bad_input
from safetensors.torch import load_file, save_file

from benchmarks import segmentation as seg


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("segment") / "model"
    seg.load_segmentation_model("tiny").save_pretrained(folder)
    return folder


def _edited(tmp_path: Path, saved: Path, edit: Callable[[dict], None]) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    if edit is truncated:
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        return folder
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def truncated(tensors: dict) -> None:
    """An interrupted download: the weights file is cut in half (the bytes are cut by ``_edited``)."""


def lost_final_bias(tensors: dict) -> None:
    """An interrupted copy: the last tensor of the head is absent."""
    tensors.pop("head.fc.bias")


def head_for_fewer_classes(tensors: dict) -> None:
    """Weights of a 1-class head beside a config.json that lists 3 features (a config copied from another run)."""
    tensors["head.fc.weight"] = tensors["head.fc.weight"][:12].clone()
    tensors["head.fc.bias"] = tensors["head.fc.bias"][:12].clone()


CASES = [
    ("tensor missing", lost_final_bias, ("model", "missing keys", "head.fc.bias")),
    ("head for other classes", head_for_fewer_classes, ("model.safetensors", "head.fc", "[12]", "[36]")),
    ("truncated weights", truncated, ("model.safetensors", "cannot read the weights", "complete")),
]


@pytest.mark.parametrize(("name", "edit", "words"), CASES, ids=[case[0] for case in CASES])
def test_bad_segmentation_checkpoint_push(run_nt, saved, tmp_path, name, edit, words) -> None:
    folder = _edited(tmp_path, saved, edit)
    result = run_nt("push", folder, "me/segment-tiny", "--dry-run", tmp_path / "stage")
    assert_bad_input(result, *words)
    assert not (tmp_path / "stage").exists()
