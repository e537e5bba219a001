"""`nt finetune` with NTv3 models (preset ``tiny-v3``): full / LoRA / IA3 on real GUE data, N padding left out
of the pooled mean, hand-counted trainable parameters, adapters and merged models that reload exactly.

tiny-v3: hidden 32, 2 layers, FFN 64 (fc1 32 -> 128, fc2 64 -> 32, no biases), conv_init_embed_dim 16,
3 downsamples (length multiple 8), tower widths 16 -> 21 -> 26 -> 32 (and back).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import DatasetDict

from benchmarks import finetune as ft
from benchmarks import publish
from benchmarks.builders import load_task
from benchmarks.cli import main as nt
from benchmarks.results import load_results
from modeling_nt import (
    NTForSequenceClassification,
    NTv3ForMaskedLM,
    NTv3ForSequenceClassification,
    tokenizer_for,
)
from modeling_nt.loading import load_model, preset_config

N_ID = 10  # the NTv3 vocabulary: <unk> <pad> <mask> <cls> <eos> <bos> A T C G N
BASE_IDS = {"A": 6, "T": 7, "C": 8, "G": 9}

# Hand counts for tiny-v3, 2 labels. Head: Linear(16 -> 2) = 16 * 2 + 2.
HEAD = 34
# IA3: per layer l_k (32) + l_v (32) + l_ff on fc2's 64-wide input; the towers' Conv1d have no IA3 layer in peft.
IA3_ADAPTER = 2 * (32 + 32 + 64)
# LoRA r = 8: a Linear(i -> o) gets r * (i + o); a Conv1d(i -> o, k) gets lora_A Conv1d(i -> r, k) and
# lora_B Conv1d(r -> o, 1): r * i * k + r * o.
LORA_CORE = 2 * (4 * 8 * (32 + 32) + 8 * (32 + 128) + 8 * (64 + 32))  # q/k/v/output, fc1, fc2 = 8,192
# Down blocks: the k5 convolution i -> o and the k1 residual o -> o = 4,416.
LORA_DOWN = sum(8 * i * 5 + 8 * o + 8 * o + 8 * o for i, o in [(16, 21), (21, 26), (26, 32)])
# Up blocks: the k1 residual on 26, 21, 16 channels only (upsampling convolutions skipped) = 1,008.
LORA_UP = sum(8 * c + 8 * c for c in (26, 21, 16))
LORA_ADAPTER = LORA_CORE + LORA_DOWN + LORA_UP  # 13,616
BACKBONE = 44_522  # all NTv3Model parameters of tiny-v3 (the frozen part), as the model reports them


@pytest.fixture(scope="module")
def tata(bundled_data, tmp_path_factory) -> DatasetDict:
    """Real labelled DNA: the bundled GUE prom_300_tata dev split (300 bp, TATA promoter or not), shuffled."""
    task = load_task(
        "gue",
        "prom_300_tata",
        data_dir=bundled_data / "gue/prom/prom_300_tata",
        cache_dir=tmp_path_factory.mktemp("cache"),
        splits=("dev",),
    )
    return task["dev"].shuffle(seed=0)


def test_hand_counted_trainable_parameters_and_adapted_modules():
    assert (LORA_CORE, LORA_DOWN, LORA_UP) == (8_192, 4_416, 1_008)
    counts = {method: ft.parameter_report("tiny-v3", method) for method in ft.METHODS}
    assert {name: counts["ia3"][name] for name in ("backbone", "head", "adapter", "trainable")} == {
        "backbone": BACKBONE,
        "head": HEAD,
        "adapter": IA3_ADAPTER,
        "trainable": IA3_ADAPTER + HEAD,  # 290
    }
    assert counts["lora"]["adapter"] == LORA_ADAPTER == 13_616 and counts["lora"]["trainable"] == 13_650
    assert counts["full"]["trainable"] == BACKBONE + HEAD

    classifier = ft.load_classifier("tiny-v3", 2)
    assert isinstance(classifier, NTv3ForSequenceClassification)
    targets = ft.lora_target_modules(classifier)
    core = {f"ntv3.layers.{i}.{m}" for i in range(2) for m in ("attention.query", "attention.key")}
    core |= {f"ntv3.layers.{i}.{m}" for i in range(2) for m in ("attention.value", "attention.output")}
    core |= {f"ntv3.layers.{i}.ffn.{m}" for i in range(2) for m in ("fc1", "fc2")}
    down = {f"ntv3.down_blocks.{i}.{m}" for i in range(3) for m in ft.NTV3_LORA_TOWER_MODULES}
    up = {f"ntv3.up_blocks.{i}.residual_block.block.conv" for i in range(3)}
    assert len(targets) == 21 and set(targets) == core | down | up
    ids = torch.tensor([[6, 7, 8, 9] * 4])
    with torch.no_grad():
        before = classifier(input_ids=ids).logits
        for method in ("ia3", "lora"):  # adapters start as the identity (IA3 vectors 1, LoRA B 0)
            assert torch.equal(ft.wrap_model(classifier, method)(input_ids=ids).logits, before)


def test_classifier_from_an_ntv3_checkpoint_folder_keeps_its_backbone(tmp_path):
    torch.manual_seed(0)
    mlm = NTv3ForMaskedLM(preset_config("tiny-v3"))
    mlm.save_pretrained(tmp_path / "ckpt")
    classifier = ft.load_classifier(tmp_path / "ckpt", 3, pooling="mean")
    assert type(classifier) is NTv3ForSequenceClassification and classifier.config.num_labels == 3
    saved = mlm.ntv3.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in classifier.ntv3.state_dict().items())
    assert classifier.classifier.weight.shape == (3, 16)


def test_lora_skips_the_repeat_conv_upsampling_and_runs():
    """The ``repeat+conv`` upsampling is a Conv1d subclass that repeats positions in its forward: a LoRA side
    path would see the un-repeated input, so it is left out like the transposed convolution."""
    config = preset_config("tiny-v3", upsample_type="repeat+conv", num_labels=2)
    torch.manual_seed(0)
    classifier = NTv3ForSequenceClassification(config)
    targets = ft.lora_target_modules(classifier)
    assert len(targets) == 21 and not any("up_blocks" in t and "conv_block" in t for t in targets)
    wrapped = ft.wrap_model(classifier, "lora")
    assert wrapped(input_ids=torch.tensor([[6, 7, 8, 9] * 2])).logits.shape == (1, 2)


def test_padding_is_n_and_left_out_of_the_pooled_mean(tata):
    classifier = ft.load_classifier("tiny-v3", 2, seed=1)
    tokenizer = tokenizer_for(classifier.config)
    long, short = tata[0]["sequence"], tata[1]["sequence"][:13]
    batch = ft.data_collator(tokenizer, classifier.config)([tokenizer(s) for s in (long, short)])
    assert batch["input_ids"].shape == (2, 304)  # 300 bp rounded up to a multiple of 8
    assert batch["attention_mask"].sum(dim=1).tolist() == [300, 13]
    assert batch["input_ids"][1, :13].tolist() == [BASE_IDS[b] for b in short]
    assert (batch["input_ids"][0, 300:] == N_ID).all() and (batch["input_ids"][1, 13:] == N_ID).all()

    logits = ft.predict(classifier, tokenizer, [long, short])
    with torch.no_grad():
        hidden = classifier.ntv3(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        pooled = torch.stack([hidden[0, :300].mean(dim=0), hidden[1, :13].mean(dim=0)])
        expected = classifier.classifier(pooled).numpy()
        with_pad = classifier(
            input_ids=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 1)
        ).logits
    np.testing.assert_allclose(logits, expected, atol=1e-6)
    assert not np.allclose(with_pad[1].numpy(), logits[1], atol=1e-6)  # the fill is N, not <pad>


@pytest.mark.parametrize(("method", "learning_rate"), [("ia3", 1e-2), ("lora", 1e-2), ("full", 3e-3)])
def test_training_lowers_the_loss_on_real_promoters(method, learning_rate, tata, tmp_path):
    """12 steps (batch 8) on 24 real 300-bp sequences; the cross-entropy on them goes down and every adapted
    weight moves. Measured from ln 2 = 0.6931 (the random tiny model has little to build on): ia3 -> 0.6899,
    lora -> 0.6907, full -> 0.6914 (full fine-tuning at 1e-2 overshoots: 0.6951)."""
    train, val = tata.select(range(24)), tata.select(range(24, 32))
    wrapped = ft.wrap_model(ft.load_classifier("tiny-v3", 2), method)
    tokenizer = tokenizer_for(wrapped.config)
    start = {name: p.detach().clone() for name, p in wrapped.named_parameters() if p.requires_grad}

    def loss() -> float:
        logits = torch.from_numpy(ft.predict(wrapped, tokenizer, train["sequence"]))
        return torch.nn.functional.cross_entropy(logits, torch.tensor(train["label"])).item()

    before = loss()
    ft.train_one(
        wrapped, tokenizer, train, val, tmp_path, "classification", steps=12, eval_steps=12,
        learning_rate=learning_rate, progress=False,
    )  # fmt: skip
    after = loss()
    assert after < before - 1e-3
    moved = {n for n, p in wrapped.named_parameters() if p.requires_grad and not torch.equal(p, start[n])}
    adapter = {n for n in start if "ia3_l" in n or "lora_B" in n} if method != "full" else set(start)
    assert adapter and adapter <= moved


@pytest.mark.parametrize("method", ["ia3", "lora"])
def test_adapter_reloads_exactly_and_merged_model_loads_with_load_model(method, tata, tmp_path):
    wrapped = ft.wrap_model(ft.load_classifier("tiny-v3", 2, seed=3), method)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stand-in for training: move every trainable weight away from its init
        for parameter in wrapped.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    tokenizer = tokenizer_for(wrapped.config)
    sequences = [tata[0]["sequence"], tata[1]["sequence"][:77], tata[2]["sequence"]]
    expected = ft.predict(wrapped, tokenizer, sequences)
    adapter = ft.save_adapter(wrapped, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    reloaded = ft.load_adapter("tiny-v3", adapter, 2, seed=3)
    assert np.array_equal(ft.predict(reloaded, tokenizer, sequences), expected)
    merged = ft.save_merged(reloaded, tmp_path / "merged", tokenizer)
    plain = load_model(merged, NTForSequenceClassification)
    assert type(plain) is NTv3ForSequenceClassification
    np.testing.assert_allclose(ft.predict(plain, tokenizer, sequences), expected, atol=1e-5)


def _task_folder(tata, folder):
    """train/dev/test CSVs of real rows (16 / 8 / 8), as a user's GUE-layout folder."""
    folder.mkdir()
    rows = tata.to_pandas()[["sequence", "label"]]
    for name, part in (("train", rows[:16]), ("dev", rows[16:24]), ("test", rows[24:32])):
        part.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.mark.parametrize(
    ("method", "trainable"),
    [("ia3", IA3_ADAPTER + HEAD), ("lora", LORA_ADAPTER + HEAD), ("full", BACKBONE + HEAD)],
)
def test_cli_finetune_runs_end_to_end_on_ntv3(method, trainable, tata, tmp_path):
    folder = _task_folder(tata, tmp_path / "task")
    out = tmp_path / "ft.json"
    argv = [
        "finetune",
        "--model",
        "tiny-v3",
        "--benchmark",
        "gue",
        "--task",
        "tata",
        "--data-dir",
        str(folder),
    ]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--folds", "2", "--steps", "2"]
    assert nt([*argv, "--method", method]) == 0
    (result,) = load_results(out)
    assert (result.method, result.trainable_params, len(result.fold_scores)) == (method, trainable, 2)
    assert result.n_params == BACKBONE + HEAD
    if method != "lora":
        return
    # what --push-to-hub uploads: the selected fold's adapter merged, loading without peft, same logits
    work = tmp_path / "ft_work"
    merged = publish.finetuned_checkpoint("tiny-v3", result, work, tmp_path / "merged")
    fold = result.extra["selected_fold"]
    adapted = ft.load_adapter("tiny-v3", work / f"tata_lora/fold_{fold}/adapter", 2, seed=fold)
    tokenizer = tokenizer_for(adapted.config)
    sequences = tata.select(range(24, 32))["sequence"]
    staged = publish.stage_checkpoint(merged, tmp_path / "staged", "someone/tiny-v3-tata")
    plain = load_model(staged.folder, NTForSequenceClassification)
    np.testing.assert_allclose(
        ft.predict(plain, tokenizer, sequences), ft.predict(adapted, tokenizer, sequences), atol=1e-5
    )


def test_cli_parameter_report_for_ntv3(capsys):
    assert nt(["finetune-params", "--model", "tiny-v3", "--method", "lora"]) == 0
    assert "13,650 trainable parameters (13,616 adapter + 34 head)" in capsys.readouterr().out
