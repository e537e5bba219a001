"""The ``nt embed`` path against the loop a user would write with ``AutoModel`` + ``AutoTokenizer``.

Workload: random DNA records of mixed lengths (300-5,964 nt, no N, so that every record fits the v1 context without
windowing), in arrival order; 24 and 8 records (quick) or 48 and 16 (``--full``). The model is a random
v1-architecture ``EsmForMaskedLM`` (4 x 256 quick, 6 x 512 full) and its conversion to ours: the same weights.

- **ours**: :func:`benchmarks.embeddings.embed_sequences` with its defaults (what ``nt embed`` runs: its own batching, mean
  pooling over the sequence's tokens, ``<cls>`` excluded), last layer;
- **reference**: ``AutoTokenizer`` (``EsmTokenizer``) with ``padding="longest"`` and ``AutoModel``
  (``EsmModel``, sdpa) on batches of 8 in arrival order, ``last_hidden_state`` mean-pooled with the attention
  mask, ``<cls>`` left out of the mean (the same pooling rule, so the outputs can be compared). As with the
  v1 checkpoints, the stock tokenizer's vocabulary has the 4,105 rows of the embedding: no ``<eos>``.

Timing by :mod:`benchmarks.perf.harness`. Peak memory: each side runs once more in a fresh process of its own
(peak RSS during the pass minus RSS just before it, after loading and a warm-up), goal: ours <= reference.

    python -m benchmarks.perf.embed_throughput [--full] [--threads 1] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.perf.common import (
    EMBED_LENGTHS_NT,
    add_common_arguments,
    build_v1_pair,
    max_abs_difference,
    random_dna,
    sizes,
)
from benchmarks.perf.harness import (
    Comparison,
    compare,
    peak_rss_delta_mb,
    pin_threads,
    print_rows,
    run_worker,
    table_row,
    write_json,
)

BATCH_SIZE = 8
SIDES = ("ours", "reference")


def ours_embedder(folder: Path) -> Callable[[list[str]], np.ndarray]:
    """``nt embed``'s Python path on our checkpoint: ``[N, d]`` mean embeddings of the last layer."""
    from benchmarks.embeddings import embed_sequences, load_backbone

    backbone = load_backbone(str(folder))

    def embed(sequences: list[str]) -> np.ndarray:
        layers = embed_sequences(backbone, sequences, pooling="mean", progress=False)  # nt embed defaults
        return next(iter(layers.values()))

    return embed


def user_embedder(folder: Path, device: str = "cpu") -> Callable[[list[str]], np.ndarray]:
    """The stock loop on ``device``: AutoTokenizer padding to the longest, AutoModel, masked mean without <cls>."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()  # AutoModel adds a (random, unused here) pooler: not worth a warning
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval().to(device)

    def embed(sequences: list[str]) -> np.ndarray:
        pooled = []
        for start in range(0, len(sequences), BATCH_SIZE):
            batch = tokenizer(sequences[start : start + BATCH_SIZE], padding="longest", return_tensors="pt")
            batch = batch.to(device)
            with torch.inference_mode():
                states = model(**batch).last_hidden_state
            mask = batch["attention_mask"].clone()
            mask[:, 0] = 0  # <cls>
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled.append(((states * weights).sum(1) / weights.sum(1)).cpu().numpy())
        return np.concatenate(pooled)

    return embed


def embedder(side: str, pair: dict[str, Path]) -> Callable[[list[str]], np.ndarray]:
    return ours_embedder(pair["ours"]) if side == "ours" else user_embedder(pair["esm"])


def memory_worker(side: str, folder: Path, records: int) -> dict[str, float]:
    """In a fresh process: load one side, warm it up, and measure the peak RSS increase of one pass."""
    pair = {"ours": folder / "ours-v1", "esm": folder / "esm-v1"}
    embed = embedder(side, pair)
    sequences = random_dna(records, EMBED_LENGTHS_NT, n_runs=False)
    embed(sequences[:2])
    return {"peak_extra_mb": peak_rss_delta_mb(lambda: embed(sequences))}


def memory_row(name: str, ours_mb: float, reference_mb: float) -> dict[str, str]:
    """A table row for a peak-memory pair (goal: ours at most the reference)."""
    return {
        "workload": name,
        "ours": f"nt embed: {ours_mb:,.0f} MB",
        "reference": f"user loop: {reference_mb:,.0f} MB",
        "CPU-time ratio": "-",
        "wall ratio": "-",
        "output diff": "-",
        "goal": "<= reference",
        "met": "yes" if ours_mb <= reference_mb else "NO",
    }


def run(args: argparse.Namespace, pair: dict[str, Path]) -> tuple[list[Comparison], list[dict[str, Any]]]:
    """Time comparisons per record count, and peak-memory rows (each side in its own process)."""
    table = sizes(args)
    embedders = {side: embedder(side, pair) for side in SIDES}
    comparisons, memory = [], []
    for records in table["embed_records"]:
        sequences = random_dna(records, EMBED_LENGTHS_NT, n_runs=False)
        tokens = sum(len(s) // 6 + len(s) % 6 + 1 for s in sequences)  # 6-mers, ragged tail, <cls>
        comparisons.append(
            compare(
                f"nt embed vs AutoModel loop, {records} records 300-5,964 nt",
                ours=("nt embed (embed_sequences)", lambda s=sequences: embedders["ours"](s)),
                reference=(
                    "AutoModel+AutoTokenizer, pad longest",
                    lambda s=sequences: embedders["reference"](s),
                ),
                rounds=table["rounds"],
                work=tokens,
                unit="tokens",
                difference=max_abs_difference,
                difference_name="max |diff| of embeddings",
                goal=2.0,
            )
        )
        folder = pair["ours"].parent
        peaks = {
            side: run_worker(
                "benchmarks.perf.embed_throughput",
                ["--memory-worker", side, "--folder", str(folder), "--records", str(records)],
            )["peak_extra_mb"]
            for side in SIDES
        }
        memory.append({"records": records, "peak_extra_mb": peaks})
    return comparisons, memory


def rows(comparisons: list[Comparison], memory: list[dict[str, Any]]) -> list[dict[str, str]]:
    table = []
    for comparison, peaks in zip(comparisons, memory, strict=True):
        table.append(table_row(comparison))
        table.append(
            memory_row(
                f"nt embed peak memory, {peaks['records']} records",
                peaks["peak_extra_mb"]["ours"],
                peaks["peak_extra_mb"]["reference"],
            )
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--memory-worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin_threads(args.threads)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args.folder, args.records)))
        return
    with tempfile.TemporaryDirectory() as folder:
        pair = build_v1_pair(Path(folder), sizes(args)["v1_sizes"])
        comparisons, memory = run(args, pair)
    print_rows(rows(comparisons, memory))
    payload = {"comparisons": comparisons, "peak_memory": memory, "sizes": sizes(args)}
    print(f"wrote {write_json('embed_throughput', payload)}")


if __name__ == "__main__":
    main()
