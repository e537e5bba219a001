"""Probing: how much of a task a frozen model's embeddings carry, layer by layer (NT_SPEC section 5).

Protocol
--------
1. **Embed once.** Every sequence of the task (training and test splits) goes through the model once; the
   mean-pooled embeddings (``<cls>`` and padding excluded, see :mod:`benchmarks.embeddings`) of up to 10
   layers (default: 10 evenly spaced blocks, ``1 .. num_layers``) are cached in ``embeddings_<task>.npz``.
   NTv3 (:mod:`benchmarks.generation`): the layers are ``1 .. num_layers + 1``, core layer outputs and, last,
   the base-resolution output; the mean is over the real nucleotides (the ``N`` padding to a multiple of
   ``2 ** num_downsamples`` excluded).
   Every fold, probe and trial reads that cache; a rerun with the same sequences and layers reuses it.
2. **Probes.** ``"probe"``: logistic regression with scikit-learn defaults except the searched inverse
   regularisation ``C`` (the default ``C=1`` is always the first trial) and ``max_iter=1000``;
   ``"mlp-probe"``: a scikit-learn MLP with one or two hidden layers (widths, L2 ``alpha`` and initial
   learning rate searched). Both standardise the features first. Regression tasks use ridge regression /
   ``MLPRegressor`` instead.
3. **Search inside each training fold.** The training split is cut into folds by
   :func:`benchmarks.folds.stratified_folds`; each fold's training part is split again by
   :func:`benchmarks.folds.inner_split` into a fitting part and a validation part. optuna's TPE sampler
   (seeded) picks the hyperparameters that score best on the validation part; the probe is then refitted on
   the whole training part and scored on the fold's evaluation part, which the search never sees.
4. **Test split.** The selected configuration is that of the fold with the best validation score; it is
   refitted on the whole training split and scored on the official test split (``test_score``).
5. **Baseline** (paper): the logistic-regression probe on the raw token ids (the tokenized sequence, padded
   to a common width, before the transformer; NTv3: one id per base): method ``"raw-tokens"``.

Results are :class:`benchmarks.results.BenchmarkResult` records (method ``"probe"`` / ``"mlp-probe"`` /
``"raw-tokens"``, ``layer`` = hidden-state index), saved after every (layer, probe) so that a killed run
resumes where it stopped; :func:`plot_layers` draws the per-layer curve.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modeling_nt.fingerprint import (
    RunFingerprint,
    check_fingerprint,
    content_fingerprint,
    fingerprint_run,
    record_fingerprint,
)

from .checks import require_at_least
from .folds import inner_split, stratified_folds
from .generation import token_rules
from .metrics import MAIN_METRIC, compute_metrics
from .progress import progress as report_progress
from .results import BenchmarkResult, load_results, model_name_of, save_results

PROBES = ("probe", "mlp-probe")
BASELINE = "raw-tokens"
MAX_PROBE_LAYERS = 10


def default_probe_layers(num_layers: int, count: int = MAX_PROBE_LAYERS) -> list[int]:
    """``count`` evenly spaced block outputs among ``1 .. num_layers`` (all of them for shallow models)."""
    return sorted(set(np.linspace(1, num_layers, min(count, num_layers)).round().astype(int).tolist()))


def task_type_of(dataset: Any) -> str:
    """``"regression"`` when the ``label`` feature is a float, else ``"classification"``."""
    dtype = getattr(dataset.features["label"], "dtype", "int64")
    return "regression" if str(dtype).startswith("float") else "classification"


def _cache_fingerprint(sequences: Sequence[str], layers: list[int], backbone: Any) -> str:
    """The embedding cache's key: the loaded model's config and weights, the sequences and the layers."""
    fingerprint = fingerprint_run(
        model=backbone, inputs={"sequences": content_fingerprint(sequences)}, settings={"layers": layers}
    )
    return json.dumps(fingerprint, sort_keys=True)


def cached_embeddings(
    model: Any,
    sequences: Sequence[str],
    layers: list[int],
    cache_path: str | Path,
    *,
    batch_size: int = 8,
    dtype: str = "fp32",
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """Mean-pooled embeddings ``{layer: [N, d]}``, computed in one pass over ``sequences`` or read back from
    ``cache_path`` (an ``.npz`` file keyed by a fingerprint of the sequences, the layers and the weights).
    Sequences longer than the context the model was trained at are embedded in windows of that context
    (:func:`benchmarks.embeddings.embed_sequences`, default ``window_tokens``)."""
    from tokenization import as_sequence_list

    from .embeddings import embed_sequences, load_backbone

    sequences = as_sequence_list(sequences)
    cache_path = Path(cache_path)
    model = load_backbone(model, dtype)
    fingerprint = _cache_fingerprint(sequences, layers, model)
    if cache_path.is_file():
        with np.load(cache_path) as cache:
            if str(cache["fingerprint"]) == fingerprint:
                return {layer: cache[f"layer_{layer}"] for layer in layers}
    embeddings = embed_sequences(
        model, sequences, layers=layers, pooling="mean", batch_size=batch_size, dtype=dtype, progress=progress
    )
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_path.with_name(f".{cache_path.stem}.partial.npz")
    np.savez(
        partial, fingerprint=fingerprint, **{f"layer_{layer}": array for layer, array in embeddings.items()}
    )
    os.replace(partial, cache_path)
    return embeddings


def raw_token_features(sequences: Sequence[str], version: Any, max_tokens: int | None = None) -> np.ndarray:
    """Token ids of each sequence (``<cls>`` first, right-padded to the longest, cut at ``max_tokens``), as
    float features for the paper's raw-token baseline. ``version``: ``"v1"`` / ``"v2"`` or a model config
    (NTv3: one id per base, no ``<cls>``; :func:`benchmarks.generation.token_rules`); ``max_tokens`` defaults
    to the model's longest input."""
    from .generation import token_rules

    return token_rules(version).raw_token_ids(sequences, max_tokens).astype(np.float32)


def suggest_params(trial: Any, probe: str) -> dict[str, Any]:
    """Hyperparameters of one optuna trial for ``probe``."""
    if probe in ("probe", BASELINE):
        return {"C": trial.suggest_float("C", 1e-4, 1e2, log=True)}
    n_hidden = trial.suggest_int("n_hidden", 1, 2)
    return {
        "hidden_layer_sizes": tuple(
            trial.suggest_int(f"units_{depth}", 16, 256, log=True) for depth in range(n_hidden)
        ),
        "alpha": trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        "learning_rate_init": trial.suggest_float("learning_rate_init", 1e-4, 1e-2, log=True),
    }


def build_probe(
    probe: str,
    params: dict[str, Any],
    task_type: str,
    seed: int = 0,
    mlp_max_iter: int = 200,
    standardise: bool = True,
):
    """An unfitted scikit-learn pipeline: standardisation + the probe with ``params`` (the bare probe without
    ``standardise``, for features standardised already)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = task_type == "regression"
    if probe in ("probe", BASELINE):
        estimator = (
            Ridge(alpha=1.0 / params["C"]) if regression else LogisticRegression(C=params["C"], max_iter=1000)
        )
    else:
        mlp = MLPRegressor if regression else MLPClassifier
        estimator = mlp(**params, max_iter=mlp_max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), estimator) if standardise else estimator


def _main_score(estimator: Any, features: np.ndarray, labels: np.ndarray, task_type: str) -> float:
    metric = MAIN_METRIC[task_type]
    score = compute_metrics(labels, estimator.predict(features), task_type=task_type)[metric]
    return -1.0 if np.isnan(score) else score


def fit_probe(
    probe: str,
    params: dict[str, Any],
    features: np.ndarray,
    labels: np.ndarray,
    task_type: str,
    **options: Any,
):
    """Fit a probe on one BLAS thread (many small fits: threads only contend), convergence warnings silenced
    (the search decides what works)."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    estimator = build_probe(probe, params, task_type, **options)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(features, labels)
    return estimator


def fit_and_score(
    probe: str,
    params: dict[str, Any],
    features: np.ndarray,
    labels: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    task_type: str,
    standardised: tuple[np.ndarray, np.ndarray] | None = None,
    **options: Any,
) -> float:
    """Objective of one trial: fit on ``fit_idx`` rows, main metric on ``val_idx`` rows. ``standardised``:
    those rows already standardised with the ``fit_idx`` statistics (then only the probe itself is fitted)."""
    if standardised is None:
        estimator = fit_probe(probe, params, features[fit_idx], labels[fit_idx], task_type, **options)
        return _main_score(estimator, features[val_idx], labels[val_idx], task_type)
    fit_features, val_features = standardised
    estimator = fit_probe(
        probe, params, fit_features, labels[fit_idx], task_type, standardise=False, **options
    )
    return _main_score(estimator, val_features, labels[val_idx], task_type)


def search_probe(
    probe: str,
    features: np.ndarray,
    labels: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    task_type: str,
    trials: int,
    seed: int = 0,
    **options: Any,
) -> tuple[dict[str, Any], float]:
    """TPE search of ``probe``'s hyperparameters on one (fit, validation) split; returns (params, score).

    The standardisation is fitted once on the ``fit_idx`` rows and shared by every trial (the same numbers
    as each trial's own :func:`build_probe` pipeline refitting it: the result is unchanged)."""
    import optuna
    from sklearn.preprocessing import StandardScaler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    if probe in ("probe", BASELINE):
        study.enqueue_trial({"C": 1.0})
    chosen: dict[int, dict[str, Any]] = {}
    scaler = StandardScaler().fit(features[fit_idx])
    fit_features, val_features = scaler.transform(features[fit_idx]), scaler.transform(features[val_idx])

    def objective(trial: Any) -> float:
        chosen[trial.number] = suggest_params(trial, probe)
        return fit_and_score(
            probe,
            chosen[trial.number],
            features,
            labels,
            fit_idx,
            val_idx,
            task_type,
            standardised=(fit_features, val_features),
            **options,
        )

    study.optimize(objective, n_trials=max(1, trials))
    return chosen[study.best_trial.number], float(study.best_value)


def cross_validate_probe(
    probe: str,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray | None,
    test_labels: np.ndarray | None,
    folds: list[tuple[np.ndarray, np.ndarray]],
    task_type: str,
    *,
    trials: int,
    inner_fraction: float = 0.1,
    seed: int = 0,
    n_jobs: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """Fold scores, the selected configuration and its test score for one probe on one feature matrix.

    ``n_jobs``: folds searched at once in separate processes (joblib; ``-1``: one per CPU). Each fold's
    search is seeded on its own, so the result does not depend on ``n_jobs``."""
    from joblib import Parallel, delayed

    arguments = (probe, train_features, train_labels, task_type, trials, inner_fraction, seed, options)
    outcomes = Parallel(n_jobs=n_jobs if len(folds) > 1 else 1)(
        delayed(_search_fold)(*arguments, train_idx, eval_idx) for train_idx, eval_idx in folds
    )
    fold_scores = [score for score, _ in outcomes]
    searches = [search for _, search in outcomes]
    best_val, best_params = max(searches, key=lambda item: item[0])
    test_score = None
    if test_features is not None and len(test_features):
        estimator = fit_probe(probe, best_params, train_features, train_labels, task_type, **options)
        test_score = _main_score(estimator, test_features, test_labels, task_type)
    return {
        "fold_scores": fold_scores,
        "test_score": test_score,
        "params": {
            key: list(value) if isinstance(value, tuple) else value for key, value in best_params.items()
        },
        "validation_score": best_val,
    }


def _search_fold(
    probe: str,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    task_type: str,
    trials: int,
    inner_fraction: float,
    seed: int,
    options: dict[str, Any],
    train_idx: np.ndarray,
    eval_idx: np.ndarray,
) -> tuple[float, tuple[float, dict[str, Any]]]:
    """One fold: search on its inner split, refit on its training part; ``(eval score, (val score, params))``."""
    fit_idx, val_idx = inner_split(train_idx, train_labels, fraction=inner_fraction, seed=seed)
    params, val_score = search_probe(
        probe, train_features, train_labels, fit_idx, val_idx, task_type, trials, seed, **options
    )
    estimator = fit_probe(
        probe, params, train_features[train_idx], train_labels[train_idx], task_type, **options
    )
    return _main_score(estimator, train_features[eval_idx], train_labels[eval_idx], task_type), (
        val_score,
        params,
    )


def probing_run_fingerprint(
    model: Any,
    dataset_dict: Any,
    benchmark: str,
    trials: int,
    folds: int,
    inner_fraction: float,
    seed: int,
    dtype: str,
    mlp_max_iter: int,
) -> RunFingerprint:
    """What determines the results of a probing run: the model, the task data (sequences and labels of the
    ``train`` and ``test`` splits), ``--benchmark``, ``--trials``, ``--folds``, ``--seed``, ``--dtype``, the
    inner validation fraction and the MLP iterations. Not recorded: ``--layers``, ``--probes`` and
    ``--no-baseline`` (each result is kept per layer and probe: a wider rerun adds results, a narrower one
    keeps them), ``--batch-size`` (padding is masked) and ``--n-jobs`` (each fold's search is seeded on its
    own: the same results in any number of processes)."""
    splits = [dataset_dict[name] for name in ("train", "test") if name in dataset_dict]
    data = content_fingerprint(*(list(split[column]) for split in splits for column in ("sequence", "label")))
    settings = {
        "--benchmark": benchmark,
        "--trials": trials,
        "--folds": folds,
        "--seed": seed,
        "--dtype": dtype,
        "inner_fraction": inner_fraction,
        "mlp_max_iter": mlp_max_iter,
    }
    return fingerprint_run(model=model, inputs={"task data": data}, settings=settings)


def run_probing(
    model: Any,
    dataset_dict: Any,
    task_name: str,
    out_dir: str | Path,
    *,
    benchmark: str = "gue",
    model_name: str | None = None,
    layers: Sequence[int] | None = None,
    probes: Sequence[str] = PROBES,
    trials: int = 100,
    folds: int = 10,
    inner_fraction: float = 0.1,
    seed: int = 0,
    batch_size: int = 8,
    dtype: str = "fp32",
    raw_token_baseline: bool = True,
    mlp_max_iter: int = 200,
    progress: bool = True,
    n_jobs: int = 1,
) -> list[BenchmarkResult]:
    """Probe a model on one task (protocol in the module docstring).

    Args:
        model: model, checkpoint folder or preset name (see :func:`benchmarks.embeddings.load_backbone`).
        dataset_dict: the task's splits (``train`` and ``test``; others are ignored), columns ``sequence`` and
            ``label``, e.g. from :func:`benchmarks.builders.load_task`.
        task_name: task name written into the results.
        out_dir: folder for the embedding cache, the resumable ``probing_<task>.json`` and the plot.
        layers: hidden-state indices to probe (at most 10); default 10 evenly spaced blocks.
        probes: any of ``"probe"`` (logistic regression) and ``"mlp-probe"``.
        trials: optuna trials per fold (the paper: 100).
        folds: cross-validation folds (the paper: 10).
        raw_token_baseline: also run the logistic regression on raw token ids.
        n_jobs: folds searched at once in separate processes (``-1``: one per CPU); the results do not
            depend on it (:func:`cross_validate_probe`).

    Returns:
        One result per (layer, probe), plus the baseline, in the leaderboard schema: every result recorded in
        ``out_dir`` for this task (those of an earlier, interrupted or narrower run are kept, not redone).

    Raises:
        FingerprintMismatch: ``out_dir`` holds results of a run with another model, task data or setting
            (:func:`probing_run_fingerprint`, recorded in ``probing_<task>.fingerprint.json``).
    """
    from .embeddings import load_backbone

    require_at_least(1, trials=trials, batch_size=batch_size, mlp_max_iter=mlp_max_iter)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or not (n_jobs == -1 or n_jobs >= 1):
        raise ValueError(f"n_jobs (--n-jobs) must be -1 (one process per CPU) or >= 1, got {n_jobs!r}")
    from tokenization import as_sequence_list

    probes = as_sequence_list(probes, "probes")  # "probe" is one probe, not five letters
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {PROBES}")
    out_dir = Path(out_dir)
    backbone = load_backbone(model, dtype)
    model_name = model_name or model_name_of(model)
    num_layers = token_rules(backbone).last_layer  # NTv3: core layers, then the base-resolution output
    layers = sorted(set(layers)) if layers else default_probe_layers(num_layers)
    if len(layers) > MAX_PROBE_LAYERS or not all(0 <= layer <= num_layers for layer in layers):
        raise ValueError(
            f"layers must be at most {MAX_PROBE_LAYERS} indices in 0..{num_layers}, got {layers}"
        )
    train, test = dataset_dict["train"], dataset_dict.get("test")
    task_type = task_type_of(train)
    sequences = list(train["sequence"]) + (list(test["sequence"]) if test is not None else [])
    train_labels = np.asarray(train["label"])
    test_labels = np.asarray(test["label"]) if test is not None else None
    n_train = len(train_labels)
    fold_splits = stratified_folds(
        train_labels, n_folds=folds, seed=seed, source=f"task {task_name!r} (train split)"
    )
    progress_path = out_dir / f"probing_{task_name}.json"
    record_path = out_dir / f"probing_{task_name}.fingerprint.json"
    fingerprint = probing_run_fingerprint(
        model, dataset_dict, benchmark, trials, folds, inner_fraction, seed, dtype, mlp_max_iter
    )
    check_fingerprint(record_path, fingerprint, partial=progress_path, started=progress_path.is_file())
    record_fingerprint(record_path, fingerprint)  # validated: the work starts here
    results = load_results(progress_path) if progress_path.is_file() else []
    done = {result.key for result in results}
    common = {
        "model": model_name,
        "task": task_name,
        "benchmark": benchmark,
        "metric": MAIN_METRIC[task_type],
    }
    options = {
        "trials": trials,
        "inner_fraction": inner_fraction,
        "seed": seed,
        "mlp_max_iter": mlp_max_iter,
        "n_jobs": n_jobs,
    }

    def run_one(method: str, probe: str, layer: int | None, features: np.ndarray) -> None:
        if (benchmark, task_name, model_name, method, layer) in done:
            return
        outcome = cross_validate_probe(
            probe,
            features[:n_train],
            train_labels,
            features[n_train:],
            test_labels,
            fold_splits,
            task_type,
            **options,
        )
        extra = {
            "params": outcome["params"],
            "validation_score": outcome["validation_score"],
            "trials": trials,
            "folds": folds,
            "pooling": "mean" if layer is not None else None,
        }
        results.append(
            BenchmarkResult(
                **common,
                method=method,
                layer=layer,
                fold_scores=outcome["fold_scores"],
                test_score=outcome["test_score"],
                seed=seed,
                n_params=backbone.num_parameters(),
                extra=extra,
            )
        )
        save_results(results, progress_path, overwrite=True)

    if raw_token_baseline:
        features = raw_token_features(sequences, backbone.config)
        run_one(BASELINE, BASELINE, None, features)
    pending = [
        layer
        for layer in layers
        if any((benchmark, task_name, model_name, probe, layer) not in done for probe in probes)
    ]
    if pending:
        embeddings = cached_embeddings(
            backbone,
            sequences,
            layers,
            out_dir / f"embeddings_{task_name}.npz",
            batch_size=batch_size,
            dtype=dtype,
            progress=progress,
        )
        fits = [(probe, layer) for layer in layers for probe in probes]
        for probe, layer in report_progress(fits, desc=f"probe {task_name}", unit="fits", enabled=progress):
            run_one(probe, probe, layer, embeddings[layer])
    plot_layers(results, out_dir / f"probing_{task_name}.png")
    return results


def plot_layers(results: Sequence[BenchmarkResult], path: str | Path) -> Path:
    """Per-layer plot: CV mean ± 2 s.d. of each probe against the layer, the raw-token baseline as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in sorted({result.method for result in results if result.layer is not None}):
        points = sorted(
            (result.layer, result.mean, result.two_sd)
            for result in results
            if result.method == method and result.layer is not None
        )
        layers, means, spreads = zip(*points, strict=True)
        axis.errorbar(layers, means, yerr=spreads, marker="o", capsize=3, label=method)
    for result in results:
        if result.layer is None:
            axis.axhline(result.mean, color="grey", linestyle="--", label=result.method)
    if results:
        axis.set_title(f"{results[0].model} on {results[0].task}")
        axis.set_ylabel(f"{results[0].metric} (CV mean ± 2 s.d.)")
    axis.set_xlabel("layer (hidden-state index)")
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
