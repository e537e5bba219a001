"""The faster probing path (standardisation once per split, folds in processes) selects the same parameters and
gives the same scores as the plain scikit-learn + optuna loop of ``benchmarks/perf/probing_cost.py``."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import probing
from benchmarks.folds import stratified_folds
from benchmarks.perf.probing_cost import straightforward_cross_validate


def small_case(seed: int = 0):
    """90 training and 30 test rows of 6 features; the label follows features 0 and 1, with 15% flipped."""
    rng = np.random.default_rng(seed)
    features = (rng.normal(size=(120, 6)) * [1, 3, 0.5, 2, 1, 10] + 5).astype(np.float32)
    labels = ((features[:, 0] - 5) + (features[:, 1] - 5) / 3 > 0).astype(int)
    labels[rng.random(120) < 0.15] ^= 1
    folds = stratified_folds(labels[:90], n_folds=3, seed=0)
    return features[:90], labels[:90], features[90:], labels[90:], folds, "classification"


@pytest.mark.parametrize(
    ("probe", "n_jobs"), [("probe", 1), ("probe", 2), ("mlp-probe", 1), ("mlp-probe", 3)]
)
def test_faster_probe_path_equals_the_plain_loop(probe, n_jobs):
    from joblib import parallel_config

    case = small_case()
    expected = straightforward_cross_validate(probe, *case, trials=4, mlp_max_iter=30)
    with parallel_config(backend="threading"):  # folds out of order, without the seconds of process start-up
        got = probing.cross_validate_probe(probe, *case, trials=4, mlp_max_iter=30, n_jobs=n_jobs)
    assert got == expected  # the same selected parameters, fold scores and test score, exactly
    assert len(set(got["fold_scores"])) == 3
    if probe == "probe":
        assert got["params"] == {"C": 1.0} and got["test_score"] > 0.3  # measured 0.327: learnable, MCC > 0


def test_bad_n_jobs_is_refused():
    with pytest.raises(ValueError, match=r"n_jobs \(--n-jobs\) must be -1"):
        probing.run_probing("tiny", {"train": None}, "t", "/nonexistent", n_jobs=0, progress=False)
