"""`nt embed`: embeddings of the sequences of a FASTA file (resumable, data-parallel under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import (
    MODEL_HELP,
    check_not_an_input,
    check_writable,
    int_at_least,
    non_negative_int,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed the sequences of a FASTA file with an NT model",
        description="Embed every FASTA record (length-sorted batches, overlapping windows for sequences longer "
        "than the context). A killed run continues where it stopped; under torchrun / accelerate launch each "
        "process embeds a shard and rank 0 merges them in input order.",
        epilog="Several processes (GPUs, or CPU processes): "
        "torchrun --nproc_per_node N --no-python nt embed ... (or accelerate launch --multi_gpu "
        "--num_processes N --no_python nt embed ...).",
    )
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--fasta", required=True, type=Path, help="input FASTA (.fa, .fa.gz, bgzip)")
    parser.add_argument("--out", required=True, type=Path, help="output: FILE.parquet, or a folder for npy")
    parser.add_argument(
        "--layers",
        default=None,
        help="comma-separated hidden-state indices, 0 = embeddings (default: last). NTv3: 0..N are the "
        "transformer core's input and layer outputs, one vector per 2**num_downsamples bases; N+1 (= -1, the "
        "default) is the base-resolution output",
    )
    parser.add_argument(
        "--pooling",
        choices=["mean", "cls", "none"],
        default="mean",
        help="default mean (NTv3: mean over the real nucleotides; no cls)",
    )
    parser.add_argument(
        "--format", choices=["parquet", "npy"], default=None, help="default: parquet for *.parquet, else npy"
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=positive_int,
        default=None,
        help="token slots per forward pass, rows x padded width, <cls> included (default 1024 on CPU, 16384 "
        "on a GPU; windows are length-sorted, a longer window runs alone)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="at most this many windows per forward pass (default: no limit besides --max-batch-tokens)",
    )
    parser.add_argument(
        "--packing",
        action="store_true",
        help="pack short windows into shared rows (block-diagonal attention) instead of padding them; same "
        "values, slower on CPU, for GPUs with flex attention",
    )
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="compute dtype")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile (for GPUs: on CPU it measured 0.94-0.98x after ~13 s of "
        "compiling)",
    )
    parser.add_argument(
        "--overlap",
        type=non_negative_int,
        default=64,
        help="window overlap in tokens (default 64; at most half a window is used; NTv3: bases, rounded up to "
        "whole 2**num_downsamples blocks)",
    )
    parser.add_argument(
        "--window-tokens",
        type=int_at_least(2),
        default=None,
        help="tokens per window for long sequences, <cls> included, 2 to the model's maximum (default: the "
        "context the model was trained at, else its maximum; NTv3: bases, a multiple of 2**num_downsamples)",
    )
    parser.add_argument("--chunk-size", type=positive_int, default=1024, help="sequences per resumable part")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def parse_layers(text: str | None) -> list[int] | None:
    """``"6,12"`` -> ``[6, 12]``; None stays None."""
    if not text:
        return None
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"--layers must be comma-separated integers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from benchmarks.cli import UserError
    from benchmarks.embeddings import embed_fasta

    check_not_an_input(args.out, fasta=args.fasta)
    if args.out.exists():
        raise UserError(f"{args.out} exists (a finished run); remove it or choose another --out")
    check_writable(args.out)
    fmt = args.format or ("parquet" if args.out.suffix == ".parquet" else "npy")
    if fmt == "npy" and args.out.suffix == ".parquet":
        raise UserError(
            f"--out {args.out} names a parquet file, but --format npy writes a folder of .npy files"
        )
    out = embed_fasta(
        args.model,
        args.fasta,
        args.out,
        layers=parse_layers(args.layers),
        pooling=args.pooling,
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        packing=args.packing,
        compile_model=args.compile,
        dtype=args.dtype,
        fmt=fmt,
        overlap=args.overlap,
        window_tokens=args.window_tokens,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
    )
    if out is not None:
        print(f"embeddings written to {out}")
    return 0
