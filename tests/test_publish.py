"""Publishing (`nt push`, `--push-to-hub`): the staged folder is exactly what is uploaded, it loads back where this
package cannot be imported (model, tokenizer, card with ``model-index`` and ``.eval_results/``), and the upload
calls ``HfApi.create_repo`` / ``upload_folder`` with the right arguments. ``HfApi`` is replaced by a recorder:
the upload itself needs the network and is not exercised offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from conftest import assert_bad_input
from huggingface_hub import ModelCard
from test_finetune import gc_task
from test_pretrain_run import _config
from test_remote_code import FRESH_PROCESS_SCRIPT, SEQUENCES

from benchmarks import finetune as ft
from benchmarks.publish import finetuned_checkpoint, push_checkpoint, stage_checkpoint
from benchmarks.results import BenchmarkResult, save_results
from modeling_nt import NTConfig, NTForMaskedLM, NTForSequenceClassification, tokenizer_for
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.loading import load_folder

#: The results the card is rendered from, with values written by hand.
RESULTS = [
    BenchmarkResult(
        model="nt-tiny",
        task="promoter_all",
        benchmark="original",
        method="probe",
        metric="mcc",
        fold_scores=[0.5, 0.6, 0.7],
        test_score=0.61,
        layer=1,
    ),
    BenchmarkResult(
        model="nt-tiny",
        task="H3",
        benchmark="original",
        method="ia3",
        metric="mcc",
        fold_scores=[0.3, 0.4],
        test_score=0.35,
    ),
]
#: (task, split, value) of the card's model-index: CV means 0.6 and 0.35, test scores 0.61 and 0.35.
EXPECTED_MODEL_INDEX = [
    ["promoter_all", "train", 0.6],
    ["promoter_all", "test", 0.61],
    ["H3", "train", 0.35],
    ["H3", "test", 0.35],
]
STAGED_FILES = [
    ".eval_results/original.yaml",
    "README.md",
    "config.json",
    "configuration_nt.py",
    "model.safetensors",
    "modeling_nt.py",
    "tokenizer.json",
    "tokenizer_config.json",
]
#: Appended to test_remote_code's fresh-process script (which blocks modeling_nt and tokenization): reads the
#: staged card and eval results there too, with huggingface_hub alone.
CARD_CHECK = """
from pathlib import Path
import yaml
from huggingface_hub import ModelCard
card = ModelCard.load(Path(checkpoint) / "README.md")
eval_files = sorted(p.name for p in (Path(checkpoint) / ".eval_results").iterdir())
Path(out + ".card.json").write_text(json.dumps({
    "model_index": [[r.task_name, r.dataset_split, r.metric_value] for r in card.data.eval_results],
    "model_name": card.data.model_name,
    "eval_files": eval_files,
    "eval_values": [e["value"] for e in yaml.safe_load((Path(checkpoint) / ".eval_results" / eval_files[0]).read_text())],
    "blocked": [name for name in ("modeling_nt", "tokenization", "benchmarks") if sys.modules.get(name, 0) is None],
}))
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[NTForMaskedLM, Path, Path]:
    """A tiny masked LM saved with ``save_checkpoint`` and a results file of its name."""
    torch.manual_seed(0)
    model = NTForMaskedLM(NTConfig.from_preset("tiny")).eval()
    root = tmp_path_factory.mktemp("publish")
    results = save_results(RESULTS, root / "results.json")
    return model, save_checkpoint(model, root / "nt-tiny"), results


@pytest.fixture(scope="module")
def staged(checkpoint, tmp_path_factory: pytest.TempPathFactory):
    _, path, results = checkpoint
    return stage_checkpoint(path, tmp_path_factory.mktemp("stage") / "upload", "me/nt-tiny", results=results)


class RecordingHfApi:
    """Stands in for ``huggingface_hub.HfApi``: records the calls and keeps a copy of the uploaded folder."""

    calls: ClassVar[list[tuple[str, tuple, dict]]] = []
    uploaded: ClassVar[Path]

    def __init__(self, token=None):
        self.calls.append(("HfApi", (), {"token": token}))

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def create_branch(self, *args, **kwargs):
        self.calls.append(("create_branch", args, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", (), kwargs))
        shutil.copytree(kwargs["folder_path"], type(self).uploaded)
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/abc",
            commit_message=kwargs["commit_message"],
            commit_description="",
            oid="abc",
        )


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """``HfApi`` replaced by :class:`RecordingHfApi` (no network); ``hub.uploaded`` holds what was uploaded."""
    RecordingHfApi.calls = []
    RecordingHfApi.uploaded = tmp_path / "uploaded"
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return RecordingHfApi


def files_of(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_staged_folder_holds_weights_code_tokenizer_and_card(checkpoint, staged) -> None:
    _, path, _ = checkpoint
    assert staged.files == STAGED_FILES == files_of(staged.folder)
    assert staged.architecture == "NTForMaskedLM"
    assert staged.card.startswith("rendered from 2 result(s) of 'nt-tiny'")
    assert (staged.folder / "model.safetensors").stat().st_ino == (path / "model.safetensors").stat().st_ino
    for name in ("config.json", "configuration_nt.py", "modeling_nt.py", "tokenizer.json"):
        assert (staged.folder / name).read_bytes() == (path / name).read_bytes(), name
    assert not (path / "README.md").exists()  # the checkpoint itself is left as it was


def test_staged_folder_loads_where_the_package_cannot_be_imported(checkpoint, staged, tmp_path) -> None:
    model, _, _ = checkpoint
    out = tmp_path / "outputs.pt"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    script = 'import sys\nsys.modules["benchmarks"] = None\n' + FRESH_PROCESS_SCRIPT + CARD_CHECK
    completed = subprocess.run(
        [sys.executable, "-c", script, str(staged.folder), str(out), json.dumps(SEQUENCES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = torch.load(out)
    assert all(module.startswith("transformers_modules.") for module in result["modules"]), result["modules"]
    batch = tokenizer_for(model.config)(SEQUENCES, padding=True, return_tensors="pt")
    assert torch.equal(result["input_ids"], batch["input_ids"])
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(result["mlm_logits"], expected, rtol=0, atol=1e-5)
    card = json.loads(Path(f"{out}.card.json").read_text())
    assert card == {
        "model_index": EXPECTED_MODEL_INDEX,
        "model_name": "nt-tiny",
        "eval_files": ["original.yaml"],
        "eval_values": [0.6, 0.35],
        "blocked": ["modeling_nt", "tokenization", "benchmarks"],
    }


def test_push_creates_the_repo_and_uploads_the_staged_folder(checkpoint, staged, hub) -> None:
    _, path, results = checkpoint
    pushed = push_checkpoint(
        path, "me/nt-tiny", results=results, private=True, revision="v1", commit_message="first", token="hf_x"
    )
    assert pushed.url == "https://huggingface.co/me/nt-tiny/commit/abc"
    names = [name for name, *_ in hub.calls]
    assert names == ["HfApi", "create_repo", "create_branch", "upload_folder"]
    assert hub.calls[0][2] == {"token": "hf_x"}
    assert hub.calls[1][1:] == (("me/nt-tiny",), {"private": True, "exist_ok": True, "repo_type": "model"})
    assert hub.calls[2][1:] == (("me/nt-tiny",), {"branch": "v1", "exist_ok": True, "repo_type": "model"})
    upload = hub.calls[3][2]
    assert upload == {
        "repo_id": "me/nt-tiny",
        "folder_path": upload["folder_path"],
        "repo_type": "model",
        "revision": "v1",
        "commit_message": "first",
    }
    assert files_of(hub.uploaded) == STAGED_FILES
    for name in STAGED_FILES:  # byte for byte what the dry run stages
        assert (hub.uploaded / name).read_bytes() == (staged.folder / name).read_bytes(), name
    assert not Path(upload["folder_path"]).exists()  # the temporary staging folder is removed


def test_cli_push_dry_run_uploads_nothing(checkpoint, run_nt, hub, tmp_path) -> None:
    _, path, results = checkpoint
    out = tmp_path / "dry"
    result = run_nt("push", path, "me/nt-tiny", "--results", results, "--dry-run", out)
    assert result.code == 0, result.err
    assert hub.calls == []
    assert files_of(out) == STAGED_FILES
    assert "dry run: nothing uploaded to me/nt-tiny" in result.out
    assert f"staged 8 files in {out} (NTForMaskedLM)" in result.out
    card = ModelCard.load(out / "README.md")
    assert [[r.task_name, r.dataset_split, r.metric_value] for r in card.data.eval_results] == (
        EXPECTED_MODEL_INDEX
    )


def test_cli_push_without_results_stages_a_card_without_scores(checkpoint, run_nt, hub, tmp_path) -> None:
    _, path, _ = checkpoint
    result = run_nt("push", path, "me/nt-tiny", "--private")
    assert result.code == 0, result.err
    assert "model card: no evaluation results" in result.out
    assert hub.calls[1][2]["private"] is True
    assert files_of(hub.uploaded) == [name for name in STAGED_FILES if not name.startswith(".eval")]
    card = ModelCard.load(hub.uploaded / "README.md")
    assert card.data.eval_results is None and card.data.pipeline_tag == "fill-mask"
    assert 'AutoModel.from_pretrained("me/nt-tiny", trust_remote_code=True)' in card.text


def test_failed_upload_is_one_line_with_the_retry_command(checkpoint, run_nt, monkeypatch) -> None:
    _, path, _ = checkpoint

    class NoToken(RecordingHfApi):
        def create_repo(self, *args, **kwargs):
            raise huggingface_hub.errors.LocalTokenNotFoundError(
                "Token is required (`token=True`), but no token found.\nYou need to log in."
            )

    monkeypatch.setattr(huggingface_hub, "HfApi", NoToken)
    result = run_nt("push", path, "me/nt-tiny")
    assert_bad_input(result, "upload to the Hub repository me/nt-tiny failed", "no token found")
    assert f"retry with `nt push {path} me/nt-tiny`" in result.err


def test_own_card_kept_training_state_dropped_tokenizer_added(tmp_path) -> None:
    """A Trainer-style folder: weights by ``save_pretrained`` (no tokenizer), optimizer state, its own card."""
    torch.manual_seed(1)
    model = NTForMaskedLM(NTConfig.from_preset("tiny"))
    folder = tmp_path / "checkpoint-8"
    model.save_pretrained(folder)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin"):
        (folder / name).write_bytes(b"state")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n\n# my model\n")
    (folder / ".eval_results").mkdir()
    (folder / ".eval_results/gue.yaml").write_text("- value: 0.5\n")
    staged = stage_checkpoint(folder, tmp_path / "upload", "me/mine")
    assert staged.files == [
        ".eval_results/gue.yaml",
        "README.md",
        "config.json",
        "configuration_nt.py",
        "model.safetensors",
        "modeling_nt.py",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert staged.card == "the checkpoint's own README.md"
    assert (tmp_path / "upload/README.md").read_text() == "---\nlicense: mit\n---\n\n# my model\n"
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tmp_path / "upload")(SEQUENCES)["input_ids"]
    assert ids == tokenizer_for(model.config)(SEQUENCES)["input_ids"]


def test_finetuned_adapter_is_merged_into_a_checkpoint_that_loads_without_peft(tmp_path) -> None:
    torch.manual_seed(0)
    wrapped = ft.wrap_model(ft.load_classifier("tiny", 2, seed=3), "ia3")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stand-in for training: move every trainable vector away from its init
        for parameter in wrapped.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    ft.save_adapter(wrapped, tmp_path / "run/gc_ia3/fold_1/adapter")
    result = BenchmarkResult(
        model="tiny",
        task="gc",
        benchmark="gue",
        method="ia3",
        metric="mcc",
        test_score=0.5,
        seed=2,  # fold 1 of a run with seed 2: its preset backbone was built with seed 3
        extra={"selected_fold": 1, "num_labels": 2},
    )
    merged = finetuned_checkpoint("tiny", result, tmp_path / "run", tmp_path / "merged")
    staged = stage_checkpoint(merged, tmp_path / "upload", "me/gc", results=[result], model_name="tiny")
    assert staged.architecture == "NTForSequenceClassification"
    assert "adapter_config.json" not in staged.files and "tokenizer.json" in staged.files
    tokenizer = tokenizer_for(wrapped.config)
    sequences = gc_task()["test"]["sequence"]
    plain = load_folder(staged.folder, NTForSequenceClassification)
    np.testing.assert_allclose(
        ft.predict(plain, tokenizer, sequences), ft.predict(wrapped, tokenizer, sequences), atol=1e-5
    )
    card = ModelCard.load(staged.folder / "README.md")
    assert [[r.task_name, r.dataset_split, r.metric_value] for r in card.data.eval_results] == [
        ["gc", "test", 0.5]
    ]


def test_full_finetuning_fold_is_pushed_as_saved(tmp_path) -> None:
    torch.manual_seed(0)
    trained = ft.wrap_model(ft.load_classifier("tiny", 3), "full")
    fold = ft.save_adapter(trained, tmp_path / "run/gc_full/fold_0/adapter")
    result = BenchmarkResult(
        model="tiny", task="gc", benchmark="gue", method="full", metric="mcc", test_score=0.5,
        extra={"selected_fold": 0, "num_labels": 3},
    )  # fmt: skip
    assert finetuned_checkpoint("tiny", result, tmp_path / "run", tmp_path / "unused") == fold
    staged = stage_checkpoint(fold, tmp_path / "upload", "me/gc", results=[result], model_name="tiny")
    assert staged.architecture == "NTForSequenceClassification" and "tokenizer.json" in staged.files
    assert not (tmp_path / "unused").exists()
    plain = load_folder(staged.folder, NTForSequenceClassification)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(plain.state_dict()[name], tensor), name


def test_cli_finetune_push_to_hub_uploads_the_selected_fold_model(run_nt, hub, tmp_path) -> None:
    folder = tmp_path / "task"
    folder.mkdir()
    task = gc_task()
    for split in ("train", "dev", "test"):
        rows = task["test" if split == "dev" else split].to_pandas()[["sequence", "label"]]
        rows.to_csv(folder / f"{split}.csv", index=False)
    out = tmp_path / "ft.json"
    result = run_nt(
        "finetune", "--model", "tiny", "--benchmark", "gue", "--task", "gc", "--data-dir", folder,
        "--cache-dir", tmp_path / "cache", "--out", out, "--folds", "2", "--steps", "2",
        "--push-to-hub", "me/gc-ia3",
    )  # fmt: skip
    assert result.code == 0, result.err
    selected = json.loads(out.read_text())["results"][0]["extra"]["selected_fold"]
    assert [name for name, *_ in hub.calls] == ["HfApi", "create_repo", "upload_folder"]
    assert hub.calls[2][2]["repo_id"] == "me/gc-ia3"
    assert json.loads((hub.uploaded / "config.json").read_text())["architectures"] == [
        "NTForSequenceClassification"
    ]
    fold_dir = tmp_path / f"ft_work/gc_ia3/fold_{selected}"
    adapter = ft.load_adapter("tiny", fold_dir / "adapter", 2, seed=selected)  # --seed 0 + fold
    tokenizer = tokenizer_for(adapter.config)
    uploaded = load_folder(hub.uploaded, NTForSequenceClassification)
    pushed = ft.predict(uploaded, tokenizer, task["test"]["sequence"])
    np.testing.assert_allclose(pushed, ft.predict(adapter, tokenizer, task["test"]["sequence"]), atol=1e-5)
    fold_test_score = json.loads((fold_dir / "score.json").read_text())["test_score"]
    assert ft.score_logits(pushed, np.asarray(task["test"]["label"]), "classification") == fold_test_score
    assert "pushed to https://huggingface.co/me/gc-ia3/commit/abc" in result.out


def test_cli_pretrain_push_to_hub_uploads_the_final_checkpoint(run_nt, hub, tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path / "chr20", max_steps=2, save_steps=2, plot=False)))
    result = run_nt("pretrain", "--config", config, "--push-to-hub", "me/chr20")
    assert result.code == 0, result.err
    assert hub.calls[1][1] == ("me/chr20",)
    final = tmp_path / "chr20" / "final"
    assert files_of(hub.uploaded) == [name for name in STAGED_FILES if not name.startswith(".eval")]
    assert (hub.uploaded / "model.safetensors").read_bytes() == (final / "model.safetensors").read_bytes()
    assert ModelCard.load(hub.uploaded / "README.md").data.model_name == "chr20"
