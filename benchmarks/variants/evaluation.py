"""Evaluate zero-shot variant scores against measured effects or binary labels.

The labels file is a CSV or TSV with a label column (``label`` unless told otherwise) and either the
columns ``chrom, pos, ref, alt`` (contig names are compared without a ``chr`` prefix) or an ``id`` column
matching the VCF ID (``.`` matches nothing). Column names are matched through :data:`LABEL_COLUMN_ALIASES`
(``Chrom``, ``#CHROM``, ``chromosome``, ``Position``, ClinVar's ``PositionVCF`` ...). Alleles written with
``-`` (MPRA / ClinVar exports) are left-anchored against the reference, as the VCF's are
(:func:`~benchmarks.variants.alleles.left_anchor`), so that both sides compare in VCF form.

Every label is accounted for (:class:`LabelMatch`): matched to a scored allele, to a skipped one, or to no
allele of the run; a labels file that matches no allele at all is an error. Binary labels (only 0 and 1) are
scored with AUROC, other labels with Spearman correlation, per score column (so per score, region and
layer). AUROC is reported as computed: for similarity scores (cosine, dot) a larger effect gives a lower
score, so values under 0.5 are informative.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .alleles import EMPTY_ALLELE, ReferenceGenome, VariantAllele, left_anchor
from .runner import BASE_COLUMNS

_COLUMN_PATTERN = re.compile(r"(?P<score>[a-z0-9]+)_(?P<region>[a-z]+)_L(?P<layer>\d+)")
_VARIANT_KEY = ["chrom", "pos", "ref", "alt"]
#: Spellings of the labels file's key columns, compared lower-cased with ``#``, spaces, ``-`` and ``_``
#: removed (``Chrom``, ``CHROM``, ``#CHROM`` are all ``chrom``). Where a file has several, the first listed
#: wins (ClinVar's ``ReferenceAlleleVCF`` over its ``ReferenceAllele``). One home: extend it here.
LABEL_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "chrom": ("chrom", "chr", "chromosome", "contig", "seqname"),
    "pos": ("pos", "position", "positionvcf", "pos1based"),
    "ref": ("ref", "referenceallelevcf", "refallele", "referenceallele", "reference"),
    "alt": ("alt", "alternateallelevcf", "altallele", "alternateallele", "alternate", "alternative"),
    "id": ("id", "rsid", "variantid", "snpid"),
}
_SHOWN_UNMATCHED = 5


@dataclass(frozen=True)
class LabelMatch:
    """How the labelled variants of a labels file met the alleles of a run (every label is counted once)."""

    path: str
    key: tuple[str, ...]
    labels: int
    scored: int
    skipped: int
    unmatched: int
    unmatched_examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        examples = f" (e.g. {', '.join(self.unmatched_examples)})" if self.unmatched else ""
        return (
            f"{self.path}: {self.labels} labelled variants: {self.scored} matched a scored allele, "
            f"{self.skipped} a skipped allele, {self.unmatched} no allele of the VCF{examples}"
        )


def _plain(name: str) -> str:
    return re.sub(r"[#\s_\-]", "", str(name)).lower()


def _canonical_columns(path: Path, columns: Iterable[str], label_column: str) -> dict[str, str]:
    """File column -> canonical name (chrom, pos, ref, alt, id, label) through the alias table."""
    by_plain: dict[str, str] = {}
    for column in columns:
        if _plain(column) in by_plain:
            raise ValueError(
                f"{path}: columns {by_plain[_plain(column)]!r} and {column!r} have the same name"
            )
        by_plain[_plain(column)] = column
    label = label_column if label_column in columns else by_plain.get(_plain(label_column))
    if label is None:
        raise ValueError(f"{path}: no column {label_column!r} (columns: {', '.join(map(str, columns))})")
    renames = {label: "label"}
    for name, aliases in LABEL_COLUMN_ALIASES.items():
        found = next((by_plain[a] for a in aliases if a in by_plain and by_plain[a] != label), None)
        if found is not None:
            renames[found] = name
    return renames


def read_labels(
    path: str | Path, label_column: str = "label", genome: ReferenceGenome | None = None
) -> pd.DataFrame:
    """The labels table with canonical columns ``chrom, pos, ref, alt`` and/or ``id``, and ``label``.

    Column names go through :data:`LABEL_COLUMN_ALIASES`; ``chrom`` loses a ``chr`` prefix, ``ref``/``alt``
    are upper-cased and, with ``genome``, alleles written with ``-`` are left-anchored. Raises
    FileNotFoundError, or ValueError naming the file (and line) for missing columns, non-integer positions
    or a label column without numbers.
    """
    from tokenization import require_file

    path = require_file(path, "labels")
    try:
        raw = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        csv.Error,
        UnicodeDecodeError,
        ValueError,
    ) as error:
        raise ValueError(f"{path}: not a CSV/TSV labels table ({str(error).splitlines()[0]})") from error
    labels = raw.rename(columns=_canonical_columns(path, list(raw.columns), label_column))
    labels = labels[[c for c in (*_VARIANT_KEY, "id", "label") if c in labels.columns]]
    if not set(_VARIANT_KEY) <= set(labels.columns) and "id" not in labels.columns:
        raise ValueError(
            f"{path}: needs the columns chrom,pos,ref,alt (or Chrom,Pos,Ref,Alt, #CHROM, position ...) or an id "
            f"column to match the variants (columns: {', '.join(raw.columns)})"
        )
    labels["label"] = pd.to_numeric(labels["label"], errors="coerce")
    if labels["label"].isna().all():
        raise ValueError(f"{path}: column {label_column!r} holds no numbers (expected 0/1 labels or effects)")
    if set(_VARIANT_KEY) <= set(labels.columns):
        labels = _variant_columns(path, labels, genome)
    return labels


def _variant_columns(path: Path, labels: pd.DataFrame, genome: ReferenceGenome | None) -> pd.DataFrame:
    positions = pd.to_numeric(labels["pos"].str.strip(), errors="coerce")
    bad = positions.isna() | (positions % 1 != 0) | (positions < 1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        value = labels["pos"].iloc[line - 2]
        raise ValueError(f"{path}: line {line}: position {value!r} is not a positive integer")
    labels = labels.assign(
        chrom=labels["chrom"].str.strip().str.removeprefix("chr"),
        pos=positions.astype(int),
        ref=labels["ref"].str.strip().str.upper(),
        alt=labels["alt"].str.strip().str.upper(),
    )
    if genome is not None:
        empty = (labels["ref"] == EMPTY_ALLELE) | (labels["alt"] == EMPTY_ALLELE)
        for index in labels.index[empty]:
            row = labels.loc[index]
            allele = left_anchor(
                VariantAllele(-1, row["chrom"], int(row["pos"]), ".", row["ref"], row["alt"]), genome
            )
            labels.loc[index, ["pos", "ref", "alt"]] = [allele.pos, allele.ref, allele.alt]
        labels["pos"] = labels["pos"].astype(int)
    return labels


def match_labels(
    labels: pd.DataFrame, variants: pd.DataFrame, labels_path: str | Path
) -> tuple[pd.DataFrame, LabelMatch]:
    """Join labels (from :func:`read_labels`) to the alleles of a run and count what matched.

    ``variants``: one row per allele with ``chrom`` (any ``chr`` prefix is ignored), ``pos``, ``ref``,
    ``alt``, ``id`` and ``status`` (``scored``/``skipped``). Returns the label rows joined to their scored
    alleles (all variant columns kept) and the :class:`LabelMatch`. Raises a ValueError naming the file when
    no label matches an allele, when the matched alleles are all skipped, or when labels are given twice.
    """
    key = _VARIANT_KEY if set(_VARIANT_KEY) <= set(labels.columns) else ["id"]
    total = len(labels)
    if key == ["id"]:  # a missing ID ('.') identifies nothing
        labels = labels[~labels["id"].isin([".", ""]) & labels["id"].notna()]
    duplicated = labels[labels.duplicated(key)]
    if not duplicated.empty:
        raise ValueError(
            f"{labels_path}: variant {_describe_label(duplicated.iloc[0], key)} is labelled more than once"
        )
    variants = variants.assign(chrom=variants["chrom"].astype(str).str.removeprefix("chr"))
    status = variants.groupby(key)["status"].agg(
        lambda values: "scored" if "scored" in set(values) else "skipped"
    )
    found = labels.merge(status.rename("match").reset_index(), on=key, how="left")["match"]
    counts = found.value_counts()
    unmatched = total - int(counts.sum())
    missing = labels[found.isna().to_numpy()]
    examples = tuple(_describe_label(row, key) for _, row in missing.head(_SHOWN_UNMATCHED).iterrows())
    match = LabelMatch(
        path=str(labels_path),
        key=tuple(key),
        labels=total,
        scored=int(counts.get("scored", 0)),
        skipped=int(counts.get("skipped", 0)),
        unmatched=unmatched,
        unmatched_examples=examples,
    )
    if match.scored + match.skipped == 0:
        first = variants.iloc[0] if len(variants) else None
        seen = f"; the first allele of the run is {_describe_label(first, key)}" if first is not None else ""
        raise ValueError(
            f"{labels_path}: none of its {total} labels matches an allele of the VCF on {','.join(key)} "
            f"(first label {examples[0] if examples else '-'}{seen}); check the contig names, the "
            "coordinate base (1-based like VCF) and the assembly"
        )
    if match.scored == 0:
        raise ValueError(
            f"{labels_path}: its {total} labels match only alleles that are skipped (not scored), so there is "
            "nothing to evaluate; see the note column of the output for the reasons"
        )
    scored = variants[variants["status"] == "scored"]
    return scored.merge(labels[[*key, "label"]], on=key, how="inner"), match


def variants_frame(alleles: Iterable[VariantAllele]) -> pd.DataFrame:
    """Alleles read from a VCF as the ``variants`` table of :func:`match_labels`, before scoring: ``status``
    is ``skipped`` for alleles with a ``skip_reason`` (symbolic ALTs ...), else ``scored`` (expected)."""
    columns = ["chrom", "pos", "ref", "alt", "id", "status"]
    rows = [(a.chrom, a.pos, a.ref, a.alt, a.id, "skipped" if a.skip_reason else "scored") for a in alleles]
    return pd.DataFrame(rows, columns=columns)


def _describe_label(row: pd.Series, key: list[str]) -> str:
    if key == ["id"]:
        return repr(row["id"])
    return f"{row['chrom']}:{row['pos']} {row['ref']}>{row['alt']}"


def evaluate_scores(
    scores_tsv: str | Path,
    labels_path: str | Path,
    label_column: str = "label",
    fasta: str | Path | None = None,
) -> pd.DataFrame:
    """One row per score column: ``score, region, layer, column, metric, value, n``.

    ``fasta`` (the reference of the scores) left-anchors labels written with ``-``. The label accounting
    (:class:`LabelMatch`) is in ``result.attrs["label_match"]``. Raises a ValueError as :func:`match_labels`.
    """
    scores = pd.read_csv(scores_tsv, sep="\t", dtype={"chrom": str, "id": str, "ref": str, "alt": str})
    genome = ReferenceGenome(fasta) if fasta is not None else None
    try:
        labels = read_labels(labels_path, label_column, genome)
    finally:
        if genome is not None:
            genome.close()
    merged, match = match_labels(labels, scores, labels_path)
    binary = set(pd.unique(merged["label"].dropna())) <= {0, 1}
    rows = []
    for column in (c for c in scores.columns if c not in BASE_COLUMNS):
        pair = merged[[column, "label"]].dropna()
        value = _metric(pair[column].to_numpy(float), pair["label"].to_numpy(float), binary)
        rows.append(
            {
                **_describe(column),
                "column": column,
                "metric": "auroc" if binary else "spearman",
                "value": value,
                "n": len(pair),
            }
        )
    results = pd.DataFrame(rows)
    results.attrs["label_match"] = match
    return results


def _describe(column: str) -> dict[str, object]:
    match = _COLUMN_PATTERN.fullmatch(column)
    if match is None:
        return {"score": column, "region": "", "layer": -1}
    return {"score": match["score"], "region": match["region"], "layer": int(match["layer"])}


def _metric(score: np.ndarray, label: np.ndarray, binary: bool) -> float:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    if binary:
        return float(roc_auc_score(label, score)) if len(np.unique(label)) == 2 else float("nan")
    if len(score) < 3 or np.ptp(score) == 0 or np.ptp(label) == 0:
        return float("nan")
    return float(spearmanr(score, label).statistic)


def plot_evaluation(results: pd.DataFrame, path: str | Path) -> Path:
    """A line per score and region across layers (LLR, which has no layer, as a dashed line); PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    metric = results["metric"].iloc[0]
    figure, axes = plt.subplots(figsize=(7, 4))
    layered = results[results["layer"] >= 0]
    for (score, region), group in layered.groupby(["score", "region"]):
        group = group.sort_values("layer")
        axes.plot(group["layer"], group["value"], marker="o", label=f"{score} ({region})")
    for _, row in results[results["layer"] < 0].iterrows():
        axes.axhline(row["value"], linestyle="--", color="black", label=row["score"])
    axes.axhline(0.5 if metric == "auroc" else 0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("layer (hidden_states index)")
    axes.set_ylabel(metric.upper() if metric == "auroc" else "Spearman rho")
    axes.set_title(f"Zero-shot variant scores vs labels (n = {int(results['n'].max())})")
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
