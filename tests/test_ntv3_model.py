"""NTv3 model: published parameter counts, Auto classes, attention backends, gradient checkpointing, outputs,
input checks and the save / from_pretrained / remote-code round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from modeling_nt import (
    NTv3Config,
    NTv3ForMaskedLM,
    NTv3ForSequenceClassification,
    NTv3ForTracksPrediction,
    NTv3Model,
)
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.configuration_ntv3 import linspace_widths
from modeling_nt.modeling_ntv3 import crop_center

#: Published ``model_parameter_count`` of the Hub model cards (README metadata):
#: https://huggingface.co/InstaDeepAI/ntv3_base_model (the 8M architecture),
#: https://huggingface.co/InstaDeepAI/NTv3_100M_pre, https://huggingface.co/InstaDeepAI/NTv3_5downsample_post_131kb
PUBLISHED_COUNTS = {
    "ntv3-8m-pre": 7_692_475,
    "ntv3-100m-pre": 106_463_419,
    "ntv3-5downsample-post-131kb": 622_605_044,
}


def _parameter_count(preset: str) -> int:
    config = NTv3Config.from_preset(preset)
    model_class = NTv3ForTracksPrediction if config.has_output_heads else NTv3ForMaskedLM
    with torch.device("meta"):
        model = model_class(config)
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(("preset", "published"), PUBLISHED_COUNTS.items())
def test_preset_parameter_count_equals_the_published_one(preset: str, published: int) -> None:
    assert _parameter_count(preset) == published


def test_released_stages_share_their_architecture() -> None:
    assert _parameter_count("ntv3-8m-pre-8kb") == PUBLISHED_COUNTS["ntv3-8m-pre"]
    assert _parameter_count("ntv3-5downsample-post") == PUBLISHED_COUNTS["ntv3-5downsample-post-131kb"]
    assert NTv3Config.from_preset("ntv3-5downsample-pre").length_multiple == 32
    assert NTv3Config.from_preset("ntv3-650m-post").length_multiple == 128


def test_tower_widths_are_numpys_truncated_linspace() -> None:
    numpy = pytest.importorskip("numpy")
    for start, stop, steps in [(16, 32, 3), (512, 1536, 7), (100, 333, 5), (64, 64, 7)]:
        assert (
            linspace_widths(start, stop, steps) == numpy.linspace(start, stop, steps + 1).astype(int).tolist()
        )
    assert NTv3Config.from_preset("tiny-v3").tower_widths == [16, 21, 26, 32]


def test_centre_crop_keeps_the_official_share() -> None:
    values = torch.arange(32768).view(1, -1)
    kept = crop_center(values, 0.375)
    assert kept.shape[1] == 12288 and kept[0, 0].item() == 10240
    assert crop_center(values, 1.0).shape[1] == 32768


@pytest.fixture(scope="module")
def tiny_mlm() -> NTv3ForMaskedLM:
    torch.manual_seed(0)
    return NTv3ForMaskedLM(NTv3Config.from_preset("tiny-v3")).eval()


@pytest.fixture(scope="module")
def tiny_post() -> NTv3ForTracksPrediction:
    torch.manual_seed(1)
    model = NTv3ForTracksPrediction(NTv3Config.from_preset("tiny-v3-post")).eval()
    with torch.no_grad():  # the species modulations start at zero: make the conditioning matter
        for name, parameter in model.named_parameters():
            if "modulations" in name or "gates" in name:
                parameter.normal_(std=0.2)
    return model


def _tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(6, 11, (batch, length), generator=generator)


def test_outputs_have_the_documented_shapes(tiny_mlm, tiny_post) -> None:
    ids = _tokens(2, 64)
    with torch.no_grad():
        out = tiny_mlm(ids, output_hidden_states=True)
        post = tiny_post(ids, species_ids=torch.tensor([6, 7]), output_hidden_states=True)
    assert out.logits.shape == (2, 64, 11)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 8, 32)
    assert post.logits.shape == (2, 64, 11)
    assert post.track_predictions.shape == (2, 24, 3)  # centre 37.5% of 64; 3 = most tracks of a species
    assert (post.track_predictions[1, :, 2] == 0).all()  # mouse has 2 tracks: the third column is padding
    assert (post.track_predictions[0] > 0).all()  # softplus
    assert post.annotation_logits.shape == (2, 24, 3, 2)
    assert post.condition_logits[0].shape == (2, 8)
    torch.testing.assert_close(post.hidden_states[-1], post.core_hidden_state)


def test_species_conditions_the_outputs(tiny_post) -> None:
    ids = _tokens(1, 64).repeat(2, 1)
    with torch.no_grad():
        out = tiny_post(ids, species_ids=torch.tensor([6, 7]))
    assert not torch.allclose(out.logits[0], out.logits[1])


@pytest.mark.parametrize(
    ("species", "words"),
    [([3, 6], "name no species"), ([6, 99], "99"), ([6], r"shape \[2\]")],
)
def test_bad_species_ids_are_one_line_errors(tiny_post, species: list[int], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        tiny_post(_tokens(2, 64), species_ids=torch.tensor(species))


def test_length_not_a_multiple_names_the_valid_lengths(tiny_mlm) -> None:
    with pytest.raises(ValueError, match=r"sequence length 70 is not a multiple of 8.*64 or 72 bp"):
        tiny_mlm(_tokens(1, 70))


@pytest.mark.parametrize(
    ("input_ids", "words"),
    [
        (torch.randint(6, 11, (64,)), r"\[batch, length\].*add a batch axis"),
        (torch.rand(1, 64), "integer tensor"),
        (torch.full((1, 64), 11), "token id 11 is outside the vocabulary"),
        (torch.zeros(1, 0, dtype=torch.long), "empty input"),
    ],
)
def test_bad_input_ids_are_one_line_errors(tiny_mlm, input_ids: torch.Tensor, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        tiny_mlm(input_ids)


def test_post_trained_backbone_without_species_says_what_to_pass() -> None:
    model = NTv3ForMaskedLM(NTv3Config.from_preset("tiny-v3-post"))
    with pytest.raises(ValueError, match=r"\(species\), got 0.*species_ids"):
        model(_tokens(1, 64))


def test_unknown_species_name_lists_the_known_ones() -> None:
    config = NTv3Config.from_preset("tiny-v3-post")
    assert config.species_token("mouse") == 7
    with pytest.raises(ValueError, match="human, mouse"):
        config.species_token("yeast")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"upsample_type": "nearest"}, "upsample_type"),
        ({"num_attention_heads": 3}, "not a multiple of num_attention_heads"),
        ({"keep_target_center_fraction": 0.0}, "keep_target_center_fraction"),
    ],
)
def test_invalid_configs_are_refused(overrides: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        NTv3Config.from_preset("tiny-v3", **overrides)


def test_post_trained_heads_need_equal_tower_and_core_widths() -> None:
    with pytest.raises(ValueError, match="conv_init_embed_dim"):
        NTv3Config.from_preset("tiny-v3-post", conv_init_embed_dim=16)


def test_pad_only_blocks_are_never_attended(tiny_mlm) -> None:
    """As upstream, a core position whose 8 bases are all ``<pad>`` is masked as a key: it gets zero attention
    weight in every layer and head; a block with one real base is attended."""
    ids = torch.cat([_tokens(1, 60), torch.full((1, 12), 1)], dim=1)  # blocks 0-7 real (7: 4 bases), 8 pads
    tiny_mlm.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            masked = tiny_mlm(ids, output_attentions=True).attentions
            unmasked = tiny_mlm(ids, attention_mask=torch.ones_like(ids), output_attentions=True).attentions
    finally:
        tiny_mlm.set_attn_implementation("sdpa")
    for layer in masked:
        assert layer.shape == (1, 2, 9, 9)
        assert torch.equal(layer[..., 8], torch.zeros_like(layer[..., 8]))
        assert (layer[..., 7] > 0).all()
    assert (unmasked[0][..., 8] > 0).all()


@pytest.mark.parametrize("implementation", ["sdpa", "flex_attention"])
def test_attention_backends_agree_with_eager(tiny_mlm, implementation: str) -> None:
    ids = torch.cat([_tokens(1, 64), torch.cat([_tokens(1, 48), torch.full((1, 16), 1)], dim=1)])
    tiny_mlm.set_attn_implementation("eager")
    with torch.no_grad():
        eager = tiny_mlm(ids).logits
    tiny_mlm.set_attn_implementation(implementation)
    try:
        with torch.no_grad():
            other = tiny_mlm(ids).logits
    finally:
        tiny_mlm.set_attn_implementation("sdpa")
    torch.testing.assert_close(other, eager, atol=1e-5, rtol=1e-5)


def test_eager_attention_returns_the_core_attention_maps(tiny_mlm) -> None:
    tiny_mlm.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = tiny_mlm(_tokens(1, 64), output_attentions=True)
    finally:
        tiny_mlm.set_attn_implementation("sdpa")
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 2, 8, 8)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(1, 2, 8))


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = NTv3ForMaskedLM(NTv3Config.from_preset("tiny-v3")).train()
    ids = _tokens(2, 64)
    labels = ids.clone()

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(ids, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.gradient_checkpointing_enable()
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)


def test_sequence_classifier_pools_only_real_nucleotides() -> None:
    torch.manual_seed(0)
    model = NTv3ForSequenceClassification(NTv3Config.from_preset("tiny-v3", num_labels=2)).eval()
    ids = _tokens(1, 64)
    mask = torch.ones_like(ids)
    mask[:, 40:] = 0
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        states = model.ntv3(ids, attention_mask=mask).last_hidden_state
    expected = model.classifier(states[:, :40].mean(dim=1))
    torch.testing.assert_close(logits, expected)


def test_auto_classes_load_our_checkpoint_in_process(tiny_mlm, tmp_path: Path) -> None:
    path = save_checkpoint(tiny_mlm, tmp_path / "ntv3")
    assert type(AutoConfig.from_pretrained(path)) is NTv3Config
    assert type(AutoModel.from_pretrained(path)) is NTv3Model
    assert type(AutoModelForMaskedLM.from_pretrained(path)) is NTv3ForMaskedLM
    classifier = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    assert type(classifier) is NTv3ForSequenceClassification
    ids = _tokens(2, 64)
    reloaded = AutoModelForMaskedLM.from_pretrained(path).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, tiny_mlm(ids).logits)


#: Run from / in a fresh interpreter where this package cannot be imported: only the checkpoint's code runs.
FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_nt"] = None
    sys.modules["tokenization"] = None
    import torch
    from transformers import AutoModel, AutoModelForMaskedLM

    mlm_path, post_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    ids = torch.load(out)["input_ids"]
    mlm = AutoModelForMaskedLM.from_pretrained(mlm_path, trust_remote_code=True).eval()
    post = AutoModel.from_pretrained(post_path, trust_remote_code=True).eval()
    with torch.no_grad():
        post_out = post(ids, species_ids=torch.tensor([6, 7]))
        result = {
            "mlm_logits": mlm(ids).logits,
            "post_logits": post_out.logits,
            "tracks": post_out.track_predictions,
            "annotation": post_out.annotation_logits,
            "classes": [type(mlm).__module__, type(post).__name__],
        }
    torch.save(result, out)
    """
)


def test_fresh_process_loads_both_models_with_remote_code_bit_identical(
    tiny_mlm, tiny_post, tmp_path: Path
) -> None:
    mlm_path = save_checkpoint(tiny_mlm, tmp_path / "mlm")
    post_path = save_checkpoint(tiny_post, tmp_path / "post")
    assert json.loads((post_path / "config.json").read_text())["auto_map"]["AutoModel"] == (
        "modeling_ntv3.NTv3ForTracksPrediction"
    )
    ids = _tokens(2, 64)
    exchange = tmp_path / "exchange.pt"
    torch.save({"input_ids": ids}, exchange)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(mlm_path), str(post_path), str(exchange)],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = torch.load(exchange)
    assert result["classes"][0].startswith("transformers_modules.")
    assert result["classes"][1] == "NTv3ForTracksPrediction"
    with torch.no_grad():
        post = tiny_post(ids, species_ids=torch.tensor([6, 7]))
        assert torch.equal(result["mlm_logits"], tiny_mlm(ids).logits)
    assert torch.equal(result["post_logits"], post.logits)
    assert torch.equal(result["tracks"], post.track_predictions)
    assert torch.equal(result["annotation"], post.annotation_logits)
