"""The SegmentNT memory benchmark's measurement helper, its tiling comparison and its JSON (tiny preset)."""

from __future__ import annotations

import json

import pytest

from benchmarks.perf.harness import write_json
from benchmarks.perf.segment_memory import measure, region_length, table, tiling_checks


def test_region_length_gives_exactly_the_asked_windows():
    from benchmarks.segmentation import tile_starts

    assert region_length(6000, 3, 600) == 16800  # 3 x 6000 - 2 x 600, written by hand
    assert tile_starts(16800, 6000, 600) == [0, 5400, 10800]
    assert region_length(96, 1, 0) == 96
    with pytest.raises(ValueError, match="overlap"):
        region_length(96, 2, 96)


def test_measure_tiny_reports_sizes_and_a_peak_above_the_built_model(tmp_path):
    result = measure("tiny", 16, 3, overlap=24)
    assert result["preset"] == "tiny" and result["dtype"] == "float32"
    assert result["attn_implementation"] == "sdpa"
    assert (result["window_tokens"], result["window_nt"], result["windows"]) == (16, 96, 3)
    assert result["region_nt"] == 3 * 96 - 2 * 24
    assert result["output_shape"] == [240, 3]  # the tiny preset's 3 classes
    assert result["built_rss_mb"] > 0 and result["built_peak_mb"] > 0
    assert result["peak_rss_mb"] >= result["built_peak_mb"]  # a high-water mark never goes down
    assert result["peak_rss_mb"] >= result["built_rss_mb"]  # the prediction ran on top of the model
    assert result["extra_mb"] == pytest.approx(result["peak_rss_mb"] - result["built_rss_mb"])

    one = dict(result, windows=1, peak_rss_mb=result["peak_rss_mb"] / 2, extra_mb=1.0)
    (check,) = tiling_checks([one, result])
    assert check["peak_ratio"] == pytest.approx(2.0)
    assert (check["preset"], check["windows"], check["extra_mb_one_window"]) == ("tiny", 3, 1.0)
    assert table([result])[0]["windows"] == "3"

    path = write_json("segment_memory", {"results": [result], "tiling": [check]}, folder=tmp_path)
    saved = json.loads(path.read_text())
    assert set(saved) == {"metadata", "results", "tiling"}
    assert saved["results"][0]["region_nt"] == 240 and saved["tiling"][0]["windows"] == 3


def test_measure_refuses_a_window_the_unet_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*num_downsamples"):
        measure("tiny", 10, 1)
