"""Bad inputs to ``nt convert``: each ends in one stderr line naming the file and the problem (exit 2).

Each case builds a small official-layout folder in ``tmp_path`` (JAX ``jax_model/`` or ESM Hub folder, from the
synthetic tensors of ``test_convert``) with one realistic defect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from conftest import assert_bad_input
from safetensors.torch import save_file
from test_convert import FFN, HEADS, HIDDEN, LAYERS, hub_state_dict, hyperparams, jax_params, write_v2_hub


def jax_folder(tmp_path: Path, params: dict | None = None, **hyper: object) -> Path:
    """A valid v1 ``jax_model/`` folder; ``hyper`` overrides ``hyperparams.json`` fields (None removes one)."""
    folder = tmp_path / "jax_model"
    folder.mkdir()
    values = {key: value for key, value in (hyperparams("v1") | hyper).items() if value is not None}
    (folder / "hyperparams.json").write_text(json.dumps(values))
    state = hub_state_dict("v1")
    joblib.dump(
        jax_params(state, "v1", old_names=False) if params is None else params, folder / "pytree_ckpt.joblib"
    )
    return folder


def esm_folder(tmp_path: Path, state: dict[str, torch.Tensor] | None = None, **config: object) -> Path:
    """A valid v1 ESM Hub folder (``model.safetensors``); ``config`` overrides ``config.json`` fields (None
    removes one)."""
    folder = tmp_path / "esm"
    folder.mkdir()
    values = {
        "model_type": "esm",
        "vocab_size": 4105,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": FFN["v1"],
        "max_position_embeddings": 1002,
        "position_embedding_type": "absolute",
        "token_dropout": True,
        "emb_layer_norm_before": False,
        "tie_word_embeddings": False,
        "pad_token_id": 1,
        "mask_token_id": 2,
    } | config
    (folder / "config.json").write_text(json.dumps({k: v for k, v in values.items() if v is not None}))
    save_file(hub_state_dict("v1") if state is None else state, folder / "model.safetensors")
    return folder


def random_bytes_joblib(tmp_path: Path) -> Path:
    folder = jax_folder(tmp_path)
    (folder / "pytree_ckpt.joblib").write_bytes(np.random.default_rng(0).bytes(4096))
    return folder


def truncated_joblib(tmp_path: Path) -> Path:
    folder = jax_folder(tmp_path)
    data = (folder / "pytree_ckpt.joblib").read_bytes()
    (folder / "pytree_ckpt.joblib").write_bytes(data[: len(data) // 2])
    return folder


def joblib_of(value: object) -> Callable[[Path], Path]:
    def build(tmp_path: Path) -> Path:
        folder = jax_folder(tmp_path)
        joblib.dump(value, folder / "pytree_ckpt.joblib")
        return folder

    return build


def remove(name: str, build: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def remove_file(tmp_path: Path) -> Path:
        folder = build(tmp_path)
        (folder / name).unlink()
        return folder

    return remove_file


def write_text(name: str, text: str, build: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def overwrite(tmp_path: Path) -> Path:
        folder = build(tmp_path)
        (folder / name).write_text(text)
        return folder

    return overwrite


def truncated_safetensors(tmp_path: Path) -> Path:
    folder = esm_folder(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return folder


def garbage_pytorch_bin(tmp_path: Path) -> Path:
    folder = esm_folder(tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(np.random.default_rng(1).bytes(2048))
    return folder


def tied_but_different_decoder(tmp_path: Path) -> Path:
    return esm_folder(tmp_path, tie_word_embeddings=True)


def untied_without_decoder(tmp_path: Path) -> Path:
    state = {key: value for key, value in hub_state_dict("v1").items() if key != "lm_head.decoder.weight"}
    return esm_folder(tmp_path, state=state)


def v2_hub(tmp_path: Path) -> Path:
    return write_v2_hub(tmp_path / "hub", hub_state_dict("v2"))


def jax_with(**hyper: object) -> Callable[[Path], Path]:
    return lambda tmp_path: jax_folder(tmp_path, **hyper)


def esm_with(**config: object) -> Callable[[Path], Path]:
    return lambda tmp_path: esm_folder(tmp_path, **config)


CASES = [
    # (id, --from, folder builder, words of the error line)
    ("jax-random-bytes-joblib", "jax", random_bytes_joblib, ["pytree_ckpt.joblib", "not a readable joblib"]),
    ("jax-truncated-joblib", "jax", truncated_joblib, ["pytree_ckpt.joblib", "truncated"]),
    ("jax-joblib-of-a-list", "jax", joblib_of([1, 2, 3]), ["pytree_ckpt.joblib", "two-level dict", "list"]),
    (
        "jax-joblib-of-strings",
        "jax",
        joblib_of({"esm_transformer/~/embed": {"embeddings": "weights.npy"}}),
        ["pytree_ckpt.joblib", "embeddings", "not a numeric array"],
    ),
    (
        "jax-missing-joblib",
        "jax",
        remove("pytree_ckpt.joblib", jax_folder),
        ["pytree_ckpt.joblib", "not found"],
    ),
    (
        "jax-missing-hyperparams",
        "jax",
        remove("hyperparams.json", jax_folder),
        ["hyperparams.json", "neither config.json"],
    ),
    (
        "jax-hyperparams-invalid-json",
        "jax",
        write_text("hyperparams.json", '{"embed_dim": 32,', jax_folder),
        ["hyperparams.json", "invalid JSON"],
    ),
    (
        "jax-hyperparams-not-an-object",
        "jax",
        write_text("hyperparams.json", "[1, 2]", jax_folder),
        ["hyperparams.json", "JSON object", "list"],
    ),
    (
        "jax-hyperparams-missing-field",
        "jax",
        jax_with(num_layers=None),
        ["hyperparams.json", "num_layers", "missing"],
    ),
    (
        "jax-hyperparams-text-number",
        "jax",
        jax_with(embed_dim="32"),
        ["hyperparams.json", "embed_dim", "integer"],
    ),
    (
        "jax-unknown-activation",
        "jax",
        jax_with(ffn_activation_name="gelu_new"),
        ["hyperparams.json", "unknown ffn_activation_name 'gelu_new'", "gelu-no-approx", "swish"],
    ),
    (
        "jax-relu-ffn",
        "jax",
        jax_with(ffn_activation_name="relu"),
        ["hyperparams.json", "'relu'", "not an NT FFN", "gelu-no-approx"],
    ),
    (
        "jax-swish-without-glu",
        "jax",
        jax_with(ffn_activation_name="swish"),
        ["hyperparams.json", "'swish'", "use_glu_in_ffn=false"],
    ),
    ("jax-on-esm-folder", "jax", esm_folder, ["esm checkpoint", "use --from esm"]),
    ("esm-missing-weights", "esm", remove("model.safetensors", esm_folder), ["no model.safetensors"]),
    (
        "esm-truncated-safetensors",
        "esm",
        truncated_safetensors,
        ["model.safetensors", "cannot read the weights"],
    ),
    ("esm-garbage-pytorch-bin", "esm", garbage_pytorch_bin, ["pytorch_model.bin", "cannot read the weights"]),
    ("esm-missing-config", "esm", remove("config.json", esm_folder), ["neither config.json"]),
    (
        "esm-layer-norm-before",
        "esm",
        esm_with(emb_layer_norm_before=True),
        ["config.json", "emb_layer_norm_before=true", "not an NT architecture"],
    ),
    ("esm-config-missing-field", "esm", esm_with(vocab_size=None), ["config.json", "vocab_size", "missing"]),
    (
        "esm-tied-decoder-differs",
        "esm",
        tied_but_different_decoder,
        ["config.json", "tie_word_embeddings=true", "lm_head.decoder.weight", "differs"],
    ),
    ("esm-untied-without-decoder", "esm", untied_without_decoder, ["missing", "lm_head.decoder.weight"]),
    ("esm-on-v2-hub-folder", "esm", v2_hub, ["nt-v2-hub checkpoint", "use --from nt-v2-hub"]),
    ("wrong-from", "hf", esm_folder, ["--from", "invalid choice", "hf"]),
]


@pytest.mark.parametrize(
    ("source", "build", "words"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_bad_convert_input_is_one_line(run_nt, tmp_path: Path, source: str, build, words: list[str]) -> None:
    folder = build(tmp_path)
    result = run_nt("convert", "--from", source, folder, tmp_path / "out")
    assert_bad_input(result, *words)
    if source in ("jax", "esm"):  # the folder is named in the line (argparse errors name the flag instead)
        assert str(folder) in result.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_src_that_is_not_a_folder(run_nt, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    assert_bad_input(
        run_nt("convert", "--from", "jax", missing, tmp_path / "out"), str(missing), "no such folder"
    )
