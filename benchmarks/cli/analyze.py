"""`nt analyze`: what a model learned, with plots: genomic elements in embeddings, attention per element,
masked-token reconstruction / perplexity, and scaling of benchmark scores (NT_SPEC section 7)."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

from . import UserError
from ._args import (
    MODEL_HELP,
    check_writable,
    fold_count,
    non_negative_int,
    open_unit,
    positive_int,
    positive_probability,
)
from .probe import add_model_name_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="model analyses with plots: elements, attention, reconstruction, scaling",
        description="Each analysis writes PNG plots and the numbers behind them (CSV/JSON) into --out; an "
        "existing result is not overwritten without --overwrite.",
    )
    commands = parser.add_subparsers(dest="analyze_command", metavar="ANALYSIS", required=True)
    _register_elements(commands)
    _register_attention(commands)
    _register_reconstruction(commands)
    _register_scaling(commands)


def _common(parser: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        parser.add_argument("--model", required=True, help=MODEL_HELP)
        add_model_name_argument(parser)
        parser.add_argument(
            "--batch-size", type=positive_int, default=8, help="sequences per forward pass (default 8)"
        )
        parser.add_argument(
            "--seed", type=non_negative_int, default=0, help="random seed of the sampling (default 0)"
        )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of a finished analysis")


def _genome_arguments(parser: argparse.ArgumentParser, annotation_required: bool) -> None:
    parser.add_argument("--fasta", type=Path, required=annotation_required, help="reference FASTA (indexed)")
    parser.add_argument(
        "--annotation",
        type=Path,
        required=annotation_required,
        help="gene annotation (.gtf / .gff3: element classes) or labelled regions (.bed, class in column 4)",
    )
    parser.add_argument(
        "--promoter-bp",
        type=positive_int,
        default=1000,
        help="promoter = this many bp upstream of each TSS (default 1000)",
    )


def _register_elements(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "elements",
        help="do the mean embeddings of each layer separate genomic element classes?",
        description="Sample windows of each element class (intergenic, promoter, intron, exon, 5UTR, 3UTR) from "
        "--fasta/--annotation, or read labelled sequences (--sequences TSV); embed them (mean over tokens) at "
        "each layer; score the separation per layer (silhouette, cross-validated logistic-regression accuracy; "
        "raw 6-mer counts as baseline) and map them to 2-D (UMAP if installed, else t-SNE).",
    )
    _common(parser)
    _genome_arguments(parser, annotation_required=False)
    parser.add_argument("--sequences", type=Path, help="TSV with a header, a 'sequence' and a class column")
    parser.add_argument(
        "--class-column", default="class", help="class column of --sequences (default 'class')"
    )
    parser.add_argument(
        "--layers",
        type=int,
        nargs="+",
        help="hidden-state indices (default: all; 0 = embeddings; NTv3: 0 = core input, the last = the "
        "base-resolution output)",
    )
    parser.add_argument(
        "--windows-per-class", type=positive_int, default=100, help="windows per class (default 100)"
    )
    parser.add_argument(
        "--window-bp", type=positive_int, default=200, help="window length in bp (default 200)"
    )
    parser.add_argument("--folds", type=fold_count, default=5, help="cross-validation folds (default 5)")
    parser.add_argument(
        "--projection", choices=("umap", "tsne"), help="2-D map method (default: umap if installed)"
    )
    parser.set_defaults(func=run_elements)


def _register_attention(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "attention",
        help="per layer and head, attention share on each element type vs its token share",
        description="Sample windows holding at least two element classes; for each layer and head, compare the "
        "share of attention on tokens of each class with the share of those tokens (two-sided Wilcoxon over "
        "windows, Benjamini-Hochberg correction); heads x layers enrichment heatmaps. NTv3 models attend between "
        "the core's blocks of 2**num_downsamples bases: blocks take the place of tokens.",
    )
    _common(parser)
    _genome_arguments(parser, annotation_required=True)
    parser.add_argument("--windows", type=positive_int, default=100, help="number of windows (default 100)")
    parser.add_argument(
        "--window-bp", type=positive_int, default=3000, help="window length in bp (default 3000)"
    )
    parser.add_argument("--alpha", type=open_unit, default=0.05, help="false discovery rate (default 0.05)")
    parser.set_defaults(func=run_attention, batch_size=4)


def _register_reconstruction(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "reconstruction",
        help="masked-token accuracy and perplexity, overall, per region class and at variant sites",
        description="Mask tokens (15% at random, or every token in turn) of windows of --fasta and report the "
        "accuracy and perplexity of the predictions overall, per class of --regions (BED names, or GTF/GFF3 "
        "element classes; windows are then centred on region bases) and at the SNVs of --vcf.",
    )
    _common(parser)
    parser.add_argument("--fasta", type=Path, required=True, help="reference FASTA (indexed)")
    parser.add_argument(
        "--regions", type=Path, help="region classes: .bed (class in column 4), .gtf or .gff3"
    )
    parser.add_argument("--region", action="append", help="evaluate exactly CHROM:START-END (repeatable)")
    parser.add_argument(
        "--promoter-bp", type=positive_int, default=1000, help="promoter length for a GTF/GFF3 (default 1000)"
    )
    parser.add_argument(
        "--windows", type=positive_int, default=50, help="number of sampled windows (default 50)"
    )
    parser.add_argument(
        "--window-bp", type=positive_int, default=1200, help="window length in bp (default 1200)"
    )
    parser.add_argument("--masking", choices=("random", "every"), default="random", help="masking mode")
    parser.add_argument(
        "--mask-rate", type=positive_probability, default=0.15, help="share of masked tokens (random mode)"
    )
    parser.add_argument("--vcf", type=Path, help="VCF: also score the reference token at each SNV")
    parser.add_argument(
        "--variant-window-bp", type=positive_int, default=600, help="window around each SNV (default 600)"
    )
    parser.set_defaults(func=run_reconstruction)


def _register_scaling(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "scaling",
        help="benchmark score against parameters and training tokens, one line per task group",
        description="Read BenchmarkResult JSON files (or folders), keep the best result per task, model and "
        "method, average per task group and plot against n_params and extra.training_tokens.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="result JSON files or folders of them")
    parser.add_argument(
        "--model-info", type=Path, help="JSON {model: {n_params, training_tokens}} for missing sizes"
    )
    parser.add_argument(
        "--paper-reference", action="store_true", help="add the paper's NT v1 mean MCC points"
    )
    _common(parser, model=False)
    parser.set_defaults(func=run_scaling)


def _analysis_command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Seed torch with ``--seed`` (reproducible preset models) and report an existing finished analysis
    (FileExistsError) as a one-line user error."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        check_writable(args.out)
        out = Path(args.out)
        before = set(out.iterdir()) if out.is_dir() else None
        _prepare_run(args)
        if getattr(args, "model", None):
            import torch

            torch.manual_seed(args.seed)  # reproducible weights of preset (random) models
        try:
            return run(args)
        except FileExistsError as error:
            raise UserError(str(error)) from None
        except (ValueError, OSError):
            _forget_refused_run(out, before)
            raise

    return wrapper


def _forget_refused_run(out: Path, before: set[Path] | None) -> None:
    """After a run refused before writing any output: remove the fingerprint it wrote (and ``out`` if this
    run created it), so a refused run leaves nothing behind. Anything an interrupted or partial run wrote is
    kept (it resumes)."""
    if not out.is_dir():
        return
    new = set(out.iterdir()) - (before or set())
    if new and all(path.name.startswith("fingerprint_") and path.is_file() for path in new):
        for path in new:
            path.unlink()
        if before is None and not any(out.iterdir()):
            out.rmdir()


#: Arguments that do not change an analysis' numbers: left out of its run fingerprint (``--batch-size``: padding
#: is masked; ``--model-name``: a label).
_NOT_FINGERPRINTED = {
    "out",
    "overwrite",
    "batch_size",
    "model",
    "model_name",
    "func",
    "command",
    "analyze_command",
}


def analysis_run_fingerprint(args: argparse.Namespace):
    """What determines an analysis' outputs: ``--model``, every input file (size and sha256) and every other
    argument but :data:`_NOT_FINGERPRINTED`."""
    from modeling_nt.fingerprint import fingerprint_run

    inputs, settings = {}, {}
    for key, value in sorted(vars(args).items()):
        if key in _NOT_FINGERPRINTED:
            continue
        flag = key if key == "results" else "--" + key.replace("_", "-")
        if isinstance(value, Path):
            inputs[flag] = value
        elif isinstance(value, list) and value and all(isinstance(item, Path) for item in value):
            inputs.update({f"{flag}[{index}]": item for index, item in enumerate(value)})
        else:
            settings[flag] = value
    return fingerprint_run(model=getattr(args, "model", None), inputs=inputs, settings=settings)


def _prepare_run(args: argparse.Namespace) -> None:
    """Check ``--out`` against the analysis' run fingerprint (finished, interrupted or another run's outputs)."""
    import importlib

    from benchmarks.analysis.outputs import prepare_run_dir

    module = importlib.import_module(f"benchmarks.analysis.{args.analyze_command}")
    prepare_run_dir(
        args.out,
        module.OUTPUT_FILES,
        args.overwrite,
        analysis_run_fingerprint(args),
        f"fingerprint_{args.analyze_command}.json",
    )


def _genome_labels(args: argparse.Namespace, annotation: Path):
    from benchmarks.analysis.annotation import read_annotation
    from benchmarks.variants.alleles import ReferenceGenome

    genome = ReferenceGenome(args.fasta)
    return genome, read_annotation(annotation, genome, args.promoter_bp)


def _report(out: Path, summary_file: str) -> None:
    print(f"wrote {out}/ (summary: {out / summary_file})")


@_analysis_command
def run_elements(args: argparse.Namespace) -> int:
    from benchmarks.analysis.annotation import sample_element_windows
    from benchmarks.analysis.elements import analyze_elements, read_labelled_sequences

    if args.sequences and (args.fasta or args.annotation):
        raise ValueError("give either --sequences, or --fasta with --annotation, not both")
    if args.sequences:
        names, sequences, classes = read_labelled_sequences(args.sequences, args.class_column)
    elif args.fasta and args.annotation:
        genome, labels = _genome_labels(args, args.annotation)
        windows = sample_element_windows(labels, genome, args.windows_per_class, args.window_bp, args.seed)
        names = [f"{w.chrom}:{w.start + 1}-{w.end}" for w in windows]
        sequences, classes = [w.sequence for w in windows], [w.label for w in windows]
    else:
        raise ValueError("give --fasta with --annotation, or --sequences")
    summary = analyze_elements(
        args.model,
        sequences,
        classes,
        args.out,
        names=names,
        layers=args.layers,
        batch_size=args.batch_size,
        folds=args.folds,
        method=args.projection,
        seed=args.seed,
        overwrite=args.overwrite,
        model_name=args.model_name,
    )
    print(f"best layer (CV accuracy): {summary['best_layer_cv_accuracy']}")
    _report(args.out, "element_scores.json")
    return 0


@_analysis_command
def run_attention(args: argparse.Namespace) -> int:
    from benchmarks.analysis.annotation import sample_mixed_windows
    from benchmarks.analysis.attention import analyze_attention

    genome, labels = _genome_labels(args, args.annotation)
    windows = sample_mixed_windows(labels, genome, args.windows, args.window_bp, args.seed)
    summary = analyze_attention(
        args.model,
        windows,
        labels.classes,
        args.out,
        batch_size=args.batch_size,
        alpha=args.alpha,
        overwrite=args.overwrite,
        model_name=args.model_name,
    )
    print(f"{summary['n_significant']} of {summary['n_tests']} (layer, head, class) tests significant")
    _report(args.out, "attention_summary.json")
    return 0


@_analysis_command
def run_reconstruction(args: argparse.Namespace) -> int:
    from benchmarks.analysis.annotation import (
        parse_region,
        region_window,
        sample_element_centred_windows,
        sample_mixed_windows,
        whole_genome_labels,
    )
    from benchmarks.analysis.reconstruction import analyze_reconstruction

    if args.regions:
        genome, labels = _genome_labels(args, args.regions)
    else:
        from benchmarks.variants.alleles import ReferenceGenome

        genome = ReferenceGenome(args.fasta)
        labels = whole_genome_labels(genome)
    if args.region:
        windows = [region_window(labels, genome, *parse_region(text, genome)) for text in args.region]
    elif args.regions:
        windows = sample_element_centred_windows(labels, genome, args.windows, args.window_bp, args.seed)
    else:
        windows = sample_mixed_windows(labels, genome, args.windows, args.window_bp, args.seed, min_classes=1)
    summary = analyze_reconstruction(
        args.model,
        windows,
        labels.classes,
        args.out,
        mode=args.masking,
        mask_rate=args.mask_rate,
        vcf=args.vcf,
        genome=genome,
        variant_window_bp=args.variant_window_bp,
        batch_size=args.batch_size,
        seed=args.seed,
        overwrite=args.overwrite,
        model_name=args.model_name,
    )
    overall = summary["groups"][0]
    print(f"overall: accuracy {overall['accuracy']:.4f}, perplexity {overall['perplexity']:.1f}")
    _report(args.out, "reconstruction.json")
    return 0


@_analysis_command
def run_scaling(args: argparse.Namespace) -> int:
    from benchmarks.analysis.scaling import analyze_scaling, read_model_info
    from benchmarks.results import load_results

    model_info = read_model_info(args.model_info) if args.model_info else None
    summary = analyze_scaling(
        load_results(args.results),
        args.out,
        model_info=model_info,
        paper_reference=args.paper_reference,
        overwrite=args.overwrite,
    )
    if summary["models_without_sizes"]:
        print(f"not plotted (no n_params / training_tokens): {', '.join(summary['models_without_sizes'])}")
    _report(args.out, "scaling.json")
    return 0
