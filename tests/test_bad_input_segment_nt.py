"""Bad inputs to ``nt convert --from segment-nt-jax|segment-nt-hub``: one stderr line naming the file and the
problem (exit 2). Each case builds a small official-layout SegmentNT folder (the synthetic tensors of
``test_segment_nt``) with one realistic defect."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import joblib
import pytest
from conftest import assert_bad_input
from test_convert import hub_state_dict, hyperparams, jax_params
from test_segment_nt import hub_head_state, write_segment_hub, write_segment_jax


def plain_nt_jax(tmp_path: Path) -> tuple[Path, str]:
    """An NT v2 JAX folder (no head, no features) given as SegmentNT."""
    folder = tmp_path / "jax_model"
    folder.mkdir()
    (folder / "hyperparams.json").write_text(json.dumps(hyperparams("v2")))
    joblib.dump(jax_params(hub_state_dict("v2"), "v2", old_names=False), folder / "pytree_ckpt.joblib")
    return folder, "segment-nt-jax"


def hub_without_features(tmp_path: Path) -> tuple[Path, str]:
    return write_segment_hub(tmp_path / "hub", features=None), "segment-nt-hub"


def hub_bert_config(tmp_path: Path) -> tuple[Path, str]:
    return write_segment_hub(tmp_path / "hub", model_type="bert"), "segment-nt-hub"


def hub_head_for_other_classes(tmp_path: Path) -> tuple[Path, str]:
    """The config lists 3 classes but the final layer was trained for 14 (a features list edited by hand)."""
    return write_segment_hub(tmp_path / "hub", head=hub_head_state(classes=14)), "segment-nt-hub"


def hub_missing_head_block(tmp_path: Path) -> tuple[Path, str]:
    """A truncated download: the last up-sampling block's tensors are absent."""
    head = {k: v for k, v in hub_head_state().items() if not k.startswith("unet._upsample_blocks.1.")}
    return write_segment_hub(tmp_path / "hub", head=head), "segment-nt-hub"


def jax_negative_rescaling(tmp_path: Path) -> tuple[Path, str]:
    return write_segment_jax(tmp_path / "jax", rescaling_factor=-2.44), "segment-nt-jax"


def jax_folder_given_as_hub(tmp_path: Path) -> tuple[Path, str]:
    return write_segment_jax(tmp_path / "jax"), "segment-nt-hub"


def hub_weights_not_tensors(tmp_path: Path) -> tuple[Path, str]:
    folder = write_segment_hub(tmp_path / "hub")
    (folder / "model.safetensors").write_bytes(b"<html>rate limited</html>")
    return folder, "segment-nt-hub"


def hub_num_layers_head_disagrees(tmp_path: Path) -> tuple[Path, str]:
    """config.json says 3 U-Net levels, the weights hold 2 (a config copied from another head)."""
    return write_segment_hub(tmp_path / "hub", num_layers_head=3), "segment-nt-hub"


def hub_num_features_disagrees(tmp_path: Path) -> tuple[Path, str]:
    """num_features 14 (the released classes) beside a 3-class features list edited by hand."""
    return write_segment_hub(tmp_path / "hub", num_features=14), "segment-nt-hub"


def segment_hub_as_nt_v2_hub(tmp_path: Path) -> tuple[Path, str]:
    return write_segment_hub(tmp_path / "hub"), "nt-v2-hub"


def segment_jax_as_auto(tmp_path: Path) -> tuple[Path, str]:
    return write_segment_jax(tmp_path / "jax"), "auto"


CASES: list[tuple[str, Callable[[Path], tuple[Path, str]], tuple[str, ...]]] = [
    ("plain NT JAX checkpoint", plain_nt_jax, ("hyperparams.json", "features", "not a SegmentNT")),
    ("Hub config without features", hub_without_features, ("config.json", "features")),
    ("Hub config of another model", hub_bert_config, ("config.json", "'bert'", "not a SegmentNT")),
    (
        "head trained for other classes",
        hub_head_for_other_classes,
        ("head.fc", "14 classes", "lists 3 features"),
    ),
    ("truncated head", hub_missing_head_block, ("missing", "head.up_blocks.1")),
    (
        "num_layers_head vs weights",
        hub_num_layers_head_disagrees,
        ("config.json", "num_layers_head is 3", "2 U-Net downsample blocks"),
    ),
    (
        "num_features vs features",
        hub_num_features_disagrees,
        ("config.json", "num_features is 14", "3 classes"),
    ),
    ("negative rescaling factor", jax_negative_rescaling, ("hyperparams.json", "rescaling_factor", "-2.44")),
    ("JAX folder as Hub", jax_folder_given_as_hub, ("no config.json",)),
    ("HTML instead of weights", hub_weights_not_tensors, ("model.safetensors", "cannot read")),
    ("SegmentNT Hub folder as nt-v2-hub", segment_hub_as_nt_v2_hub, ("config.json", "--from segment-nt-hub")),
    ("SegmentNT JAX folder as auto", segment_jax_as_auto, ("hyperparams.json", "--from segment-nt-jax")),
]


@pytest.mark.filterwarnings("ignore:loading .*joblib")
@pytest.mark.parametrize(("name", "build", "words"), CASES, ids=[case[0] for case in CASES])
def test_bad_segment_nt_conversion_input(
    run_nt, tmp_path: Path, name: str, build, words: tuple[str, ...]
) -> None:
    folder, source = build(tmp_path)
    result = run_nt("convert", "--from", source, folder, tmp_path / "out")
    assert_bad_input(result, *words)
    assert not (tmp_path / "out" / "model.safetensors").exists()
