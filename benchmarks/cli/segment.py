"""``nt segment train|predict``: SegmentNT fine-tuning on a FASTA + annotation, and tiled prediction of a region
(the work is in :mod:`benchmarks.segmentation`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.cli._args import (
    MODEL_HELP,
    check_writable_folder,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)


def _region(text: str):
    from modeling_nt.pretraining.genome import parse_region

    try:
        return parse_region(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="SegmentNT: fine-tune per-nucleotide genomic-element segmentation, or segment a region",
        description="Train SegmentNT (NT backbone + U-Net head) on a FASTA + GTF/GFF3/BED annotation, or predict "
        "per-nucleotide element probabilities over a region and write tracks.",
    )
    commands = parser.add_subparsers(dest="segment_command", metavar="{train,predict}", required=True)

    train = commands.add_parser(
        "train", help="fine-tune on windows of a genome; evaluate on held-out regions"
    )
    train.add_argument("--model", required=True, help=MODEL_HELP + "; or a SegmentNT preset / checkpoint")
    train.add_argument("--fasta", type=Path, required=True, help="genome FASTA (plain or gzip)")
    train.add_argument(
        "--annotation", type=Path, nargs="+", required=True, help="GTF / GFF3 / BED files (plain or gzip)"
    )
    train.add_argument("--out", type=Path, required=True, help="folder for results.json and the model")
    train.add_argument(
        "--held-out",
        type=_region,
        nargs="+",
        required=True,
        help="regions (CONTIG or CONTIG:START-END, 1-based) kept out of training and used for evaluation",
    )
    train.add_argument("--classes", nargs="+", help="class names (default: the 14 SegmentNT classes)")
    train.add_argument(
        "--method",
        choices=("full", "lora", "ia3"),
        default="full",
        help="full fine-tuning, or LoRA/IA3 adapters (peft) on the backbone with the head trained (default full)",
    )
    train.add_argument(
        "--loss",
        choices=("cross_entropy", "focal"),
        default="cross_entropy",
        help="per-nucleotide loss over absent/present (default cross_entropy)",
    )
    train.add_argument("--steps", type=positive_int, default=100, help="optimiser steps (default 100)")
    train.add_argument("--batch-size", type=positive_int, default=4, help="windows per step (default 4)")
    train.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (default 1e-3)")
    train.add_argument(
        "--warmup-steps",
        type=non_negative_int,
        default=0,
        help="linear learning-rate warmup steps (default 0)",
    )
    train.add_argument(
        "--window-tokens", type=positive_int, default=64, help="6-mer tokens per window (default 64: 384 nt)"
    )
    train.add_argument(
        "--train-windows",
        type=positive_int,
        default=256,
        help="windows drawn (seeded) outside --held-out to train on (default 256)",
    )
    train.add_argument(
        "--eval-windows",
        type=positive_int,
        default=32,
        help="windows tiling --held-out from its start that are evaluated (default 32; results.json records "
        "the evaluated nucleotides)",
    )
    train.add_argument("--threshold", type=probability, default=0.5, help="MCC threshold")
    train.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of window sampling and head init (default 0)"
    )
    train.set_defaults(func=run_train)

    predict = commands.add_parser("predict", help="segment a region: bedGraph/bigWig + BED tracks and a PNG")
    predict.add_argument(
        "--model", required=True, help="SegmentNT checkpoint folder (OUT/model of nt segment train) or preset"
    )
    predict.add_argument("--fasta", type=Path, required=True, help="genome FASTA (plain or gzip)")
    predict.add_argument(
        "--region",
        type=_region,
        help="CONTIG:START-END (1-based) or CONTIG (whole record); default: first record",
    )
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.add_argument("--format", choices=("bedgraph", "bigwig"), default="bedgraph")
    predict.add_argument(
        "--threshold", type=probability, default=0.5, help="BED intervals: probability >= this (default 0.5)"
    )
    predict.add_argument(
        "--window-tokens",
        type=positive_int,
        default=5000,
        help="6-mer tokens per window (default 5000: 30 kb; up to 8332 = 49,992 nt, where a checkpoint trained on "
        "30 kb gets the official rotary rescaling factor (tokens + 1) / 2048)",
    )
    predict.add_argument(
        "--overlap",
        type=non_negative_int,
        default=3000,
        help="nt shared by neighbour windows; each nucleotide is scored by the window whose centre is nearest "
        "(default 3000)",
    )
    predict.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1...")
    predict.set_defaults(func=run_predict)


def _check_paths(args: argparse.Namespace) -> None:
    from tokenization import require_file

    require_file(args.fasta, "FASTA")
    for path in getattr(args, "annotation", None) or ():
        require_file(path, "annotation")
    check_writable_folder(args.out)
    # finished (or half-written) outputs of an earlier run are never overwritten nor mixed with this run's
    patterns = ("results.json", "model") if args.segment_command == "train" else (
        "run.json", "tracks.png", "*.bed", "*.bedGraph", "*.bw"
    )  # fmt: skip
    found = sorted({path.name for pattern in patterns for path in Path(args.out).glob(pattern)})
    if found:
        from benchmarks.cli import UserError

        raise UserError(
            f"--out {args.out} already holds {', '.join(found[:4])}{' ...' if len(found) > 4 else ''} (outputs of "
            f"an earlier nt segment {args.segment_command}); choose another --out or delete them"
        )


def _fingerprint_run(model: str, **parts):
    """``fingerprint_run`` of a segment run; a SegmentNT preset (``segment_nt``, not an NT preset) goes under
    ``--model`` by name, as NT presets do."""
    from modeling_nt.configuration_segment_nt import PRESETS
    from modeling_nt.fingerprint import fingerprint_run

    if model in PRESETS and not Path(model).is_dir():
        inputs = {"--model": {"kind": "preset", "name": model}, **parts.pop("inputs", {})}
        return fingerprint_run(inputs=inputs, **parts)
    return fingerprint_run(model=model, **parts)


def run_train(args: argparse.Namespace) -> int:
    from benchmarks import segmentation as seg

    _check_paths(args)
    classes = seg.check_classes(args.classes)
    annotation = seg.read_annotation(args.annotation)
    genome = seg.read_genome(args.fasta, annotation.contigs())
    seg.check_annotation_matches(genome, annotation, " ".join(str(path) for path in args.annotation), classes)
    seg.check_held_out(genome, args.held_out)
    seg.window_length(args.window_tokens, seg.planned_num_downsamples(args.model))
    seg.check_every_class_annotated(genome, annotation, " ".join(str(p) for p in args.annotation), classes)
    model = seg.load_segmentation_model(args.model, classes, seed=args.seed, loss=args.loss)
    fingerprint = _fingerprint_run(
        args.model,
        inputs={"--fasta": args.fasta, **{f"--annotation[{i}]": p for i, p in enumerate(args.annotation)}},
        settings={
            k: getattr(args, k.lstrip("-").replace("-", "_"))
            for k in (
                "--held-out",
                "--classes",
                "--method",
                "--loss",
                "--steps",
                "--warmup-steps",
                "--lr",
                "--window-tokens",
                "--seed",
            )
        },
    )
    results = seg.train_segmentation(
        model,
        genome,
        annotation,
        args.out,
        classes=classes,
        window_tokens=args.window_tokens,
        held_out=args.held_out,
        method=args.method,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        train_windows=args.train_windows,
        eval_windows=args.eval_windows,
        seed=args.seed,
        threshold=args.threshold,
        warmup_steps=args.warmup_steps,
        fingerprint=fingerprint,
    )
    for name, entry in results["metrics"].items():
        if entry["mcc"] is None:
            print(f"{name}: no positives in the held-out windows")
        else:
            print(
                f"{name}: MCC {entry['mcc']:.3f} (prior {entry['prior_mcc']:.3f})  "
                f"AUPRC {entry['auprc']:.3f} (prior {entry['prior_auprc']:.3f})"
            )
    print(f"wrote {Path(args.out) / 'results.json'}", file=sys.stderr)
    return 0


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


def run_predict(args: argparse.Namespace) -> int:
    from benchmarks import segmentation as seg

    _check_paths(args)
    device = _device(args.device)
    seg.window_length(args.window_tokens, seg.planned_num_downsamples(args.model))
    genome = seg.read_genome(args.fasta, [args.region.contig] if args.region else None)
    record, start, end = seg.resolve_predict_region(genome, args.region)
    model = seg.load_segmentation_model(args.model).to(device)
    step = seg.KMER * 2 ** int(model.config.num_downsamples)  # a short region is read in shorter windows
    factor = seg.rescale_rotary_for_window(
        model, min(args.window_tokens, (end - start) // step * step // seg.KMER)
    )
    probs = seg.predict_region(
        model,
        record,
        start,
        end,
        window_tokens=args.window_tokens,
        overlap=args.overlap,
        version=model.config.tokenizer_version,
    )
    classes = list(model.config.features)
    files = seg.write_tracks(
        probs, record, start, classes, args.out, fmt=args.format, threshold=args.threshold
    )
    files.append(seg.plot_tracks(probs, record, start, classes, Path(args.out) / "tracks.png"))
    run = {
        "region": f"{record.contig}:{record.offset + start + 1}-{record.offset + end}",
        "classes": classes,
        "rotary_rescaling_factor": factor,
        "fingerprint": _fingerprint_run(
            args.model,
            inputs={"--fasta": args.fasta},
            settings={
                "--window-tokens": args.window_tokens,
                "--overlap": args.overlap,
                "--threshold": args.threshold,
            },
        ),
    }
    files.append(Path(args.out) / "run.json")
    files[-1].write_text(json.dumps(run, indent=2) + "\n")
    print(f"wrote {len(files)} files to {args.out}", file=sys.stderr)
    return 0
