"""`nt convert`: turn an official NT checkpoint (ESM v1 Hub repo, v2 Hub repo or JAX folder), SegmentNT or NTv3
checkpoint (JAX export or Hub remote-code folder) into ours."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ._args import check_writable_folder, positive_float

#: ``modeling_nt.convert.FROM_CHOICES`` (not imported: building the parser stays torch-free; a test checks both).
FROM_CHOICES = (
    "esm",
    "nt-v2-hub",
    "jax",
    "auto",
    "segment-nt-jax",
    "segment-nt-hub",
    "ntv3",
    "ntv3-jax",
    "ntv3-hub",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official NT, SegmentNT or NTv3 checkpoint into a Hugging Face-native one",
        description="Convert an official NT checkpoint: 'esm' (v1 Hub repo loading with EsmForMaskedLM), "
        "'nt-v2-hub' (v2 Hub repo: config.json + weights), 'jax' (jax_model/ folder with hyperparams.json "
        "and pytree_ckpt.joblib, a pickle: convert only files you trust), 'auto' (the layout read from the "
        "files; the report names it), or SegmentNT: 'segment-nt-jax' (hyperparams.json with features + "
        "pytree_ckpt.joblib) / 'segment-nt-hub' (remote-code config.json + weights), or NTv3: 'ntv3' (either official layout, read from the files), 'ntv3-jax' (folder "
        "with params.npz, the official Flax parameters by '.'-joined path, and config.json, the official "
        "config fields: export snippet in modeling_nt/convert_ntv3.py) / 'ntv3-hub' (InstaDeepAI/NTv3_* "
        "remote-code folder: config.json + core.* weights). SRC is a folder or a Hub id (InstaDeepAI/<repo>: config and weight files "
        "are fetched through huggingface_hub, HF_HUB_OFFLINE honoured; no code is fetched). OUT gets "
        "config.json (full auto_map), model.safetensors, the tokenizer, the code files and "
        "conversion_report.json.",
    )
    parser.add_argument(
        "--from", dest="source", choices=FROM_CHOICES, required=True, help="source layout (auto: detect it)"
    )
    parser.add_argument("src", help="source checkpoint folder or Hub repository id (InstaDeepAI/<repo>)")
    parser.add_argument("out", type=Path, help="output checkpoint folder (must be new or empty)")
    parser.add_argument(
        "--layer-norm-eps",
        type=positive_float,
        default=None,
        help="override the LayerNorm epsilon (default: config.json's, or 1e-5 for jax as in Haiku)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modeling_nt.convert import convert_checkpoint

    check_writable_folder(args.out, "OUT")
    # warnings (the joblib pickle notice) are printed as one line each after a conversion that worked; a bad
    # input gets only its error line
    with warnings.catch_warnings(record=True) as caught:
        report = convert_checkpoint(
            args.source, args.src, args.out, layer_norm_eps=args.layer_norm_eps, overwrite=args.overwrite
        )
    for warning in caught:
        print(f"nt convert: warning: {warning.message}", file=sys.stderr)
    print(report.summary())
    print(f"  written to {args.out}")
    return 0
