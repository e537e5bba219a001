"""Pretraining for Nucleotide Transformer models: genome streams, haplotypes, MLM masking, schedule, Trainer.

- :mod:`.genome`: FASTA readers (indexed with pysam, or streamed) and the NT chunking rules.
- :mod:`.haplotypes`: haplotypes from a reference and a phased VCF (``bcftools consensus -H 1pIu/2pIu``).
- :mod:`.data`: the token stream (``GenomeMLMDataset``) mixing genomes by weight, and the unigram baseline.
- :mod:`.collator`: the 80/10/10 masking collator. :mod:`.schedule`: warm-up + square-root decay.
- :mod:`.tokens`: the token layout of each generation (6-mers for v1/v2, single bases for v3);
  :mod:`.curriculum`: the NT v3 record-length curriculum.
- :mod:`.trainer`: ``PretrainingConfig`` and ``run_pretraining`` on ``transformers.Trainer``.
"""

from __future__ import annotations

from .collator import NTMaskingCollator
from .curriculum import LengthCurriculum
from .data import GenomeMLMDataset, GenomeSource, token_unigram_baseline
from .genome import (
    ChunkingConfig,
    GenomeReader,
    GenomeRecord,
    Region,
    normalize_genome_sequence,
    parse_region,
)
from .haplotypes import HaplotypeReader, HaplotypeStats, build_haplotype, write_haplotypes
from .schedule import WarmupSqrtDecay, warmup_sqrt_decay
from .trainer import (
    DEMO_CONFIG,
    DEMO_V3_CONFIG,
    PretrainingConfig,
    build_trainer,
    plot_loss_curve,
    run_pretraining,
    unigram_baseline,
)

__all__ = [
    "DEMO_CONFIG",
    "DEMO_V3_CONFIG",
    "ChunkingConfig",
    "GenomeMLMDataset",
    "GenomeReader",
    "GenomeRecord",
    "GenomeSource",
    "HaplotypeReader",
    "HaplotypeStats",
    "LengthCurriculum",
    "NTMaskingCollator",
    "PretrainingConfig",
    "Region",
    "WarmupSqrtDecay",
    "build_haplotype",
    "build_trainer",
    "normalize_genome_sequence",
    "parse_region",
    "plot_loss_curve",
    "run_pretraining",
    "token_unigram_baseline",
    "unigram_baseline",
    "warmup_sqrt_decay",
    "write_haplotypes",
]
