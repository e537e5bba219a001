"""`nt push`: upload a checkpoint with its tokenizer, code files and model card to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import check_writable_folder, hub_repo_id


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a checkpoint (weights, tokenizer, code files, model card) to the Hugging Face Hub",
        description="Check CHECKPOINT_DIR (config, weights, code files, tokenizer; it must load), stage exactly "
        "what will be uploaded with a model card (rendered from --results with model-index and .eval_results/, "
        "else the checkpoint's README.md, else a card without results), then create REPO_ID if needed and "
        "upload (token from HF_TOKEN or `hf auth login`). --dry-run writes the staged folder and uploads nothing.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT_DIR", help="checkpoint folder")
    parser.add_argument("repo_id", type=hub_repo_id, metavar="REPO_ID", help="Hub repository, owner/name")
    parser.add_argument(
        "--results", nargs="+", type=Path, help="result JSON files or folders to render the model card from"
    )
    parser.add_argument(
        "--model-name", help="the model's name in --results (default: as benchmarks.results.model_name_of)"
    )
    parser.add_argument(
        "--card-size", help="size key of hub_cards/sizes.yaml (default: guessed from the name)"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to (created if needed; default main)")
    parser.add_argument("--commit-message", help="commit message (default: 'Upload ... with nt push')")
    parser.add_argument(
        "--dry-run",
        type=Path,
        metavar="OUT_DIR",
        help="write the staged folder into OUT_DIR (new); upload nothing",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.publish import push_checkpoint

    if args.dry_run is not None:
        if args.dry_run.exists():
            raise FileExistsError(
                f"--dry-run {args.dry_run}: exists; give a new folder for the staged upload"
            )
        check_writable_folder(args.dry_run, "--dry-run")
    staged = push_checkpoint(
        args.checkpoint,
        args.repo_id,
        results=args.results,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        dry_run_dir=args.dry_run,
        model_name=args.model_name,
        card_size=args.card_size,
    )
    print(staged.summary())
    if args.dry_run is not None:
        print(f"dry run: nothing uploaded to {args.repo_id}")
    return 0
