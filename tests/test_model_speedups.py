"""Speed-ups that must not change results: the sparse masked-LM head (logits only at labelled positions), the
rotary rotation without ``rotate_half`` copies, the in-place FFN activation, and their wiring into pretraining
(sparse head in the Trainer, the ``compile`` setting)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from modeling_nt import NTConfig, NTForMaskedLM
from modeling_nt.modeling_nt import (
    _HUB_KEYS,
    NTFeedForward,
    NTRotaryEmbedding,
    apply_rotary_pos_emb,
    rotate_half,
)
from modeling_nt.pretraining import PretrainingConfig
from modeling_nt.pretraining.trainer import (
    NOT_FINGERPRINTED,
    _masked_predictions,
    build_trainer,
    masked_metrics,
    pretraining_run_fingerprint,
)

TINY_PRESETS = ("tiny", "tiny-v1")


def mlm_model(preset: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> NTForMaskedLM:
    """A tiny masked LM (dropout-free presets) with non-trivial LayerNorm and bias parameters."""
    torch.manual_seed(seed)
    model = NTForMaskedLM(NTConfig.from_preset(preset)).to(dtype)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def mlm_batch(config: NTConfig, lengths: list[int], seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded ``<cls>``-first ids with labels at about 15% of the real tokens (-100 elsewhere)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.full((len(lengths), max(lengths)), config.pad_token_id)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(6, 4100, (length,), generator=generator)
        input_ids[row, 0] = config.cls_token_id
    attention_mask = (input_ids != config.pad_token_id).long()
    selected = (torch.rand(input_ids.shape, generator=generator) < 0.15) & attention_mask.bool()
    selected[:, 0] = False
    selected[0, 1] = True  # at least one label in each test batch
    labels = input_ids.masked_fill(~selected, -100)
    masked_ids = input_ids.masked_fill(selected, config.mask_token_id)
    return {"input_ids": masked_ids, "attention_mask": attention_mask, "labels": labels}


def loss_and_gradients(model: NTForMaskedLM, batch: dict, sparse: bool) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    outputs = model(**batch, sparse_logits=sparse)
    outputs.loss.backward()
    gradients = {name: parameter.grad.clone() for name, parameter in model.named_parameters()}
    return outputs, gradients


@pytest.mark.parametrize("preset", TINY_PRESETS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_head_gives_the_dense_loss_logits_and_gradients(preset: str, dtype: torch.dtype) -> None:
    model = mlm_model(preset, dtype).train()
    batch = mlm_batch(model.config, [40, 23, 31])
    dense, dense_gradients = loss_and_gradients(model, batch, sparse=False)
    sparse, sparse_gradients = loss_and_gradients(model, batch, sparse=True)
    selected = batch["labels"] != -100
    assert dense.logits.shape == (3, 40, model.config.vocab_size)
    assert sparse.logits.shape == (int(selected.sum()), model.config.vocab_size)
    assert abs(sparse.loss.item() - dense.loss.item()) <= 1e-6
    # the loss by hand: mean cross-entropy over the labelled positions only
    by_hand = torch.nn.functional.cross_entropy(dense.logits[selected], batch["labels"][selected])
    assert abs(by_hand.item() - dense.loss.item()) <= 1e-6
    torch.testing.assert_close(sparse.logits, dense.logits[selected], rtol=0, atol=1e-5)
    assert dense_gradients.keys() == sparse_gradients.keys()
    for name, gradient in dense_gradients.items():
        assert (sparse_gradients[name] - gradient).abs().max() <= 1e-6, name
    assert dense_gradients["lm_head.decoder.weight"].abs().max() > 1e-3  # gradients that say something


def test_sparse_logits_default_is_on_in_training_with_labels_only() -> None:
    model = mlm_model("tiny")
    batch = mlm_batch(model.config, [12, 9])
    labelled = int((batch["labels"] != -100).sum())
    vocab = model.config.vocab_size
    assert model.train()(**batch).logits.shape == (labelled, vocab)
    assert model(batch["input_ids"]).logits.shape == (2, 12, vocab)  # no labels: dense
    assert model.eval()(**batch).logits.shape == (2, 12, vocab)  # evaluation keeps [B, L, V]
    assert model(**batch, sparse_logits=True).logits.shape == (labelled, vocab)
    with pytest.raises(ValueError, match="sparse_logits=True needs labels"):
        model(batch["input_ids"], sparse_logits=True)
    with pytest.raises(ValueError, match=r"labels of shape \[2, 11\] do not match"):
        model(batch["input_ids"], labels=batch["labels"][:, :11], sparse_logits=True)


def test_held_out_metrics_are_the_same_from_sparse_and_dense_logits() -> None:
    model = mlm_model("tiny").eval()
    batch = mlm_batch(model.config, [30, 30, 18], seed=3)
    labels = batch["labels"]
    selected = labels != -100
    with torch.no_grad():
        dense = model(**batch).logits
        sparse = model(**batch, sparse_logits=True).logits
    from_dense, from_sparse = _masked_predictions(dense, labels), _masked_predictions(sparse, labels)
    assert from_sparse.shape == from_dense.shape == (3, 30, 2)
    torch.testing.assert_close(from_sparse[selected], from_dense[selected], rtol=0, atol=1e-5)
    assert torch.equal(from_sparse[~selected], torch.zeros_like(from_sparse[~selected]))
    metrics = [masked_metrics(EvalPrediction(p.numpy(), labels.numpy())) for p in (from_dense, from_sparse)]
    assert metrics[0]["masked_accuracy"] == metrics[1]["masked_accuracy"]
    assert metrics[0]["masked_loss"] == pytest.approx(metrics[1]["masked_loss"], abs=1e-6)
    nll = torch.nn.functional.cross_entropy(dense[selected], labels[selected])
    assert metrics[0]["masked_loss"] == pytest.approx(nll.item(), abs=1e-6)
    accuracy = (dense[selected].argmax(-1) == labels[selected]).double().mean()
    assert metrics[1]["masked_accuracy"] == pytest.approx(accuracy.item())
    assert np.isfinite(metrics[1]["perplexity"])


def reference_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The textbook rotate-half rotation ``x * cos + rotate_half(x) * sin`` (cos/sin broadcast over heads)."""
    return x * cos.unsqueeze(1) + rotate_half(x) * sin.unsqueeze(1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rotary_without_rotate_half_copies_matches_the_textbook_form(dtype: torch.dtype) -> None:
    config = NTConfig.from_preset("tiny")
    rotary = NTRotaryEmbedding(config)
    cos, sin = rotary(torch.arange(50).unsqueeze(0).expand(2, 50))
    generator = torch.Generator().manual_seed(0)
    query, key = (torch.randn(2, 4, 50, config.head_dim, generator=generator, dtype=dtype) for _ in range(2))
    query.requires_grad_(True)
    rotated_query, rotated_key = apply_rotary_pos_emb(query, key, cos.to(dtype), sin.to(dtype))
    expected_query = reference_rotary(query, cos.to(dtype), sin.to(dtype))
    assert rotated_query.dtype == dtype
    assert (rotated_query - expected_query).abs().max() <= 1e-6
    assert (rotated_key - reference_rotary(key, cos.to(dtype), sin.to(dtype))).abs().max() <= 1e-6
    assert not torch.equal(rotated_key[:, :, 1:], key[:, :, 1:])  # really rotated (position 0 is identity)
    weights = torch.randn(rotated_query.shape, generator=generator, dtype=dtype)
    (gradient,) = torch.autograd.grad((rotated_query * weights).sum(), query)
    (expected,) = torch.autograd.grad((expected_query * weights).sum(), query)
    assert (gradient - expected).abs().max() <= 1e-6


def test_rotary_keeps_bf16_inputs_in_bf16() -> None:
    config = NTConfig.from_preset("tiny")
    cos, sin = NTRotaryEmbedding(config)(torch.arange(9).unsqueeze(0))
    query = torch.randn(1, 2, 9, config.head_dim)
    rotated, _ = apply_rotary_pos_emb(query.bfloat16(), query.bfloat16(), cos, sin)
    assert rotated.dtype == torch.bfloat16
    expected = reference_rotary(query.bfloat16().float(), cos, sin)
    assert (rotated.float() - expected).abs().max() <= 0.02  # one bf16 rounding of values below 4


def reference_feed_forward(ffn: NTFeedForward, hidden_states: torch.Tensor) -> torch.Tensor:
    """``fc2(act(fc1(x)))`` written out without in-place steps."""
    projected = ffn.fc1(hidden_states)
    if ffn.is_glu:
        gate, up = projected.chunk(2, dim=-1)
        return ffn.fc2(torch.nn.functional.silu(gate) * up)
    return ffn.fc2(torch.nn.functional.gelu(projected, approximate=ffn.gelu_approximate))


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_feed_forward_in_place_activation_gives_the_reference_outputs_and_gradients(preset: str) -> None:
    ffn = mlm_model(preset).nt.layers[0].ffn
    hidden_states = torch.randn(2, 7, ffn.fc1.in_features, requires_grad=True)
    with torch.no_grad():
        assert torch.equal(ffn(hidden_states), reference_feed_forward(ffn, hidden_states))
    output, expected = ffn(hidden_states), reference_feed_forward(ffn, hidden_states)
    assert torch.equal(output, expected)
    weights = torch.randn(output.shape)
    gradients = torch.autograd.grad((output * weights).sum(), [hidden_states, *ffn.parameters()])
    references = torch.autograd.grad((expected * weights).sum(), [hidden_states, *ffn.parameters()])
    for gradient, reference in zip(gradients, references, strict=True):
        assert (gradient - reference).abs().max() <= 1e-6


def test_gelu_in_place_never_overwrites_what_a_forward_hook_kept() -> None:
    ffn = mlm_model("tiny-v1").nt.layers[0].ffn
    kept = []
    handle = ffn.fc1.register_forward_hook(lambda module, inputs, output: kept.append(output))
    hidden_states = torch.randn(1, 5, ffn.fc1.in_features)
    with torch.no_grad():
        ffn(hidden_states)
        assert torch.equal(kept[0], ffn.fc1(hidden_states))  # the pre-activation, not its GELU
    handle.remove()


def _pretraining_config(folder, **settings) -> PretrainingConfig:
    """A tiny run on a 3 kb plain FASTA (nothing trained by the tests that use it)."""
    genome = folder / "genome.fa"
    unit = "ACGTTGCAAGGCTTACCGATGGTACCATTGGCAAC"
    genome.write_text(f">chrA\n{(unit * 100)[:3000]}\n")
    values = {
        "preset": "tiny",
        "train_genomes": [str(genome)],
        "chunk_length": 600,
        "overlap": 0,
        "max_offset": 6,
        "min_length": 300,
        "max_tokens": 64,
        "max_steps": 1,
        "output_dir": str(folder / "run"),
        "report_to": "none",
        **settings,
    }
    return PretrainingConfig.from_mapping(values)


def test_pretraining_trainer_computes_the_head_sparsely_with_the_dense_loss(tmp_path) -> None:
    trainer = build_trainer(_pretraining_config(tmp_path))
    assert trainer.args.torch_compile is False
    model = trainer.model.train()
    batch = mlm_batch(model.config, [64, 50, 64])
    loss, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    labelled = int((batch["labels"] != -100).sum())
    assert outputs.logits.shape == (labelled, model.config.vocab_size)  # the head ran at labelled rows only
    dense = model(**batch, sparse_logits=False)
    assert abs(loss.item() - dense.loss.item()) <= 1e-6


def test_pretraining_compile_setting_reaches_the_trainer_and_not_the_fingerprint(tmp_path) -> None:
    config = _pretraining_config(tmp_path, compile=True)
    assert build_trainer(config).args.torch_compile is True
    assert "compile" in NOT_FINGERPRINTED  # a resumed run may switch it: the weights do not depend on it
    assert pretraining_run_fingerprint(config) == pretraining_run_fingerprint(
        dataclasses.replace(config, compile=False)
    )


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_state_dict_keeps_the_separate_query_key_value_keys_of_the_conversion_table(preset: str) -> None:
    """Checkpoints, ``nt convert`` and the official-checkpoint key mapping all name separate q/k/v tensors."""
    model = mlm_model(preset)
    keys = set(model.state_dict())
    targets = set(_HUB_KEYS.values())
    for layer in range(model.config.num_hidden_layers):
        for projection in ("query", "key", "value", "output"):
            for parameter in ("weight", "bias"):
                assert f"nt.layers.{layer}.attention.{projection}.{parameter}" in keys
    patterns = [
        re.escape(target).replace(r"\{i\}", r"\d+").replace(r"\{p\}", "(weight|bias)") for target in targets
    ]
    unmapped = {key for key in keys if not any(re.fullmatch(pattern, key) for pattern in patterns)}
    assert unmapped == set()  # every tensor has its row in the table that nt convert and loading use
    assert not any("qkv" in key for key in keys)


def test_load_backbone_compiles_on_request_without_changing_the_model() -> None:
    from benchmarks.embeddings import load_backbone

    backbone = mlm_model("tiny").nt.eval()
    compiled = load_backbone(backbone, device="cpu", compile_model=True)
    assert isinstance(
        compiled, torch._dynamo.eval_frame.OptimizedModule
    )  # compiled lazily, at the first call
    assert compiled._orig_mod is backbone and type(backbone.forward).__name__ == "method"
    assert compiled.config is backbone.config
    assert load_backbone(backbone, device="cpu") is backbone


def test_nt_embed_compile_flag_compiles_the_model_and_gives_the_same_embeddings(
    run_nt, tmp_path, monkeypatch
) -> None:
    """The flag's wiring, with ``torch.compile`` recorded (a real compile takes 13 s and more on CPU)."""
    from benchmarks.embeddings import read_embeddings

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **options: compiled.append(options) or model)
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nACGTACGGATTACAGGCATTAC\n>b\nTTGACCGTAAGGCT\n")
    outputs = {}
    for name, flags in (("plain", []), ("compiled", ["--compile"])):
        out = tmp_path / f"{name}.parquet"
        result = run_nt("embed", "--model", "tiny", "--fasta", fasta, "--out", out, "--no-progress", *flags)
        assert result.code == 0, result.err
        outputs[name] = read_embeddings(out)[1]
    assert compiled == [{"dynamic": True}]  # only the --compile run
    for layer, values in outputs["plain"].items():
        np.testing.assert_array_equal(outputs["compiled"][layer], values)
