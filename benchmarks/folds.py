"""Shared cross-validation splits: the same folds for probing, fine-tuning and the supervised baselines.

Every method evaluated on a task splits the task's *training* data with :func:`stratified_folds` (10 folds,
stratified, seeded) and, inside a training fold, carves an early-stopping / hyperparameter-search set with
:func:`inner_split`. The official test split is never touched by either. Indices are positions in the label
array that was passed in (the rows of the task's training split), returned sorted.

Determinism: the splits depend only on the labels, ``n_folds``/``fraction`` and ``seed`` (scikit-learn's
``StratifiedKFold``/``train_test_split`` draw from a seeded ``numpy.random.RandomState``, whose stream is the
same on every platform), so two runs on two machines get identical folds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REGRESSION_BINS = 10


def stratification_labels(labels: Sequence | np.ndarray, n_bins: int = REGRESSION_BINS) -> np.ndarray:
    """Labels to stratify on: class labels as they are, float (regression) targets binned by quantile."""
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.floating):
        return values
    if np.isnan(values).any():
        raise ValueError(f"labels hold NaN at rows {np.flatnonzero(np.isnan(values))[:5].tolist()}")
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def check_classes(labels: Sequence | np.ndarray, source: str = "labels") -> None:
    """Raise a one-line ValueError when class (non-float) ``labels`` hold fewer than two classes: no classifier
    can be trained or scored on them. ``source`` names the data in the message (file, task, split)."""
    values = np.asarray(labels)
    if values.size == 0:
        raise ValueError(f"{source}: no examples")
    if np.issubdtype(values.dtype, np.floating):
        return
    classes = np.unique(values)
    if len(classes) < 2:
        raise ValueError(
            f"{source}: all {values.size} examples have the label {classes[0].item()!r}: a classification task needs "
            "at least two classes"
        )


def stratified_folds(
    labels: Sequence | np.ndarray, n_folds: int = 10, seed: int = 0, *, source: str = "labels"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified ``n_folds``-fold splits of a task's training data.

    Args:
        labels: one label per training example: integer/string classes, or floats for regression (these
            are stratified by quantile bins).
        n_folds: number of folds (the paper uses 10).
        seed: shuffling seed; the same seed gives the same folds on every run and machine.
        source: what the labels are (task, split or file), named in error messages.

    Returns:
        ``n_folds`` pairs ``(train_idx, eval_idx)`` of sorted int64 index arrays; the ``eval_idx`` of the folds
        partition ``range(len(labels))``.

    Raises:
        ValueError: ``n_folds < 2``; fewer examples than folds; class labels with a single class
            (:func:`check_classes`) or a class with fewer examples than folds (a fold would lack it).
    """
    from sklearn.model_selection import StratifiedKFold

    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    strata = stratification_labels(labels)
    if len(strata) < n_folds:
        raise ValueError(f"{source}: cannot make {n_folds} folds from {len(strata)} examples")
    check_classes(labels, source)
    if not np.issubdtype(np.asarray(labels).dtype, np.floating):
        classes, counts = np.unique(strata, return_counts=True)
        if counts.min() < n_folds:
            rarest = classes[counts.argmin()].item()
            raise ValueError(
                f"{source}: class {rarest!r} has {counts.min()} examples, fewer than the {n_folds} folds (each "
                f"stratified fold needs one of every class); "
                + (f"use {counts.min()} folds or fewer" if counts.min() >= 2 else "add examples of it")
            )
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [
        (train_idx.astype(np.int64), eval_idx.astype(np.int64))
        for train_idx, eval_idx in splitter.split(np.zeros(len(strata)), strata)
    ]


def inner_split(
    train_idx: Sequence[int] | np.ndarray, labels: Sequence | np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split a training fold into a fitting part and a validation part (early stopping, HPO).

    Args:
        train_idx: the training indices of one fold (from :func:`stratified_folds`).
        labels: the full label array that was passed to :func:`stratified_folds` (indexed by ``train_idx``).
        fraction: share of ``train_idx`` that goes to the validation part.
        seed: split seed.

    Returns:
        ``(fit_idx, val_idx)``: sorted int64 arrays, disjoint, whose union is ``train_idx``. The split is
        stratified when every class (or regression bin) of the fold has at least two members, otherwise a
        plain seeded shuffle.
    """
    from sklearn.model_selection import train_test_split

    train_idx = np.asarray(train_idx, dtype=np.int64)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    if len(train_idx) < 2:
        raise ValueError(f"cannot split {len(train_idx)} training examples into fit and validation parts")
    strata = stratification_labels(labels)[train_idx]
    _, counts = np.unique(strata, return_counts=True)
    n_val = max(1, round(fraction * len(train_idx)))
    stratifiable = counts.min() >= 2 and min(n_val, len(train_idx) - n_val) >= len(counts)
    stratify = strata if stratifiable else None
    fit_idx, val_idx = train_test_split(train_idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(fit_idx), np.sort(val_idx)
