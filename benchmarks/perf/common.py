"""Workload inputs shared by the perf scripts: random DNA, the v1 model pair with the same weights, FLOP counts.

Sizes: each script has a quick default (the whole ``python -m benchmarks.perf`` in a few minutes on 2 cores)
and ``--full`` for the sizes of issue 14 (:data:`QUICK` and :data:`FULL`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

#: Model sizes and workload sizes of the quick run and of ``--full``.
QUICK: dict[str, Any] = {
    "rounds": 3,
    "v1_sizes": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
    "tokenizer_sequences": 300,
    "embed_records": (24, 8),
    "forward_sequences": 8,
    "train_batch": (4, 256),
    "train_steps": 2,
    "gemm_layers": 4,
    "gemm_records": 6,
}
FULL: dict[str, Any] = {
    "rounds": 5,
    "v1_sizes": {
        "hidden_size": 512,
        "num_hidden_layers": 6,
        "num_attention_heads": 8,
        "intermediate_size": 2048,
    },
    "tokenizer_sequences": 1000,
    "embed_records": (48, 16),
    "forward_sequences": 16,
    "train_batch": (8, 512),
    "train_steps": 3,
    "gemm_layers": 12,
    "gemm_records": 16,
}
#: Mixed-length records of the embedding workloads (no N): 300 to 5,964 nt, at most 994 6-mers + 5 single
#: nucleotides + ``<cls>`` = 1,000 tokens, the v1 context, so that no record is windowed.
EMBED_LENGTHS_NT = (300, 5964)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--full``, ``--threads`` and ``--rounds`` of every perf script."""
    parser.add_argument("--full", action="store_true", help="the sizes of issue 14 (slow); default quick")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of every pool, both sides (default 1)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved timed rounds (default 3 quick, 5 full)")


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    """The size table for ``args.full``, with ``--rounds`` applied."""
    table = dict(FULL if args.full else QUICK)
    if getattr(args, "rounds", None):
        table["rounds"] = args.rounds
    return table


def random_dna(count: int, length: int | tuple[int, int], seed: int = 0, n_runs: bool = True) -> list[str]:
    """Uniform random A/C/G/T sequences (uppercase: clean input) of ``length`` nt or lengths drawn uniformly in
    ``[low, high]``; with ``n_runs``, 0-3 runs of 1-50 N per sequence."""
    rng = np.random.default_rng(seed)
    if isinstance(length, tuple):
        lengths = rng.integers(length[0], length[1] + 1, size=count)
    else:
        lengths = np.full(count, length)
    sequences = []
    for size in lengths:
        row = np.array(list("ACGT"))[rng.integers(0, 4, size=int(size))]
        if n_runs:
            for start in rng.integers(0, int(size), size=rng.integers(0, 4)):
                row[start : start + rng.integers(1, 51)] = "N"
        sequences.append("".join(row))
    return sequences


def build_v1_pair(folder: Path, v1_sizes: dict[str, int]) -> dict[str, Path]:
    """A random v1-architecture ``EsmForMaskedLM`` (with its ``EsmTokenizer``) and its conversion to ours.

    Returns ``{"esm": folder/esm-v1, "ours": folder/ours-v1}``: the same weights in the stock layout (loadable
    with ``AutoModel`` / ``AutoTokenizer``) and in ours (via ``nt convert --from esm``).
    """
    import torch
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    from modeling_nt.convert import convert_checkpoint
    from tokenization import LAYOUTS

    torch.manual_seed(0)
    config = EsmConfig(
        vocab_size=4105,
        max_position_embeddings=1002,
        position_embedding_type="absolute",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=2,
        pad_token_id=1,
        layer_norm_eps=1e-12,
        tie_word_embeddings=False,  # NT checkpoints have an untied LM head
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **v1_sizes,
    )
    esm = folder / "esm-v1"
    EsmForMaskedLM(config).save_pretrained(esm)
    vocab_file = folder / "vocab.txt"  # the 4,105 rows of v1 checkpoints: no <eos>/<bos>, so none appended
    vocab_file.write_text("\n".join(LAYOUTS["v1"][:4105]) + "\n")
    EsmTokenizer(str(vocab_file), eos_token=None, model_max_length=1000).save_pretrained(esm)
    convert_checkpoint("esm", esm, folder / "ours-v1")
    return {"esm": esm, "ours": folder / "ours-v1"}


def forward_flops(config: Any, lengths: list[int], lm_head: bool = False) -> float:
    """Model FLOPs (multiply-add = 2) of one forward pass over sequences of ``lengths`` real tokens.

    Per layer and token: q/k/v/output projections ``8 d^2``; feed-forward ``4 d f`` (GELU) or ``6 d f``
    (SwiGLU: two input projections); attention scores and weighted sum ``4 L d`` for a sequence of ``L``
    tokens. The LM head adds ``2 d V`` per token. Embeddings, norms and elementwise work are not counted.
    """
    d, f = config.hidden_size, config.intermediate_size
    ffn = 6 * d * f if config.ffn_activation == "swiglu" else 4 * d * f
    total = 0.0
    for length in lengths:
        total += config.num_hidden_layers * length * (8 * d * d + ffn + 4 * length * d)
        if lm_head:
            total += length * 2 * d * config.vocab_size
    return total


def max_abs_difference(
    ours: list[np.ndarray] | np.ndarray, reference: list[np.ndarray] | np.ndarray
) -> float:
    """Largest absolute difference between paired arrays."""
    return max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(ours, reference, strict=True)
    )
