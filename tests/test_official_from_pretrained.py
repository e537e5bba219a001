"""The NT classes' own ``from_pretrained`` loads the official checkpoints (v1 stock ESM, v2 remote-code layout) by
Hub id and by folder, converting on load with ``nt convert``'s key mapping (transformers' ``key_mapping`` hook);
``nt convert --from auto`` reads the layout of a folder or Hub id and names it.

Offline: tiny checkpoints in each official layout laid out in a temporary Hugging Face cache
(``offline_hub``, ``cache_repo``), compared with ``nt convert``'s output of the same files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from test_checkpoint_loading import REVISION, V1_REPO, V2_REPO, cache_repo, logits, save_stock_esm
from test_convert import hub_state_dict, padded_ids, write_jax, write_v2_hub

from modeling_nt import (
    NTConfig,
    NTForMaskedLM,
    NTForSequenceClassification,
    NTForTokenClassification,
    NTModel,
)
from modeling_nt.convert import convert_checkpoint

#: name -> (Hub id, layout, vocabulary, known-unused tensors the tiny file carries)
OFFICIAL = {
    "v1": (V1_REPO, "esm", 4105, 2),  # esm.contact_head.regression.{weight,bias}
    "v2": (V2_REPO, "nt-v2-hub", 4107, 3),  # the unused position table and 2 per-layer inv_freq buffers
}
REPORT_LOGGER = "modeling_nt.modeling_nt"


def stage(version: str, folder: Path) -> Path:
    """A tiny official checkpoint: v1 written by stock ``EsmForMaskedLM.save_pretrained`` with a tied decoder
    (so the file has no ``lm_head.decoder.weight``), v2 the official key names in ``pytorch_model.bin`` with
    its ``config.json`` (``auto_map`` to the remote code, whose files raise if ever imported)."""
    if version == "v1":
        return save_stock_esm(folder, tie=True, seed=11)[1]
    folder = write_v2_hub(folder, hub_state_dict("v2", seed=12))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "esm_config.EsmConfig",
        "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("esm_config.py", "modeling_esm.py"):
        (folder / name).write_text('raise RuntimeError("remote code of the official repository was run")\n')
    return folder


@pytest.fixture(params=list(OFFICIAL))
def official(request, offline_hub: Path, tmp_path: Path) -> dict:
    """One official checkpoint in the offline Hub cache, its staged folder and ``nt convert``'s conversion."""
    version = request.param
    repo, layout, vocab, unused = OFFICIAL[version]
    staged = stage(version, tmp_path / f"{version}_staged")
    snapshot = cache_repo(offline_hub, repo, staged)
    report = convert_checkpoint(layout, staged, tmp_path / f"{version}_converted")
    converted = NTForMaskedLM.from_pretrained(tmp_path / f"{version}_converted").eval()
    return {
        "repo": repo,
        "layout": layout,
        "vocab": vocab,
        "unused": unused,
        "staged": staged,
        "snapshot": snapshot,
        "converted": converted,
        "report": report,
    }


def reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == REPORT_LOGGER]


def test_masked_lm_from_pretrained_by_hub_id_and_by_folder_equals_the_converted_checkpoint(
    official: dict, caplog: pytest.LogCaptureFixture
) -> None:
    reference = logits(official["converted"], official["vocab"])
    for source in (official["repo"], official["staged"], str(official["snapshot"])):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=REPORT_LOGGER):
            model = NTForMaskedLM.from_pretrained(source)
        assert (logits(model, official["vocab"]) - reference).abs().max().item() <= 1e-5
        assert model.config.tokenizer_version == ("v1" if official["layout"] == "esm" else "v2")
        (message,) = reports(caplog)  # the conversion report, logged once
        assert message.startswith(f"{source}: official {official['layout']} checkpoint converted on load")
        assert f"; {official['unused']} known-unused tensors dropped (" in message
        assert ("lm_head.decoder.weight = word embeddings" in message) == (official["layout"] == "esm")
    tied = {"lm_head.decoder.weight": "esm.embeddings.word_embeddings.weight"}
    assert official["report"].tied_keys == (tied if official["layout"] == "esm" else {})


def test_every_nt_class_loads_the_official_backbone(official: dict) -> None:
    converted = official["converted"]
    ids = torch.from_numpy(padded_ids(official["vocab"]))
    backbone = NTModel.from_pretrained(official["repo"])
    with torch.no_grad():
        hidden = backbone(ids).last_hidden_state
        reference = converted.nt(ids).last_hidden_state
    assert (hidden - reference).abs().max().item() <= 1e-5
    expected = converted.nt.state_dict()
    for model_class in (NTForSequenceClassification, NTForTokenClassification):
        model = model_class.from_pretrained(official["staged"], num_labels=3)
        assert model.config.num_labels == 3 and model.classifier.out_features == 3
        state = model.nt.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[key], expected[key]) for key in expected)


def test_output_loading_info_lists_only_real_problems(official: dict) -> None:
    _, info = NTForMaskedLM.from_pretrained(official["repo"], output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    _, info = NTForSequenceClassification.from_pretrained(official["repo"], output_loading_info=True)
    assert info["missing_keys"] == {"classifier.weight", "classifier.bias"}


def test_auto_class_with_the_nt_config_loads_the_official_repo(official: dict) -> None:
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = NTConfig.from_pretrained(official["repo"])
    assert config.model_type == "nucleotide_transformer"
    assert config.position_embedding_type == ("absolute" if official["layout"] == "esm" else "rotary")
    model = AutoModelForMaskedLM.from_pretrained(official["repo"], config=config)
    assert type(model) is NTForMaskedLM
    reference = logits(official["converted"], official["vocab"])
    assert (logits(model, official["vocab"]) - reference).abs().max().item() <= 1e-5
    # documented limit: without the NT config, AutoConfig reads the official model_type (esm) as stock ESM
    assert AutoConfig.from_pretrained(official["repo"]).model_type == "esm"


def test_a_model_loaded_from_an_official_checkpoint_saves_in_our_layout(
    official: dict, tmp_path: Path
) -> None:
    from safetensors import safe_open

    model = NTForMaskedLM.from_pretrained(official["repo"])
    model.save_pretrained(tmp_path / "saved")
    with safe_open(str(tmp_path / "saved" / "model.safetensors"), "pt") as file:
        keys = set(file.keys())
    assert keys == set(official["converted"].state_dict())
    again = NTForMaskedLM.from_pretrained(tmp_path / "saved")
    reference = logits(official["converted"], official["vocab"])
    assert (logits(again, official["vocab"]) - reference).abs().max().item() <= 1e-5


def test_hub_options_are_honoured(official: dict, tmp_path: Path) -> None:
    other_cache = tmp_path / "elsewhere"
    cache_repo(other_cache, official["repo"], official["staged"])
    model = NTForMaskedLM.from_pretrained(official["repo"], cache_dir=other_cache, revision=REVISION)
    reference = logits(official["converted"], official["vocab"])
    assert (logits(model, official["vocab"]) - reference).abs().max().item() <= 1e-5
    missing = "InstaDeepAI/nucleotide-transformer-v2-100m-multi-species"
    with pytest.raises(OSError) as error:
        NTForMaskedLM.from_pretrained(missing, cache_dir=other_cache)
    message = str(error.value)
    assert "\n" not in message
    for words in (
        f"{missing}@main is out of reach",
        "no config.json found",
        f"(cache {other_cache}, offline)",
    ):
        assert words in message


# ------------------------------------------------------------------------------------------ nt convert --from auto


@pytest.mark.parametrize("version", ["v1", "v2", "jax"])
def test_convert_from_auto_names_the_detected_layout(version: str, tmp_path: Path, run_nt) -> None:
    if version == "jax":
        source, layout = write_jax(tmp_path / "jax_model", "v1", old_names=False)[0], "jax"
    else:
        source, layout = stage(version, tmp_path / "staged"), OFFICIAL[version][1]
    explicit = convert_checkpoint(layout, source, tmp_path / "explicit")
    result = run_nt("convert", "--from", "auto", source, tmp_path / "auto")
    assert result.code == 0, result.err
    assert (
        result.out.splitlines()[0] == f"converted {layout} checkpoint {source} (layout detected: --from auto)"
    )
    saved = json.loads((tmp_path / "auto" / "conversion_report.json").read_text())
    assert saved["source"] == layout and saved["detected"] is True and saved["hub_snapshot"] is None
    assert saved["num_parameters"] == explicit.num_parameters
    vocab = 4107 if version == "v2" else 4105
    by_auto = NTForMaskedLM.from_pretrained(tmp_path / "auto")
    by_explicit = NTForMaskedLM.from_pretrained(tmp_path / "explicit")
    assert torch.equal(logits(by_auto, vocab), logits(by_explicit, vocab))


def test_convert_from_auto_by_hub_id(official: dict, tmp_path: Path, run_nt) -> None:
    result = run_nt("convert", "--from", "auto", official["repo"], tmp_path / "out")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert (
        lines[0]
        == f"converted {official['layout']} checkpoint {official['repo']} (layout detected: --from auto)"
    )
    assert lines[1] == f"  Hub snapshot: {official['snapshot']}"
    converted = NTForMaskedLM.from_pretrained(tmp_path / "out")
    reference = logits(official["converted"], official["vocab"])
    assert torch.equal(logits(converted, official["vocab"]), reference)


def test_cli_from_choices_are_the_library_choices() -> None:
    from benchmarks.cli import convert as cli_convert
    from modeling_nt import convert

    assert cli_convert.FROM_CHOICES == convert.FROM_CHOICES
