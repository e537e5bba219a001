"""The 80/10/10 MLM collator (statistics, special tokens, determinism) and the warm-up + sqrt-decay schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeling_nt.pretraining import NTMaskingCollator, WarmupSqrtDecay, warmup_sqrt_decay
from modeling_nt.pretraining.trainer import gradient_accumulation_for
from tokenization import vocabulary

VOCAB = vocabulary("v2")
SPECIAL_IDS = {VOCAB[token] for token in ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>")}


def _examples(rows: int, length: int, seed: int = 0) -> list[dict]:
    """Rows of <cls> + random standard tokens, of varying lengths (so the batch has padding)."""
    rng = np.random.default_rng(seed)
    standard = np.array(sorted(set(VOCAB.values()) - SPECIAL_IDS))
    return [
        {"input_ids": [VOCAB["<cls>"], *rng.choice(standard, size=length - int(rng.integers(0, 50)))]}
        for _ in range(rows)
    ]


def _mask_statistics(collator: NTMaskingCollator, examples: list[dict]) -> dict[str, float]:
    batch = collator(examples)
    original = collator.pad([example["input_ids"] for example in examples])
    masked, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
    selected = labels != -100
    eligible = ~np.isin(original, list(SPECIAL_IDS))
    assert not (selected & ~eligible).any(), "<cls>/<pad> must never be selected"
    np.testing.assert_array_equal(labels[selected], original[selected])
    np.testing.assert_array_equal(masked[~selected], original[~selected])
    to_mask = selected & (masked == VOCAB["<mask>"])
    unchanged = selected & (masked == original)
    to_random = selected & ~to_mask & ~unchanged
    assert not np.isin(masked[to_random], list(SPECIAL_IDS)).any(), (
        "random replacements must be standard tokens"
    )
    np.testing.assert_array_equal(
        batch["attention_mask"].numpy(), (original != VOCAB["<pad>"]).astype(np.int64)
    )
    return {
        "selected": selected.sum() / eligible.sum(),
        "mask": to_mask.sum() / selected.sum(),
        "random": to_random.sum() / selected.sum(),
        "unchanged": unchanged.sum() / selected.sum(),
    }


def test_collator_selects_15_percent_with_80_10_10() -> None:
    stats = _mask_statistics(NTMaskingCollator(seed=1), _examples(128, 600))
    # ~75k eligible tokens, ~11k selected: 4-5 standard errors of margin.
    assert stats["selected"] == pytest.approx(0.15, abs=0.006)
    assert stats["mask"] == pytest.approx(0.80, abs=0.02)
    assert stats["random"] == pytest.approx(0.10, abs=0.015)
    assert stats["unchanged"] == pytest.approx(0.10, abs=0.015)


def test_collator_random_share_switched_off() -> None:
    stats = _mask_statistics(NTMaskingCollator(random_replace_prob=0.0, seed=2), _examples(64, 600))
    assert stats["random"] == 0.0
    assert stats["mask"] == pytest.approx(0.80, abs=0.02)
    assert stats["unchanged"] == pytest.approx(0.20, abs=0.02)


def test_collator_v1_layout_and_padding_length() -> None:
    collator = NTMaskingCollator(version="v1", pad_to_length=40, seed=3)
    v1 = vocabulary("v1")
    batch = collator([{"input_ids": [v1["<cls>"], *range(4, 34)]}, {"input_ids": [v1["<cls>"], 4100, 4104]}])
    assert batch["input_ids"].shape == (2, 40)
    assert (batch["input_ids"][:, 0] == v1["<cls>"]).all()
    assert int(collator.standard_ids.max()) == v1["N"] < 4105  # v1 models have 4105 embedding rows
    with pytest.raises(ValueError, match="pad_to_length"):
        collator([{"input_ids": list(range(4, 50))}])


def test_mask_seed_makes_masks_reproducible() -> None:
    collator = NTMaskingCollator()
    examples = [{**example, "mask_seed": [7, 0, 0, index]} for index, example in enumerate(_examples(4, 200))]
    first, second = collator(examples), collator(list(reversed(examples)))
    torch.testing.assert_close(first["labels"], second["labels"].flip(0))
    other = collator([{**example, "mask_seed": [8, 0, 0, 0]} for example in examples[:1]])
    assert not torch.equal(other["labels"][0], first["labels"][0])


def test_invalid_probabilities_are_rejected() -> None:
    with pytest.raises(ValueError, match="mask_replace_prob"):
        NTMaskingCollator(mask_replace_prob=0.95, random_replace_prob=0.1)
    with pytest.raises(ValueError, match="mlm_probability"):
        NTMaskingCollator(mlm_probability=1.5)


def test_schedule_values_at_chosen_steps() -> None:
    schedule = WarmupSqrtDecay()  # NT: 5e-5 -> 1e-4 over 16,000 steps, then sqrt decay
    assert schedule.learning_rate(0) == pytest.approx(5e-5)
    assert schedule.learning_rate(8_000) == pytest.approx(7.5e-5)
    assert schedule.learning_rate(16_000) == pytest.approx(1e-4)
    assert schedule.learning_rate(64_000) == pytest.approx(5e-5)  # 1e-4 * sqrt(16k / 64k)
    assert schedule.learning_rate(1_600_000) == pytest.approx(1e-5)
    custom = WarmupSqrtDecay(init_lr=0.0, peak_lr=2e-3, warmup_steps=10)
    assert [custom.learning_rate(step) for step in (0, 5, 10, 40)] == pytest.approx([0.0, 1e-3, 2e-3, 1e-3])


def test_schedule_drives_lambda_lr_and_round_trips() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=123.0, betas=(0.9, 0.999), eps=1e-8)
    scheduler = warmup_sqrt_decay(optimizer, WarmupSqrtDecay(init_lr=1e-4, peak_lr=1e-3, warmup_steps=4))
    seen = []
    for _ in range(16):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(1e-4)
    assert seen[4] == pytest.approx(1e-3)
    assert seen[16 - 1] == pytest.approx(1e-3 * (4 / 15) ** 0.5)
    restored = warmup_sqrt_decay(
        torch.optim.Adam([parameter]), WarmupSqrtDecay(init_lr=1e-4, peak_lr=1e-3, warmup_steps=4)
    )
    restored.load_state_dict(scheduler.state_dict())
    assert restored.last_epoch == 16


def test_gradient_accumulation_reaches_token_target() -> None:
    assert gradient_accumulation_for(1_000_000, batch_size=8, world_size=1, tokens_per_sequence=1000) == 125
    assert gradient_accumulation_for(1_000_000, batch_size=8, world_size=4, tokens_per_sequence=1000) == 31
    assert gradient_accumulation_for(1_000, batch_size=8, world_size=1, tokens_per_sequence=1000) == 1
