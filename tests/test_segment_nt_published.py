"""SegmentNT presets against what InstaDeep published for ``InstaDeepAI/segment_nt`` and
``InstaDeepAI/segment_nt_multi_species`` (Hub ``config.json`` fields, checkpoint file sizes), and the reading of
the Hub ``config.json`` fields by ``nt convert --from segment-nt-hub``.

What the sources allow: the model cards give no exact parameter count (their Architecture section says the head
"accounts for 53 million parameters", which is not what the official ``UNetHead`` builds: widths
``1024 * 2**i`` for ``num_layers_head = 2`` give 66,246,824), so the counts are pinned by the official
architecture (``nucleotide_transformer/heads.py``) and checked against the published float32 file sizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from test_segment_nt import hub_head_state, write_segment_hub

from modeling_nt import NTConfig, NTForMaskedLM, NTForSegmentation, SegmentNTConfig
from modeling_nt.configuration_segment_nt import SEGMENT_NT_FEATURES
from modeling_nt.convert import convert_checkpoint

# https://huggingface.co/InstaDeepAI/segment_nt/blob/5ef47a002200453e60b6a9d81c1a19798c8f1d5e/config.json
HUB_CONFIG = {
    "add_bias_fnn": False,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "max_position_embeddings": 2050,
    "num_attention_heads": 16,
    "num_features": 14,
    "num_hidden_layers": 29,
    "num_layers_head": 2,
    "vocab_size": 4107,
}
#: the backbone: the NT v2 500M encoder without its masked-LM head
BACKBONE = 490_984_448
#: U-Net head, kernel 3: down 2*(3*1024*1024+1024) + (3*1024*2048+2048) + (3*2048*2048+2048); up
#: 2*(3*2048*2048+2048) + (3*2048*1024+1024) + (3*1024*1024+1024); final 2*(3*1024*1024+1024); fc 1024*168+168
HEAD = 66_246_824
TOTAL = 557_231_272


def test_presets_have_the_hub_config_fields_and_the_official_head() -> None:
    for name in ("segment_nt", "segment_nt_multi_species"):
        config = SegmentNTConfig.from_preset(name)
        assert config.hidden_size == HUB_CONFIG["hidden_size"]
        assert config.intermediate_size == HUB_CONFIG["intermediate_size"]
        assert config.num_attention_heads == HUB_CONFIG["num_attention_heads"]
        assert config.num_hidden_layers == HUB_CONFIG["num_hidden_layers"]
        assert config.vocab_size == HUB_CONFIG["vocab_size"]
        assert config.add_bias_ffn is HUB_CONFIG["add_bias_fnn"] and config.ffn_activation == "swiglu"
        assert config.num_classes == HUB_CONFIG["num_features"] and config.features == list(
            SEGMENT_NT_FEATURES
        )
        assert config.num_downsamples == HUB_CONFIG["num_layers_head"]
        assert config.head_channels == [1024, 2048]  # "1,024 and 2,048 kernels" (model card, Architecture)
        # rescaling_factor of https://huggingface.co/InstaDeepAI/segment_nt/commit/67a854c8faad91d276053b19b2e727e2529c6d88
        assert config.rotary_rescaling_factor == 2.44140625


def test_parameter_counts_match_the_published_float32_file_sizes() -> None:
    for name in ("segment_nt", "segment_nt_multi_species"):
        with torch.device("meta"):
            model = NTForSegmentation(SegmentNTConfig.from_preset(name))
        assert model.nt.num_parameters() == BACKBONE
        assert sum(p.numel() for p in model.head.parameters()) == HEAD
        assert sum(p.numel() for p in model.parameters()) == TOTAL
    with torch.device("meta"):
        lm_head = NTForMaskedLM(NTConfig.from_preset("nt-v2-500m-multi-species")).num_parameters() - BACKBONE
    assert lm_head == 5_261_323  # dense 1024x1024+b, LayerNorm, decoder 1024x4107+b
    # pytorch_model.bin "2.24 GB" in both repos (float32; the Hub remote code also stores the unused absolute
    # position table, 2050 x 1024, and no LM head):
    # https://huggingface.co/InstaDeepAI/segment_nt/tree/5ef47a002200453e60b6a9d81c1a19798c8f1d5e
    # https://huggingface.co/InstaDeepAI/segment_nt_multi_species/tree/66427d7b9ff71f2023f0fd4adf6b6fe3a8fc04bb
    assert round(4 * (TOTAL + 2050 * 1024) / 1e9, 2) == 2.24
    assert round(4 * TOTAL / 1e9, 2) != 2.24  # the check distinguishes: without the table it would be 2.23
    # jax_model/pytree_ckpt.joblib "2.25 GB" (the Haiku params keep the backbone's LM head; no position table):
    # https://huggingface.co/InstaDeepAI/segment_nt_multi_species/tree/main/jax_model
    assert round(4 * (TOTAL + lm_head) / 1e9, 2) == 2.25
    assert round((TOTAL + lm_head) / 1e6) == 562  # 562,492,595 parameters with the LM head


def _hub_folder(tmp_path: Path, **config: object) -> Path:
    return write_segment_hub(tmp_path / "hub", head=hub_head_state(classes=14), **config)


def test_first_hub_revision_config_num_features_and_null_rescaling(tmp_path: Path) -> None:
    """The first ``segment_nt`` revision's config.json has ``num_features: 14`` and no ``features`` list, and
    ``rescaling_factor: null``, which its remote code reads as no rescaling (base 10000)."""
    folder = _hub_folder(tmp_path, features=None, num_features=14)
    values = json.loads((folder / "config.json").read_text())
    assert "features" not in values
    (folder / "config.json").write_text(json.dumps(values | {"rescaling_factor": None}))
    convert_checkpoint("segment-nt-hub", folder, tmp_path / "ours")
    model = NTForSegmentation.from_pretrained(tmp_path / "ours")
    assert model.config.features == list(SEGMENT_NT_FEATURES)
    assert model.config.rotary_rescaling_factor == 1.0
    assert model.config.num_downsamples == 2


def test_later_hub_revision_config_features_list(tmp_path: Path) -> None:
    folder = _hub_folder(
        tmp_path, features=list(SEGMENT_NT_FEATURES), num_features=None, rescaling_factor=2.44140625
    )
    convert_checkpoint("segment-nt-hub", folder, tmp_path / "ours")
    model = NTForSegmentation.from_pretrained(tmp_path / "ours")
    assert model.config.features == list(SEGMENT_NT_FEATURES)
    assert model.config.rotary_rescaling_factor == 2.44140625
