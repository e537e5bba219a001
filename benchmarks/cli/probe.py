"""`nt probe`: cross-validated probing of a model's layers on a benchmark task."""

from __future__ import annotations

import argparse
from pathlib import Path

from .embed import parse_layers


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="probe a model's layers (logistic regression / MLP) on a benchmark task",
        description="Embed the task once (mean pooling, up to 10 layers), then score logistic-regression and "
        "MLP probes by cross-validation with an optuna TPE search inside each training fold, and the raw-token "
        "baseline. Writes the results (leaderboard schema), the embedding cache and a per-layer plot.",
    )
    add_task_arguments(parser)
    parser.add_argument("--layers", default=None, help="comma-separated layers (default: 10 evenly spaced)")
    parser.add_argument("--probes", default="probe,mlp-probe", help="probes to run (default both)")
    parser.add_argument("--trials", type=int, default=100, help="optuna trials per fold (default 100)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the raw-token baseline")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default 8)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="compute dtype")
    parser.set_defaults(func=run)


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `nt probe` and `nt finetune`: model, task, folds and output."""
    parser.add_argument("--model", required=True, help="checkpoint folder or preset name (random weights)")
    parser.add_argument("--benchmark", required=True, choices=["original", "revised", "gue"])
    parser.add_argument("--task", required=True, help="task name (GUE: any task folder name)")
    parser.add_argument("--data-dir", type=Path, default=None, help="local data folder (default: the Hub)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="datasets cache folder")
    parser.add_argument("--out", required=True, type=Path, help="results JSON file (never overwritten)")
    parser.add_argument("--work-dir", type=Path, default=None, help="working folder (default: OUT_work)")
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="fold and search seed (default 0)")


def prepare(args: argparse.Namespace):
    """Refuse to overwrite ``--out``; load the task; return ``(dataset_dict, work_dir)``."""
    from benchmarks.builders import load_task
    from benchmarks.cli import UserError

    if args.out.exists():
        raise UserError(f"{args.out} exists; choose another --out (finished results are never overwritten)")
    dataset = load_task(args.benchmark, args.task, data_dir=args.data_dir, cache_dir=args.cache_dir)
    work_dir = args.work_dir or args.out.with_name(f"{args.out.stem}_work")
    return dataset, work_dir


def run(args: argparse.Namespace) -> int:
    from benchmarks.probing import run_probing
    from benchmarks.results import save_results

    dataset, work_dir = prepare(args)
    results = run_probing(
        args.model,
        dataset,
        args.task,
        work_dir,
        benchmark=args.benchmark,
        layers=parse_layers(args.layers),
        probes=[probe.strip() for probe in args.probes.split(",") if probe.strip()],
        trials=args.trials,
        folds=args.folds,
        seed=args.seed,
        batch_size=args.batch_size,
        dtype=args.dtype,
        raw_token_baseline=not args.no_baseline,
    )
    save_results(results, args.out)
    for result in results:
        layer = "-" if result.layer is None else result.layer
        print(
            f"{result.method:10s} layer {layer!s:>3}  {result.metric} {result.mean:.3f} ± {result.two_sd:.3f}"
            f"  test {result.test_score:.3f}"
        )
    print(f"results: {args.out}; plot and cache: {work_dir}")
    return 0
