"""``evaluate`` metric module of the NT benchmark: the metrics of :func:`benchmarks.metrics.compute_metrics`.

Load it by path, which works offline::

    import evaluate
    from benchmarks.evaluate_metrics import NT_MCC_PATH

    metric = evaluate.load(NT_MCC_PATH)                  # classification: mcc, f1, accuracy (+ auroc)
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    evaluate.load(NT_MCC_PATH, "regression")             # pearson, spearman, mse
"""

from __future__ import annotations

import datasets
import evaluate

from benchmarks.metrics import compute_metrics

_DESCRIPTION = (
    "Matthews correlation (main metric), macro F1, accuracy and AUROC; Pearson/Spearman for regression."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted classes (or values for the "regression" config).
    references: true classes (or values).
    scores: optional per-class scores or probabilities, shape (n,) or (n, n_classes), for AUROC.
Returns:
    dict with mcc, f1, accuracy (and auroc when scores are given), or pearson, spearman, mse.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NtMcc(evaluate.Metric):
    """The NT benchmark metrics as an ``evaluate.Metric`` (configs ``classification`` and ``regression``)."""

    def _info(self) -> evaluate.MetricInfo:
        dtype = "float64" if self.config_name == "regression" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, scores=None) -> dict[str, float]:
        task_type = "regression" if self.config_name == "regression" else "classification"
        return compute_metrics(references, predictions, y_score=scores, task_type=task_type)
