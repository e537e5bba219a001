"""Benchmark metrics through scikit-learn and scipy.

Classification: MCC (the main metric of every NT task), macro F1, accuracy and, when scores are given, AUROC
(binary, or one-vs-rest for more classes). Regression: Pearson and Spearman correlation (Pearson is the main
one), and the mean squared error. Cross-validated scores are summarised as mean and 2 standard deviations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAIN_METRIC = {"classification": "mcc", "regression": "pearson"}


def compute_metrics(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray | None = None,
    y_score: Sequence | np.ndarray | None = None,
    task_type: str = "classification",
) -> dict[str, float]:
    """Score predictions of one task.

    Args:
        y_true: true labels (classes) or targets (regression).
        y_pred: predicted classes or values; for classification it may be left out when ``y_score`` is
            given (the arg-max class is used).
        y_score: classification scores, shape ``(n,)`` (positive-class score, binary tasks) or
            ``(n, n_classes)`` (probabilities or logits; logits are soft-maxed for one-vs-rest AUROC).
        task_type: ``"classification"`` or ``"regression"``.

    Returns:
        ``{"mcc", "f1", "accuracy"[, "auroc"]}`` or ``{"pearson", "spearman", "mse"}``. AUROC is NaN when the
        true labels hold a single class.

    Raises:
        ValueError: NaN or infinite predictions or scores (a diverged model; never scored as some class).
    """
    if task_type not in MAIN_METRIC:
        raise ValueError(f"task_type must be one of {sorted(MAIN_METRIC)}, got {task_type!r}")
    y_true = np.asarray(y_true)
    for values in (y_pred, y_score):
        _require_finite(values)
    if y_pred is None:
        if y_score is None or task_type == "regression":
            raise ValueError("y_pred is required (classification may give y_score instead)")
        y_pred = _classes_from_scores(np.asarray(y_score, dtype=np.float64))
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-D of the same length")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero examples")
    if task_type == "regression":
        return _regression_metrics(y_true.astype(np.float64), y_pred.astype(np.float64))
    metrics = _classification_metrics(y_true, y_pred)
    if y_score is not None:
        metrics["auroc"] = _auroc(y_true, np.asarray(y_score, dtype=np.float64))
    return metrics


def _require_finite(values: Sequence | np.ndarray | None) -> None:
    """Refuse NaN / infinite predictions: their arg-max is class 0 and their metrics are meaningless."""
    if values is None:
        return
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number):
        return
    rows = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
    broken = int(np.count_nonzero(~np.isfinite(rows).all(axis=1)))
    if broken:
        raise ValueError(
            f"the model's outputs are NaN or infinite for {broken} of {len(rows)} sequences: the training "
            "diverged (try a lower learning rate, --lr)"
        )


def _classes_from_scores(y_score: np.ndarray) -> np.ndarray:
    return (y_score > 0.5).astype(np.int64) if y_score.ndim == 1 else y_score.argmax(axis=1)


def _classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    return {
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, average="macro")),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def _regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error

    constant = np.ptp(y_true) == 0 or np.ptp(y_pred) == 0
    return {
        "pearson": float("nan") if constant else float(pearsonr(y_true, y_pred).statistic),
        "spearman": float("nan") if constant else float(spearmanr(y_true, y_pred).statistic),
        "mse": float(mean_squared_error(y_true, y_pred)),
    }


def _auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(y_score) != len(y_true):
        raise ValueError(f"y_score has {len(y_score)} rows for {len(y_true)} labels")
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if y_score.ndim == 2 and y_score.shape[1] == 2:
        y_score = y_score[:, 1] - y_score[:, 0]
    if y_score.ndim == 1:
        return float(roc_auc_score(y_true, y_score))
    if not np.allclose(y_score.sum(axis=1), 1.0):
        y_score = _softmax(y_score)
    return float(roc_auc_score(y_true, y_score, multi_class="ovr", labels=np.arange(y_score.shape[1])))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def mean_and_2sd(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and two sample standard deviations (``ddof=1``) of per-fold scores, as the paper reports them.

    A single value has a spread of 0. [open] the paper does not say whether its s.d. is the sample or the
    population one; with 10 folds the two differ by about 5%.
    """
    scores = np.asarray(values, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"need a non-empty 1-D list of scores, got shape {scores.shape}")
    spread = 2.0 * float(scores.std(ddof=1)) if len(scores) > 1 else 0.0
    return float(scores.mean()), spread
