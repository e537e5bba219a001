"""Bad inputs to ``nt convert --from ntv3-jax|ntv3-hub|auto`` and to ``--model`` given an official NTv3 folder:
each ends in one stderr line naming the file, key or field and the problem (exit 2).

Each case builds a tiny official NTv3 export (``params.npz`` + ``config.json``) or Hub folder in ``tmp_path``
(tests/ntv3_official_files.py) with one realistic defect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bad_input
from ntv3_official_files import hub_state_dict, tiny_official_config, write_hub_folder, write_jax_folder
from ntv3_reference import random_official_params
from safetensors.torch import save_file


def _export(
    tmp_path: Path, post: bool = False, edit_params: Callable | None = None, **fields: object
) -> Path:
    """A valid ``ntv3-jax`` export; ``edit_params`` changes the parameter dict in place, ``fields`` override
    ``config.json`` (None removes one)."""
    config = tiny_official_config(5, "repeat+conv", 0, post)
    params = random_official_params(config, 0)
    if edit_params is not None:
        edit_params(params)
    config = {key: value for key, value in (config | fields).items() if value is not None}
    return write_jax_folder(tmp_path / "ntv3_export", params, config)


def _hub(tmp_path: Path, edit_state: Callable | None = None) -> Path:
    """A valid ``ntv3-hub`` folder; ``edit_state`` changes the ``core.*`` state dict in place."""
    config = tiny_official_config(5, "repeat+conv", 0)
    folder = write_hub_folder(tmp_path / "NTv3_tiny_pre", random_official_params(config, 0), config)
    if edit_state is not None:
        state = hub_state_dict(random_official_params(config, 0), config)
        edit_state(state)
        save_file(state, str(folder / "model.safetensors"))
    return folder


def _no_npz(tmp_path: Path) -> Path:
    folder = _export(tmp_path)
    (folder / "params.npz").unlink()
    return folder


def _text_npz(tmp_path: Path) -> Path:
    folder = _export(tmp_path)
    (folder / "params.npz").write_text("conv_tower_blocks.0.conv.conv.kernel\t0.1\n")
    return folder


def _pop(key: str) -> Callable:
    return lambda params: params.pop(key)


def _add(key: str, shape: tuple[int, ...]) -> Callable:
    return lambda params: params.__setitem__(key, np.zeros(shape, np.float32))


def _transpose(key: str) -> Callable:
    return lambda params: params.__setitem__(key, params[key].transpose())


CASES = {
    "npz missing": (
        lambda tmp: ["--from", "ntv3-jax", _no_npz(tmp)],
        ["params.npz", "not found"],
    ),
    "npz is a text file": (
        lambda tmp: ["--from", "auto", _text_npz(tmp)],
        ["params.npz", "not an .npz archive"],
    ),
    "npz lacks a layer's fc2": (
        lambda tmp: ["--from", "ntv3-jax", _export(tmp, edit_params=_pop("transformer_blocks.1.fc2.kernel"))],
        ["params.npz", "missing key", "transformer_blocks.1.fc2.kernel"],
    ),
    "npz has a third layer the config lacks": (
        lambda tmp: [
            "--from",
            "auto",
            _export(tmp, edit_params=_add("transformer_blocks.2.fc1.kernel", (32, 96))),
        ],
        ["params.npz", "unexpected key", "transformer_blocks.2.fc1.kernel"],
    ),
    "conv kernel exported as [out, in, k]": (
        lambda tmp: [
            "--from",
            "ntv3-jax",
            _export(tmp, edit_params=_transpose("conv_tower_blocks.0.conv.conv.kernel")),
        ],
        ["params.npz", "conv_tower_blocks.0.conv.conv.kernel", "shape (19, 16, 5)", "(5, 16, 19)"],
    ),
    "config lacks num_downsamples": (
        lambda tmp: ["--from", "auto", _export(tmp, num_downsamples=None)],
        ["config.json", "num_downsamples", "missing"],
    ),
    "config lacks embed_dim": (
        lambda tmp: ["--from", "ntv3-jax", _export(tmp, embed_dim=None)],
        ["config.json", "embed_dim", "missing"],
    ),
    "config lacks use_skip_connection": (
        lambda tmp: ["--from", "ntv3-jax", _export(tmp, use_skip_connection=None)],
        ["config.json", "use_skip_connection", "missing"],
    ),
    "unknown upsampling": (
        lambda tmp: ["--from", "ntv3-jax", _export(tmp, deconv_upsample_type="nearest")],
        ["config.json", "deconv_upsample_type", "nearest"],
    ),
    "key_size other than embed_dim / heads": (
        lambda tmp: ["--from", "ntv3-jax", _export(tmp, key_size=8)],
        ["config.json", "key_size 8", "embed_dim 32"],
    ),
    "post config lacks the centre fraction": (
        lambda tmp: ["--from", "ntv3-jax", _export(tmp, post=True, keep_target_center_fraction=None)],
        ["config.json", "keep_target_center_fraction", "missing"],
    ),
    "species head beyond the species list": (
        lambda tmp: [
            "--from",
            "ntv3-jax",
            _export(tmp, post=True, edit_params=_add("bigwig_head.species_heads.4.head.kernel", (32, 2))),
        ],
        ["params.npz", "bigwig_head.species_heads.4.head.kernel", "species head 4", "4 species"],
    ),
    "species head for a species without tracks": (
        lambda tmp: [
            "--from",
            "ntv3-jax",
            _export(tmp, post=True, edit_params=_add("bigwig_head.species_heads.2.head.kernel", (32, 2))),
        ],
        ["params.npz", "species head 2", "fly", "no tracks"],
    ),
    "bigwigs_per_species skips a species token": (
        lambda tmp: [
            "--from",
            "ntv3-jax",
            _export(
                tmp, post=True, bigwigs_per_species={"yeast": ["RNA"], "human": ["DNase"], "mouse": ["ATAC"]}
            ),
        ],
        ["config.json", "'mouse' (token 9) is head 2", "reads head 3", "bigwigs_per_species"],
    ),
    "hub weights lack a LayerNorm": (
        lambda tmp: [
            "--from",
            "ntv3-hub",
            _hub(tmp, lambda state: state.pop("core.transformer_blocks.0.final_layer_norm.weight")),
        ],
        ["NTv3_tiny_pre", "missing key", "core.transformer_blocks.0.final_layer_norm.weight"],
    ),
    "hub weights outside core.": (
        lambda tmp: [
            "--from",
            "auto",
            _hub(
                tmp,
                lambda state: state.__setitem__("lm_head.weight", state["core.lm_head.head.weight"].clone()),
            ),
        ],
        ["NTv3_tiny_pre", "unexpected key", "'lm_head.weight'", "core."],
    ),
    "hub folder given as ntv3-jax": (
        lambda tmp: ["--from", "ntv3-jax", _hub(tmp)],
        ["NTv3_tiny_pre", "ntv3-hub", "--from ntv3-hub"],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_ntv3_conversion_input_is_one_line(case: str, tmp_path: Path, run_nt) -> None:
    build, words = CASES[case]
    argv = build(tmp_path)
    result = run_nt("convert", *argv, tmp_path / "out")
    assert_bad_input(result, *words)
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize(("layout", "build"), [("ntv3-hub", _hub), ("ntv3-jax", _export)])
def test_official_ntv3_folder_as_model_names_the_convert_command(
    layout: str, build: Callable, tmp_path: Path, run_nt
) -> None:
    folder = build(tmp_path)
    task = tmp_path / "task.json"
    task.write_text(json.dumps({}))
    result = run_nt("probe", "--model", folder, "--task", task, "--out", tmp_path / "probe")
    assert_bad_input(result, "official NTv3 checkpoint", f"`nt convert --from {layout} {folder} OUT`")
