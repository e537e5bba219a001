"""NTv3 long context: the streamed inference path (towers and LM head run window by window with exact halos)
gives the whole-length outputs, is off under autograd and under tower hooks; the memory benchmark's helpers."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.perf.harness import write_json
from benchmarks.perf.ntv3_memory import floor_mb, measure, table
from modeling_nt import NTv3Config, NTv3ForMaskedLM, NTv3ForTracksPrediction, NTv3Model
from modeling_nt.modeling_ntv3 import NTv3RepeatConv, NTv3TransposedConv, along_length

LENGTH = 8 * 37  # tiny-v3 needs multiples of 8; 296 is no multiple of the windows below


def _random_model(model_class: type, preset: str, **overrides: object) -> torch.nn.Module:
    """A tiny model with weights of std 0.3 (the default init's near-zero convolutions would hide halo
    errors), in eval mode."""
    torch.manual_seed(0)
    model = model_class(NTv3Config.from_preset(preset, **overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def _stem_lengths(backbone: NTv3Model) -> list[int]:
    """Record the length of every input the stem convolution sees (an instance ``forward``, not a hook:
    hooks switch streaming off)."""
    seen, forward = [], backbone.stem.forward
    backbone.stem.forward = lambda x: seen.append(x.shape[-1]) or forward(x)
    return seen


def _outputs(model: torch.nn.Module, input_ids: torch.Tensor, window: int | None) -> dict[str, torch.Tensor]:
    backbone = model if isinstance(model, NTv3Model) else model.ntv3
    backbone.stream_window = window
    kwargs = {"species_ids": torch.tensor([6, 7])} if isinstance(model, NTv3ForTracksPrediction) else {}
    with torch.inference_mode():
        outputs = model(input_ids, **kwargs)
    return {name: value for name, value in outputs.items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize(
    ("model_class", "preset", "overrides"),
    [
        (NTv3ForMaskedLM, "tiny-v3", {}),
        (NTv3ForMaskedLM, "tiny-v3", {"upsample_type": "repeat+conv"}),
        (NTv3Model, "tiny-v3", {"use_skip_connection": False}),
        (NTv3ForTracksPrediction, "tiny-v3-post", {}),
    ],
    ids=["pre", "repeat-conv", "no-skips", "post"],
)
@pytest.mark.parametrize("window", [10, 64])
def test_streamed_inference_equals_the_whole_length_forward(model_class, preset, overrides, window):
    model = _random_model(model_class, preset, **overrides)
    input_ids = torch.randint(6, 11, (2, LENGTH), generator=torch.Generator().manual_seed(1))
    whole = _outputs(model, input_ids, None)
    backbone = model if isinstance(model, NTv3Model) else model.ntv3
    seen = _stem_lengths(backbone)
    streamed = _outputs(model, input_ids, window)
    # the stem really ran window by window: ceil(296 / window) windows, each at most window + 2 x 7 halo bases
    assert len(seen) == -(-LENGTH // window) and max(seen) <= window + 14
    expected = {"last_hidden_state", "core_hidden_state"} if model_class is NTv3Model else {"logits"}
    if model_class is NTv3ForTracksPrediction:
        expected |= {"track_predictions", "annotation_logits", "last_hidden_state", "core_hidden_state"}
    assert expected <= set(whole) and set(streamed) == set(whole)
    for name, value in whole.items():
        assert streamed[name].shape == value.shape
        torch.testing.assert_close(
            streamed[name], value, rtol=0, atol=1e-5, msg=lambda text, name=name: f"{name}: {text}"
        )
    main = "logits" if "logits" in whole else "last_hidden_state"
    assert whole[main].abs().max() > 0.5  # the outputs compared are not near zero


def test_streaming_is_off_under_autograd_and_under_tower_hooks():
    model = _random_model(NTv3ForMaskedLM, "tiny-v3")
    model.ntv3.stream_window = 16
    input_ids = torch.randint(6, 11, (1, LENGTH), generator=torch.Generator().manual_seed(2))
    seen = _stem_lengths(model.ntv3)
    model(input_ids).logits.sum().backward()  # training: one whole-length pass, gradients flow
    assert seen == [LENGTH] and model.ntv3.stem.weight.grad is not None

    seen.clear()
    lengths = []
    handle = model.ntv3.down_blocks[0].residual_block.register_forward_hook(
        lambda module, args, output: lengths.append(output.shape[1])
    )
    with torch.no_grad():
        model(input_ids)
    handle.remove()
    assert seen == [LENGTH] and lengths == [LENGTH]  # the hook saw the whole tensor, not 16-base windows

    seen.clear()
    with torch.no_grad():
        model(input_ids)
    assert len(seen) == LENGTH // 16 + 1  # 18 full windows and one of 8 bases


def test_an_odd_stream_window_is_refused():
    model = _random_model(NTv3Model, "tiny-v3")
    model.stream_window = 15
    with torch.no_grad(), pytest.raises(ValueError, match="stream_window must be even"):
        model(torch.full((1, 64), 6))


@pytest.mark.parametrize(
    ("conv", "halo"),
    [
        (NTv3TransposedConv(4, 3, 5), 1),
        (NTv3RepeatConv(4, 3, 5), 1),
        (torch.nn.Conv1d(4, 3, 15, padding=7), 7),
    ],
    ids=["transposed", "repeat", "stem"],
)
def test_along_length_needs_exactly_the_receptive_field_as_halo(conv, halo):
    torch.manual_seed(3)
    inputs = torch.randn(2, 37, 4)

    def function(x: torch.Tensor) -> torch.Tensor:
        return conv(x.transpose(1, 2)).transpose(1, 2)

    with torch.no_grad():
        whole = function(inputs)
        assert torch.equal(along_length(function, inputs, halo, None), whole)
        torch.testing.assert_close(along_length(function, inputs, halo, 6), whole, rtol=0, atol=1e-6)
        assert (along_length(function, inputs, halo - 1, 6) - whole).abs().max() > 1e-2  # one short: wrong


def test_along_length_adds_into_add_to_in_place_and_promotes_like_addition():
    inputs = torch.arange(10.0).reshape(1, 10, 1)
    skip = torch.ones(1, 20, 1)
    result = along_length(lambda x: x.repeat_interleave(2, dim=1), inputs, 0, 4, add_to=skip)
    assert result is skip  # no new full-length tensor
    assert result.flatten().tolist() == [1.0 + v for v in range(10) for _ in range(2)]

    low = torch.ones(1, 10, 1, dtype=torch.bfloat16)
    promoted = along_length(lambda x: x * 0.5, inputs, 0, 4, add_to=low)
    assert promoted.dtype == torch.float32 and low.dtype == torch.bfloat16
    assert promoted.flatten().tolist() == [1.0 + 0.5 * v for v in range(10)]


def test_floor_counts_weights_ids_skips_and_logits():
    config = NTv3Config.from_preset("ntv3-8m-pre")
    # 1 Mb: skips 2**20 * 256 * 4 B * (1 + 1/2 + ... + 1/64) = 2,032 MiB; ids 8 MiB; logits 2**20 * 11 * 4 B
    # = 44 MiB; weights 1 MiB here
    assert floor_mb(config, 2**20, 2**20, "mlm") == {"floor_mb": 2032 + 8 + 44 + 1, "activation_mb": 1024}
    assert floor_mb(config, 0, 2**20, "embed")["floor_mb"] == 2032 + 8


def test_measure_tiny_reports_a_peak_above_the_built_model(tmp_path):
    result = measure("tiny-v3", 1024, "mlm", "streamed")
    assert (result["preset"], result["model"], result["mode"]) == ("tiny-v3", "mlm", "streamed")
    assert result["stream_window"] == NTv3Model.stream_window
    assert result["output_shape"] == [1, 1024, 11] and result["core_positions"] == 128
    assert result["dtype"] == "float32" and result["threads"] >= 1
    assert result["base_rss_mb"] > 0 and result["built_rss_mb"] > 0
    # a high-water mark (the kernel syncs ru_maxrss lazily: it may read a fraction of a MB below VmRSS)
    assert result["peak_rss_mb"] >= result["built_rss_mb"] - 1
    assert result["ratio"] == pytest.approx(
        (result["peak_rss_mb"] - result["base_rss_mb"]) / result["floor_mb"]
    )
    whole = measure("tiny-v3", 1024, "embed", "whole")
    assert whole["stream_window"] is None and whole["output_shape"] == [1, 1024, 16]
    rows = table([result, whole])
    assert [row["mode"] for row in rows] == ["streamed", "whole"] and rows[0]["length bp"] == "1,024"
    path = write_json("ntv3_memory", {"results": [result, whole]}, folder=tmp_path)
    assert json.loads(path.read_text())["results"][1]["model"] == "embed"
    with pytest.raises(ValueError, match="model must be one of"):
        measure("tiny-v3", 1024, "tracks", "streamed")
