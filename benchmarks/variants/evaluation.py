"""Evaluate zero-shot variant scores against measured effects or binary labels.

The labels file is a CSV or TSV with a label column (``label`` unless told otherwise) and either the
columns ``chrom, pos, ref, alt`` (contig names are compared without a ``chr`` prefix) or an ``id`` column
matching the VCF ID (``.`` matches nothing). Binary labels (only 0 and 1) are scored with AUROC, other labels with Spearman
correlation, per score column (so per score, region and layer). AUROC is reported as computed: for
similarity scores (cosine, dot) a larger effect gives a lower score, so values under 0.5 are informative.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .runner import BASE_COLUMNS

_COLUMN_PATTERN = re.compile(r"(?P<score>[a-z0-9]+)_(?P<region>[a-z]+)_L(?P<layer>\d+)")
_VARIANT_KEY = ["chrom", "pos", "ref", "alt"]


def read_labels(path: str | Path, label_column: str = "label") -> pd.DataFrame:
    """The labels table, with its key columns checked (``chrom`` without a ``chr`` prefix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    labels = pd.read_csv(path, sep=None, engine="python", dtype={"chrom": str, "id": str})
    if label_column not in labels.columns:
        raise ValueError(f"{path}: no column {label_column!r} (columns: {', '.join(labels.columns)})")
    if not set(_VARIANT_KEY) <= set(labels.columns) and "id" not in labels.columns:
        raise ValueError(f"{path}: needs the columns chrom,pos,ref,alt or an id column to match the variants")
    labels[label_column] = pd.to_numeric(labels[label_column], errors="coerce")
    if labels[label_column].isna().all():
        raise ValueError(f"{path}: column {label_column!r} holds no numbers (expected 0/1 labels or effects)")
    if "chrom" in labels.columns:
        labels["chrom"] = labels["chrom"].str.removeprefix("chr")
    return labels.rename(columns={label_column: "label"})


def evaluate_scores(
    scores_tsv: str | Path, labels_path: str | Path, label_column: str = "label"
) -> pd.DataFrame:
    """One row per score column: ``score, region, layer, column, metric, value, n``."""
    scores = pd.read_csv(scores_tsv, sep="\t", dtype={"chrom": str, "id": str, "ref": str, "alt": str})
    scores = scores[scores["status"] == "scored"].assign(
        chrom=lambda frame: frame["chrom"].str.removeprefix("chr")
    )
    labels = read_labels(labels_path, label_column)
    key = _VARIANT_KEY if set(_VARIANT_KEY) <= set(labels.columns) else ["id"]
    if key == ["id"]:  # a missing ID ('.') identifies nothing
        labels = labels[~labels["id"].isin([".", ""]) & labels["id"].notna()]
    duplicated = labels[labels.duplicated(key)]
    if not duplicated.empty:
        raise ValueError(
            f"{labels_path}: variant {duplicated.iloc[0][key].tolist()} is labelled more than once"
        )
    merged = scores.merge(labels[[*key, "label"]], on=key, how="inner")
    if merged.empty:
        raise ValueError(
            f"{labels_path}: no labelled variant matches a scored row of {scores_tsv} (on {key})"
        )
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
    return pd.DataFrame(rows)


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
