"""`nt convert`: turn an official NT checkpoint (ESM v1 Hub repo, v2 Hub repo or JAX folder) into ours."""

from __future__ import annotations

import argparse
from pathlib import Path

SOURCES = ("esm", "nt-v2-hub", "jax")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official NT checkpoint into a Hugging Face-native one",
        description="Convert an official NT checkpoint: 'esm' (v1 Hub repo loading with EsmForMaskedLM), "
        "'nt-v2-hub' (v2 Hub repo: config.json + weights) or 'jax' (jax_model/ folder with hyperparams.json "
        "and pytree_ckpt.joblib, a pickle: convert only files you trust). OUT gets config.json (full auto_map), "
        "model.safetensors, the tokenizer, the code files and conversion_report.json.",
    )
    parser.add_argument("--from", dest="source", choices=SOURCES, required=True, help="source layout")
    parser.add_argument("src", type=Path, help="source checkpoint folder")
    parser.add_argument("out", type=Path, help="output checkpoint folder (must be new or empty)")
    parser.add_argument(
        "--layer-norm-eps",
        type=float,
        default=None,
        help="override the LayerNorm epsilon (default: config.json's, or 1e-5 for jax as in Haiku)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modeling_nt.convert import convert_checkpoint

    report = convert_checkpoint(
        args.source, args.src, args.out, layer_norm_eps=args.layer_norm_eps, overwrite=args.overwrite
    )
    print(report.summary())
    print(f"  written to {args.out}")
    return 0
