"""Unsupervised detection of genomic elements: do the mean embeddings of each layer separate element classes?

For labelled sequences (windows of intergenic, promoter, intron, exon, 5'UTR, 3'UTR regions, or any classes),
each layer's mean embeddings (:func:`benchmarks.embeddings.embed_sequences`, ``<cls>`` and NTv3 padding
excluded; NTv3 layers as in :mod:`benchmarks.generation`) are

- scored: silhouette of the standardised embeddings, and the accuracy of a logistic regression in stratified
  k-fold cross-validation (against chance = the majority-class share);
- mapped to 2-D with UMAP when ``umap-learn`` is installed, else t-SNE (scikit-learn), after PCA to 50 dims.

Raw 6-mer frequencies are scored and mapped the same way as a model-free baseline. Outputs in ``out_dir``:
``element_scores.csv`` / ``.json`` (the numbers; the JSON also names the best layer), ``element_scores.png``
(scores against layer), ``element_maps.csv`` / ``.png`` (2-D coordinates, one panel per layer, coloured by
class) and ``sequences.tsv`` (the inputs' names and classes).
"""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .outputs import class_colors, prepare_out_dir, pyplot, save_figure, write_csv, write_json

KMER_FEATURE = "6-mer counts"
OUTPUT_FILES = (
    "element_scores.csv",
    "element_scores.json",
    "element_scores.png",
    "element_maps.csv",
    "element_maps.png",
    "sequences.tsv",
)


def read_labelled_sequences(
    path: str | Path, class_column: str = "class", sequence_column: str = "sequence"
) -> tuple[list[str], list[str], list[str]]:
    """``(names, sequences, classes)`` from a TSV with a header holding a sequence and a class column (a
    ``name`` column is optional; default names ``seq<row>``).

    Raises:
        ValueError: naming the file and line: a missing column, an empty sequence or class, a character
            outside the tokenizer's input policy, a repeated name, fewer than two classes, or a class with a
            single sequence (cross-validation needs two).
    """
    from tokenization import require_file, validate_sequence

    path = require_file(path, "sequences")
    names, sequences, classes = [], [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [
            column for column in (sequence_column, class_column) if column not in (reader.fieldnames or [])
        ]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        first_line: dict[str, int] = {}
        for number, row in enumerate(reader, start=2):
            sequence, label = (row[sequence_column] or "").strip(), (row[class_column] or "").strip()
            name = row.get("name") or f"seq{number - 1}"
            if not sequence or not label:
                raise ValueError(f"{path}:{number}: empty sequence or class")
            if name in first_line:
                raise ValueError(
                    f"{path}: line {number} repeats the name {name!r} of line {first_line[name]}; names must be "
                    "unique"
                )
            try:
                validate_sequence(sequence, strict=False)
            except ValueError as error:
                raise ValueError(f"{path}: line {number} ({name!r}): {error}") from None
            first_line[name] = number
            names.append(name)
            sequences.append(sequence)
            classes.append(label)
    counts = Counter(classes)
    if len(counts) < 2:
        raise ValueError(f"{path}: need at least two classes, found {sorted(counts)}")
    rare = sorted(label for label, count in counts.items() if count < 2)
    if rare:
        raise ValueError(
            f"{path}: class {rare[0]!r} has a single sequence; cross-validation needs at least two per class"
        )
    return names, sequences, classes


def kmer_frequencies(sequences: Sequence[str], k: int = 6) -> np.ndarray:
    """Overlapping ``k``-mer frequencies of each sequence (rows sum to one): the model-free baseline."""
    from sklearn.feature_extraction.text import CountVectorizer

    from tokenization import as_sequence_list

    counts = CountVectorizer(analyzer="char", ngram_range=(k, k), lowercase=False).fit_transform(
        [sequence.upper() for sequence in as_sequence_list(sequences)]
    )
    counts = counts.toarray().astype(np.float32)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def separation_scores(features: np.ndarray, classes: Sequence[str], folds: int = 5, seed: int = 0) -> dict:
    """Silhouette (standardised features) and cross-validated logistic-regression accuracy of ``classes``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(classes)
    smallest = min(Counter(classes).values())
    if smallest < 2:
        raise ValueError("every class needs at least two sequences for cross-validation")
    standardised = StandardScaler().fit_transform(features)
    splitter = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    accuracies = cross_val_score(classifier, features, labels, cv=splitter, scoring="accuracy")
    return {
        "silhouette": float(silhouette_score(standardised, labels)),
        "cv_accuracy": float(accuracies.mean()),
        "cv_accuracy_sd": float(accuracies.std()),
        "chance_accuracy": max(Counter(classes).values()) / len(classes),
        "n_folds": len(accuracies),
    }


def projection_method() -> str:
    """``"umap"`` when ``umap-learn`` is importable, else ``"tsne"``."""
    return "umap" if importlib.util.find_spec("umap") else "tsne"


def project_2d(features: np.ndarray, method: str | None = None, seed: int = 0) -> np.ndarray:
    """2-D coordinates of the rows of ``features`` (PCA to at most 50 dims first)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    method = method or projection_method()
    reduced = StandardScaler().fit_transform(features)
    reduced = PCA(n_components=min(50, *reduced.shape), random_state=seed).fit_transform(reduced)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(reduced)
    from sklearn.manifold import TSNE

    perplexity = max(2.0, min(30.0, (len(features) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)


def layer_features(
    model: Any, sequences: Sequence[str], layers: Sequence[int] | None, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """``{"layer <k>": mean embeddings [N, d]}`` for the chosen hidden states (default: all of them, ``0 ..
    last_layer`` of :func:`benchmarks.generation.token_rules`; NTv3: the core's states, then the
    base-resolution output) and ``{KMER_FEATURE: 6-mer frequencies}``."""
    from benchmarks.embeddings import embed_sequences, load_backbone, resolve_layers
    from benchmarks.generation import token_rules

    backbone = load_backbone(model)
    last_layer = token_rules(backbone).last_layer
    layers = resolve_layers(layers, last_layer) if layers else list(range(last_layer + 1))
    embeddings = embed_sequences(backbone, sequences, layers=layers, pooling="mean", batch_size=batch_size)
    features = {f"layer {layer}": embeddings[layer] for layer in layers}
    features[KMER_FEATURE] = kmer_frequencies(sequences)
    return features


def analyze_elements(
    model: Any,
    sequences: Sequence[str],
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    names: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    folds: int = 5,
    method: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    model_name: str | None = None,
) -> dict:
    """Score and map the element classes per layer (module docstring); returns the JSON summary.

    ``model_name`` is recorded in the summary (default :func:`benchmarks.results.model_name_of`)."""
    from benchmarks.results import model_name_of
    from tokenization import as_sequence_list

    sequences, classes = as_sequence_list(sequences), as_sequence_list(classes, "classes")
    if names is not None:
        names = as_sequence_list(names, "names")
    if len(sequences) != len(classes):
        raise ValueError(f"{len(sequences)} sequences but {len(classes)} classes")
    out_dir = prepare_out_dir(out_dir, OUTPUT_FILES, overwrite)
    names = list(names or (f"seq{index}" for index in range(len(sequences))))
    features = layer_features(model, sequences, layers, batch_size)
    method = method or projection_method()
    scores, maps = [], {}
    for feature, values in features.items():
        scores.append(
            {
                "feature": feature,
                "layer": _layer_of(feature),
                **separation_scores(values, classes, folds, seed),
            }
        )
        maps[feature] = project_2d(values, method, seed)
    layer_scores = [row for row in scores if row["layer"] is not None]
    best = max(layer_scores, key=lambda row: row["cv_accuracy"])
    summary = {
        "model": model_name or model_name_of(model),
        "n_sequences": len(sequences),
        "class_counts": dict(Counter(classes)),
        "projection": method,
        "best_layer_cv_accuracy": best["layer"],
        "best_layer_silhouette": max(layer_scores, key=lambda row: row["silhouette"])["layer"],
        "scores": scores,
    }
    _write_outputs(out_dir, names, sequences, classes, scores, maps, summary)
    return summary


def _layer_of(feature: str) -> int | None:
    return int(feature.split()[1]) if feature.startswith("layer ") else None


def _write_outputs(out_dir: Path, names, sequences, classes, scores, maps, summary) -> None:
    columns = [
        "feature",
        "layer",
        "silhouette",
        "cv_accuracy",
        "cv_accuracy_sd",
        "chance_accuracy",
        "n_folds",
    ]
    write_csv(out_dir / "element_scores.csv", scores, columns)
    write_json(out_dir / "element_scores.json", summary)
    rows = [
        {"feature": feature, "index": index, "name": names[index], "class": classes[index], "x": x, "y": y}
        for feature, coords in maps.items()
        for index, (x, y) in enumerate(coords)
    ]
    write_csv(out_dir / "element_maps.csv", rows, ["feature", "index", "name", "class", "x", "y"])
    sequence_rows = [
        {"name": name, "class": label, "length": len(sequence)}
        for name, label, sequence in zip(names, classes, sequences, strict=True)
    ]
    write_csv(out_dir / "sequences.tsv", sequence_rows, ["name", "class", "length"], delimiter="\t")
    plot_scores(scores, out_dir / "element_scores.png")
    plot_maps(maps, classes, summary["projection"], out_dir / "element_maps.png")


def plot_scores(scores: list[dict], path: str | Path) -> Path:
    """Silhouette and cross-validated accuracy against layer (6-mer baseline and chance as dashed lines)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    layer_rows = sorted((row for row in scores if row["layer"] is not None), key=lambda row: row["layer"])
    baseline = next((row for row in scores if row["feature"] == KMER_FEATURE), None)
    layers = [row["layer"] for row in layer_rows]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    for axis, key, title in (
        (axes[0], "cv_accuracy", "logistic regression accuracy (CV)"),
        (axes[1], "silhouette", "silhouette"),
    ):
        values = [row[key] for row in layer_rows]
        axis.plot(layers, values, marker="o", label="model layer")
        if key == "cv_accuracy":
            axis.errorbar(
                layers, values, yerr=[row["cv_accuracy_sd"] for row in layer_rows], fmt="none", alpha=0.4
            )
            axis.axhline(layer_rows[0]["chance_accuracy"], color="grey", linestyle=":", label="chance")
            axis.set_ylim(0, 1.05)
        if baseline:
            axis.axhline(baseline[key], color="black", linestyle="--", label="6-mer counts")
        best = int(np.argmax(values))
        axis.scatter(
            [layers[best]],
            [values[best]],
            s=150,
            facecolors="none",
            edgecolors="red",
            label=f"best: layer {layers[best]}",
        )
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("hidden state (0 = embeddings; NTv3: core input .. base-resolution output)")
        axis.set_title(title)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    figure.suptitle("Separation of element classes by layer")
    return save_figure(figure, path)


def plot_maps(maps: dict[str, np.ndarray], classes: Sequence[str], method: str, path: str | Path) -> Path:
    """One 2-D scatter panel per feature set, points coloured by class."""
    plt = pyplot()
    names = sorted(set(classes), key=list(classes).index)
    colors = class_colors(names)
    labels = np.asarray(classes)
    columns = min(4, len(maps))
    rows = -(-len(maps) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.4 * rows), squeeze=False)
    for axis, (feature, coords) in zip(axes.flat, maps.items(), strict=False):
        for name in names:
            chosen = labels == name
            axis.scatter(coords[chosen, 0], coords[chosen, 1], s=8, color=colors[name], label=name)
        axis.set_title(feature, fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in list(axes.flat)[len(maps) :]:
        axis.axis("off")
    handles, legend_labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, legend_labels, loc="center right", markerscale=2)
    figure.suptitle(f"Mean embeddings per layer ({method.upper()})")
    figure.tight_layout(rect=(0, 0, 0.88, 1))
    return save_figure(figure, path)
