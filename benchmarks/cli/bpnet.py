"""`nt bpnet`: the supervised BPNet baseline, trained from scratch on one benchmark task."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from ._args import (
    check_not_an_input,
    check_writable_file,
    fold_count_or_zero,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from ._task_args import add_task_source_arguments, load_task_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bpnet",
        help="train the BPNet baseline from scratch on a task (10-fold CV and/or train -> test)",
        description="Train BPNet-style CNNs from scratch on one task: one model per cross-validation fold of "
        "the training split (the shared folds of every method; early stopping on an inner validation split), "
        "then one on the whole training split scored on the test split. Writes a results JSON in the "
        "leaderboard schema (model BPNet, method bpnet / bpnet-large). Finished folds are recorded in "
        "OUT.progress.json; rerunning the same command resumes there.",
    )
    parser.add_argument("--variant", choices=("original", "large"), default="original", help="model size")
    parser.add_argument("--model-name", default=None, help="the model's name in the results (default BPNet)")
    add_task_source_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, help="datasets / Hub cache folder")
    parser.add_argument("--out", type=Path, required=True, help="results JSON file to write")
    parser.add_argument(
        "--folds",
        "--cv",
        type=fold_count_or_zero,
        default=10,
        help="cross-validation folds; 0: only train -> test (default 10)",
    )
    parser.add_argument("--no-test", action="store_true", help="skip the train -> test run")
    parser.add_argument("--max-epochs", type=positive_int, default=100)
    parser.add_argument("--patience", type=positive_int, default=5, help="early-stopping patience in epochs")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    parser.add_argument("--rc-augment", action="store_true", help="reverse-complement augmentation")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1...")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=min(2, os.cpu_count() or 1),
        help="CPU threads for torch (default: at most 2; use 1 on a machine shared with other jobs)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of folds, inner splits and training"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.bpnet import TrainingConfig, evaluate_task, resolve_device
    from benchmarks.cli import UserError
    from benchmarks.results import save_results

    check_not_an_input(args.out, train=getattr(args, "train", None), test=getattr(args, "test", None))
    if args.out.exists() and not args.overwrite:
        raise UserError(f"{args.out} exists (a finished run); pass --overwrite to replace it")
    check_writable_file(args.out)
    if args.no_test and args.folds == 0:
        raise UserError("nothing to do: --folds 0 and --no-test")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    splits = ("train",) if args.no_test else ("train", "test")
    dataset, task = load_task_from_args(args, splits)
    config = TrainingConfig(
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        rc_augment=args.rc_augment,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    test = None if args.no_test else dataset.get("test")
    print(
        f"BPNet {args.variant} on {args.benchmark}/{task.name} ({device}): {len(dataset['train'])} training sequences"
        + ("" if test is None else f", {len(test)} test sequences")
        + f", {args.folds or 'no'} folds"
    )
    started = time.perf_counter()
    state_path = args.out.with_name(args.out.name + ".progress.json")
    result = evaluate_task(
        args.variant,
        task,
        dataset["train"]["sequence"],
        dataset["train"]["label"],
        None if test is None else test["sequence"],
        None if test is None else test["label"],
        n_folds=args.folds,
        config=config,
        state_path=state_path,
    )
    if args.model_name:
        result = dataclasses.replace(result, model=args.model_name)
    result.extra["seconds"] = round(time.perf_counter() - started, 1)
    result.extra["threads"] = args.threads
    save_results([result], args.out, overwrite=args.overwrite)
    state_path.unlink(missing_ok=True)
    summary = [f"{result.n_params:,} parameters"]
    if result.fold_scores:
        summary.append(f"CV {result.metric} {result.mean:.4f} ± {result.two_sd:.4f}")
    if result.test_score is not None:
        summary.append(f"test {result.metric} {result.test_score:.4f}")
    print(f"{'; '.join(summary)}; {result.extra['seconds']:.0f} s; wrote {args.out}")
    return 0
