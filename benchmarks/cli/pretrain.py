"""`nt pretrain`: NT masked-LM pretraining on transformers.Trainer (config file and/or flags, --resume).

Several processes: ``torchrun --nproc_per_node N .venv/bin/nt pretrain --config FILE.yaml`` (CPU gloo or GPU
nccl; multi-node: add ``--nnodes``, ``--node_rank``, ``--master_addr``). DeepSpeed ZeRO: ``--deepspeed zero2``
(or ``zero3`` or a JSON path), always under torchrun.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._args import (
    check_writable,
    hub_repo_id,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)

#: Flags that override a config field of the same name (dashes -> underscores).
_OVERRIDES = {
    "--preset": str,
    "--output-dir": str,
    "--max-steps": positive_int,
    "--per-device-batch-size": positive_int,
    "--tokens-per-update": positive_int,
    "--gradient-accumulation-steps": positive_int,
    "--init-lr": non_negative_float,
    "--peak-lr": positive_float,
    "--warmup-steps": non_negative_int,
    "--chunk-length": positive_int,
    "--max-tokens": positive_int,
    "--logging-steps": positive_int,
    "--eval-steps": positive_int,
    "--save-steps": positive_int,
    "--seed": non_negative_int,
    "--precision": str,
    "--deepspeed": str,
    "--report-to": str,
    "--random-replace-prob": probability,
    "--torch-threads": positive_int,
}


def curriculum_stages(text: str) -> list[list[int]]:
    """``"0:1024,400:4096"`` -> ``[[0, 1024], [400, 4096]]`` (the stages' rules are checked with the config)."""
    stages = []
    for part in text.split(","):
        step, _, length = part.strip().partition(":")
        if not (step.strip().isdigit() and length.strip().isdigit()):
            raise argparse.ArgumentTypeError(
                f"expected STEP:LENGTH_BP stages separated by commas (e.g. 0:1024,400:4096), got {part.strip()!r}"
            )
        stages.append([int(step), int(length)])
    return stages


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain an NT model with masked language modelling (Trainer)",
        description="Pretrain an NT preset on genome FASTA files with the NT MLM recipe (NT v3 presets such as "
        "tiny-v3 or ntv3-8m-pre: single-base tokens and a record-length curriculum). Settings come from "
        "--config (YAML; see modeling_nt/pretraining/configs/example.yaml) and are overridden by flags.",
    )
    parser.add_argument("--config", type=Path, help="YAML file of PretrainingConfig fields")
    parser.add_argument(
        "--train-genome", action="append", help="training FASTA (repeatable; replaces the config's)"
    )
    parser.add_argument("--held-out", action="append", help="held-out region or contig (repeatable)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in the output dir"
    )
    parser.add_argument("--gradient-checkpointing", action="store_true", default=None)
    parser.add_argument(
        "--length-curriculum",
        type=curriculum_stages,
        metavar="STEP:BP,...",
        help="NT v3 presets: record length (bp) from each optimizer step on, e.g. 0:1024,400:4096 (overrides "
        "the config's length_curriculum)",
    )
    for flag, kind in _OVERRIDES.items():
        parser.add_argument(flag, type=kind, help=f"overrides the config's {flag[2:].replace('-', '_')}")
    parser.add_argument(
        "--push-to-hub",
        type=hub_repo_id,
        metavar="REPO_ID",
        help="after the run, upload OUTPUT_DIR/final to this Hub repository (as `nt push`; card without results)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modeling_nt.pretraining import PretrainingConfig, run_pretraining

    overrides = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag in _OVERRIDES}
    overrides.update(
        train_genomes=[str(Path(path).resolve()) for path in args.train_genome]
        if args.train_genome
        else None,
        held_out=args.held_out,
        length_curriculum=args.length_curriculum,
        resume=args.resume or None,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    if args.config:
        config = PretrainingConfig.from_yaml(args.config, **overrides)
    else:
        config = PretrainingConfig.from_mapping(
            {key: value for key, value in overrides.items() if value is not None}, source="command line"
        )
    check_writable(config.output_dir, "--output-dir" if args.output_dir else "output_dir")
    from benchmarks.progress import is_terminal, trainer_progress_callback

    # On a terminal the Trainer draws its tqdm bar; in a log, step lines with the time left.
    callbacks = [] if is_terminal() else [trainer_progress_callback("pretrain")]
    results = run_pretraining(config, callbacks=callbacks)
    _end_distributed()
    if "config" not in results:  # not the main process of a multi-process run
        return 0
    print_summary(results)
    if args.push_to_hub:
        from benchmarks.publish import push_checkpoint

        final = Path(results["config"]["output_dir"]) / "final"
        print(push_checkpoint(final, args.push_to_hub).summary())
    return 0


def _end_distributed() -> None:
    """Tear down the process group of a torchrun launch (avoids NCCL leak warnings and a non-zero exit)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def print_summary(results: dict) -> None:
    """One table of the held-out metrics against the unigram baseline (6-mers for NT v1/v2, nucleotides for v3:
    of the training split, and of the held-out tokens themselves where recorded)."""
    baseline = results["baseline"]
    name = results.get("baseline_name", "6-mer unigram")
    print(
        f"\nsteps {results['global_step']}  processes {results['world_size']}  "
        + ("(reused)" if results.get("reused") else "")
    )
    if "masked_loss" in results:
        held = results.get("held_out_baseline")
        print(f"{'':28}{'held-out model':>16}{name:>20}" + (f"{'(held-out freqs)':>18}" if held else ""))
        print(
            f"{'masked-token loss (nats)':28}{results['masked_loss']:>16.4f}{baseline['entropy_nats']:>20.4f}"
            + (f"{held['entropy_nats']:>18.4f}" if held else "")
        )
        print(
            f"{'masked-token accuracy':28}{results['masked_accuracy']:>16.4f}{baseline['accuracy']:>20.4f}"
            + (f"{held['accuracy']:>18.4f}" if held else "")
        )
        print(f"{'perplexity':28}{results['perplexity']:>16.2f}")
        print(f"beats the baseline: {results['beats_baseline']}")
        if held:
            print(f"beats the held-out frequencies: {results['beats_held_out_baseline']}")
    if results.get("length_curriculum"):
        stages = ", ".join(f"{length} bp from step {step}" for step, length in results["length_curriculum"])
        print(f"record lengths: {stages}")
    if results.get("loss_curve"):
        print(f"loss curve: {results['loss_curve']}")
    print(json.dumps({"results": str(Path(results["config"]["output_dir"]) / "results.json")}))
