"""`nt probe`: cross-validated probing of a model's layers on a benchmark task."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import (
    MODEL_HELP,
    check_writable,
    check_writable_folder,
    fold_count,
    int_at_least,
    non_negative_int,
    positive_int,
)
from ._task_args import add_task_source_arguments, load_task_from_args
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
    parser.add_argument(
        "--layers",
        default=None,
        help="comma-separated layers (default: 10 evenly spaced; NTv3: 0..N the transformer core, N+1 the "
        "base-resolution output)",
    )
    parser.add_argument("--probes", default="probe,mlp-probe", help="probes to run (default both)")
    parser.add_argument(
        "--trials", type=positive_int, default=100, help="optuna trials per fold (default 100)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the raw-token baseline")
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="sequences per forward pass (default 8)"
    )
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="compute dtype")
    parser.add_argument(
        "--n-jobs",
        type=int_at_least(-1),
        default=1,
        help="folds searched at once in separate processes, -1: one per CPU (default 1; same results)",
    )
    parser.set_defaults(func=run)


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `nt probe` and `nt finetune`: model, task, folds and output."""
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    add_model_name_argument(parser)
    add_task_source_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, default=None, help="datasets cache folder")
    parser.add_argument("--out", required=True, type=Path, help="results JSON file (never overwritten)")
    parser.add_argument("--work-dir", type=Path, default=None, help="working folder (default: OUT_work)")
    parser.add_argument(
        "--folds", "--cv", type=fold_count, default=10, help="cross-validation folds (default 10)"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="fold and search seed (default 0)")


def add_model_name_argument(parser: argparse.ArgumentParser) -> None:
    """``--model-name``: the model's name in the results (every command that writes results has it)."""
    parser.add_argument(
        "--model-name",
        help="the model's name in the results (default: the name recorded in the checkpoint's config, else "
        "the checkpoint's run folder or the preset name; see benchmarks.results.model_name_of)",
    )


def prepare(args: argparse.Namespace):
    """Refuse to overwrite ``--out``; load the task; return ``(dataset_dict, work_dir)``."""
    from benchmarks.cli import UserError
    from modeling_nt.loading import check_model

    if args.out.exists():
        raise UserError(f"{args.out} exists; choose another --out (finished results are never overwritten)")
    work_dir = args.work_dir or args.out.with_name(f"{args.out.stem}_work")
    check_writable(args.out)
    check_writable_folder(work_dir, "--work-dir")
    check_model(args.model)  # a bad --model is refused before the task is read
    dataset, _ = load_task_from_args(args)
    return dataset, work_dir


def run(args: argparse.Namespace) -> int:
    from benchmarks.cli import UserError
    from benchmarks.probing import run_probing
    from benchmarks.results import save_results

    if args.n_jobs == 0:
        raise UserError("--n-jobs must be -1 (one process per CPU) or >= 1, got 0")
    dataset, work_dir = prepare(args)
    results = run_probing(
        args.model,
        dataset,
        args.task,
        work_dir,
        benchmark=args.benchmark,
        model_name=args.model_name,
        layers=parse_layers(args.layers),
        probes=[probe.strip() for probe in args.probes.split(",") if probe.strip()],
        trials=args.trials,
        folds=args.folds,
        seed=args.seed,
        batch_size=args.batch_size,
        dtype=args.dtype,
        raw_token_baseline=not args.no_baseline,
        n_jobs=args.n_jobs,
    )
    save_results(results, args.out)
    for result in results:
        layer = "-" if result.layer is None else result.layer
        print(
            f"{result.method:10s} layer {layer!s:>3}  {result.metric} {result.mean:.3f} ± {result.two_sd:.3f}"
            + ("" if result.test_score is None else f"  test {result.test_score:.3f}")
        )
    print(f"results: {args.out}; plot and cache: {work_dir}")
    return 0
