"""`nt finetune`: cross-validated IA3 / LoRA / full fine-tuning on a benchmark task."""

from __future__ import annotations

import argparse

from ._args import hub_repo_id, positive_float, positive_int
from .probe import add_task_arguments, prepare


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a model (IA3, LoRA or full) on a benchmark task with cross-validation",
        description="Train one model per fold (Adam, constant lr, best validation checkpoint kept) and score it "
        "on the fold's held-out part and on the test split. Defaults are the paper's IA3 recipe; "
        "`nt finetune-params` prints the trainable-parameter report of a preset.",
    )
    add_task_arguments(parser)
    parser.add_argument("--method", choices=["ia3", "lora", "full"], default="ia3", help="default ia3")
    parser.add_argument(
        "--steps", type=positive_int, default=10_000, help="training steps per fold (default 10000)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="default 8")
    parser.add_argument("--lr", type=positive_float, default=3e-3, help="learning rate (default 3e-3)")
    parser.add_argument(
        "--eval-steps", type=positive_int, default=None, help="validation interval (default steps/10)"
    )
    parser.add_argument(
        "--pooling",
        choices=["cls", "mean"],
        default=None,
        help="head pooling (default: the checkpoint's; NTv3 models: mean over the real nucleotides only)",
    )
    parser.add_argument("--lora-rank", type=positive_int, default=8, help="LoRA rank (default 8)")
    parser.add_argument(
        "--push-to-hub",
        type=hub_repo_id,
        metavar="REPO_ID",
        help="after the run, upload the selected fold's model (adapter merged into the weights) with a card "
        "of the result to this Hub repository",
    )
    parser.set_defaults(func=run)
    add_report_parser(subparsers)


def add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """`nt finetune-params`: the trainable-parameter report of a preset."""
    parser = subparsers.add_parser(
        "finetune-params",
        help="trainable parameters and adapter size of IA3/LoRA/full on a preset (no weights allocated)",
    )
    parser.add_argument(
        "--model",
        default="nt-v2-50m-multi-species",
        help="preset name, checkpoint folder or Hub id (config only)",
    )
    parser.add_argument("--method", choices=["ia3", "lora", "full"], default="ia3")
    parser.add_argument("--num-labels", type=positive_int, default=2)
    parser.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    from benchmarks.finetune import format_parameter_report, parameter_report

    print(format_parameter_report(parameter_report(args.model, args.method, args.num_labels)))
    return 0


def run(args: argparse.Namespace) -> int:
    from benchmarks.finetune import run_finetuning
    from benchmarks.results import save_results

    if args.push_to_hub:  # the card must be renderable: checked before the task is read
        from benchmarks.publish import check_card_name
        from benchmarks.results import model_name_of
        from modeling_nt.loading import load_config

        load_config(args.model)  # a bad --model is named as such first
        try:
            check_card_name(args.model_name or model_name_of(args.model))
        except ValueError as error:
            raise ValueError(f"--push-to-hub {args.push_to_hub}: {error}") from None
    dataset, work_dir = prepare(args)
    if "test" not in dataset:
        from benchmarks.cli import UserError

        raise UserError(
            "fine-tuning scores the model of every fold on a test split: give --test FILE, or a --test-fraction "
            "above 0 to hold one out of --train"
        )
    results = run_finetuning(
        args.model,
        dataset,
        args.task,
        work_dir,
        method=args.method,
        benchmark=args.benchmark,
        model_name=args.model_name,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        eval_steps=args.eval_steps,
        folds=args.folds,
        pooling=args.pooling,
        lora_rank=args.lora_rank,
        seed=args.seed,
    )
    save_results(results, args.out)
    result = results[0]
    print(
        f"{result.method}: {result.metric} {result.mean:.3f} ± {result.two_sd:.3f} over {len(result.fold_scores)} "
        f"folds, test {result.test_score:.3f}; {result.trainable_params:,} trainable parameters"
    )
    print(f"results: {args.out}; adapters: {work_dir}")
    if args.push_to_hub:
        from benchmarks.publish import push_finetuned

        print(push_finetuned(args.model, result, work_dir, args.push_to_hub, pooling=args.pooling).summary())
    return 0
