"""Official NTv3 checkpoint folders for tests: tiny configs with the official field names, the JAX export
(``params.npz`` + ``config.json``) and a synthetic Hub remote-code folder (``core.*`` safetensors + Hub-style
``config.json``) built from the same official parameters.

The Hub state dict follows the layout the official loader reads (the official
``nucleotide_transformer_v3/pretrained.py``): it stores every conv weight as ``kernel.transpose(2, 1, 0)``
(PyTorch [a, b, k]), every Linear weight as ``kernel.T``, LayerNorm ``scale`` as ``weight``, the token and
condition tables as ``core.embed_layer.weight`` / ``core.cond_tables.{i}.weight``; the rotary ``inv_freq``
buffers are stored too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

#: Species of the tiny post-trained config: token ids out of name order, one species without tracks, so the
#: official head index (species sorted by token id) differs from both orders: 0 yeast, 1 human, 2 fly (none),
#: 3 mouse.
SPECIES_TO_TOKEN_ID = {"human": 7, "mouse": 9, "fly": 8, "yeast": 6}
BIGWIGS = {"human": ["DNase", "CTCF", "H3K4me3"], "fly": [], "mouse": ["DNase", "ATAC"], "yeast": ["RNA"]}


def tiny_official_config(num_downsamples: int, upsample: str, head_layers: int, post: bool = False) -> dict:
    """Official config fields (``NTv3PreTrainedConfig`` / ``NTv3PostTrainedConfig`` names) of a tiny model:
    token embeddings 8, tower widths 16 -> 32 (32 -> 32 post-trained: the heads need equal widths), 2 layers of
    2 heads, FFN 48."""
    config = {
        "alphabet_size": 11,
        "pad_token_id": 1,
        "mask_token_id": 2,
        "num_downsamples": num_downsamples,
        "attention_heads": 2,
        "key_size": None,
        "token_embed_dim": 8,
        "conv_init_embed_dim": 32 if post else 16,
        "embed_dim": 32,
        "ffn_embed_dim": 48,
        "num_layers": 2,
        "layer_norm_eps": 1e-5,
        "num_hidden_layers_head": head_layers,
        "use_skip_connection": True,
        "deconv_upsample_type": upsample,
        "embedding_param_dtype": "float32",
    }
    if post:
        config |= {
            "conditions_vocab_size": [10],
            "conditions_names": ["species"],
            "species_to_token_id": dict(SPECIES_TO_TOKEN_ID),
            "bigwigs_per_species": {name: list(tracks) for name, tracks in BIGWIGS.items()},
            "bed_elements_names": ["exon", "intron", "promoter"],
            "keep_target_center_fraction": 0.375,
            "num_species_special_tokens": 6,
        }
    return config


def write_jax_folder(folder: Path, params: dict[str, np.ndarray], config: dict) -> Path:
    """The ``ntv3-jax`` export: ``params.npz`` (float32) + ``config.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "params.npz", **{key: np.asarray(value, np.float32) for key, value in params.items()})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def hub_state_dict(params: dict[str, np.ndarray], config: dict) -> dict[str, torch.Tensor]:
    """The Hub ``core.*`` state dict holding ``params`` (official paths), plus each layer's ``inv_freq``."""
    state = {}
    for key, value in params.items():
        path, name = key.rsplit(".", 1)
        value = np.asarray(value, np.float32)
        if name == "embedding":
            path, name = path.replace("conditions_embed_layers", "cond_tables"), "weight"
        elif name == "scale":
            name = "weight"
        elif name == "kernel":
            name, value = "weight", value.transpose(2, 1, 0) if value.ndim == 3 else value.T
        state[f"core.{path}.{name}"] = torch.from_numpy(np.ascontiguousarray(value))
    half = config["embed_dim"] // config["attention_heads"] // 2
    inv_freq = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float32) / half)
    for layer in range(config["num_layers"]):
        state[f"core.transformer_blocks.{layer}.sa_layer.rotary_embedding.inv_freq"] = inv_freq.clone()
    return state


def write_hub_folder(folder: Path, params: dict[str, np.ndarray], config: dict) -> Path:
    """A Hub remote-code folder: ``model.safetensors`` (``core.*``) + ``config.json`` with the official field
    names, ``model_type`` ``ntv3`` / ``ntv3_posttrained`` and the remote ``auto_map``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(hub_state_dict(params, config), str(folder / "model.safetensors"))
    post = "conditions_vocab_size" in config
    module = "modeling_ntv3_posttrained" if post else "modeling_ntv3_pretrained"
    hub_config = {
        **{key: value for key, value in config.items() if not key.endswith("_dtype")},
        "key_size": config["embed_dim"] // config["attention_heads"],
        "deconv_phase": "odd",
        "model_type": "ntv3_posttrained" if post else "ntv3",
        "architectures": ["NTv3PostTrained" if post else "NTv3PreTrained"],
        "auto_map": {
            "AutoModel"
            if post
            else "AutoModelForMaskedLM": f"{module}.NTv3{'Post' if post else 'Pre'}Trained"
        },
        "transformers_version": "4.56.0",
    }
    (folder / "config.json").write_text(json.dumps(hub_config, indent=2))
    return folder
