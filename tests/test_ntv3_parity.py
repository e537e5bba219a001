"""NTv3 conversion parity: tiny random parameters in the official layout (flat Flax NNX paths), converted by
``modeling_nt.convert_ntv3`` (the ``ntv3-jax`` export and a synthetic ``ntv3-hub`` folder built from the same
parameters), agree in float32 with the float64 NumPy reference of the official model (tests/ntv3_reference.py)
on every output: MLM logits, every core layer, the core output, the base-resolution output, track predictions,
annotation and condition logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ntv3_official_files import (
    BIGWIGS,
    SPECIES_TO_TOKEN_ID,
    hub_state_dict,
    tiny_official_config,
    write_hub_folder,
    write_jax_folder,
)
from ntv3_reference import random_official_params, reference_forward

from modeling_nt import NTForMaskedLM, NTv3ForMaskedLM, NTv3ForTracksPrediction
from modeling_nt.convert import REPORT_FILE, convert_checkpoint
from modeling_nt.convert_ntv3 import load_ntv3_source
from modeling_nt.loading import load_model

TOLERANCE = 1e-4
LENGTH = 256
#: (num_downsamples, upsampling, LM-head hidden layers, post-trained)
CASES = [
    (7, "conv_transpose", 0, False),
    (5, "repeat+conv", 1, False),
    (7, "conv_transpose", 1, True),
    (5, "repeat+conv", 0, True),
]
#: One row per species token: yeast (head 0), human (head 1), fly (no tracks), mouse (head 3).
SPECIES_ROWS = [6, 7, 8, 9]


def _inputs(post: bool) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(1)
    rows = len(SPECIES_ROWS) if post else 2
    tokens = rng.integers(6, 11, size=(rows, LENGTH))
    # pad blocks in row 1: the last 160 bases, i.e. the last core block(s) all <pad> (masked as keys by the
    # pre-trained model; the post-trained one masks nothing)
    tokens[1, LENGTH - 160 :] = 1
    return tokens, (np.array(SPECIES_ROWS) if post else None)


def _scaled_difference(reference: np.ndarray, ours: torch.Tensor) -> float:
    """max |ours - reference| / max(1, max |reference|)."""
    reference = np.asarray(reference)
    return float(np.abs(ours.detach().double().numpy() - reference).max() / max(1.0, np.abs(reference).max()))


def _our_outputs(model: torch.nn.Module, tokens: np.ndarray, species: np.ndarray | None) -> dict:
    ids = torch.from_numpy(tokens)
    with torch.no_grad():
        if species is None:
            base = model.ntv3(ids, output_hidden_states=True)
            logits = model(ids).logits
            return {"logits": logits, "base": base}
        out = model(ids, torch.from_numpy(species), output_hidden_states=True)
        return {"logits": out.logits, "base": out, "tracks": out}


def _differences(reference: dict, ours: dict, config: dict) -> dict[str, float]:
    base = ours["base"]
    differences = {
        "logits": _scaled_difference(reference["logits"], ours["logits"]),
        "core_input": _scaled_difference(reference["before_transformer_embedding"], base.hidden_states[0]),
        "core_output": _scaled_difference(reference["after_transformer_embedding"], base.core_hidden_state),
        "base_resolution": _scaled_difference(reference["embedding"], base.last_hidden_state),
    }
    for layer in range(1, config["num_layers"] + 1):
        differences[f"layer_{layer}"] = _scaled_difference(
            reference[f"embeddings_{layer}"], base.hidden_states[layer]
        )
    if "tracks" in ours:
        out = ours["tracks"]
        differences["tracks"] = _scaled_difference(reference["bigwig_tracks_logits"], out.track_predictions)
        differences["annotation"] = _scaled_difference(reference["bed_tracks_logits"], out.annotation_logits)
        differences["species_logits"] = _scaled_difference(
            reference["species_logits"], out.condition_logits[0]
        )
    return differences


def _case_id(case: tuple) -> str:
    downsamples, upsample, head_layers, post = case
    return f"ds{downsamples}-{upsample}-head{head_layers}-{'post' if post else 'pre'}"


@pytest.fixture(scope="module", params=CASES, ids=_case_id)
def converted(request, tmp_path_factory) -> dict:
    """One case: the official params, the reference outputs and the models converted both ways."""
    downsamples, upsample, head_layers, post = request.param
    config = tiny_official_config(downsamples, upsample, head_layers, post)
    params = random_official_params(config, seed=downsamples + head_layers)
    tokens, species = _inputs(post)
    root = tmp_path_factory.mktemp("ntv3")
    jax_folder = write_jax_folder(root / "jax", params, config)
    hub_folder = write_hub_folder(root / "hub", params, config)
    jax_model, jax_fields = load_ntv3_source("ntv3-jax", jax_folder)
    hub_model, hub_fields = load_ntv3_source("ntv3-hub", hub_folder)
    return {
        "config": config,
        "params": params,
        "tokens": tokens,
        "species": species,
        "reference": reference_forward(params, config, tokens, species),
        "models": {"ntv3-jax": jax_model, "ntv3-hub": hub_model},
        "fields": {"ntv3-jax": jax_fields, "ntv3-hub": hub_fields},
        "folders": {"ntv3-jax": jax_folder, "ntv3-hub": hub_folder},
    }


def test_converted_outputs_match_the_official_reference(converted: dict) -> None:
    model = converted["models"]["ntv3-jax"]
    expected_class = (
        NTv3ForTracksPrediction if "conditions_vocab_size" in converted["config"] else NTv3ForMaskedLM
    )
    assert type(model) is expected_class
    ours = _our_outputs(model, converted["tokens"], converted["species"])
    differences = _differences(converted["reference"], ours, converted["config"])
    print(json.dumps(differences))  # the measured figures (pytest -s)
    worst = max(differences, key=differences.get)
    assert differences[worst] < TOLERANCE, (worst, differences)
    assert len(differences) == (9 if expected_class is NTv3ForTracksPrediction else 6)


@pytest.mark.parametrize("converted", CASES[:2], indirect=True, ids=_case_id)
def test_padded_blocks_are_masked_as_officially(converted: dict) -> None:
    """The pre-trained reference masks all-<pad> key blocks: without our block mask the core output of row 1
    moves far beyond the tolerance (so the parity above covers the mask); row 0 (no padding) does not move."""
    backbone, ids = converted["models"]["ntv3-jax"].ntv3, torch.from_numpy(converted["tokens"])
    with torch.no_grad():
        masked = backbone(ids).core_hidden_state
        unmasked = backbone(ids, attention_mask=torch.ones_like(ids)).core_hidden_state
    assert torch.equal(masked[0], unmasked[0])
    assert (masked[1] - unmasked[1]).abs().max() > 100 * TOLERANCE


def test_hub_layout_converts_to_the_same_model(converted: dict) -> None:
    jax_model, hub_model = converted["models"]["ntv3-jax"], converted["models"]["ntv3-hub"]
    jax_state, hub_state = jax_model.state_dict(), hub_model.state_dict()
    assert jax_state.keys() == hub_state.keys()
    assert all(torch.equal(jax_state[key], hub_state[key]) for key in jax_state)
    jax_out = _our_outputs(jax_model, converted["tokens"], converted["species"])
    hub_out = _our_outputs(hub_model, converted["tokens"], converted["species"])
    assert torch.equal(jax_out["logits"], hub_out["logits"])
    assert converted["fields"]["ntv3-hub"]["ignored_keys"] == [
        f"core.transformer_blocks.{layer}.sa_layer.rotary_embedding.inv_freq" for layer in range(2)
    ]
    assert converted["fields"]["ntv3-jax"]["num_source_tensors"] == len(converted["params"])
    assert converted["fields"]["ntv3-hub"]["num_source_tensors"] == len(converted["params"]) + 2


def test_synthetic_hub_state_has_the_documented_layout() -> None:
    """Shapes of the Hub remote-code tensors as facts section 4 lists them (c_i -> c_o = 16 -> 18 at level 0 of
    the down tower, 32 -> 29 at level 0 of the up tower with 7 downsamples; D 32, F 48, T 8, V 11)."""
    config = tiny_official_config(7, "conv_transpose", 0)
    state = hub_state_dict(random_official_params(config, 0), config)
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    assert shapes["core.embed_layer.weight"] == (11, 8)
    assert shapes["core.stem.conv.weight"] == (16, 8, 15)
    assert shapes["core.conv_tower_blocks.0.conv.conv.weight"] == (18, 16, 5)  # Conv1d [co, ci, k]
    assert shapes["core.conv_tower_blocks.0.res_conv.conv_block.conv.weight"] == (18, 18, 1)
    assert shapes["core.deconv_tower_blocks.0.conv.conv.weight"] == (32, 29, 5)  # transposed [ci, co, k]
    assert shapes["core.deconv_tower_blocks.0.res_conv.conv_block.conv.weight"] == (29, 29, 1)
    assert shapes["core.transformer_blocks.0.fc1.weight"] == (96, 32)
    assert shapes["core.transformer_blocks.0.fc2.weight"] == (32, 48)
    assert shapes["core.transformer_blocks.0.sa_layer.query_head.linear.weight"] == (32, 32)
    assert shapes["core.lm_head.head.weight"] == (11, 16)
    repeat = tiny_official_config(7, "repeat+conv", 0)
    repeat_state = hub_state_dict(random_official_params(repeat, 0), repeat)
    assert tuple(repeat_state["core.deconv_tower_blocks.0.conv.conv.weight"].shape) == (29, 32, 5)  # Conv1d


def test_species_heads_follow_the_species_token_order(tmp_path: Path) -> None:
    """Official head s = s-th species by token id (species without tracks keep their index): yeast 0, human 1,
    fly 2 (no head), mouse 3."""
    config = tiny_official_config(5, "repeat+conv", 0, post=True)
    params = random_official_params(config, 3)
    model = load_ntv3_source("ntv3-jax", write_jax_folder(tmp_path, params, config))[0]
    assert sorted(model.track_heads) == ["human", "mouse", "yeast"]
    for species, index in {"yeast": 0, "human": 1, "mouse": 3}.items():
        kernel = params[f"bigwig_head.species_heads.{index}.head.kernel"]
        assert kernel.shape[1] == len(BIGWIGS[species])
        np.testing.assert_array_equal(
            model.track_heads[species].linear.weight.detach().numpy(), kernel.T.astype(np.float32)
        )
    assert model.config.species_to_token_id == SPECIES_TO_TOKEN_ID


@pytest.mark.parametrize("converted", [CASES[0]], indirect=True, ids=_case_id)
@pytest.mark.parametrize("given", ["auto", "ntv3"])
@pytest.mark.parametrize("source", ["ntv3-jax", "ntv3-hub"])
def test_cli_conversion_saves_a_loadable_checkpoint(
    converted: dict, source: str, given: str, tmp_path: Path, run_nt
) -> None:
    """``--from auto`` and ``--from ntv3`` (either official NTv3 layout) read the layout from the files."""
    result = run_nt("convert", "--from", given, converted["folders"][source], tmp_path / "out")
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["source"] == source
    model = load_model(tmp_path / "out", NTForMaskedLM)
    assert type(model) is NTv3ForMaskedLM
    with torch.no_grad():
        logits = model(torch.from_numpy(converted["tokens"])).logits
    assert _scaled_difference(converted["reference"]["logits"], logits) < TOLERANCE


@pytest.mark.parametrize("converted", [CASES[3]], indirect=True, ids=_case_id)
def test_post_trained_checkpoint_round_trips(converted: dict, tmp_path: Path) -> None:
    convert_checkpoint("ntv3-hub", converted["folders"]["ntv3-hub"], tmp_path / "out")
    model = NTv3ForTracksPrediction.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        out = model(torch.from_numpy(converted["tokens"]), torch.from_numpy(converted["species"]))
    reference = converted["reference"]
    assert _scaled_difference(reference["bigwig_tracks_logits"], out.track_predictions) < TOLERANCE
    assert model.config.keep_target_center_fraction == 0.375
    assert model.config.bigwig_tracks_per_species == BIGWIGS


@pytest.mark.parametrize("converted", [CASES[0]], indirect=True, ids=_case_id)
def test_hub_folder_is_refused_with_the_convert_command(converted: dict) -> None:
    folder = converted["folders"]["ntv3-hub"]
    with pytest.raises(ValueError, match=f"`nt convert --from ntv3-hub {folder} OUT`"):
        load_model(folder, NTForMaskedLM)
    with pytest.raises(ValueError, match="nt convert --from ntv3-hub SRC OUT"):
        NTv3ForMaskedLM.from_pretrained(folder)
