"""Shared cross-validation folds, metrics (and the `evaluate` module), and the results schema."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from benchmarks.folds import inner_split, stratified_folds
from benchmarks.metrics import compute_metrics, mean_and_2sd
from benchmarks.results import BenchmarkResult, load_results, save_results


def test_folds_partition_the_data_and_keep_class_proportions():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    folds = stratified_folds(labels)
    assert len(folds) == 10
    eval_parts = [eval_idx for _, eval_idx in folds]
    assert np.array_equal(np.sort(np.concatenate(eval_parts)), np.arange(100))
    for train_idx, eval_idx in folds:
        assert not set(train_idx) & set(eval_idx) and len(train_idx) + len(eval_idx) == 100
        assert np.bincount(labels[eval_idx], minlength=3).tolist() == [6, 3, 1]
        assert np.all(np.diff(eval_idx) > 0)


def test_folds_are_deterministic_and_pinned_across_machines():
    labels = np.array([0, 1, 2] * 10)
    first = stratified_folds(labels, n_folds=5, seed=0)
    again = stratified_folds(labels.tolist(), n_folds=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    # Pinned: the same labels and seed must give these folds on every run and machine.
    assert [eval_idx.tolist() for _, eval_idx in first] == [
        [7, 12, 17, 19, 20, 24],
        [0, 1, 2, 5, 10, 21],
        [4, 6, 11, 14, 27, 28],
        [15, 18, 22, 23, 25, 29],
        [3, 8, 9, 13, 16, 26],
    ]
    other_seed = stratified_folds(labels, n_folds=5, seed=1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, other_seed, strict=True))


def test_regression_labels_are_stratified_by_quantile_bins():
    targets = np.random.default_rng(0).lognormal(size=200)
    folds = stratified_folds(targets, n_folds=10, seed=3)
    top_decile = targets >= np.quantile(targets, 0.9)
    assert [int(top_decile[eval_idx].sum()) for _, eval_idx in folds] == [2] * 10


def test_inner_split_is_a_stratified_deterministic_partition_of_the_fold():
    labels = np.array([0, 1, 2] * 10)
    train_idx = stratified_folds(labels, n_folds=5, seed=0)[0][0]
    fit_idx, val_idx = inner_split(train_idx, labels, fraction=0.25, seed=0)
    assert val_idx.tolist() == [5, 10, 15, 18, 22, 26]
    assert np.array_equal(np.sort(np.concatenate([fit_idx, val_idx])), train_idx)
    assert np.bincount(labels[val_idx]).tolist() == [2, 2, 2]
    singleton = np.array([0] * 20 + [1])
    fit_idx, val_idx = inner_split(np.arange(21), singleton, fraction=0.1, seed=0)
    assert len(val_idx) == 2 and len(fit_idx) == 19


def test_fold_errors_are_clear():
    with pytest.raises(ValueError, match="cannot make 10 folds from 5 examples"):
        stratified_folds([0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="NaN at rows"):
        stratified_folds([0.5, np.nan, 1.0, 2.0])
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        inner_split([0, 1, 2], [0, 1, 0], fraction=1.0)


def test_classification_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, size=60)
    logits = rng.normal(size=(60, 3)) + 1.5 * np.eye(3)[y_true]
    y_pred = logits.argmax(axis=1)
    metrics = compute_metrics(y_true, y_pred, y_score=logits)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert metrics["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred))
    assert metrics["f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y_true, probabilities, multi_class="ovr"))
    assert compute_metrics(y_true, y_score=logits) == metrics

    binary = y_true % 2
    two_column = compute_metrics(binary, y_score=np.stack([-logits[:, 1], logits[:, 1]], axis=1))
    assert two_column["auroc"] == pytest.approx(roc_auc_score(binary, logits[:, 1]))
    assert np.isnan(compute_metrics([1, 1], [1, 0], y_score=[0.9, 0.2])["auroc"])


def test_regression_metrics_and_mean_2sd():
    y_true = np.array([0.1, 0.4, 0.35, 0.8, 1.2])
    y_pred = np.array([0.0, 0.5, 0.3, 0.9, 1.0])
    metrics = compute_metrics(y_true, y_pred, task_type="regression")
    assert metrics["pearson"] == pytest.approx(pearsonr(y_true, y_pred).statistic)
    assert metrics["spearman"] == pytest.approx(spearmanr(y_true, y_pred).statistic)
    assert metrics["mse"] == pytest.approx(np.mean((y_true - y_pred) ** 2))
    mean, two_sd = mean_and_2sd([0.5, 0.6, 0.7])
    assert (mean, two_sd) == (pytest.approx(0.6), pytest.approx(0.2))
    assert mean_and_2sd([0.9]) == (0.9, 0.0)
    with pytest.raises(ValueError, match="task_type"):
        compute_metrics([0], [0], task_type="ranking")
    with pytest.raises(ValueError, match="same length"):
        compute_metrics([0, 1], [0])


def test_evaluate_module_loads_offline_by_path_and_equals_sklearn(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    from benchmarks.evaluate_metrics import NT_MCC_PATH

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(NT_MCC_PATH)
    y_true, y_pred = [0, 1, 1, 0, 1, 0, 0], [0, 1, 0, 0, 1, 1, 0]
    metric.add_batch(predictions=y_pred[:3], references=y_true[:3])
    metric.add_batch(predictions=y_pred[3:], references=y_true[3:])
    scores = metric.compute()
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred))
    assert scores["f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    regression = evaluate.load(NT_MCC_PATH, "regression").compute(
        predictions=[0.1, 0.5, 0.2], references=[0.0, 1.0, 0.3]
    )
    assert regression["spearman"] == pytest.approx(1.0)


def _result(**overrides) -> BenchmarkResult:
    fields = {"model": "nt-v2-50m", "task": "H3", "benchmark": "original", "method": "probe", "layer": 6}
    fields.update(fold_scores=[0.70, 0.74, 0.72], test_score=0.71, seed=0)
    return BenchmarkResult(**{**fields, **overrides})


def test_results_round_trip_through_json_files(tmp_path):
    result = _result(extra={"lr": 3e-3})
    assert result.mean == pytest.approx(0.72) and result.two_sd == pytest.approx(0.04)
    assert BenchmarkResult.from_json(result.to_json()) == result
    path = save_results(
        [result, _result(task="H4", layer=None, fold_scores=[], test_score=0.8)], tmp_path / "r.json"
    )
    loaded = load_results(tmp_path)
    assert loaded[0] == result and loaded[1].score == 0.8 and loaded[1].mean is None
    assert loaded[0].key == ("original", "H3", "nt-v2-50m", "probe", 6)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_results([result], path)
    save_results([result], path, overwrite=True)
    assert len(load_results(path)) == 1


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"task": "H3", "benchmark": "original", "method": "probe", "test_score": 0.5},
            r"missing required field\(s\) \['model'\]",
        ),
        (
            {"model": "m", "task": "H3", "benchmark": "original", "method": "probe", "score": 1},
            r"unknown field\(s\) \['score'\]",
        ),
        (
            {"model": "m", "task": "H3", "benchmark": "original", "method": "probe"},
            "needs fold_scores, a test_score",
        ),
        (
            {"model": "m", "task": "H3", "benchmark": "o", "method": "p", "fold_scores": [0.5, "x"]},
            "fold_scores must be a list of numbers",
        ),
        (
            {
                "model": "m",
                "task": "H3",
                "benchmark": "o",
                "method": "p",
                "fold_scores": [0.5, 0.7],
                "mean": 0.9,
            },
            "mean=0.9 does not match",
        ),
        (
            {"model": "m", "task": "H3", "benchmark": "o", "method": "p", "test_score": 0.5, "layer": "6"},
            "'layer' must be an integer",
        ),
        (
            {"model": "", "task": "H3", "benchmark": "o", "method": "p", "test_score": 0.5},
            "'model' must be a non-empty string",
        ),
    ],
)
def test_bad_result_records_name_file_and_record(tmp_path, record, message):
    good = _result().to_dict()
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema_version": 1, "results": [good, record]}))
    with pytest.raises(ValueError, match=message) as error:
        load_results([path])
    assert f"{path}: result #1" in str(error.value)


def test_bad_results_files(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken.json: not valid JSON \(line 1"):
        load_results(tmp_path / "broken.json")
    (tmp_path / "future.json").write_text(json.dumps({"schema_version": 9, "results": []}))
    with pytest.raises(ValueError, match="schema_version 9 is not supported"):
        load_results(tmp_path / "future.json")
    with pytest.raises(FileNotFoundError, match="results file or folder not found"):
        load_results(tmp_path / "missing.json")


def test_folds_of_a_real_training_split_are_balanced(shared_data, tmp_path):
    from benchmarks.builders import load_task

    train = load_task("gue", "prom_300_tata", data_dir=shared_data / "tasks" / "gue", cache_dir=tmp_path)[
        "train"
    ]
    labels = np.array(train["label"])
    folds = stratified_folds(labels)
    for _, eval_idx in folds:
        assert len(eval_idx) in (490, 491)
        assert abs(labels[eval_idx].sum() - 244.4) <= 1
    _, val_idx = inner_split(folds[0][0], labels)
    assert len(val_idx) == round(0.1 * len(folds[0][0])) and abs(labels[val_idx].mean() - 0.498) < 0.01
