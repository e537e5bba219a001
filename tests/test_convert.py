"""Conversion of the three official layouts (ESM v1 Hub, v2 Hub, JAX/Haiku) against independent references.

- ``esm``: a random ``transformers.EsmForMaskedLM`` with the v1 configuration is the reference.
- ``nt-v2-hub`` and ``jax``: synthetic parameter sets built to the spec layout (NT_SPEC section 2); the reference
  is a float64 numpy re-implementation of the NT forward pass written from the spec, on the Hub-layout tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import erf

from benchmarks.cli import main as nt_main
from modeling_nt import NTForMaskedLM
from modeling_nt.convert import REPORT_FILE, convert_checkpoint

HIDDEN, LAYERS, HEADS = 32, 2, 4
FFN = {"v1": 128, "v2": 48}
VOCAB = {"v1": 4105, "v2": 4107}


def hub_state_dict(version: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors named and shaped as in the Hub checkpoints, unused extras included."""
    generator = torch.Generator().manual_seed(seed)
    d, f, v = HIDDEN, FFN[version], VOCAB[version]

    def normal(*shape: int, mean: float = 0.0, std: float = 0.2) -> torch.Tensor:
        return mean + std * torch.randn(*shape, generator=generator)

    def linear(prefix: str, fan_in: int, fan_out: int, bias: bool = True) -> dict[str, torch.Tensor]:
        tensors = {f"{prefix}.weight": normal(fan_out, fan_in, std=fan_in**-0.5)}
        return tensors | ({f"{prefix}.bias": normal(fan_out, std=0.1)} if bias else {})

    def layer_norm(prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": normal(d, mean=1.0, std=0.1), f"{prefix}.bias": normal(d, std=0.1)}

    positions = 1002 if version == "v1" else 2050  # v2: the unused absolute table of the Hub files
    state = {
        "esm.embeddings.word_embeddings.weight": normal(v, d, std=1.0),
        "esm.embeddings.position_embeddings.weight": normal(positions, d, std=0.5),
    }
    for i in range(LAYERS):
        prefix = f"esm.encoder.layer.{i}"
        state |= layer_norm(f"{prefix}.attention.LayerNorm") | layer_norm(f"{prefix}.LayerNorm")
        for name in ("query", "key", "value"):
            state |= linear(f"{prefix}.attention.self.{name}", d, d)
        state |= linear(f"{prefix}.attention.output.dense", d, d)
        glu = version == "v2"
        state |= linear(f"{prefix}.intermediate.dense", d, 2 * f if glu else f, bias=not glu)
        state |= linear(f"{prefix}.output.dense", f, d, bias=not glu)
        if glu:
            inv_freq = 1.0 / 10000 ** (torch.arange(0, d // HEADS, 2).float() / (d // HEADS))
            state[f"{prefix}.attention.self.rotary_embeddings.inv_freq"] = inv_freq
    state |= layer_norm("esm.encoder.emb_layer_norm_after") | linear("lm_head.dense", d, d)
    state |= layer_norm("lm_head.layer_norm") | linear("lm_head.decoder", d, v, bias=False)
    state["lm_head.bias"] = normal(v, std=0.1)
    return state


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _rotate(x: np.ndarray, length: int) -> np.ndarray:
    k = x.shape[-1]
    angles = np.arange(length)[:, None] * (1.0 / 10000 ** (np.arange(0, k, 2) / k))[None]
    cos, sin = (np.concatenate([f(angles)] * 2, -1)[None, :, None] for f in (np.cos, np.sin))
    x1, x2 = x[..., : k // 2], x[..., k // 2 :]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def reference_logits(
    state: dict[str, torch.Tensor], version: str, input_ids: np.ndarray, eps: float, ffn_gelu=_gelu
) -> np.ndarray:
    """NT forward pass (NT_SPEC section 2) in float64 numpy, on Hub-layout tensors; ``ffn_gelu`` is the GELU of
    the v1 FFN (the LM head's is always exact)."""
    w = {key: value.double().numpy() for key, value in state.items()}
    mask = input_ids != 1
    x = w["esm.embeddings.word_embeddings.weight"][input_ids]
    if version == "v1":
        is_mask = input_ids == 2
        x[is_mask] = 0.0
        x *= (0.88 / (1 - is_mask.sum(1) / mask.sum(1)))[:, None, None]
        x += w["esm.embeddings.position_embeddings.weight"][np.cumsum(mask, 1) * mask + 1]
    x *= mask[..., None]
    batch, length = input_ids.shape
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
        if version == "v2":
            q, kk = _rotate(q, length), _rotate(kk, length)
        scores = np.einsum("bqhd,bkhd->bhqk", q, kk) / np.sqrt(k)
        scores = np.where(mask[:, None, None, :], scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, HIDDEN)
        x = x + attended @ w[f"{p}.attention.output.dense.weight"].T + w[f"{p}.attention.output.dense.bias"]
        h = _layer_norm(x, w[f"{p}.LayerNorm.weight"], w[f"{p}.LayerNorm.bias"], eps)
        up = h @ w[f"{p}.intermediate.dense.weight"].T
        if version == "v2":
            gate, up = np.split(up, 2, axis=-1)
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[f"{p}.output.dense.weight"].T
        else:
            up = ffn_gelu(up + w[f"{p}.intermediate.dense.bias"])
            x = x + up @ w[f"{p}.output.dense.weight"].T + w[f"{p}.output.dense.bias"]
    x = _layer_norm(
        x, w["esm.encoder.emb_layer_norm_after.weight"], w["esm.encoder.emb_layer_norm_after.bias"], eps
    )
    h = _gelu(x @ w["lm_head.dense.weight"].T + w["lm_head.dense.bias"])
    h = _layer_norm(h, w["lm_head.layer_norm.weight"], w["lm_head.layer_norm.bias"], eps)
    return h @ w["lm_head.decoder.weight"].T + w["lm_head.bias"]


def jax_params(
    state: dict[str, torch.Tensor], version: str, old_names: bool
) -> dict[str, dict[str, np.ndarray]]:
    """The Haiku two-level dict of the spec table, built from Hub-layout tensors (``w`` stored [in, out])."""
    a = {key: value.numpy() for key, value in state.items()}
    root = "esm_transformer"
    attention, attention_norm = (
        ("mha", "mha_layer_norm") if old_names else ("self_attention", "self_attention_layer_norm")
    )
    head = f"{root}/~/{'esm_roberta_lm_head' if old_names else 'roberta_lm_head'}/~"

    def linear(prefix: str) -> dict[str, np.ndarray]:
        params = {"w": a[f"{prefix}.weight"].T.copy()}
        return params | ({"b": a[f"{prefix}.bias"]} if f"{prefix}.bias" in a else {})

    def norm(prefix: str) -> dict[str, np.ndarray]:
        return {"scale": a[f"{prefix}.weight"], "offset": a[f"{prefix}.bias"]}

    params = {f"{root}/~/embed": {"embeddings": a["esm.embeddings.word_embeddings.weight"]}}
    if version == "v1":
        table = {"embeddings": a["esm.embeddings.position_embeddings.weight"]}
        params[f"{root}/~/esm_learned_positional_embeddings/~/embed"] = table
    for i in range(LAYERS):
        p, layer = f"esm.encoder.layer.{i}", f"{root}/attention_layer_{i}/~"
        params[f"{layer}/{attention_norm}"] = norm(f"{p}.attention.LayerNorm")
        for name in ("query", "key", "value"):
            params[f"{layer}/{attention}/{name}"] = linear(f"{p}.attention.self.{name}")
        params[f"{layer}/{attention}/mha_output"] = linear(f"{p}.attention.output.dense")
        params[f"{layer}/final_layer_norm"] = norm(f"{p}.LayerNorm")
        params[f"{layer}/fc1"] = linear(f"{p}.intermediate.dense")
        params[f"{layer}/fc2"] = linear(f"{p}.output.dense")
    params[f"{head}/emb_layer_norm_after"] = norm("esm.encoder.emb_layer_norm_after")
    params[f"{head}/lm_head_fc_1"] = linear("lm_head.dense")
    params[f"{head}/lm_head_layer_norm"] = norm("lm_head.layer_norm")
    params[f"{head}/lm_final_fc"] = {"w": a["lm_head.decoder.weight"].T.copy(), "b": a["lm_head.bias"]}
    return params


def hyperparams(version: str) -> dict:
    common = {
        "alphabet_size": VOCAB[version],
        "pad_token_id": 1,
        "mask_token_id": 2,
        "embed_scale": 1.0,
        "emb_layer_norm_before": False,
        "attention_heads": HEADS,
        "key_size": HIDDEN // HEADS,
        "embed_dim": HIDDEN,
        "ffn_embed_dim": FFN[version],
        "num_layers": LAYERS,
        "lm_head": "roberta",
        "add_bias_kv": False,
        "k_for_kmers": 6,
    }
    if version == "v1":
        return common | {
            "max_positions": 1000,
            "token_dropout": True,
            "masking_ratio": 0.15,
            "masking_prob": 0.8,
        }
    v2_only = {
        "positional_embedding": None,
        "add_bias_ffn": False,
        "use_rotary_embedding": True,
        "ffn_activation_name": "swish",
        "use_glu_in_ffn": True,
    }
    return (
        common
        | v2_only
        | {"max_positions": 2048, "token_dropout": False, "masking_ratio": 0, "masking_prob": 0}
    )


def padded_ids(vocab: int, seed: int = 3) -> np.ndarray:
    """Three right-padded sequences (lengths 11, 7, 4) with a few ``<mask>`` tokens."""
    rng = np.random.default_rng(seed)
    input_ids = np.ones((3, 11), dtype=np.int64)
    for row, length in enumerate((11, 7, 4)):
        input_ids[row, :length] = rng.integers(6, vocab - 5, length)
        input_ids[row, 0] = 3
    input_ids[0, 4] = input_ids[1, 2] = 2
    return input_ids


def our_logits(checkpoint: Path, input_ids: np.ndarray, attn_implementation: str = "sdpa") -> np.ndarray:
    model = NTForMaskedLM.from_pretrained(checkpoint, attn_implementation=attn_implementation).eval()
    ids = torch.from_numpy(input_ids)
    with torch.no_grad():
        return model(ids, attention_mask=(ids != 1).long()).logits.double().numpy()


def write_v2_hub(directory: Path, state: dict[str, torch.Tensor]) -> Path:
    directory.mkdir()
    config = {
        "model_type": "esm",
        "architectures": ["EsmForMaskedLM"],
        "add_bias_fnn": False,
        "emb_layer_norm_before": False,
        "hidden_size": HIDDEN,
        "intermediate_size": FFN["v2"],
        "layer_norm_eps": 1e-12,
        "mask_token_id": 2,
        "max_position_embeddings": 2050,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 1,
        "position_embedding_type": "rotary",
        "tie_word_embeddings": False,
        "token_dropout": False,
        "vocab_size": VOCAB["v2"],
    }
    (directory / "config.json").write_text(json.dumps(config))
    torch.save(state, directory / "pytorch_model.bin")
    return directory


def write_jax(directory: Path, version: str, old_names: bool) -> tuple[Path, dict[str, torch.Tensor]]:
    import joblib

    state = hub_state_dict(version, seed=7)
    directory.mkdir()
    (directory / "hyperparams.json").write_text(json.dumps(hyperparams(version)))
    joblib.dump(jax_params(state, version, old_names), directory / "pytree_ckpt.joblib")
    return directory, state


@pytest.fixture(scope="module")
def esm_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A random v1-style ``EsmForMaskedLM`` (saved with transformers) and its conversion."""
    from transformers import EsmConfig, EsmForMaskedLM

    config = EsmConfig(
        vocab_size=4105,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN["v1"],
        max_position_embeddings=1002,
        position_embedding_type="absolute",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=2,
        pad_token_id=1,
        layer_norm_eps=1e-12,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    esm = EsmForMaskedLM(config).eval()
    with torch.no_grad():
        for parameter in esm.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    source = tmp_path_factory.mktemp("esm_source")
    esm.save_pretrained(source)
    out = tmp_path_factory.mktemp("esm_converted") / "out"
    report = convert_checkpoint("esm", source, out)
    assert report.num_parameters == sum(
        p.numel() for n, p in esm.named_parameters() if "contact_head" not in n
    )
    assert report.ignored_keys == ["esm.contact_head.regression.bias", "esm.contact_head.regression.weight"]
    return esm, out


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_esm_conversion_matches_esm_logits_and_every_hidden_state(esm_pair, attn_implementation: str) -> None:
    esm, checkpoint = esm_pair
    esm.set_attn_implementation(attn_implementation)
    ours = NTForMaskedLM.from_pretrained(checkpoint, attn_implementation=attn_implementation).eval()
    assert ours.config.tokenizer_version == "v1" and ours.config.token_dropout
    input_ids = torch.from_numpy(padded_ids(4105))
    attention_mask = (input_ids != 1).long()
    with torch.no_grad():
        expected = esm(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        got = ours(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-4, rtol=0)
    assert len(got.hidden_states) == len(expected.hidden_states) == LAYERS + 1
    for index, (mine, theirs) in enumerate(zip(got.hidden_states, expected.hidden_states, strict=True)):
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=0, msg=f"hidden state {index}")


def test_converted_checkpoint_carries_tokenizer_code_and_report(esm_pair) -> None:
    from transformers import AutoTokenizer

    _, checkpoint = esm_pair
    for name in (
        "config.json",
        "model.safetensors",
        "modeling_nt.py",
        "configuration_nt.py",
        "tokenizer.json",
    ):
        assert (checkpoint / name).is_file(), name
    assert AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=True)("TAAAAAA")["input_ids"] == [
        3,
        1028,
        4100,
    ]
    report = json.loads((checkpoint / REPORT_FILE).read_text())
    assert report["source"] == "esm" and report["num_source_tensors"] == 4 + 16 * LAYERS + 2 + 6


def test_nt_v2_hub_conversion_matches_the_reference(tmp_path: Path) -> None:
    state = hub_state_dict("v2")
    source = write_v2_hub(tmp_path / "hub", state)
    report = convert_checkpoint("nt-v2-hub", source, tmp_path / "out")
    rotary_buffers = [
        f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq" for i in range(LAYERS)
    ]
    assert report.ignored_keys == sorted(["esm.embeddings.position_embeddings.weight", *rotary_buffers])
    unused = 2050 * HIDDEN + LAYERS * HIDDEN // HEADS // 2
    assert report.num_parameters == sum(tensor.numel() for tensor in state.values()) - unused
    input_ids = padded_ids(4107)
    expected = reference_logits(state, "v2", input_ids, eps=1e-12)
    for attn_implementation in ("eager", "sdpa"):
        np.testing.assert_allclose(
            our_logits(tmp_path / "out", input_ids, attn_implementation), expected, atol=1e-4
        )


@pytest.mark.parametrize(("version", "old_names"), [("v2", False), ("v1", True)])
def test_jax_conversion_matches_the_reference(tmp_path: Path, version: str, old_names: bool) -> None:
    source, state = write_jax(tmp_path / "jax_model", version, old_names)
    with pytest.warns(UserWarning, match="pickle"):
        report = convert_checkpoint("jax", source, tmp_path / "out")
    assert report.ignored_keys == []
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["tokenizer_version"], config["layer_norm_eps"]) == (version, 1e-5)
    input_ids = padded_ids(VOCAB[version])
    expected = reference_logits(state, version, input_ids, eps=1e-5)
    np.testing.assert_allclose(our_logits(tmp_path / "out", input_ids), expected, atol=1e-4)


def test_unexpected_and_missing_keys_are_errors(tmp_path: Path) -> None:
    state = hub_state_dict("v2")
    extra = state | {"esm.encoder.layer.0.attention.self.extra.weight": torch.zeros(2)}
    with pytest.raises(
        ValueError, match=r"unexpected key 'esm\.encoder\.layer\.0\.attention\.self\.extra\.weight'"
    ):
        convert_checkpoint("nt-v2-hub", write_v2_hub(tmp_path / "extra", extra), tmp_path / "out1")
    missing = {key: value for key, value in state.items() if key != "lm_head.bias"}
    with pytest.raises(ValueError, match=r"missing \['lm_head\.bias'\]"):
        convert_checkpoint("nt-v2-hub", write_v2_hub(tmp_path / "missing", missing), tmp_path / "out2")


def test_cli_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_v2_hub(tmp_path / "hub", hub_state_dict("v2"))
    assert nt_main(["convert", "--from", "nt-v2-hub", str(source), str(tmp_path / "out")]) == 0
    assert "parameters:" in capsys.readouterr().out
    assert nt_main(["convert", "--from", "nt-v2-hub", str(source), str(tmp_path / "out")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert nt_main(["convert", "--from", "esm", str(source), str(tmp_path / "out2")]) == 2
    assert "use --from nt-v2-hub" in capsys.readouterr().err


def test_esm_with_tied_decoder_converts_with_the_word_embeddings_as_decoder(tmp_path: Path) -> None:
    """A stock ``EsmForMaskedLM`` saved with ``tie_word_embeddings=true`` has no decoder tensor in its file."""
    from safetensors import safe_open
    from transformers import EsmConfig, EsmForMaskedLM

    config = EsmConfig(
        vocab_size=4105,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN["v1"],
        max_position_embeddings=1002,
        position_embedding_type="absolute",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=2,
        pad_token_id=1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(1)
    esm = EsmForMaskedLM(config).eval()
    with torch.no_grad():
        for parameter in esm.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    esm.save_pretrained(tmp_path / "esm")
    with safe_open(tmp_path / "esm" / "model.safetensors", "pt") as stored:
        stored_keys = stored.keys()
    assert (
        "lm_head.decoder.weight" not in stored_keys and "esm.embeddings.word_embeddings.weight" in stored_keys
    )
    report = convert_checkpoint("esm", tmp_path / "esm", tmp_path / "out")
    assert report.tied_keys == {"lm_head.decoder.weight": "esm.embeddings.word_embeddings.weight"}
    assert "tied: lm_head.decoder.weight = esm.embeddings.word_embeddings.weight" in report.summary()
    assert json.loads((tmp_path / "out" / REPORT_FILE).read_text())["tied_keys"] == report.tied_keys
    input_ids = torch.from_numpy(padded_ids(4105))
    with torch.no_grad():
        expected = esm(input_ids, attention_mask=(input_ids != 1).long()).logits.double().numpy()
    np.testing.assert_allclose(our_logits(tmp_path / "out", input_ids.numpy(), "eager"), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "ffn_activation", "formula", "other"),
    [
        (None, "gelu", _gelu, _gelu_tanh),  # the official default is "gelu-no-approx"
        ("gelu-no-approx", "gelu", _gelu, _gelu_tanh),
        ("gelu", "gelu_pytorch_tanh", _gelu_tanh, _gelu),  # jax.nn.gelu defaults to approximate=True
    ],
)
def test_jax_ffn_activation_is_mapped_as_the_official_code(
    tmp_path: Path, name: str | None, ffn_activation: str, formula, other
) -> None:
    source, state = write_jax(tmp_path / "jax_model", "v1", old_names=False)
    params = hyperparams("v1") | ({"ffn_activation_name": name} if name else {})
    (source / "hyperparams.json").write_text(json.dumps(params))
    with pytest.warns(UserWarning, match="pickle"):
        convert_checkpoint("jax", source, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["ffn_activation"] == ffn_activation
    input_ids = padded_ids(VOCAB["v1"])
    got = our_logits(tmp_path / "out", input_ids)
    expected = reference_logits(state, "v1", input_ids, eps=1e-5, ffn_gelu=formula)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the other GELU is measurably off: the test tells the two apart
    assert np.abs(got - reference_logits(state, "v1", input_ids, eps=1e-5, ffn_gelu=other)).max() > 1e-3
