"""`nt score-variants`: zero-shot variant effect scores from a reference FASTA and a VCF."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ._args import MODEL_HELP, check_not_an_input, check_writable_file, non_negative_int, positive_int
from .probe import add_model_name_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score-variants",
        help="zero-shot variant effect scores (embedding distances, masked-LM LLR) for a VCF",
        description="Embed a window around every VCF allele from the reference and with the allele, and "
        "write one TSV row per allele with cosine/dot/L1/L2 scores per layer and the masked-LM log-likelihood "
        "ratio. Resumable: rerun the same command to continue; finished rows are never rewritten.",
    )
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    add_model_name_argument(parser)
    parser.add_argument("--fasta", required=True, type=Path, help="indexed reference FASTA (plain or BGZF)")
    parser.add_argument("--vcf", required=True, type=Path, help="input VCF (.vcf, .vcf.gz, .bcf)")
    parser.add_argument("--out", required=True, type=Path, help="output TSV, one row per allele")
    parser.add_argument(
        "--window",
        type=positive_int,
        help="window length in bp (default: the context the model was trained at, in full 6-mers: "
        "(tokens - 1) x 6, e.g. 12,282 bp for v2 models; at most the model's full context; NTv3: 32,768 bp, the "
        "NTv3 benchmark's input length (or its trained length where shorter), up to 1 Mb, N-padded to a "
        "multiple of 2**num_downsamples)",
    )
    parser.add_argument(
        "--layers",
        default="last",
        help="'last' (default), 'all' or indices such as 0,6,-1 (NTv3: 0..N the transformer core, N+1 = last "
        "the base-resolution output)",
    )
    parser.add_argument("--scores", default="cosine,dot,l1,l2,llr", help="comma-separated (default: all)")
    parser.add_argument(
        "--flank-tokens",
        type=non_negative_int,
        default=2,
        help="tokens on each side of the allele for the local scores (NTv3: bases)",
    )
    parser.add_argument(
        "--reverse-complement", action="store_true", help="average every score with the reverse strand"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="sequences per forward pass (default 8)"
    )
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--ref-mismatch",
        choices=["error", "skip"],
        default="error",
        help="REF alleles differing from the FASTA: stop (default) or write them as skipped rows",
    )
    parser.add_argument("--vcf-out", type=Path, help="also write the VCF with the scores as INFO fields")
    parser.add_argument(
        "--labels", type=Path, help="CSV/TSV of labels or measured effects to evaluate against"
    )
    parser.add_argument("--label-column", default="label", help="label column of --labels (default 'label')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.variants import (
        ScoringOptions,
        VariantScorer,
        load_scoring_model,
        parse_scores,
        score_vcf,
        write_scored_vcf,
    )

    if args.batch_size < 1 or args.flank_tokens < 0:
        raise ValueError("--batch-size must be at least 1 and --flank-tokens at least 0")
    for flag, out in (("--out", args.out), ("--vcf-out", args.vcf_out)):
        if out is not None:
            check_not_an_input(out, flag, vcf=args.vcf, fasta=args.fasta, labels=args.labels)
    if args.vcf_out and args.vcf_out.exists():
        raise ValueError(f"{args.vcf_out} already exists; choose another --vcf-out or delete it")
    check_writable_file(args.out)
    if args.vcf_out:
        check_writable_file(args.vcf_out, "--vcf-out")
    from benchmarks.inference import resolve_device
    from tokenization import require_file

    resolve_device(args.device)  # a device this machine lacks is refused before the model load
    for what, path in (("FASTA", args.fasta), ("VCF", args.vcf), ("labels", args.labels)):
        if path:  # checked before the (possibly slow) model load
            require_file(path, what)
    if args.labels:
        _check_labels(args)
    options = ScoringOptions(
        scores=parse_scores(args.scores),
        layers=args.layers,
        flank_tokens=args.flank_tokens,
        reverse_complement=args.reverse_complement,
        batch_size=args.batch_size,
    )
    model, tokenizer = load_scoring_model(args.model)
    scorer = VariantScorer(model, tokenizer, options, device=args.device)
    summary = score_vcf(
        scorer,
        args.fasta,
        args.vcf,
        args.out,
        window_bp=args.window,
        on_ref_mismatch=args.ref_mismatch,
        model=args.model,
    )
    print(
        f"{args.out}: {summary.scored} alleles scored, {summary.skipped} skipped, "
        f"{summary.already_done} already done"
    )
    for mismatch in summary.mismatches:
        print(f"  REF mismatch (skipped): {mismatch}")
    if args.vcf_out:
        print(f"wrote {write_scored_vcf(args.vcf, args.out, args.vcf_out, args.fasta)}")
    if args.labels:
        _evaluate(args)
    return 0


def _check_labels(args: argparse.Namespace) -> None:
    """Read --labels and match them to the VCF's alleles before the (long) scoring: unreadable labels, missing
    columns or labels that match no allele are refused now, not after the run."""
    from benchmarks.variants import (
        ReferenceGenome,
        match_labels,
        read_labels,
        read_variant_alleles,
        variants_frame,
    )

    genome = ReferenceGenome(args.fasta)
    try:
        labels = read_labels(args.labels, args.label_column, genome)
        variants = variants_frame(read_variant_alleles(args.vcf, genome))
    finally:
        genome.close()
    match_labels(labels, variants, args.labels)


def _evaluate(args: argparse.Namespace) -> None:
    from benchmarks.results import model_name_of
    from benchmarks.variants import evaluate_scores, plot_evaluation

    model_name = args.model_name or model_name_of(args.model)
    results = evaluate_scores(args.out, args.labels, args.label_column, args.fasta)
    match = results.attrs["label_match"]
    results.insert(0, "model", model_name)
    table_path = args.out.with_name(args.out.stem + ".eval.tsv")
    results.to_csv(table_path, sep="\t", index=False)
    json_path = args.out.with_name(args.out.stem + ".eval.json")
    json_path.write_text(
        json.dumps({"model": model_name, "label_column": args.label_column, **asdict(match)}, indent=2) + "\n"
    )
    plot_path = plot_evaluation(results, args.out.with_name(args.out.stem + ".eval.png"))
    print(f"labels {match}")
    print(results.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(f"wrote {table_path}, {json_path} and {plot_path}")
