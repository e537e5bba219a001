"""Properties of the float64 NT v3 reference (tests/ntv3_reference.py) that hold for the official model.

The reference itself was checked against the official JAX/Flax code on tiny random configs outside this repo
(max relative difference ~1e-6 vs official float32, ~1e-15 vs official x64); these tests need no jax.
"""

import numpy as np
import pytest
from ntv3_reference import (
    conv1d_same,
    conv_transpose1d_same,
    crop_center,
    filter_list,
    official_param_shapes,
    random_official_params,
    reference_forward,
)

PAD = 1


def pre_config(num_downsamples: int, upsample: str = "conv_transpose", head_layers: int = 0) -> dict:
    """Tiny NTv3PreTrained config in the official field names."""
    return dict(
        alphabet_size=11, pad_token_id=PAD, mask_token_id=2, num_downsamples=num_downsamples, attention_heads=2,
        key_size=None, token_embed_dim=8, conv_init_embed_dim=16, embed_dim=32, ffn_embed_dim=48, num_layers=2,
        layer_norm_eps=1e-5, num_hidden_layers_head=head_layers, use_skip_connection=True,
        deconv_upsample_type=upsample,
    )  # fmt: skip


def post_config(num_downsamples: int, keep: float = 0.375, upsample: str = "conv_transpose") -> dict:
    """Tiny NTv3PostTrained config: species human=6 (3 tracks), mouse=7 (0 tracks), fly=8 (2 tracks)."""
    return dict(
        pre_config(num_downsamples, upsample),
        conv_init_embed_dim=32,
        conditions_vocab_size=[9],
        conditions_names=["species"],
        bigwigs_per_species={"human": ["h0", "h1", "h2"], "mouse": [], "fly": ["f0", "f1"]},
        bed_elements_names=["exon", "intron", "promoter", "enhancer"],
        species_to_token_id={"human": 6, "mouse": 7, "fly": 8},
        keep_target_center_fraction=keep,
        num_species_special_tokens=6,
    )


def tokens(batch: int, length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(6, 11, size=(batch, length))


SPECIES = np.array([6, 7, 8])


@pytest.mark.parametrize("n", [7, 5])
def test_output_shapes_pre_and_post_trained(n: int) -> None:
    length = 256
    out = reference_forward(random_official_params(pre_config(n), 0), pre_config(n), tokens(2, length))
    reduced = length // 2**n
    assert out["after_transformer_embedding"].shape == (2, reduced, 32)
    assert out["embeddings_2"].shape == (2, reduced, 32)
    assert out["attention_weights_1"].shape == (2, 2, reduced, reduced)
    assert out["embedding"].shape == (2, length, 16)
    assert out["logits"].shape == (2, length, 11)

    cfg = post_config(n)
    out = reference_forward(random_official_params(cfg, 1), cfg, tokens(3, length), SPECIES)
    assert out["embedding"].shape == (3, length, 32)  # not cropped
    assert out["species_logits"].shape == (3, 9)
    assert out["bigwig_tracks_logits"].shape == (3, 96, 3)  # 0.375 * 256 centre positions, max 3 tracks
    assert out["bed_tracks_logits"].shape == (3, 96, 4, 2)


@pytest.mark.parametrize(
    ("length", "fraction", "start", "stop"),
    [
        (256, 0.375, 80, 176),  # crop int(0.625 * 256) = 160 -> 80 each side
        (512, 0.375, 160, 352),  # crop 320 -> 160 each side
        (256, 0.3, 89, 167),  # crop int(0.7 * 256) = 179 -> 89 each side, 78 kept (odd crop keeps one more)
        (256, 1.0, 0, 256),
    ],
)
def test_centre_crop_positions(length: int, fraction: float, start: int, stop: int) -> None:
    x = np.arange(length)[None, :, None]
    assert crop_center(x, fraction)[0, :, 0].tolist() == list(range(start, stop))


def test_bigwig_head_picks_species_head_and_zero_pads() -> None:
    cfg = post_config(5, keep=1.0, upsample="repeat+conv")
    tracks = reference_forward(random_official_params(cfg, 2), cfg, tokens(3, 256), SPECIES)[
        "bigwig_tracks_logits"
    ]
    assert (tracks[0] > 0).all()  # human: 3 softplus tracks
    assert (tracks[1] == 0).all()  # mouse: no bigwig head
    assert (tracks[2, :, :2] > 0).all() and (tracks[2, :, 2] == 0).all()  # fly: 2 tracks + 1 zero column


def test_zero_modulation_gives_the_unconditioned_model() -> None:
    """All modulation weights zero: LN scale/shift and gates are identity, so species no longer matter."""
    post, pre = post_config(5), dict(pre_config(5), conv_init_embed_dim=32)
    params = random_official_params(post, 3)
    x = tokens(3, 256, seed=4)  # no <pad>, so the pre-trained key mask is all-valid
    conditioned = reference_forward(params, post, x, SPECIES)
    zeroed = {k: (0 * v if ".modulation_layers." in k else v) for k, v in params.items()}
    unmodulated = reference_forward(zeroed, post, x, SPECIES)
    plain = reference_forward({k: v for k, v in zeroed.items() if k in official_param_shapes(pre)}, pre, x)
    for key in ("after_transformer_embedding", "embedding", "logits"):
        np.testing.assert_allclose(unmodulated[key], plain[key], rtol=1e-12, atol=1e-12)
        assert np.abs(conditioned[key] - plain[key]).max() > 1e-3  # random modulation does change the output


def test_all_pad_blocks_get_no_attention_in_the_pretrained_model_only() -> None:
    """A block of 2**n tokens that is all <pad> is never attended; one non-pad token makes it a valid key."""
    x = tokens(2, 256, seed=5)
    x[0, 192:] = PAD  # blocks 6 and 7 (of 32 tokens) all pad
    x[1, 193:] = PAD  # block 6 keeps one real token
    cfg = pre_config(5)
    out = reference_forward(random_official_params(cfg, 6), cfg, x)
    for layer in (1, 2):
        weights = out[f"attention_weights_{layer}"]  # [B, H, L', L']
        assert (weights[0, :, :, 6:] == 0).all() and (weights[0, :, :, :6] > 0).all()
        assert (weights[1, :, :, 6] > 0).all() and (weights[1, :, :, 7] == 0).all()
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
    post = post_config(5)
    post_out = reference_forward(random_official_params(post, 7), post, np.concatenate([x, x[:1]]), SPECIES)
    assert (post_out["attention_weights_1"][0, :, :, 6:] > 0).all()  # the post-trained model passes no mask


def test_transposed_convolution_hand_computed() -> None:
    """lax.conv_transpose, stride 2, SAME, k=5: dilate [1, 2, 3] -> [1, 0, 2, 0, 3], pad (3, 2), correlate."""
    x = np.array([1.0, 2.0, 3.0])[None, :, None]
    w = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])[:, None, None]  # [k, out, in]
    out = conv_transpose1d_same(x, w, np.zeros(1), stride=2)[0, :, 0]
    # padded input 0 0 0 1 0 2 0 3 0 0; out[t] = sum_j padded[t + j] * w[j]
    assert out.tolist() == [1000.0, 20100.0, 2010.0, 30201.0, 3020.0, 302.0]
    # stride 1, k=1 (the deconv residual blocks): kernel [1, out, in] is applied as x @ kernel[0].T
    w2 = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # out 3, in 2
    y = conv_transpose1d_same(np.array([[[1.0, 10.0]]]), w2, np.zeros(3), stride=1)
    assert y[0, 0].tolist() == [21.0, 43.0, 65.0]


def test_same_convolution_is_unflipped_cross_correlation() -> None:
    x = np.array([1.0, 2.0, 3.0])[None, :, None]
    w = np.array([1.0, 10.0, 100.0])[:, None, None]  # [k, in, out]
    assert conv1d_same(x, w, np.array([0.5]))[0, :, 0].tolist() == [210.5, 321.5, 32.5]


def test_official_parameter_layout() -> None:
    """Widths truncate linspace; kernel layouts differ between conv_transpose [k, out, in] and Conv [k, in, out]."""
    assert filter_list(pre_config(5)) == [16, 19, 22, 25, 28, 32]  # linspace 16, 19.2, 22.4, 25.6, 28.8, 32
    conv_t = official_param_shapes(pre_config(5, head_layers=1))
    # 1 embed + 2 stem + 5 * 8 down + 2 * 14 transformer + 5 * 8 up + 2 hidden head + 2 head
    assert len(conv_t) == 115
    assert conv_t["deconv_tower_blocks.0.conv.conv.kernel"] == (5, 28, 32)
    assert official_param_shapes(pre_config(5, "repeat+conv"))["deconv_tower_blocks.0.conv.conv.kernel"] == (
        5,
        32,
        28,
    )
    post = official_param_shapes(post_config(7))
    assert "bigwig_head.species_heads.1.head.kernel" not in post  # mouse has no tracks, hence no head
    assert post["bigwig_head.species_heads.2.head.kernel"] == (32, 2)
    assert post["transformer_blocks.1.final_layer_norm.modulation_layers.0.kernel"] == (8, 64)
    assert post["conv_tower_blocks.0.res_conv.modulation_layers.0.kernel"] == (8, 32)


def test_length_not_divisible_is_refused() -> None:
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*num_downsamples = 32"):
        reference_forward(random_official_params(pre_config(5), 0), pre_config(5), tokens(1, 48))
