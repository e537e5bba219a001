"""Padding-free embedding passes: packed rows (block-diagonal attention, per-sequence positions) and token-budget
batches give the values of one window per forward pass, and only the requested layers run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from benchmarks import embeddings as emb
from modeling_nt import NTConfig, NTModel
from modeling_nt.modeling_nt import NTLayer

WINDOW = 40  # tokens per window with <cls>: 100-token sequences make 3 windows


def tiny(preset: str) -> NTModel:
    torch.manual_seed(0)
    return NTModel(NTConfig.from_preset(preset)).eval()


def mixed_dna(seed: int = 0) -> list[str]:
    """Lengths 600 bp (100 tokens: 3 windows of 40), 300 and 30 bp, 13 bp (2 six-mers + 1 nucleotide)."""
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size)) for size in (600, 30, 300, 13, 90, 250)]


@pytest.fixture(scope="module", params=["tiny", "tiny-v1"])
def model(request) -> NTModel:
    return tiny(request.param)


def record_passes(monkeypatch) -> list[tuple[list[int], int]]:
    """Records ``(windows per row, token slots = rows x longest row)`` of every forward pass."""
    passes: list[tuple[list[int], int]] = []
    forward = emb._forward_windows

    def recording(backbone, windows, *args):
        row_sizes = args[3] if len(args) > 3 and args[3] else [1] * len(windows)
        bounds = np.cumsum([0, *row_sizes])
        widths = [sum(1 + len(w.ids) for w in windows[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
        passes.append((list(row_sizes), len(row_sizes) * max(widths)))
        return forward(backbone, windows, *args)

    monkeypatch.setattr(emb, "_forward_windows", recording)
    return passes


@pytest.mark.parametrize("pooling", ["none", "mean", "cls"])
def test_packed_and_budgeted_passes_equal_one_window_per_pass(model, pooling, monkeypatch):
    sequences = mixed_dna()
    options = {"layers": [0, 1, 2], "pooling": pooling, "window_tokens": WINDOW, "progress": False}
    alone = emb.embed_sequences(model, sequences, batch_size=1, **options)  # no padding at all
    passes = record_passes(monkeypatch)
    packed = emb.embed_sequences(model, sequences, packing=True, max_batch_tokens=2 * WINDOW, **options)
    assert max(max(rows) for rows, _ in passes) > 1  # some rows really held several windows
    assert max(slots for _, slots in passes) <= 2 * WINDOW  # the token budget
    passes.clear()
    padded = emb.embed_sequences(model, sequences, max_batch_tokens=3 * WINDOW, **options)
    assert max(len(rows) for rows, _ in passes) > 1  # several windows, padded to the longest, per pass
    assert max(slots for _, slots in passes) <= 3 * WINDOW
    for layer in (0, 1, 2):
        for got in (packed[layer], padded[layer]):
            for expected, value in zip(alone[layer], got, strict=True):
                np.testing.assert_allclose(value, expected, atol=1e-5, rtol=0)


def test_plan_batches_respects_the_token_budget():
    sizes = [9, 7, 7, 3, 3, 3]  # tokens without <cls>: 10, 8, 8, 4, 4, 4 slots
    windows = [emb.Window(i, 0, np.zeros(n, np.int64), 0, n) for i, n in enumerate(sizes)]
    padded = emb.plan_batches(windows, max_batch_tokens=24)
    # rows x longest: 2 x 10 = 20; 3 x 8 = 24; the last 4-token window opens a new pass (4 x 8 = 32 > 24)
    assert [[[w.sequence for w in row] for row in rows] for rows in padded] == [
        [[0], [1]],
        [[2], [3], [4]],
        [[5]],
    ]
    capped = emb.plan_batches(windows, max_batch_tokens=24, batch_size=2)
    assert [len(rows) for rows in capped] == [2, 2, 2]
    packed = emb.plan_batches(windows, max_batch_tokens=24, packing=True)
    # rows of 10 slots, first fit: [10], [8], [8], [4, 4], [4]; 24 // 10 = 2 rows per pass
    assert [[[w.sequence for w in row] for row in rows] for rows in packed] == [
        [[0], [1]],
        [[2], [3, 4]],
        [[5]],
    ]


@pytest.mark.parametrize(("layers", "blocks"), [([0], 0), ([1], 1), ([0, 1], 1), ([2], 2)])
def test_only_blocks_up_to_the_deepest_requested_layer_run(layers, blocks):
    model = tiny("tiny")  # 2 blocks
    calls = []
    hooks = [
        layer.register_forward_hook(lambda *_: calls.append(1))
        for layer in model.modules()
        if isinstance(layer, NTLayer)
    ]
    try:
        emb.embed_sequences(model, ["ACGTACGGATTACA" * 3], layers=layers, progress=False)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == blocks


def test_last_layer_keeps_only_the_selected_states_and_matches_the_full_run():
    model = tiny("tiny-v1")
    input_ids = torch.tensor([[3, 5, 9, 12, 7, 1, 1], [3, 8, 8, 10, 11, 6, 4]])
    with torch.inference_mode():
        full = model(input_ids=input_ids, output_hidden_states=True)
        part = model(input_ids=input_ids, output_hidden_states=[1], last_layer=1)
    assert part.hidden_states[0] is None and len(part.hidden_states) == 2
    torch.testing.assert_close(part.hidden_states[1], full.hidden_states[1], atol=0, rtol=0)
    torch.testing.assert_close(part.last_hidden_state, full.hidden_states[1], atol=0, rtol=0)
    with pytest.raises(ValueError, match="last_layer must be in"):
        model(input_ids=input_ids, last_layer=3)


def test_v1_token_dropout_rescales_per_packed_sequence():
    """ESM token dropout scales each sequence by its own <mask> ratio: packed, as in its own padded row."""
    model = tiny("tiny-v1")
    mask, pad = model.config.mask_token_id, model.config.pad_token_id
    first, second = [3, mask, 9, mask, 7], [3, 8, 8, 10, 11, 6]  # 2 of 5 masked, none of 6
    padded = torch.tensor([[*first, pad], second])
    packed = torch.tensor([[*first, *second, pad]])
    positions = torch.tensor([[2, 3, 4, 5, 6, 2, 3, 4, 5, 6, 7, 1]])  # ESM ids: padding_idx + 1 on; pad 1
    with torch.inference_mode():
        reference = model(input_ids=padded, output_hidden_states=True).hidden_states
        states = model(input_ids=packed, position_ids=positions, output_hidden_states=True).hidden_states
    for layer in (0, 2):
        torch.testing.assert_close(states[layer][0, :5], reference[layer][0, :5], atol=1e-5, rtol=0)
        torch.testing.assert_close(states[layer][0, 5:11], reference[layer][1], atol=1e-5, rtol=0)
    scaled = model.embeddings.word_embeddings.weight[8] * (1 - model.config.mask_ratio_train)
    unscaled_row = states[0][0, 6] - model.embeddings.position_embeddings.weight[3]
    torch.testing.assert_close(unscaled_row, scaled, atol=1e-6, rtol=0)  # sequence 2 has no <mask>: 0.88


def test_positions_past_the_learned_table_are_refused():
    model = tiny("tiny-v1")
    limit = model.config.max_position_embeddings
    with pytest.raises(ValueError, match=f"position id {limit} is outside the learned position table"):
        model(input_ids=torch.tensor([[3, 5, 6]]), position_ids=torch.tensor([[limit - 2, limit - 1, limit]]))
