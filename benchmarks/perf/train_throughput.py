"""Pretraining step: ours against a plain ``Trainer``-style loop with ``DataCollatorForLanguageModeling``.

The same model on both sides: a random v1-architecture ``EsmForMaskedLM`` (4 x 256 quick, 6 x 512 full) and its
conversion to ``NTForMaskedLM``, the same weights at the start, the same batch of random-id examples (4 x 256
tokens quick, 8 x 512 full), AdamW (lr 1e-4), fp32, sdpa, dropout 0.

- **ours**: :class:`modeling_nt.pretraining.NTMaskingCollator` (80/10/10 masking) and ``NTForMaskedLM`` (its loss,
  whatever head it runs), backward, optimizer step;
- **reference**: ``DataCollatorForLanguageModeling`` (the stock tokenizer, 15%, 80/10/10) and
  ``EsmForMaskedLM``: what ``Trainer.training_step`` does, without the Trainer's bookkeeping on either side.

One call = ``train_steps`` steps (collation included). Losses are compared on identical masks before timing:
one batch from the stock collator through both models at the initial weights (the difference is the absolute
difference of the two losses). v2 (rotary + SwiGLU) has no stock twin. Timing by :mod:`benchmarks.perf.harness`.

    python -m benchmarks.perf.train_throughput [--full] [--threads 1] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.perf.common import add_common_arguments, build_v1_pair, sizes
from benchmarks.perf.harness import Comparison, compare, pin_threads, print_rows, table_row, write_json


def examples(count: int, tokens: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """``count`` examples of ``<cls>`` + random v1 6-mer ids, ``tokens`` ids each."""
    rng = np.random.default_rng(seed)
    return [{"input_ids": [3, *rng.integers(4, 4100, tokens - 1).tolist()]} for _ in range(count)]


def trainer(model: Any, collate: Callable[[list], dict], batch: list, steps: int) -> Callable[[], float]:
    """A callable running ``steps`` optimizer steps (collate, forward with labels, backward, AdamW)."""
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)

    def run() -> float:
        loss = torch.zeros(())
        for _ in range(steps):
            loss = model(**collate(batch)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return run


def run(args: argparse.Namespace, pair: dict[str, Path]) -> list[Comparison]:
    import torch
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, EsmForMaskedLM

    from modeling_nt import NTForMaskedLM
    from modeling_nt.pretraining import NTMaskingCollator

    table = sizes(args)
    count, tokens = table["train_batch"]
    batch = examples(count, tokens)
    ours = NTForMaskedLM.from_pretrained(pair["ours"], attn_implementation="sdpa")
    esm = EsmForMaskedLM.from_pretrained(pair["esm"], attn_implementation="sdpa")
    stock_collator = DataCollatorForLanguageModeling(
        AutoTokenizer.from_pretrained(pair["esm"]), mlm_probability=0.15, return_tensors="pt"
    )
    torch.manual_seed(0)
    identical = stock_collator(batch)
    ours.train(), esm.train()
    with torch.no_grad():
        loss_difference = abs(float(ours(**identical).loss) - float(esm(**identical).loss))
    ours_collator = NTMaskingCollator(version="v1", seed=0)
    steps = table["train_steps"]
    comparison = compare(
        f"pretraining step v1 vs DataCollatorForLanguageModeling loop, {count}x{tokens} tokens",
        ours=("NTMaskingCollator + NTForMaskedLM", trainer(ours, ours_collator, batch, steps)),
        reference=("stock collator + EsmForMaskedLM", trainer(esm, stock_collator, batch, steps)),
        rounds=table["rounds"],
        work=steps * count * tokens,
        unit="tokens",
        goal=1.25,
        notes="output diff: |loss ours - loss reference| on one identical masked batch at the initial weights",
    )
    comparison.difference = loss_difference
    comparison.difference_name = "|loss diff|, same masks"
    return [comparison]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    pin_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        comparisons = run(args, build_v1_pair(Path(folder), sizes(args)["v1_sizes"]))
    print_rows([table_row(comparison) for comparison in comparisons])
    print(f"wrote {write_json('train_throughput', {'comparisons': comparisons, 'sizes': sizes(args)})}")


if __name__ == "__main__":
    main()
