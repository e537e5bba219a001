"""Zero-shot variant effect scoring from a reference FASTA and a VCF (NT_SPEC section 6).

- :mod:`.alleles`: VCF alleles, REF checks, contig names and the windows around each allele.
- :mod:`.scoring`: embedding distances and the masked-LM log-likelihood ratio of a window pair.
- :mod:`.runner`: whole-VCF runs into a resumable TSV, and a scored VCF.
- :mod:`.evaluation`: Spearman / AUROC of every score against labels, with a plot.
"""

from .alleles import (
    ReferenceGenome,
    RefMismatch,
    VariantAllele,
    VariantWindow,
    build_window,
    left_anchor,
    read_variant_alleles,
    reverse_complement,
)
from .evaluation import (
    LABEL_COLUMN_ALIASES,
    LabelMatch,
    evaluate_scores,
    match_labels,
    plot_evaluation,
    read_labels,
    variants_frame,
)
from .runner import RunSummary, default_window_bp, score_vcf, write_scored_vcf
from .scoring import (
    SCORE_NAMES,
    ScoringOptions,
    VariantScorer,
    embedding_scores,
    load_scoring_model,
    parse_layers,
    parse_scores,
    score_columns,
)

__all__ = [
    "LABEL_COLUMN_ALIASES",
    "SCORE_NAMES",
    "LabelMatch",
    "RefMismatch",
    "ReferenceGenome",
    "RunSummary",
    "ScoringOptions",
    "VariantAllele",
    "VariantScorer",
    "VariantWindow",
    "build_window",
    "default_window_bp",
    "embedding_scores",
    "evaluate_scores",
    "left_anchor",
    "load_scoring_model",
    "match_labels",
    "parse_layers",
    "parse_scores",
    "plot_evaluation",
    "read_labels",
    "read_variant_alleles",
    "reverse_complement",
    "score_columns",
    "score_vcf",
    "variants_frame",
    "write_scored_vcf",
]
