"""Every side-by-side workload of issue 14 in one run: ``python -m benchmarks.perf [--full] [--threads 1]``.

Tokenizer (vs ``EsmTokenizer`` and a plain ``tokenizers`` pipeline), ``nt embed`` vs the ``AutoModel`` loop
(time and peak memory), like-for-like v1 forward, pretraining step, and the share of the fp32 GEMM peak; see
each module's docstring and :mod:`benchmarks.perf.harness` for the rules. Prints one table and writes
``benchmarks/perf/results/summary.json`` (plus one JSON per workload). The default sizes finish in a few
minutes on 2 cores; ``--full`` uses the issue's sizes. ``--only`` picks workloads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

WORKLOADS = ("tokenizer", "embed", "forward", "train")


def main(argv: list[str] | None = None) -> None:
    from benchmarks.perf.common import add_common_arguments, sizes
    from benchmarks.perf.harness import pin_threads

    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    args = parser.parse_args(argv)
    pin_threads(args.threads)  # before anything tokenizes: the Rust pool reads RAYON_NUM_THREADS once

    from benchmarks.perf import embed_throughput, model_throughput, tokenizer_throughput, train_throughput
    from benchmarks.perf.common import build_v1_pair
    from benchmarks.perf.harness import print_rows, table_row, write_json

    rows, payload = [], {"sizes": sizes(args), "threads": args.threads}
    with tempfile.TemporaryDirectory() as folder:
        pair = build_v1_pair(Path(folder), sizes(args)["v1_sizes"])
        for name in args.only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            if name == "tokenizer":
                comparisons = tokenizer_throughput.run(args)
                rows += [table_row(c) for c in comparisons]
            elif name == "embed":
                comparisons, memory = embed_throughput.run(args, pair)
                rows += embed_throughput.rows(comparisons, memory)
                payload["embed_peak_memory"] = memory
            elif name == "forward":
                comparisons = model_throughput.run(args, pair)
                rows += [table_row(c) for c in comparisons]
            else:
                comparisons = train_throughput.run(args, pair)
                rows += [table_row(c) for c in comparisons]
            payload[name] = comparisons
    mode = "full" if args.full else "quick"
    print(
        f"\n{mode} sizes, {args.threads} thread(s) on each side; ratios: ours / reference rate, median [min-max]"
    )
    print_rows(rows)
    print(f"wrote {write_json('summary', payload | {'rows': rows})}")


if __name__ == "__main__":
    main()
