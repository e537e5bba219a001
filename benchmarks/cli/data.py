"""`nt data`: list the benchmark tasks, export a task as parquet, push prepared tasks to a Hub dataset repo."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import check_writable_folder

BENCHMARK_CHOICES = ("original", "revised", "gue")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="downstream benchmark data: list, prepare (parquet), push")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    tasks = commands.add_parser("tasks", help="list the registered tasks of a benchmark")
    tasks.add_argument("--benchmark", choices=BENCHMARK_CHOICES, default="original")
    tasks.set_defaults(func=run_tasks)

    prepare = commands.add_parser(
        "prepare",
        help="check a task and export it as DIR/<split>.parquet",
        description="Build one task with its datasets builder (from --data-dir, or the Hub when online), check "
        "every record, print a per-split summary and write DIR/<split>.parquet.",
    )
    prepare.add_argument("--benchmark", choices=BENCHMARK_CHOICES, required=True)
    prepare.add_argument(
        "--task", required=True, help="task name (see `nt data tasks`), or a GUE folder name"
    )
    prepare.add_argument("--data-dir", type=Path, help="local data folder (default: download from the Hub)")
    prepare.add_argument("--out", type=Path, required=True, help="output folder for <split>.parquet")
    prepare.add_argument("--splits", nargs="+", help="splits to export (default: all of the benchmark's)")
    prepare.add_argument("--cache-dir", type=Path, help="datasets / Hub cache folder")
    prepare.add_argument("--overwrite", action="store_true", help="replace existing parquet files")
    prepare.set_defaults(func=run_prepare)

    push = commands.add_parser(
        "push",
        help="push prepared tasks to a Hub dataset repo, one config per task",
        description="DIR holds either <split>.parquet files (one task, config --config-name or DIR's name) or "
        "one sub-folder of them per task (config = sub-folder name).",
    )
    push.add_argument("dir", type=Path, help="folder written by `nt data prepare` (or a folder of them)")
    push.add_argument("--repo-id", required=True, help="Hub dataset repo, e.g. user/nt-downstream-tasks")
    push.add_argument("--config-name", help="config name when DIR holds a single task")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--dry-run", action="store_true", help="only print what would be pushed")
    push.set_defaults(func=run_push)


def run_tasks(args: argparse.Namespace) -> int:
    from benchmarks.tasks import TASKS

    for spec in TASKS[args.benchmark].values():
        labels = ", ".join(spec.class_names) if not spec.is_regression else "float"
        print(
            f"{spec.name:24s} {spec.group:10s} {spec.sequence_length:5d} bp  {spec.metric}  labels: {labels}"
        )
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from benchmarks.builders import format_summary, load_task, resolve_task, summarize
    from benchmarks.cli import UserError
    from benchmarks.tasks import SPLITS

    check_writable_folder(args.out)
    task = resolve_task(args.benchmark, args.task, args.data_dir, args.splits and tuple(args.splits))
    splits = args.splits or SPLITS[args.benchmark]
    existing = [
        str(args.out / f"{split}.parquet") for split in splits if (args.out / f"{split}.parquet").exists()
    ]
    if existing and not args.overwrite:  # checked before the (possibly long) build
        raise UserError(f"refusing to overwrite {', '.join(existing)} (pass --overwrite)")
    dataset = load_task(args.benchmark, args.task, args.data_dir, args.cache_dir, args.splits)
    targets = {split: args.out / f"{split}.parquet" for split in dataset}
    print(format_summary(task, summarize(dataset, task)))
    args.out.mkdir(parents=True, exist_ok=True)
    for split, path in targets.items():
        dataset[split].to_parquet(str(path))
        print(f"wrote {path}")
    return 0


def push_plan(folder: Path, config_name: str | None = None) -> dict[str, dict[str, str]]:
    """``{config name: {split: parquet file}}`` of a prepared folder (single task or one sub-folder per task)."""
    if folder.is_file():
        raise NotADirectoryError(f"{folder} is a file, not a folder: give the folder holding <split>.parquet")
    if not folder.is_dir():
        raise FileNotFoundError(f"prepared data folder not found: {folder}")
    single = {path.stem: str(path) for path in sorted(folder.glob("*.parquet"))}
    if single:
        return {config_name or folder.name: single}
    if config_name:
        raise ValueError(
            f"--config-name {config_name!r} names the one task of a folder of <split>.parquet files, but {folder} "
            "holds one sub-folder per task (each sub-folder's name is its config name)"
        )
    plan = {
        task.name: {path.stem: str(path) for path in sorted(task.glob("*.parquet"))}
        for task in sorted(folder.iterdir())
        if task.is_dir() and any(task.glob("*.parquet"))
    }
    if not plan:
        raise FileNotFoundError(f"{folder}: no <split>.parquet files, nor task sub-folders holding them")
    return plan


def run_push(args: argparse.Namespace) -> int:
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(args.repo_id)
    except ValueError as error:  # HFValidationError
        raise ValueError(f"--repo-id {args.repo_id!r}: {error}") from None
    plan = push_plan(args.dir, args.config_name)
    for config, files in plan.items():
        print(
            f"{args.repo_id} config {config}: {', '.join(f'{split}={path}' for split, path in files.items())}"
        )
    if args.dry_run:
        return 0
    import datasets

    for config, files in plan.items():
        dataset = datasets.load_dataset("parquet", data_files=files)
        dataset.push_to_hub(args.repo_id, config_name=config, private=args.private)
    return 0
