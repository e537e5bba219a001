"""Bad inputs to ``nt push`` and ``--push-to-hub``: each ends in one stderr line naming the problem (exit 2),
before anything is staged or uploaded (``HfApi`` is replaced by a stub that fails the test if called)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import assert_bad_input
from test_bad_input_convert import esm_folder
from test_publish import RESULTS

from benchmarks.results import save_results
from modeling_nt import NTConfig, NTForMaskedLM
from modeling_nt.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        NTForMaskedLM(NTConfig.from_preset("tiny")), tmp_path_factory.mktemp("ok") / "nt-tiny"
    )


def ckpt(tmp_path: Path, saved: Path, name: str = "nt-tiny") -> Path:
    """A fresh copy of the valid tiny checkpoint, to damage."""
    return Path(shutil.copytree(saved, tmp_path / name))


def results_file(tmp_path: Path, text: str | None = None, model: str = "nt-tiny") -> Path:
    path = tmp_path / "results.json"
    if text is None:
        save_results([dataclasses.replace(result, model=model) for result in RESULTS], path)
    else:
        path.write_text(text)
    return path


def without(tmp_path: Path, saved: Path, *names: str) -> Path:
    folder = ckpt(tmp_path, saved)
    for name in names:
        (folder / name).unlink()
    return folder


def edited_config(tmp_path: Path, saved: Path, **fields: object) -> Path:
    folder = ckpt(tmp_path, saved)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return folder


def empty_folder(tmp_path: Path, saved: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def adapter_folder(tmp_path: Path, saved: Path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def truncated_weights(tmp_path: Path, saved: Path) -> Path:
    folder = ckpt(tmp_path, saved)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return folder


def gue_task(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    for split in ("train", "test"):
        rows = "".join(f"{'GC' * 30 if i % 2 else 'AT' * 30},{i % 2}\n" for i in range(12))
        (folder / f"{split}.csv").write_text("sequence,label\n" + rows)
    return folder


def push(folder: Callable[[Path, Path], Path], *extra: str) -> Callable[[Path, Path], list[object]]:
    return lambda tmp_path, saved: ["push", folder(tmp_path, saved), "me/nt-tiny", *extra]


CASES: dict[str, tuple[Callable[[Path, Path], list[object]], tuple[str, ...]]] = {
    "checkpoint folder does not exist": (
        lambda tmp_path, saved: ["push", tmp_path / "runs/chr20/fnal", "me/chr20"],
        ("checkpoint folder not found", "fnal"),
    ),
    "a weights file instead of the folder": (
        push(lambda tmp_path, saved: ckpt(tmp_path, saved) / "model.safetensors"),
        ("is a file", "model.safetensors"),
    ),
    "empty folder": (push(empty_folder), ("empty folder",)),
    "folder without weights": (push(lambda t, s: without(t, s, "model.safetensors")), ("no weights", "nt-tiny")),
    "folder without config.json": (push(lambda t, s: without(t, s, "config.json")), ("no config.json", "nt-tiny")),
    "code file missing": (
        push(lambda t, s: without(t, s, "modeling_nt.py")),
        ("no modeling_nt.py", "auto_map", "save_checkpoint"),
    ),
    "config without auto_map": (push(lambda t, s: edited_config(t, s, auto_map=None)), ("no auto_map",)),
    "weights of another size than the config": (
        push(lambda t, s: edited_config(t, s, num_hidden_layers=3)),
        ("weights do not fit config.json", "missing"),
    ),
    "truncated weights file": (push(truncated_weights), ("cannot read the weights", "model.safetensors")),
    "a PEFT adapter folder": (push(adapter_folder), ("PEFT adapter", "merge")),
    "an official ESM folder, not converted": (
        push(lambda tmp_path, saved: esm_folder(tmp_path)),
        ("official esm checkpoint", "nt convert --from esm"),
    ),
    "repo id with a space": (
        lambda tmp_path, saved: ["push", ckpt(tmp_path, saved), "me/my model"],
        ("argument REPO_ID", "me/my model"),
    ),
    "repo id with a path": (
        lambda tmp_path, saved: ["push", ckpt(tmp_path, saved), "me/models/nt-tiny"],
        ("argument REPO_ID", "namespace/repo_name"),
    ),
    "results file missing": (
        push(ckpt, "--results", "results/probe.json"),
        ("results file or folder not found", "probe.json"),
    ),
    "results file is not JSON": (
        lambda tmp_path, saved: [
            "push", ckpt(tmp_path, saved), "me/nt-tiny", "--results", results_file(tmp_path, "task,mcc\nH3,0.5\n")
        ],
        ("not valid JSON", "results.json"),
    ),
    "results of another model": (
        lambda tmp_path, saved: ["push", ckpt(tmp_path, saved, "other"), "me/x", "--results", results_file(tmp_path)],
        ("no results for model 'other'", "nt-tiny"),
    ),
    "card size that does not exist": (
        lambda tmp_path, saved: [
            "push", ckpt(tmp_path, saved), "me/x", "--results", results_file(tmp_path), "--card-size", "v2-75m"
        ],
        ("unknown model size 'v2-75m'", "known sizes"),
    ),
    "model name without a size for the card": (
        lambda tmp_path, saved: [
            "push", ckpt(tmp_path, saved, "chr20"), "me/x", "--results", results_file(tmp_path, model="chr20")
        ],
        ("cannot tell the model size of 'chr20'",),
    ),
    "--dry-run folder exists": (
        lambda tmp_path, saved: ["push", ckpt(tmp_path, saved), "me/x", "--dry-run", tmp_path],
        ("--dry-run", "exists"),
    ),
    "--push-to-hub of nt pretrain with a bad repo id": (
        lambda tmp_path, saved: ["pretrain", "--preset", "tiny", "--push-to-hub", "me/nt tiny"],
        ("--push-to-hub", "me/nt tiny"),
    ),
    "--push-to-hub of nt finetune with a bad repo id": (
        lambda tmp_path, saved: ["finetune", "--model", "tiny", "--push-to-hub", "https://huggingface.co/me/x"],
        ("--push-to-hub", "namespace/repo_name"),
    ),
    "--push-to-hub of nt finetune on a model whose card size cannot be told": (
        lambda tmp_path, saved: [
            "finetune", "--model", ckpt(tmp_path, saved, "chr20"), "--benchmark", "gue", "--task", "gc",
            "--data-dir", gue_task(tmp_path), "--cache-dir", tmp_path / "cache", "--out", tmp_path / "ft.json",
            "--push-to-hub", "me/chr20-gc",
        ],
        ("--push-to-hub me/chr20-gc", "cannot tell the model card's size", "'chr20'", "--model-name"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_push_input_is_one_line(case: str, saved: Path, tmp_path: Path, run_nt, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: pytest.fail("nothing may be uploaded"))
    build, words = CASES[case]
    argv = build(tmp_path, saved)
    assert_bad_input(run_nt(*argv), *words)
    assert not (tmp_path / "ft_work").exists()  # a refused --push-to-hub run trains nothing
