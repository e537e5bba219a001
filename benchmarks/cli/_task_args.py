"""The task of `nt probe`, `nt finetune` and `nt bpnet`: a benchmark task or the user's own files (one home).

:func:`add_task_source_arguments` adds ``--benchmark``/``--task``/``--data-dir`` and the user-file flags
(``--train FILE [--test FILE]``, ``--test-fraction``, ``--sequence-column``, ``--label-column``,
``--task-type``); :func:`load_task_from_args` checks that exactly one of the two ways is used and returns the
task's ``DatasetDict`` and :class:`~benchmarks.tasks.TaskSpec` (:func:`benchmarks.builders.load_task` or
:func:`benchmarks.user_tasks.load_user_task`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..tasks import BENCHMARKS, TASK_TYPES
from . import UserError
from ._args import fraction

#: Held out from a single ``--train`` file as the test split unless ``--test-fraction`` says otherwise.
DEFAULT_TEST_FRACTION = 0.1
USER_FILE_FLAGS = ("test", "test_fraction", "sequence_column", "label_column", "task_type")


def add_task_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--benchmark/--task [--data-dir]``, or ``--train FILE [--test FILE]`` with the user-file options."""
    parser.add_argument(
        "--benchmark", choices=BENCHMARKS, help="benchmark of the task (or give --train FILE)"
    )
    parser.add_argument(
        "--task",
        help="task name (see `nt data tasks`; GUE: any task folder name); with --train: the task's name in the "
        "results (default: the --train file's name)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="local data folder (default: the Hub)")
    own = parser.add_argument_group(
        "your own data (instead of --benchmark): CSV, TSV, parquet or FASTA >name|label, plain or .gz"
    )
    own.add_argument("--train", type=Path, metavar="FILE", help="labelled training sequences")
    own.add_argument("--test", type=Path, metavar="FILE", help="labelled test sequences (default: held out)")
    own.add_argument(
        "--test-fraction",
        type=fraction,
        default=None,
        metavar="F",
        help=f"share of a single --train file held out as the test split, stratified, seeded by --seed (default "
        f"{DEFAULT_TEST_FRACTION}; 0: cross-validation only)",
    )
    own.add_argument(
        "--sequence-column", metavar="NAME", help="table column of the sequences (default: sequence or seq)"
    )
    own.add_argument(
        "--label-column", metavar="NAME", help="table column of the labels (default: label or labels)"
    )
    own.add_argument(
        "--task-type",
        choices=TASK_TYPES,
        help="default: integer labels 0..K-1 are classes, other numbers a regression target",
    )


def load_task_from_args(args: argparse.Namespace, splits: tuple[str, ...] | None = None):
    """The task of the command line: ``(DatasetDict, TaskSpec)``; sets ``args.task`` and ``args.benchmark``
    (``"user"`` for files) for the results.

    Raises:
        UserError: both or neither of ``--train`` and ``--benchmark``, or a flag of the other way.
    """
    if args.train is not None:
        if args.benchmark is not None or args.data_dir is not None:
            flag = "--benchmark" if args.benchmark is not None else "--data-dir"
            raise UserError(
                f"--train and {flag} are mutually exclusive: give the task either as files (--train FILE "
                "[--test FILE]) or as --benchmark/--task [--data-dir]"
            )
        return _user_task(args, splits)
    given = [f"--{flag.replace('_', '-')}" for flag in USER_FILE_FLAGS if getattr(args, flag) is not None]
    if given:
        raise UserError(f"{', '.join(given)} only apply to a task given as files (--train FILE)")
    if args.benchmark is None or args.task is None:
        raise UserError(
            "no task: give --benchmark and --task (a benchmark task), or --train FILE (your own labelled sequences)"
        )
    from benchmarks.builders import load_task, resolve_task

    spec = resolve_task(args.benchmark, args.task, args.data_dir, splits)
    return load_task(args.benchmark, args.task, args.data_dir, args.cache_dir, splits), spec


def _user_task(args: argparse.Namespace, splits: tuple[str, ...] | None):
    from benchmarks.tasks import USER_BENCHMARK
    from benchmarks.user_tasks import load_user_task, task_name_of, user_task_spec

    if args.test is not None and args.test_fraction:
        raise UserError("--test and --test-fraction are mutually exclusive: a test file or a held-out share")
    wants_test = splits is None or "test" in splits
    test_fraction = args.test_fraction
    if test_fraction is None or not wants_test:  # bpnet --no-test: every record trains
        test_fraction = DEFAULT_TEST_FRACTION if args.test is None and wants_test else 0.0
    dataset = load_user_task(
        args.train,
        args.test if wants_test else None,
        name=args.task,
        sequence_column=args.sequence_column,
        label_column=args.label_column,
        task_type=args.task_type,
        test_fraction=test_fraction,
        seed=args.seed,
    )
    spec = user_task_spec(dataset, args.task or task_name_of(args.train))
    args.task, args.benchmark = spec.name, USER_BENCHMARK
    return dataset, spec
