"""IA3 / LoRA / full fine-tuning: parameter counts, adapters, cross-validated runs, real-data score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from benchmarks import finetune as ft
from benchmarks.builders import load_task
from benchmarks.cli import main as nt
from benchmarks.results import load_results
from modeling_nt import NTConfig, NTForMaskedLM, NTForSequenceClassification, tokenizer_for


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny masked-LM checkpoint folder standing in for a pretrained model."""
    torch.manual_seed(0)
    NTForMaskedLM(NTConfig.from_preset("tiny")).save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def gc_task(n_train: int = 24, n_test: int = 8, regression: bool = False) -> DatasetDict:
    """GC-rich (class 1) vs AT-rich (class 0) sequences; the GC fraction as target for regression."""
    rng = np.random.default_rng(0)
    label = Value("float32") if regression else ClassLabel(names=["0", "1"])
    features = Features({"sequence": Value("string"), "name": Value("string"), "label": label})

    def split(count: int) -> Dataset:
        classes = np.arange(count) % 2
        sequences = [
            "".join(rng.choice(list("ATGC"), 60, p=[0.1, 0.1, 0.4, 0.4] if y else [0.4, 0.4, 0.1, 0.1]))
            for y in classes
        ]
        gc = [sum(base in "GC" for base in sequence) / len(sequence) for sequence in sequences]
        labels = gc if regression else classes
        return Dataset.from_dict(
            {"sequence": sequences, "name": [f"s{i}" for i in range(count)], "label": labels},
            features=features,
        )

    return DatasetDict(train=split(n_train), test=split(n_test))


def test_ia3_on_50m_trains_about_a_thousandth_of_the_backbone():
    report = ft.parameter_report("nt-v2-50m-multi-species", "ia3")
    assert report["adapter"] == 12 * (512 + 512 + 2048)  # l_k, l_v per layer and l_ff on the 2048-wide FFN
    assert report["head"] == 512 * 2 + 2
    assert report["backbone"] == 52_484_608
    assert 0.05 < report["trainable_percent"] < 0.2
    assert report["size_ratio"] > 1000
    assert "0.0722% of the 52,484,608-parameter backbone" in ft.format_parameter_report(report)
    assert ft.parameter_report(method="lora")["adapter"] == 12 * 4 * 8 * (512 + 512)
    full = ft.parameter_report(method="full")
    assert full["trainable"] == full["backbone"] + full["head"]


def test_ia3_rescales_keys_values_and_ffn_activation_with_frozen_backbone(checkpoint):
    classifier = ft.load_classifier(checkpoint, 2)
    ids = torch.tensor([[3, 100, 200, 300, 400]])
    with torch.no_grad():
        before = classifier(input_ids=ids).logits
    wrapped = ft.wrap_model(classifier, "ia3")
    trainable = {name: p.shape for name, p in wrapped.named_parameters() if p.requires_grad}
    ia3 = {name for name in trainable if "ia3_l" in name}
    assert len(ia3) == 2 * 3
    for layer in range(2):
        prefix = f"base_model.model.nt.layers.{layer}"
        assert trainable[f"{prefix}.attention.key.ia3_l.default"] == (64, 1)
        assert trainable[f"{prefix}.attention.value.ia3_l.default"] == (64, 1)
        assert trainable[f"{prefix}.ffn.fc2.ia3_l.default"] == (
            1,
            128,
        )  # input side: the intermediate activation
    assert set(trainable) - ia3 == {
        "base_model.model.classifier.modules_to_save.default.weight",
        "base_model.model.classifier.modules_to_save.default.bias",
    }
    with torch.no_grad():
        assert torch.equal(wrapped(input_ids=ids).logits, before)  # vectors start at 1


def test_adapter_saves_and_loads_alone_with_identical_predictions(checkpoint, tmp_path):
    wrapped = ft.wrap_model(ft.load_classifier(checkpoint, 2, seed=3), "ia3")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stand-in for training: move every trainable vector away from its init
        for parameter in wrapped.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    tokenizer = tokenizer_for(wrapped.config)
    sequences = gc_task()["test"]["sequence"]
    expected = ft.predict(wrapped, tokenizer, sequences)
    adapter = ft.save_adapter(wrapped, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    assert ft.folder_bytes(adapter) * 20 < (checkpoint / "model.safetensors").stat().st_size
    reloaded = ft.load_adapter(checkpoint, adapter, 2)
    assert np.array_equal(ft.predict(reloaded, tokenizer, sequences), expected)
    merged = ft.save_merged(reloaded, tmp_path / "merged", tokenizer)
    plain = NTForSequenceClassification.from_pretrained(merged)
    np.testing.assert_allclose(ft.predict(plain, tokenizer, sequences), expected, atol=1e-5)


def test_cross_validated_run_writes_folds_and_resumes(checkpoint, tmp_path, monkeypatch):
    task = gc_task()
    kwargs = {"steps": 4, "eval_steps": 2, "folds": 2, "progress": False, "model_name": "tiny-ckpt"}
    (result,) = ft.run_finetuning(checkpoint, task, "gc", tmp_path / "run", **kwargs)
    assert result.method == "ia3" and result.metric == "mcc" and len(result.fold_scores) == 2
    assert result.trainable_params == 2 * (64 + 64 + 128) + 64 * 2 + 2
    assert (
        result.extra["selected_fold"] in (0, 1)
        and result.test_score
        == max(zip(result.extra["validation_scores"], result.extra["fold_test_scores"], strict=True))[1]
    )
    assert (tmp_path / "run/gc_ia3/fold_1/adapter/adapter_model.safetensors").is_file()
    assert not (tmp_path / "run/gc_ia3/fold_1/checkpoints").exists()
    monkeypatch.setattr(ft, "train_one", lambda *args, **kwargs: pytest.fail("finished folds must not rerun"))
    (again,) = ft.run_finetuning(checkpoint, task, "gc", tmp_path / "run", **kwargs)
    assert again.fold_scores == result.fold_scores
    assert load_results(tmp_path / "run/finetune_gc_ia3.json")[0].key == (
        "gue",
        "gc",
        "tiny-ckpt",
        "ia3",
        None,
    )


def test_lora_regression_run(checkpoint, tmp_path):
    (result,) = ft.run_finetuning(
        checkpoint,
        gc_task(regression=True),
        "gc_fraction",
        tmp_path,
        method="lora",
        steps=4,
        eval_steps=2,
        folds=2,
        learning_rate=1e-3,
        progress=False,
    )
    assert result.method == "lora" and result.metric == "pearson" and len(result.fold_scores) == 2
    assert result.trainable_params == 2 * 4 * 8 * (64 + 64) + 64 + 1


def test_ia3_beats_chance_on_a_real_task(shared_data, tmp_path):
    """IA3 needs a backbone that already encodes DNA features, and no pretrained weights are available
    offline: the tiny model is first fully fine-tuned on GUE EMP/H3 ``dev`` sequences (standing in for
    pretraining), then IA3 with a new head runs 3-fold CV on 600 *other* sequences (the ``test`` split).
    Measured: IA3 MCC 0.43 (CV mean) and 0.45 on 300 held-out sequences; 642 trainable parameters.
    (IA3 on the randomly initialised tiny model stays at chance: MCC about 0.0.)"""
    h3 = load_task(
        "gue", "H3", data_dir=shared_data / "tasks/gue/EMP/H3", cache_dir=tmp_path, splits=("dev", "test")
    )
    dev, test = h3["dev"].shuffle(seed=0), h3["test"].shuffle(seed=0)
    backbone = ft.wrap_model(ft.load_classifier("tiny", 2, pooling="mean"), "full")
    ft.train_one(
        backbone,
        tokenizer_for(backbone.config),
        dev.select(range(900)),
        dev.select(range(900, 1100)),
        tmp_path / "full",
        "classification",
        steps=300,
        learning_rate=1e-3,
        eval_steps=100,
        progress=False,
    )
    backbone.save_pretrained(tmp_path / "backbone")
    task = DatasetDict(train=test.select(range(600)), test=test.select(range(600, 900)))
    (result,) = ft.run_finetuning(
        tmp_path / "backbone",
        task,
        "H3",
        tmp_path / "ia3",
        steps=150,
        eval_steps=50,
        folds=3,
        pooling="mean",
        progress=False,
    )
    assert result.trainable_params == 642
    assert result.mean > 0.2 and result.test_score > 0.2


def test_cli_finetune_and_parameter_report(tmp_path, capsys):
    folder = tmp_path / "task"
    folder.mkdir()
    task = gc_task()
    for split in ("train", "dev", "test"):
        rows = task["test" if split == "dev" else split].to_pandas()[["sequence", "label"]]
        rows.to_csv(folder / f"{split}.csv", index=False)
    out = tmp_path / "ft.json"
    argv = ["finetune", "--model", "tiny", "--benchmark", "gue", "--task", "gc", "--data-dir", str(folder)]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--folds", "2", "--steps", "2"]
    assert nt(argv) == 0
    assert load_results(out)[0].method == "ia3"
    assert nt(argv) == 2
    assert nt(["finetune-params"]) == 0
    assert "36,864 adapter + 1,026 head" in capsys.readouterr().out
