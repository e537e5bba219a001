"""Tokenization throughput: EsmTokenizer vs our fast tokenizer `__call__` vs our numpy batch path.

1,000 random 6,000-bp sequences with N runs, one batch call each, median of 3 after a warm-up. Checks that all
three give identical ids (EsmTokenizer appends <eos>, which is dropped for the comparison).

    python -m benchmarks.perf.tokenizer_throughput [--sequences 1000] [--length 6000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from transformers import EsmTokenizer

from benchmarks.perf.common import median_seconds, print_table, write_json
from tokenization import LAYOUTS, build_tokenizer, encode_batch


def random_dna_with_n_runs(count: int, length: int, seed: int = 0) -> list[str]:
    """Uniform random A/C/G/T with 0-3 N runs of 1-50 nt per sequence."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGT"))[rng.integers(0, 4, size=(count, length))]
    for row in letters:
        for start in rng.integers(0, length, size=rng.integers(0, 4)):
            row[start : start + rng.integers(1, 51)] = "N"
    return ["".join(row) for row in letters]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=1000)
    parser.add_argument("--length", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    sequences = random_dna_with_n_runs(args.sequences, args.length)
    tokenizer = build_tokenizer("v2", model_max_length=args.length + 1)
    with tempfile.TemporaryDirectory() as folder:
        vocab_file = Path(folder) / "vocab.txt"
        vocab_file.write_text("\n".join(LAYOUTS["v2"]) + "\n")
        esm = EsmTokenizer(str(vocab_file), model_max_length=args.length + 2)

    candidates = {
        "EsmTokenizer (reference)": lambda: esm(sequences)["input_ids"],
        "ours __call__": lambda: tokenizer(sequences)["input_ids"],
        "ours __call__ padded, numpy": lambda: tokenizer(sequences, padding=True, return_tensors="np")[
            "input_ids"
        ],
        "ours batch path (encode_batch)": lambda: encode_batch(sequences, "v2", max_length=args.length + 1),
    }
    reference = [ids[:-1] for ids in esm(sequences)["input_ids"]]
    ours = tokenizer(sequences)["input_ids"]
    batch = encode_batch(sequences, "v2", max_length=args.length + 1)
    batch_ids = [
        row[mask.astype(bool)].tolist()
        for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
    ]
    identical = reference == ours == batch_ids

    rows = []
    for name, function in candidates.items():
        seconds = median_seconds(function, repeats=args.repeats)
        rows.append(
            {
                "tokenizer": name,
                "seconds": seconds,
                "seq/s": args.sequences / seconds,
                "Mbp/s": args.sequences * args.length / seconds / 1e6,
            }
        )
    for row in rows:
        row["speed-up vs Esm"] = rows[0]["seconds"] / row["seconds"]
    print(f"{args.sequences} sequences x {args.length} bp with N runs; ids identical: {identical}")
    print_table(rows, ["tokenizer", "seconds", "seq/s", "Mbp/s", "speed-up vs Esm"])
    path = write_json(
        "tokenizer_throughput",
        {"sequences": args.sequences, "length": args.length, "ids_identical": identical, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
