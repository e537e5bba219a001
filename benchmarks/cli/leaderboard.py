"""`nt leaderboard`: tables, MCC heatmap and (optionally) a Hub model card from benchmark result files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import check_writable_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="build leaderboard.md/.csv/.png (and a Hub model card) from result JSON files",
        description="Read BenchmarkResult JSON files (or folders of them), keep the best result per task, "
        "model and method, and write leaderboard.md, leaderboard.csv and leaderboard.png into --out, with the "
        "paper's numbers as reference rows on the original benchmark.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="result JSON files or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--card-model", help="also render the Hub model card of this model into OUT/model_card"
    )
    parser.add_argument(
        "--card-size", help="size key of hub_cards/sizes.yaml (default: guessed from the name)"
    )
    parser.add_argument("--card-repo-id", help="Hub repo id shown in the card's usage snippet")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.cli import UserError
    from benchmarks.leaderboard import card_sizes, check_card, render_model_card, write_leaderboard
    from benchmarks.results import load_results

    check_writable_folder(args.out)
    results = load_results(args.results)
    if not results:
        raise UserError(f"no results in {', '.join(map(str, args.results))}")
    if args.card_model:  # checked before anything is written
        if args.card_size and args.card_size not in card_sizes():
            raise UserError(
                f"--card-size {args.card_size!r}: unknown size; known sizes: {sorted(card_sizes())}"
            )
        check_card(results, args.card_model, args.card_size)
    for kind, path in write_leaderboard(results, args.out).items():
        print(f"wrote {kind}: {path}")
    if args.card_model:
        card = render_model_card(
            results, args.card_model, args.out / "model_card", size=args.card_size, repo_id=args.card_repo_id
        )
        print(f"wrote model card: {card}")
    return 0
