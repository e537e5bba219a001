"""NT model behaviour: preset sizes, padding invariance, attention backends, outputs, heads, checkpointing."""

from __future__ import annotations

import math

import pytest
import torch

from modeling_nt import (
    PRESETS,
    NTConfig,
    NTForMaskedLM,
    NTForSequenceClassification,
    NTForTokenClassification,
    NTModel,
    tokenizer_for,
)
from modeling_nt.modeling_nt import NTRotaryEmbedding

#: Published parameter counts (NT_SPEC section 2), LM head included, the unused v2 position table excluded.
PUBLISHED_PARAMETERS = {
    "nt-v1-500m-human-ref": 485.7e6,
    "nt-v1-500m-1000g": 485.7e6,
    "nt-v1-2.5b-1000g": 2.548e9,
    "nt-v1-2.5b-multi-species": 2.548e9,
    "nt-v2-50m-multi-species": 54.9e6,
    "nt-v2-100m-multi-species": 96.8e6,
    "nt-v2-250m-multi-species": 233.5e6,
    "nt-v2-500m-multi-species": 496.2e6,
}
TINY_PRESETS = ("tiny", "tiny-v1")


def make_model(preset: str, model_class: type = NTForMaskedLM, seed: int = 0, **overrides) -> torch.nn.Module:
    """A randomly initialised model whose LayerNorm and bias parameters are not trivial (ones/zeros)."""
    torch.manual_seed(seed)
    model = model_class(NTConfig.from_preset(preset, **overrides))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def padded_batch(config: NTConfig, lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``<cls>``-first ids of the given lengths, with a few ``<mask>`` tokens."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.full((len(lengths), max(lengths)), config.pad_token_id)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(6, 4100, (length,), generator=generator)
        input_ids[row, 0] = config.cls_token_id
    input_ids[0, 2] = config.mask_token_id
    return input_ids, (input_ids != config.pad_token_id).long()


@pytest.mark.parametrize("preset", sorted(PUBLISHED_PARAMETERS))
def test_preset_parameter_counts_match_the_published_ones(preset: str) -> None:
    with torch.device("meta"):
        model = NTForMaskedLM(NTConfig.from_preset(preset))
    count = sum(parameter.numel() for parameter in model.parameters())
    assert abs(count - PUBLISHED_PARAMETERS[preset]) / PUBLISHED_PARAMETERS[preset] < 0.005


def test_presets_and_config_validation() -> None:
    assert set(PUBLISHED_PARAMETERS) | set(TINY_PRESETS) == set(PRESETS)
    v1 = NTConfig.from_preset("tiny-v1")
    assert (v1.vocab_size, v1.tokenizer_version, v1.max_position_embeddings, v1.token_dropout) == (
        4105,
        "v1",
        1002,
        True,
    )
    assert NTConfig.from_preset("tiny", pooling="mean").pooling == "mean"
    with pytest.raises(ValueError, match="unknown NT preset 'nope'"):
        NTConfig.from_preset("nope")
    with pytest.raises(ValueError, match="pooling must be one of"):
        NTConfig.from_preset("tiny", pooling="max")


@pytest.mark.parametrize(("preset", "version", "max_length"), [("tiny", "v2", 2048), ("tiny-v1", "v1", 1000)])
def test_tokenizer_for_matches_the_id_layout(preset: str, version: str, max_length: int) -> None:
    tokenizer = tokenizer_for(NTConfig.from_preset(preset))
    expected = {"v1": [3, 367, 367, 367], "v2": [3, 369, 369, 369]}[version]
    assert tokenizer("ATTCCGATTCCGATTCCG")["input_ids"] == expected
    assert tokenizer.model_max_length == max_length


@pytest.mark.parametrize("preset", TINY_PRESETS)
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_padding_invariance(preset: str, attn_implementation: str) -> None:
    model = make_model(preset)
    model.set_attn_implementation(attn_implementation)
    input_ids, attention_mask = padded_batch(model.config, [9, 5, 7])
    with torch.no_grad():
        batched = model(input_ids, attention_mask=attention_mask).logits
        for row, length in enumerate(attention_mask.sum(1).tolist()):
            alone = model(input_ids[row : row + 1, :length]).logits[0]
            torch.testing.assert_close(batched[row, :length], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_eager_and_sdpa_agree(preset: str) -> None:
    """(flex_attention also agrees, but compiling it costs ~25 s on CPU, too slow for the suite.)"""
    model = make_model(preset)
    input_ids, attention_mask = padded_batch(model.config, [8, 4])
    logits = {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            logits[implementation] = model(input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(logits["sdpa"], logits["eager"], atol=1e-5, rtol=1e-5)


def test_hidden_states_and_attentions_follow_the_nt_convention() -> None:
    model = make_model("tiny", NTModel)
    model.set_attn_implementation("eager")
    input_ids, attention_mask = padded_batch(model.config, [6, 4])
    with torch.no_grad():
        outputs = model(
            input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True
        )
        blocks = model.embeddings(input_ids, attention_mask, None, None)
        position_embeddings = model.rotary_emb(torch.arange(6).unsqueeze(0))
        mask = torch.zeros(2, 1, 6, 6).masked_fill(~attention_mask.bool()[:, None, None, :], -math.inf)
        expected = [blocks]
        for layer in model.layers:
            expected.append(layer(expected[-1], attention_mask=mask, position_embeddings=position_embeddings))
    assert len(outputs.hidden_states) == model.config.num_hidden_layers + 1
    for got, want in zip(outputs.hidden_states[:-1], expected[:-1], strict=True):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(outputs.hidden_states[-1], model.final_layer_norm(expected[-1]))
    assert outputs.hidden_states[-1] is outputs.last_hidden_state
    attentions = outputs.attentions
    assert len(attentions) == 2 and attentions[0].shape == (2, 4, 6, 6)
    torch.testing.assert_close(attentions[0].sum(-1), torch.ones(2, 4, 6))
    assert attentions[0][1, :, :, 4:].abs().max() == 0  # no attention to padding


def test_token_dropout_is_esm_scaling() -> None:
    model = make_model("tiny-v1", NTModel)
    input_ids = torch.tensor([[3, 10, 2, 11, 12, 1], [3, 10, 20, 11, 12, 13]])
    attention_mask = (input_ids != 1).long()
    embeddings = model.embeddings(input_ids, attention_mask, None, None)
    words = model.embeddings.word_embeddings(input_ids)
    positions = model.embeddings.position_embeddings(torch.tensor([[2, 3, 4, 5, 6, 1], [2, 3, 4, 5, 6, 7]]))
    scale_masked = (1 - 0.15 * 0.8) / (1 - 1 / 5)
    torch.testing.assert_close(embeddings[0, 1], words[0, 1] * scale_masked + positions[0, 1])
    torch.testing.assert_close(embeddings[0, 2], positions[0, 2])  # <mask> embedding zeroed
    torch.testing.assert_close(embeddings[1], words[1] * 0.88 + positions[1])
    assert embeddings[0, 5].abs().max() == 0


def test_rotary_rescaling_and_buffer_restored_after_loading(tmp_path) -> None:
    config = NTConfig.from_preset("tiny", rotary_rescaling_factor=2.44140625)
    dim = config.head_dim
    base = 10000.0 * 2.44140625 ** (dim / (dim - 2))
    expected = 1.0 / base ** (torch.arange(0, dim, 2).float() / dim)
    torch.testing.assert_close(NTRotaryEmbedding.compute_inv_freq(config), expected)
    model = make_model("tiny")
    model.save_pretrained(tmp_path)
    reloaded = NTForMaskedLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(
        reloaded.nt.rotary_emb.inv_freq, NTRotaryEmbedding.compute_inv_freq(model.config)
    )
    input_ids, attention_mask = padded_batch(model.config, [7, 3])
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids, attention_mask=attention_mask).logits,
            model(input_ids, attention_mask=attention_mask).logits,
        )


def test_mean_pooling_excludes_cls_and_padding() -> None:
    model = make_model("tiny", NTForSequenceClassification, pooling="mean", num_labels=3)
    input_ids, attention_mask = padded_batch(model.config, [7, 4])
    with torch.no_grad():
        outputs = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        last = outputs.hidden_states[-1]
        expected = model.classifier(torch.stack([last[0, 1:7].mean(0), last[1, 1:4].mean(0)]))
    torch.testing.assert_close(outputs.logits, expected)


def test_sequence_classification_losses() -> None:
    input_ids, attention_mask = padded_batch(NTConfig.from_preset("tiny"), [5, 5])
    classifier = make_model("tiny", NTForSequenceClassification, num_labels=3)
    outputs = classifier(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 2]))
    expected = torch.nn.functional.cross_entropy(outputs.logits, torch.tensor([0, 2]))
    torch.testing.assert_close(outputs.loss, expected)
    assert classifier.config.problem_type == "single_label_classification"
    regressor = make_model("tiny", NTForSequenceClassification, num_labels=1)
    targets = torch.tensor([0.5, -1.0])
    outputs = regressor(input_ids, attention_mask=attention_mask, labels=targets)
    torch.testing.assert_close(
        outputs.loss, torch.nn.functional.mse_loss(outputs.logits.squeeze(-1), targets)
    )
    assert regressor.config.problem_type == "regression"


def test_token_classification_ignores_minus_100() -> None:
    model = make_model("tiny", NTForTokenClassification, num_labels=4)
    input_ids, attention_mask = padded_batch(model.config, [6, 3])
    labels = torch.randint(0, 4, input_ids.shape).masked_fill(attention_mask == 0, -100)
    outputs = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert outputs.logits.shape == (2, 6, 4)
    valid = labels != -100
    torch.testing.assert_close(
        outputs.loss, torch.nn.functional.cross_entropy(outputs.logits[valid], labels[valid])
    )


def test_mlm_loss_goes_down() -> None:
    model = make_model("tiny").train()
    input_ids, attention_mask = padded_batch(model.config, [12, 12, 12, 12])
    labels = input_ids.clone()
    masked = torch.zeros_like(input_ids, dtype=torch.bool)
    masked[:, 3::4] = True
    labels[~masked] = -100
    inputs = input_ids.masked_fill(masked, model.config.mask_token_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model(inputs, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_gradient_checkpointing_gives_the_same_gradients(preset: str) -> None:
    input_ids, attention_mask = padded_batch(NTConfig.from_preset(preset), [7, 5])
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    gradients = []
    for checkpointing in (False, True):
        model = make_model(preset).train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            assert model.nt.layers[0].gradient_checkpointing
        model(input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
        gradients.append({name: parameter.grad for name, parameter in model.named_parameters()})
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, msg=name)


def test_ia3_targets_keys_values_and_ffn_activation() -> None:
    from peft import IA3Config, TaskType, get_peft_model

    model = make_model("tiny", NTForSequenceClassification, num_labels=2)
    input_ids, attention_mask = padded_batch(model.config, [6, 4])
    with torch.no_grad():
        before = model(input_ids, attention_mask=attention_mask).logits
    peft_model = get_peft_model(
        model,
        IA3Config(
            task_type=TaskType.SEQ_CLS, target_modules=["key", "value", "fc2"], feedforward_modules=["fc2"]
        ),
    )
    trainable = {name for name, parameter in peft_model.named_parameters() if parameter.requires_grad}
    config = model.config
    ia3_sizes = sorted(
        parameter.numel() for name, parameter in peft_model.named_parameters() if "ia3_l" in name
    )
    assert ia3_sizes == sorted([config.hidden_size] * 4 + [config.intermediate_size] * 2)
    assert any("classifier" in name for name in trainable)
    with torch.no_grad():
        torch.testing.assert_close(peft_model(input_ids, attention_mask=attention_mask).logits, before)


def test_bad_inputs_give_clear_errors() -> None:
    model = make_model("tiny-v1", NTModel)
    with pytest.raises(ValueError, match="token id 4106 at sequence 1, position 2 is outside the vocabulary"):
        model(torch.tensor([[3, 10, 11], [3, 12, 4106]]))
    with pytest.raises(ValueError, match="1001 tokens exceeds the 1000-token context"):
        model(torch.full((1, 1001), 10))
