"""`nt demo`: the main job on bundled real data (the README's first command)."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DATA = REPO_ROOT / "data"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on bundled real data")
    parser.add_argument(
        "--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.cli import main as nt

    genome = BUNDLED_DATA / "chr20_GRCh37_slice.fa.gz"
    print(f"== Tokenizing the bundled human chr20 slice ({genome.name}) ==")
    args.out.mkdir(parents=True, exist_ok=True)
    return nt(["tokenize", str(genome), "--out", str(args.out / "chr20_slice_tokens.parquet")])
