"""Probing cost: wall time of the paper's probing protocol on one task, ours against a straightforward loop.

Task: the bundled GUE ``prom_300_tata`` at full size (4,904 training, 613 test sequences). Embeddings: a random
model of the ``tiny`` preset's width (64) with 10 blocks, so that the paper's 10 probed layers exist and the
probes dominate; embedded once, before any timing. Protocol for each (layer, probe)
(:mod:`benchmarks.probing`): k folds, each with a seeded TPE search of ``--trials`` fits on its inner split, a
refit on the fold's training part, and a test refit of the best fold's configuration.

- **reference**: the loop a user would write with scikit-learn and optuna: for each fold in turn, a TPE study
  whose trials each fit ``make_pipeline(StandardScaler(), estimator)`` on the inner split (the same search
  space, seeds and estimators: :func:`benchmarks.probing.suggest_params`, :func:`~benchmarks.probing.build_probe`).
- **ours**: :func:`benchmarks.probing.cross_validate_probe`: the standardisation fitted once per split and
  shared by the trials, the folds searched in ``--n-jobs`` processes (started once before the timing, as a run
  over several layers starts them once; the start-up is reported).

The two sides run interleaved, one (layer, probe) at a time, each fit on one BLAS thread; the outputs (selected
parameters, fold and test scores) are compared in the same run and must be identical. ``--profile`` adds the
largest cumulative costs of one reference (layer, probe) under cProfile. Table to stdout, JSON to
``benchmarks/perf/results/probing_cost.json``.

    python -m benchmarks.perf.probing_cost [--layers 1] [--folds 2] [--trials 2] [--n-jobs 2] [--profile]
    python -m benchmarks.perf.probing_cost --full      # 10 layers x 10 folds x --trials (default 10)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import probing
from benchmarks.folds import inner_split, stratified_folds

TASK_DIR = Path(__file__).resolve().parents[2] / "data" / "gue" / "prom" / "prom_300_tata"
PROBED_BLOCKS = 10


def straightforward_cross_validate(
    probe: str,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    task_type: str,
    *,
    trials: int,
    inner_fraction: float = 0.1,
    seed: int = 0,
    mlp_max_iter: int = 200,
) -> dict[str, Any]:
    """The protocol as a plain scikit-learn + optuna loop: a pipeline refitted from scratch in every trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = {"seed": seed, "mlp_max_iter": mlp_max_iter}

    def fit(params: dict[str, Any], rows: np.ndarray) -> Any:
        return probing.fit_probe(
            probe, params, train_features[rows], train_labels[rows], task_type, **options
        )

    def score(estimator: Any, features: np.ndarray, labels: np.ndarray) -> float:
        return probing._main_score(estimator, features, labels, task_type)

    fold_scores, searches = [], []
    for train_idx, eval_idx in folds:
        fit_idx, val_idx = inner_split(train_idx, train_labels, fraction=inner_fraction, seed=seed)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        if probe == "probe":
            study.enqueue_trial({"C": 1.0})
        chosen: dict[int, dict[str, Any]] = {}

        def objective(trial: Any, fit_idx=fit_idx, val_idx=val_idx, chosen=chosen) -> float:
            chosen[trial.number] = probing.suggest_params(trial, probe)
            estimator = fit(chosen[trial.number], fit_idx)
            return score(estimator, train_features[val_idx], train_labels[val_idx])

        study.optimize(objective, n_trials=trials)
        params = chosen[study.best_trial.number]
        fold_scores.append(score(fit(params, train_idx), train_features[eval_idx], train_labels[eval_idx]))
        searches.append((float(study.best_value), params))
    best_val, best_params = max(searches, key=lambda item: item[0])
    test_score = score(fit(best_params, np.arange(len(train_labels))), test_features, test_labels)
    return {
        "fold_scores": fold_scores,
        "test_score": test_score,
        "params": {
            key: list(value) if isinstance(value, tuple) else value for key, value in best_params.items()
        },
        "validation_score": best_val,
    }


def task_embeddings(folder: Path) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """``({layer: [N, 64]}, train labels, test labels)`` of the bundled task under a 10-block random model."""
    import torch

    from benchmarks.builders import load_task
    from modeling_nt import NTConfig, NTModel

    task = load_task("gue", "prom_300_tata", data_dir=TASK_DIR, cache_dir=folder / "datasets")
    torch.manual_seed(0)
    model = NTModel(NTConfig.from_preset("tiny", num_hidden_layers=PROBED_BLOCKS)).eval()
    sequences = list(task["train"]["sequence"]) + list(task["test"]["sequence"])
    layers = probing.default_probe_layers(PROBED_BLOCKS)
    embeddings = probing.cached_embeddings(
        model, sequences, layers, folder / "embeddings.npz", progress=False
    )
    return embeddings, np.asarray(task["train"]["label"]), np.asarray(task["test"]["label"])


def wall(function: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def _import_probe_modules() -> None:
    import optuna  # noqa: F401
    import sklearn.linear_model
    import sklearn.neural_network
    import sklearn.pipeline  # noqa: F401
    import threadpoolctl  # noqa: F401

    from benchmarks import metrics, probing  # noqa: F401  (probing imports torch and transformers)


def warm_pool(n_jobs: int) -> None:
    """Start joblib's worker processes and import the probes' modules there (once per run of any number of
    layers: the workers are reused)."""
    from joblib import Parallel, delayed

    Parallel(n_jobs=n_jobs)(delayed(_import_probe_modules)() for _ in range(max(n_jobs, 1)))


def profile_top(function: Any, count: int = 8) -> list[dict[str, Any]]:
    """The ``count`` largest cumulative costs (outside the call itself) of one call under cProfile."""
    profiler = cProfile.Profile()
    profiler.runcall(function)
    stats = pstats.Stats(profiler, stream=io.StringIO()).sort_stats("cumulative")
    rows = [
        {"function": f"{Path(file).name}:{line}({name})", "cumulative_s": round(cumulative, 2)}
        for (file, line, name), (_, _, _, cumulative, _) in stats.stats.items()
        if "sklearn" in file or "optuna" in file or "numpy" in file
    ]
    return sorted(rows, key=lambda row: -row["cumulative_s"])[:count]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.perf.harness import pin_threads, print_rows, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="10 layers x 10 folds (the paper's protocol)")
    parser.add_argument(
        "--layers", type=int, default=None, help="probed layers, 1 to 10 (quick: 1, the last)"
    )
    parser.add_argument("--folds", type=int, default=None, help="folds (quick 2, full 10)")
    parser.add_argument("--trials", type=int, default=None, help="TPE trials per fold (quick 2, full 10)")
    parser.add_argument("--probes", default="probe,mlp-probe", help="probes (default both)")
    parser.add_argument("--n-jobs", type=int, default=2, help="processes for our folds (default 2)")
    parser.add_argument("--profile", action="store_true", help="cProfile one reference (layer, probe)")
    args = parser.parse_args(argv)
    pin_threads(1)
    folds_count = args.folds or (10 if args.full else 2)
    trials = args.trials or (10 if args.full else 2)
    with tempfile.TemporaryDirectory() as folder:
        embeddings, train_labels, test_labels = task_embeddings(Path(folder))
    layers = sorted(embeddings)[-(args.layers or (PROBED_BLOCKS if args.full else 1)) :]
    n_train = len(train_labels)
    _, pool_start_s = wall(lambda: warm_pool(args.n_jobs))
    folds = stratified_folds(train_labels, n_folds=folds_count, seed=0)
    rows, records, totals = [], [], {"reference": 0.0, "ours": 0.0}
    for layer in layers:
        features = embeddings[layer]
        split = (features[:n_train], train_labels, features[n_train:], test_labels, folds, "classification")
        for probe in args.probes.split(","):
            reference, reference_s = wall(
                lambda split=split, probe=probe: straightforward_cross_validate(probe, *split, trials=trials)
            )
            ours, ours_s = wall(
                lambda split=split, probe=probe: probing.cross_validate_probe(
                    probe, *split, trials=trials, n_jobs=args.n_jobs
                )
            )
            totals["reference"] += reference_s
            totals["ours"] += ours_s
            same = reference == ours
            records.append(
                {"layer": layer, "probe": probe, "reference_s": reference_s, "ours_s": ours_s, "same": same}
            )
            rows.append(
                {
                    "layer": layer,
                    "probe": probe,
                    "reference wall s": f"{reference_s:.1f}",
                    "ours wall s": f"{ours_s:.1f}",
                    "ratio": f"{reference_s / ours_s:.2f}x",
                    "same params and scores": "yes" if same else "NO",
                    "test score": f"{ours['test_score']:.3f}",
                }
            )
    settings = {
        "task": "gue/prom_300_tata (4,904 train, 613 test)",
        "embeddings": f"random tiny-width model, {PROBED_BLOCKS} blocks",
        "layers": layers,
        "folds": folds_count,
        "trials": trials,
        "probes": args.probes.split(","),
        "n_jobs": args.n_jobs,
        "pool_start_s (once per run, not timed)": round(pool_start_s, 1),
        "fits_per_layer_and_probe": folds_count * (trials + 1) + 1,
    }
    payload: dict[str, Any] = {
        "settings": settings,
        "runs": records,
        "total_wall_s": totals,
        "ratio": totals["reference"] / totals["ours"],
    }
    if args.profile:
        features = embeddings[layers[-1]]
        probe = args.probes.split(",")[-1]
        payload["profile"] = profile_top(
            lambda: straightforward_cross_validate(
                probe,
                features[:n_train],
                train_labels,
                features[n_train:],
                test_labels,
                folds,
                "classification",
                trials=trials,
            )
        )
    print(f"probing cost: {settings}")
    print_rows(rows)
    print(
        f"total: reference {totals['reference']:.1f} s, ours {totals['ours']:.1f} s, "
        f"ratio {payload['ratio']:.2f}x (wall time)"
    )
    for entry in payload.get("profile", []):
        print(f"  {entry['cumulative_s']:8.2f} s  {entry['function']}")
    write_json("probing_cost", payload)
    return payload


if __name__ == "__main__":
    main()
