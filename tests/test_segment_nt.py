"""SegmentNT (``NTForSegmentation``): presets, input constraint, loss, save / Auto / remote-code round trip, and the
conversion of both official layouts (JAX Haiku params, Hub remote-code state dict) against a float64 numpy
reference of the whole architecture written from the official description (backbone with rescaled rotary
positions, U-Net head in Haiku semantics: convolutions as cross-correlations, ``Conv1DTranspose`` kernels
``[K, out, in]`` applied unflipped at stride 1, average pooling and nearest upsampling by 2, final SiLU + linear
to 6 nucleotides x classes x 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_convert import HEADS, HIDDEN, LAYERS, hub_state_dict, hyperparams, jax_params, write_v2_hub
from transformers import AutoConfig, AutoModelForTokenClassification

from modeling_nt import NTForSegmentation, SegmentNTConfig, tokenizer_for
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.configuration_segment_nt import SEGMENT_AUTO_MAP, rescaling_factor_for
from modeling_nt.convert import convert_checkpoint
from modeling_nt.modeling_segment_nt import check_segmentation_sequence, probabilities, segmentation_loss

FEATURES = ["exon", "intron", "splice_donor"]
CHANNELS = [HIDDEN, 2 * HIDDEN]  # the official widths: hidden * 2**i
FINAL = 2 * (HIDDEN // 2)
FACTOR = 2.5  # a rescaled rotary base, so the rescaling is checked too


# ---------------------------------------------------------------- synthetic official-layout checkpoints


def hub_head_state(seed: int = 11, classes: int = len(FEATURES)) -> dict[str, torch.Tensor]:
    """Random head tensors with the Hub remote-code names and PyTorch layouts."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, std: float) -> torch.Tensor:
        return std * torch.randn(*shape, generator=generator)

    state = {}
    for i, (c_in, c_out) in enumerate(zip([HIDDEN, *CHANNELS[:-1]], CHANNELS, strict=True)):
        for j, width_in in enumerate((c_in, c_out)):
            state[f"unet._downsample_blocks.{i}.conv_layers.{j}.weight"] = rand(
                c_out, width_in, 3, std=(1.5 * width_in) ** -0.5
            )
            state[f"unet._downsample_blocks.{i}.conv_layers.{j}.bias"] = rand(c_out, std=0.1)
    ups = CHANNELS[::-1]
    for i, (c_in, c_out) in enumerate(zip([CHANNELS[-1], *ups[:-1]], ups, strict=True)):
        for j, width_in in enumerate((c_in, c_out)):  # ConvTranspose1d: [in, out, K]
            state[f"unet._upsample_blocks.{i}.conv_layers.{j}.weight"] = rand(
                width_in, c_out, 3, std=(1.5 * width_in) ** -0.5
            )
            state[f"unet._upsample_blocks.{i}.conv_layers.{j}.bias"] = rand(c_out, std=0.1)
    for j, width_in in enumerate((CHANNELS[0], FINAL)):
        state[f"unet.final_block.conv_layers.{j}.weight"] = rand(
            FINAL, width_in, 3, std=(1.5 * width_in) ** -0.5
        )
        state[f"unet.final_block.conv_layers.{j}.bias"] = rand(FINAL, std=0.1)
    state["fc.weight"] = rand(6 * classes * 2, FINAL, std=FINAL**-0.5)
    state["fc.bias"] = rand(6 * classes * 2, std=0.1)
    return state


def haiku_head(head: dict[str, torch.Tensor], root: str = "u_net_head") -> dict[str, dict[str, np.ndarray]]:
    """The same head as Haiku params: ``Conv1D`` w [K, in, out]; ``Conv1DTranspose`` w [K, out, in], a
    cross-correlation (so PyTorch's flipped transposed kernel is reversed back); ``Linear`` w [in, out]."""
    a = {key: value.numpy() for key, value in head.items()}
    unet = f"{root}/~/unet1_d_segmentation_head/~"
    params = {}
    for key in a:
        if not key.endswith(".weight") or key == "fc.weight":
            continue
        prefix = key[: -len(".weight")]
        parts = prefix.split(".")
        if parts[1] == "_downsample_blocks":
            name, w = f"{unet}/downsample_block_{parts[2]}/~/conv{parts[4]}", a[key].transpose(2, 1, 0)
        elif parts[1] == "_upsample_blocks":
            name = f"{unet}/upsample_block_{parts[2]}/~/conv_transpose{parts[4]}"
            w = a[key][:, :, ::-1].transpose(2, 1, 0)
        else:
            name, w = f"{unet}/final_conv1_d/~/conv{parts[3]}", a[key].transpose(2, 1, 0)
        params[name] = {"w": np.ascontiguousarray(w), "b": a[f"{prefix}.bias"]}
    params[f"{root}/~/fc"] = {"w": a["fc.weight"].T.copy(), "b": a["fc.bias"]}
    return params


def write_segment_hub(directory: Path, head: dict | None = None, **config: object) -> Path:
    """A SegmentNT Hub folder: the v2 backbone (no LM head), the head, and a config.json with features."""
    backbone = {k: v for k, v in hub_state_dict("v2", seed=5).items() if not k.startswith("lm_head.")}
    write_v2_hub(directory, backbone)
    (directory / "pytorch_model.bin").unlink()
    save_file({**backbone, **(hub_head_state() if head is None else head)}, directory / "model.safetensors")
    values = json.loads((directory / "config.json").read_text())
    values |= {
        "architectures": ["SegmentNT"],
        "auto_map": {"AutoConfig": "segment_nt_config.SegmentNTConfig", "AutoModel": "segment_nt.SegmentNT"},
        "features": FEATURES,
        "num_features": len(FEATURES),
        "num_layers_head": 2,
        "rescaling_factor": FACTOR,
    }
    values = {key: value for key, value in (values | config).items() if value is not None}
    (directory / "config.json").write_text(json.dumps(values))
    return directory


def write_segment_jax(directory: Path, params: dict | None = None, **hyper: object) -> Path:
    """A SegmentNT JAX folder: NT v2 backbone modules (root ``dcnuc_v2_500M_multi_species``, LM head included as
    in the official checkpoint), the ``u_net_head`` modules, and hyperparams.json with features."""
    directory.mkdir()
    backbone = jax_params(hub_state_dict("v2", seed=5), "v2", old_names=False)
    backbone = {
        key.replace("esm_transformer", "dcnuc_v2_500M_multi_species"): v for key, v in backbone.items()
    }
    values = hyperparams("v2") | {"features": FEATURES, "rescaling_factor": FACTOR} | hyper
    (directory / "hyperparams.json").write_text(
        json.dumps({k: v for k, v in values.items() if v is not None})
    )
    joblib.dump(
        backbone | haiku_head(hub_head_state()) if params is None else params,
        directory / "pytree_ckpt.joblib",
    )
    return directory


# ---------------------------------------------------------------- float64 reference


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * weight + bias


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _rope(x: np.ndarray, factor: float) -> np.ndarray:
    """Rotary positions 0..L-1 with the SegmentNT base 10000 * factor ** (k / (k - 2))."""
    length, k = x.shape[1], x.shape[-1]
    base = 10000.0 * factor ** (k / (k - 2))
    angles = np.arange(length)[:, None] * (1.0 / base ** (np.arange(0, k, 2) / k))[None]
    cos, sin = (np.concatenate([f(angles)] * 2, -1)[None, :, None] for f in (np.cos, np.sin))
    return x * cos + np.concatenate([-x[..., k // 2 :], x[..., : k // 2]], -1) * sin


def reference_backbone(w: dict[str, np.ndarray], ids: np.ndarray, eps: float, factor: float) -> np.ndarray:
    """NT v2 encoder (pre-LN blocks, rotary attention, SwiGLU FFN, final LayerNorm), unpadded ``ids``."""
    x = w["esm.embeddings.word_embeddings.weight"][ids]
    batch, length = ids.shape
    k = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"esm.encoder.layer.{i}"
        h = _layer_norm(x, w[f"{p}.attention.LayerNorm.weight"], w[f"{p}.attention.LayerNorm.bias"], eps)
        q, kk, v = (
            (h @ w[f"{p}.attention.self.{n}.weight"].T + w[f"{p}.attention.self.{n}.bias"]).reshape(
                batch, length, HEADS, k
            )
            for n in ("query", "key", "value")
        )
        scores = np.einsum("bqhd,bkhd->bhqk", _rope(q, factor), _rope(kk, factor)) / np.sqrt(k)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, HIDDEN)
        x = x + attended @ w[f"{p}.attention.output.dense.weight"].T + w[f"{p}.attention.output.dense.bias"]
        h = _layer_norm(x, w[f"{p}.LayerNorm.weight"], w[f"{p}.LayerNorm.bias"], eps)
        gate, up = np.split(h @ w[f"{p}.intermediate.dense.weight"].T, 2, axis=-1)
        x = x + (_silu(gate) * up) @ w[f"{p}.output.dense.weight"].T
    norm = "esm.encoder.emb_layer_norm_after"
    return _layer_norm(x, w[f"{norm}.weight"], w[f"{norm}.bias"], eps)


def _correlate(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """'SAME' kernel-3 cross-correlation of x [L, in] with w [3, in, out]."""
    padded = np.pad(x, ((1, 1), (0, 0)))
    return sum(padded[k : k + len(x)] @ w[k] for k in range(3)) + b


def reference_head(params: dict[str, dict[str, np.ndarray]], tokens: np.ndarray, classes: int) -> np.ndarray:
    """The Haiku U-Net head on token states [T, d] (``<cls>`` removed) -> [6T, classes, 2]."""
    p = {
        key.split("/~/", 1)[1]: {n: np.asarray(a, np.float64) for n, a in v.items()}
        for key, v in params.items()
    }
    unet = "unet1_d_segmentation_head/~"
    x, skips = tokens, []
    for i in range(len(CHANNELS)):
        for j in range(2):
            x = _silu(
                _correlate(
                    x,
                    p[f"{unet}/downsample_block_{i}/~/conv{j}"]["w"],
                    p[f"{unet}/downsample_block_{i}/~/conv{j}"]["b"],
                )
            )
        skips.append(x)
        x = 0.5 * (x[0::2] + x[1::2])
    for i, skip in enumerate(reversed(skips)):
        for j in range(2):
            module = p[f"{unet}/upsample_block_{i}/~/conv_transpose{j}"]
            x = _silu(_correlate(x, module["w"].transpose(0, 2, 1), module["b"]))  # [K, out, in] unflipped
        x = np.repeat(x, 2, axis=0) + skip
    x = _silu(_correlate(x, p[f"{unet}/final_conv1_d/~/conv0"]["w"], p[f"{unet}/final_conv1_d/~/conv0"]["b"]))
    x = _correlate(x, p[f"{unet}/final_conv1_d/~/conv1"]["w"], p[f"{unet}/final_conv1_d/~/conv1"]["b"])
    logits = _silu(x) @ p["fc"]["w"] + p["fc"]["b"]
    return logits.reshape(len(tokens) * 6, classes, 2)


def reference_logits(ids: np.ndarray, eps: float) -> np.ndarray:
    backbone = {k: v.double().numpy() for k, v in hub_state_dict("v2", seed=5).items()}
    hidden = reference_backbone(backbone, ids, eps, FACTOR)
    head = haiku_head(hub_head_state())
    return np.stack([reference_head(head, row[1:], len(FEATURES)) for row in hidden])


def token_ids(rows: int = 2, tokens: int = 8, seed: int = 4) -> np.ndarray:
    """Unpadded ids: ``<cls>`` + ``tokens`` random 6-mer ids (v2 6-mer ids are 7..4102)."""
    ids = np.random.default_rng(seed).integers(7, 4103, (rows, tokens + 1))
    ids[:, 0] = 3
    return ids


def our_logits(model: NTForSegmentation, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(ids)).logits.double().numpy()


# ---------------------------------------------------------------- tests


@pytest.mark.filterwarnings("ignore:loading .*joblib")
@pytest.mark.parametrize(
    ("source", "writer", "eps"),
    [("segment-nt-jax", write_segment_jax, 1e-5), ("segment-nt-hub", write_segment_hub, 1e-12)],
)
def test_conversion_matches_float64_reference(tmp_path: Path, source: str, writer, eps: float) -> None:
    folder = writer(tmp_path / "official")
    report = convert_checkpoint(source, folder, tmp_path / "ours")
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "ours").eval()
    assert type(model) is NTForSegmentation
    assert model.config.features == FEATURES and model.config.head_channels == CHANNELS
    assert model.config.rotary_rescaling_factor == FACTOR and model.config.layer_norm_eps == eps
    ids = token_ids()
    ours, reference = our_logits(model, ids), reference_logits(ids, eps)
    assert ours.shape == (2, 48, 3, 2)
    assert np.abs(ours - reference).max() < 1e-4
    assert np.abs(reference).max() > 0.5  # the comparison is not between near-zero numbers
    if source == "segment-nt-jax":  # the backbone's masked-LM head is stored but unused: 3 modules, 6 tensors
        assert len(report.ignored_keys) == 6 and all("roberta_lm_head" in key for key in report.ignored_keys)
    else:  # the unused absolute table and per-layer inv_freq buffers of the v2 Hub files
        assert len(report.ignored_keys) == 1 + LAYERS
    assert report.num_parameters == model.num_parameters()


def test_rescaling_factor_changes_outputs_and_is_a_from_pretrained_override(tmp_path: Path) -> None:
    convert_checkpoint("segment-nt-hub", write_segment_hub(tmp_path / "hub"), tmp_path / "ours")
    model = NTForSegmentation.from_pretrained(tmp_path / "ours", rotary_rescaling_factor=1.0).eval()
    assert model.config.rotary_rescaling_factor == 1.0
    ids = token_ids()
    backbone = {k: v.double().numpy() for k, v in hub_state_dict("v2", seed=5).items()}
    hidden = reference_backbone(backbone, ids, 1e-12, 1.0)
    head = haiku_head(hub_head_state())
    reference = np.stack([reference_head(head, row[1:], len(FEATURES)) for row in hidden])
    assert np.abs(our_logits(model, ids) - reference).max() < 1e-4
    assert np.abs(reference - reference_logits(ids, 1e-12)).max() > 1e-3
    assert rescaling_factor_for(8335) == pytest.approx(8335 / 2048)


def test_presets_have_the_published_architecture_parameter_counts() -> None:
    # backbone = NT v2 500M encoder without its LM head: 490,984,448. U-Net head (kernel 3, widths 1024/2048):
    # down 2*(3*1024*1024+1024) + (3*1024*2048+2048) + (3*2048*2048+2048) = 25,171,968;
    # up 2*(3*2048*2048+2048) + (3*2048*1024+1024) + (3*1024*1024+1024) = 34,609,152;
    # final 2*(3*1024*1024+1024) = 6,293,504; fc 1024*168+168 = 172,200 -> head 66,246,824.
    for name in ("segment_nt", "segment_nt_multi_species"):
        config = SegmentNTConfig.from_preset(name)
        with torch.device("meta"):
            model = NTForSegmentation(config)
        assert model.nt.num_parameters() == 490_984_448
        assert model.num_parameters() == 557_231_272
        assert config.rotary_rescaling_factor == 2.44140625 and config.num_classes == 14
        assert config.features[:4] == ["protein_coding_gene", "lncRNA", "exon", "intron"]


@pytest.mark.parametrize(
    ("sequence", "words"),
    [
        ("ACGTAC" * 3 + "ACNTAC" + "ACGTAC" * 4, ["N at nucleotide 20"]),
        ("acgtac" * 3 + "ACGTAn" + "ACGTAC" * 4, ["N at nucleotide 23"]),
        ("ACGTAC" * 2 + "ACGRAC" + "ACGTAC" * 5, ["'R'", "nucleotide 15"]),
        ("ACGTAC" * 6, ["length 36", "multiple of 24", "24 or 48"]),
        ("ACGTA" * 5, ["length 25", "use 24 or 48"]),
        ("", ["length 0", "use 24 nucleotides"]),
    ],
)
def test_sequence_check_names_the_problem(sequence: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as error:
        check_segmentation_sequence(sequence, num_downsamples=2)
    for word in words:
        assert word in str(error.value)


def test_sequence_check_accepts_whole_blocks_and_forward_refuses_other_lengths() -> None:
    assert check_segmentation_sequence("acgtac" * 8) == 8
    assert check_segmentation_sequence("ACGTAC" * 6, num_downsamples=1) == 6
    torch.manual_seed(0)
    model = NTForSegmentation(SegmentNTConfig.from_preset("tiny")).eval()
    with pytest.raises(ValueError, match=r"6 tokens after <cls>.*divisible by 4"):
        model(torch.from_numpy(token_ids(tokens=6)))


def test_loss_cross_entropy_and_focal_by_hand() -> None:
    logits = torch.tensor([[[[0.0, 0.0]], [[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 3 nucleotides, 1 class, 2]
    labels = torch.tensor([[[1], [0], [-100]]])
    p = [0.5, np.exp(2) / (np.exp(2) + 1)]  # p_t of the two kept labels
    expected_ce = -(np.log(p[0]) + np.log(p[1])) / 2
    assert segmentation_loss(logits, labels).item() == pytest.approx(expected_ce, rel=1e-6)
    expected_focal = -((1 - p[0]) ** 2 * np.log(p[0]) + (1 - p[1]) ** 2 * np.log(p[1])) / 2
    assert segmentation_loss(logits, labels, "focal", 2.0).item() == pytest.approx(expected_focal, rel=1e-6)
    torch.testing.assert_close(
        probabilities(logits)[0, :, 0], torch.tensor([0.5, 1 / (1 + np.exp(2)), 1 / (1 + np.exp(-1))]).float()
    )


def test_forward_loss_ignores_minus_100_labels() -> None:
    torch.manual_seed(0)
    model = NTForSegmentation(SegmentNTConfig.from_preset("tiny", loss="focal", focal_gamma=1.0)).eval()
    ids = torch.from_numpy(token_ids(rows=1, tokens=4))
    labels = torch.randint(0, 2, (1, 24, 3))
    labels[0, :6] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (1, 24, 3, 2)
    expected = segmentation_loss(out.logits[:, 6:], labels[:, 6:], "focal", 1.0)
    torch.testing.assert_close(out.loss, expected)


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_nt"] = None
    sys.modules["tokenization"] = None
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    checkpoint, out = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=True)
    batch = tokenizer(["ACGTAC" * 8, "TTGACA" * 8], return_tensors="pt")
    model = AutoModelForTokenClassification.from_pretrained(checkpoint, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**batch).logits
    torch.save({"input_ids": batch["input_ids"], "logits": logits, "module": type(model).__module__,
                "features": model.config.features}, out)
    """
)


def test_round_trip_save_from_pretrained_and_remote_code(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = NTForSegmentation(SegmentNTConfig.from_preset("tiny")).eval()
    with torch.no_grad():  # non-trivial head weights
        for parameter in model.head.parameters():
            parameter.normal_(0, 0.3)
    path = save_checkpoint(model, tmp_path / "segment-tiny")
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"] == SEGMENT_AUTO_MAP and config["model_type"] == "segment_nt"
    for name in (
        "configuration_segment_nt.py",
        "modeling_segment_nt.py",
        "configuration_nt.py",
        "modeling_nt.py",
    ):
        assert (path / name).is_file(), name
    assert type(AutoConfig.from_pretrained(path)) is SegmentNTConfig
    batch = tokenizer_for(model.config)(["ACGTAC" * 8, "TTGACA" * 8], return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
        reloaded = AutoModelForTokenClassification.from_pretrained(path).eval()
        assert type(reloaded) is NTForSegmentation
        assert torch.equal(reloaded(**batch).logits, expected)

    out = tmp_path / "outputs.pt"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(path), str(out)],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = torch.load(out)
    assert result["module"].startswith("transformers_modules."), result["module"]
    assert result["features"] == ["exon", "intron", "splice_donor"]
    assert torch.equal(result["input_ids"], batch["input_ids"])
    assert torch.equal(result["logits"], expected)
