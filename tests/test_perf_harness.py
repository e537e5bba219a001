"""The perf harness's bookkeeping (interleaving, ratios, JSON) and the tokenizer's clean-input fast path."""

from __future__ import annotations

import json
import pickle

import pytest

from benchmarks.perf.common import forward_flops
from benchmarks.perf.harness import compare, spread, table_row, write_json
from tokenization import build_tokenizer


def test_compare_interleaves_both_sides_and_records_every_round(tmp_path):
    calls = []
    comparison = compare(
        "toy",
        ours=("ours", lambda: calls.append("ours") or [1.0, 2.0]),
        reference=("ref", lambda: calls.append("reference") or [1.0, 2.5]),
        rounds=4,
        work=10,
        unit="items",
        difference=lambda a, b: max(abs(x - y) for x, y in zip(a, b, strict=True)),
        goal=1.0,
        seed=3,
    )
    assert calls[:2] == ["ours", "reference"]  # warm-up, untimed
    timed = calls[2:]
    assert [timed[i : i + 2] for i in range(0, 8, 2)] == comparison.order
    assert all(sorted(pair) == ["ours", "reference"] for pair in comparison.order)
    assert {side: len(v) for side, v in comparison.cpu_s.items()} == {"ours": 4, "reference": 4}
    assert len(comparison.wall_s["ours"]) == len(comparison.wall_s["reference"]) == 4
    assert comparison.difference == 0.5

    path = write_json("toy", {"comparisons": [comparison]}, folder=tmp_path)
    saved = json.loads(path.read_text())["comparisons"][0]
    assert saved["name"] == "toy" and saved["order"] == comparison.order
    assert set(saved["summary"]) == {
        "ours_per_cpu_s", "reference_per_cpu_s", "ours_per_wall_s", "reference_per_wall_s",
        "cpu_ratio", "wall_ratio", "met",
    }  # fmt: skip
    assert table_row(comparison)["workload"] == "toy"


def test_ratios_are_reference_over_ours_scaled_by_work():
    comparison = compare(
        "toy",
        ours=("o", lambda: None),
        reference=("r", lambda: None),
        rounds=3,
        work=6,
        unit="x",
        warmup=False,
    )
    comparison.cpu_s = {"ours": [1.0, 2.0, 4.0], "reference": [2.0, 2.0, 2.0]}
    comparison.goal = 1.0
    assert comparison.ratios("cpu") == [2.0, 1.0, 0.5]
    summary = comparison.summary()
    assert summary["cpu_ratio"] == {"median": 1.0, "min": 0.5, "max": 2.0}
    assert summary["ours_per_cpu_s"] == {"median": 3.0, "min": 1.5, "max": 6.0}
    assert summary["met"] is True
    comparison.reference_work = 12  # the reference does twice the work in the same time: half the ratio
    assert comparison.ratios("cpu") == [1.0, 0.5, 0.25]
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}


def test_compare_refuses_zero_rounds():
    with pytest.raises(ValueError, match="rounds"):
        compare("toy", ours=("o", int), reference=("r", int), rounds=0, work=1, unit="x")


def test_forward_flops_counts_by_hand():
    from modeling_nt import NTConfig

    config = NTConfig.from_preset("tiny")  # v2: 2 layers, d=64, f=128, SwiGLU
    per_token_layer = 8 * 64 * 64 + 6 * 64 * 128 + 4 * 10 * 64
    assert forward_flops(config, [10]) == 2 * 10 * per_token_layer
    assert forward_flops(config, [10], lm_head=True) == 2 * 10 * per_token_layer + 10 * 2 * 64 * 4107


def test_clean_and_dirty_input_give_the_same_ids_and_keep_the_normaliser():
    tokenizer = build_tokenizer("v2")
    clean = ["ACGTACGTNNACGTAC", "AAAAAAC<mask>GT", "N"]
    dirty = ["acgtACGTnnACGUAC", "AAAAAAc<mask>G T", "R"]
    normalizer = tokenizer.backend_tokenizer.normalizer.__getstate__()
    expected = tokenizer(clean)["input_ids"]
    assert expected[0] == [3, 728, 4105, 4103, 4106, 4106, 728]  # ACGTAC = 6 + 0,2,3,1,0,2 in base 4
    assert tokenizer(dirty)["input_ids"] == expected
    assert tokenizer([clean[0], dirty[1]])["input_ids"] == [expected[0], expected[1]]
    assert tokenizer(clean[0], return_offsets_mapping=True)["offset_mapping"][1:3] == [(0, 6), (6, 7)]
    assert tokenizer.backend_tokenizer.normalizer.__getstate__() == normalizer
    assert pickle.loads(pickle.dumps(tokenizer))(dirty)["input_ids"] == expected  # e.g. DataLoader workers
