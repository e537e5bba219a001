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


def stratified_folds(
    labels: Sequence | np.ndarray, n_folds: int = 10, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified ``n_folds``-fold splits of a task's training data.

    Args:
        labels: one label per training example: integer/string classes, or floats for regression (these
            are stratified by quantile bins).
        n_folds: number of folds (the paper uses 10).
        seed: shuffling seed; the same seed gives the same folds on every run and machine.

    Returns:
        ``n_folds`` pairs ``(train_idx, eval_idx)`` of sorted int64 index arrays; the ``eval_idx`` of the folds
        partition ``range(len(labels))``.
    """
    from sklearn.model_selection import StratifiedKFold

    strata = stratification_labels(labels)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(strata) < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {len(strata)} examples")
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
