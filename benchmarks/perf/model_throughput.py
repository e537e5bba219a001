"""Like-for-like forward pass (v1 ``NTForMaskedLM`` vs ``EsmForMaskedLM``) and the share of the fp32 GEMM peak.

1. **Forward, like for like**: a random v1-architecture ``EsmForMaskedLM`` (4 x 256 quick, 6 x 512 full) and its
   conversion to ``NTForMaskedLM``: the same weights, the same head (both return LM logits), the same padded
   batches of 4 random-id sequences of 100-1,000 tokens in the same (arrival) order, sdpa attention, inference
   mode. The difference is the max absolute difference of the logits at real positions.
2. **Share of the fp32 GEMM peak on real tokens**: the ``nt embed`` path (:func:`benchmarks.embeddings.
   embed_sequences`) on a v2 model (the v2-50M preset's width, 4 layers quick, all 12 with ``--full``; random
   weights) over mixed-length records (300-5,964 nt), counting model FLOPs of the real tokens only
   (:func:`benchmarks.perf.common.forward_flops`), against ``torch.matmul`` of two 2,048 x 2,048 fp32
   matrices on the same threads. The ratio is the share of the peak (goal >= 0.6). v2 has no stock twin.

Timing by :mod:`benchmarks.perf.harness`.

    python -m benchmarks.perf.model_throughput [--full] [--threads 1] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.perf.common import (
    EMBED_LENGTHS_NT,
    add_common_arguments,
    build_v1_pair,
    forward_flops,
    random_dna,
    sizes,
)
from benchmarks.perf.harness import Comparison, compare, pin_threads, print_rows, table_row, write_json

BATCH_SIZE = 4
GEMM_SIZE = 2048


def random_ids(count: int, seed: int = 0) -> list[np.ndarray]:
    """``<cls>`` + random v1 6-mer/nucleotide ids (4-4104), 100-1,000 tokens each."""
    rng = np.random.default_rng(seed)
    sequences = []
    for length in rng.integers(100, 1001, count):
        ids = rng.integers(4, 4105, int(length))
        ids[0] = 3
        sequences.append(ids)
    return sequences


def padded_batches(sequences: list[np.ndarray], pad_id: int = 1) -> list[dict]:
    """Right-padded ``input_ids`` / ``attention_mask`` tensors, batches of :data:`BATCH_SIZE` in order."""
    import torch

    batches = []
    for start in range(0, len(sequences), BATCH_SIZE):
        chunk = sequences[start : start + BATCH_SIZE]
        ids = np.full((len(chunk), max(len(s) for s in chunk)), pad_id, dtype=np.int64)
        for row, sequence in enumerate(chunk):
            ids[row, : len(sequence)] = sequence
        batches.append(
            {
                "input_ids": torch.from_numpy(ids),
                "attention_mask": torch.from_numpy((ids != pad_id).astype(np.int64)),
            }
        )
    return batches


def forward_logits(model, batches: list[dict]) -> list[np.ndarray]:
    """LM logits of every batch (real positions only, flattened per batch)."""
    import torch

    outputs = []
    with torch.inference_mode():
        for batch in batches:
            logits = model(**batch).logits
            outputs.append(logits[batch["attention_mask"].bool()].numpy())
    return outputs


def forward_comparison(args: argparse.Namespace, pair: dict[str, Path]) -> Comparison:
    from transformers import EsmForMaskedLM

    from modeling_nt import NTForMaskedLM

    table = sizes(args)
    ours = NTForMaskedLM.from_pretrained(pair["ours"], attn_implementation="sdpa").eval()
    esm = EsmForMaskedLM.from_pretrained(pair["esm"], attn_implementation="sdpa").eval()
    sequences = random_ids(table["forward_sequences"])
    batches = padded_batches(sequences)
    return compare(
        f"forward v1 NTForMaskedLM vs EsmForMaskedLM, {len(sequences)} seqs 100-1,000 tokens",
        ours=("NTForMaskedLM", lambda: forward_logits(ours, batches)),
        reference=("EsmForMaskedLM (same weights)", lambda: forward_logits(esm, batches)),
        rounds=table["rounds"],
        work=sum(len(s) for s in sequences),
        unit="tokens",
        difference=lambda a, b: max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)),
        difference_name="max |diff| of logits",
        goal=1.3,
    )


def gemm_share(args: argparse.Namespace) -> Comparison:
    import torch

    from benchmarks.embeddings import embed_sequences, load_backbone
    from modeling_nt import NTConfig, NTModel
    from tokenization import build_tokenizer

    table = sizes(args)
    torch.manual_seed(0)
    config = NTConfig.from_preset("nt-v2-50m-multi-species", num_hidden_layers=table["gemm_layers"])
    backbone = load_backbone(NTModel(config).eval())
    records = random_dna(table["gemm_records"], EMBED_LENGTHS_NT, seed=1, n_runs=False)
    lengths = [len(ids) for ids in build_tokenizer("v2")(records)["input_ids"]]
    flops = forward_flops(config, lengths)
    a, b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    return compare(
        f"share of fp32 GEMM peak, v2 {config.num_hidden_layers}x512 nt embed, {len(records)} mixed records",
        ours=("nt embed, real-token FLOPs", lambda: embed_sequences(backbone, records, progress=False)),
        reference=(f"torch.matmul {GEMM_SIZE}^3 fp32", lambda: torch.matmul(a, b)),
        rounds=table["rounds"],
        work=flops / 1e9,
        reference_work=2 * GEMM_SIZE**3 / 1e9,
        unit="GFLOP",
        goal=0.6,
        notes="ratio = (model FLOPs on real tokens / CPU s) / (GEMM FLOPs / CPU s)",
    )


def run(args: argparse.Namespace, pair: dict[str, Path]) -> list[Comparison]:
    return [forward_comparison(args, pair), gemm_share(args)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    pin_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        comparisons = run(args, build_v1_pair(Path(folder), sizes(args)["v1_sizes"]))
    print_rows([table_row(comparison) for comparison in comparisons])
    print(f"wrote {write_json('model_throughput', {'comparisons': comparisons, 'sizes': sizes(args)})}")


if __name__ == "__main__":
    main()
