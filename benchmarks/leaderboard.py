"""Leaderboard tables, MCC heatmap and Hub model cards built from benchmark results.

:func:`write_leaderboard` turns :class:`~benchmarks.results.BenchmarkResult` records into ``leaderboard.md``,
``leaderboard.csv`` and ``leaderboard.png`` (MCC per model and task; the paper's numbers from NT_SPEC section 4
are added as reference rows on the original benchmark). :func:`render_model_card` renders the Hub card of one
model from the ``hub_cards/`` templates, with ``model-index`` eval results (``huggingface_hub.EvalResult``) and
the newer ``.eval_results/<benchmark>.yaml`` entries.

Per (benchmark, task, model, method) the leaderboard keeps the result with the best cross-validated score, i.e.
the best layer of a probe, as the paper reports it. A result without fold scores is scored on the test split
only; its score is marked :data:`TEST_ONLY_MARK` in the markdown table and the heatmap (with the legend
:data:`TEST_ONLY_LEGEND`) and ``score_source`` ``test-only`` in the CSV, so that it is never read as a
cross-validated mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .results import BenchmarkResult
from .tasks import HUB_REPOS, TASKS

HUB_CARDS_DIR = Path(__file__).resolve().parents[1] / "hub_cards"
TEST_ONLY_MARK = "†"
TEST_ONLY_LEGEND = f"{TEST_ONLY_MARK} test split only, no cross-validation"

# Paper reference numbers (NT_SPEC section 4): fine-tuned MCC on the original benchmark, 10-fold means read
# off the authors' figure. One tuple per task, in the order of REFERENCE_MODELS.
REFERENCE_SOURCE = (
    "Dalla-Torre et al. (Nature Methods 2024), fine-tuned MCC, original benchmark, 10-fold means"
)
REFERENCE_MODELS = (
    "NT-MS 2.5B",
    "NT-1000G 2.5B",
    "NT-1000G 500M",
    "NT-HR 500M",
    "DNABERT-2",
    "HyenaDNA-1kb",
    "Enformer",
)
REFERENCE_MCC: dict[str, tuple[float, ...]] = {
    "H3": (0.79, 0.75, 0.74, 0.72, 0.79, 0.78, 0.72),
    "H3K14ac": (0.54, 0.45, 0.38, 0.37, 0.52, 0.61, 0.28),
    "H3K36me3": (0.62, 0.53, 0.47, 0.45, 0.59, 0.61, 0.35),
    "H3K4me1": (0.54, 0.42, 0.38, 0.36, 0.51, 0.51, 0.29),
    "H3K4me2": (0.32, 0.28, 0.26, 0.27, 0.33, 0.45, 0.21),
    "H3K4me3": (0.41, 0.31, 0.24, 0.24, 0.35, 0.55, 0.10),
    "H3K79me3": (0.62, 0.57, 0.56, 0.57, 0.62, 0.67, 0.50),
    "H3K9ac": (0.55, 0.49, 0.48, 0.45, 0.55, 0.59, 0.42),
    "H4": (0.81, 0.79, 0.76, 0.75, 0.80, 0.76, 0.74),
    "H4ac": (0.49, 0.41, 0.34, 0.33, 0.46, 0.56, 0.28),
    "enhancers": (0.55, 0.55, 0.51, 0.50, 0.52, 0.52, 0.45),
    "enhancers_types": (0.44, 0.43, 0.40, 0.43, 0.42, 0.40, 0.31),
    "promoter_all": (0.95, 0.93, 0.90, 0.90, 0.94, 0.92, 0.91),
    "promoter_no_tata": (0.95, 0.93, 0.90, 0.90, 0.94, 0.92, 0.91),
    "promoter_tata": (0.92, 0.91, 0.87, 0.88, 0.91, 0.88, 0.92),
    "splice_sites_all": (0.97, 0.96, 0.95, 0.96, 0.91, 0.93, 0.77),
    "splice_sites_acceptors": (0.97, 0.96, 0.93, 0.92, 0.95, 0.92, 0.83),
    "splice_sites_donors": (0.97, 0.96, 0.94, 0.94, 0.93, 0.89, 0.81),
}
REFERENCE_MEAN_MCC = dict(
    zip(REFERENCE_MODELS, (0.689, 0.646, 0.612, 0.608, 0.669, 0.693, 0.544), strict=True)
)
# Supervised BPNet-style baseline trained per task (paper): only the mean over the 18 tasks is reported.
REFERENCE_BPNET_MEAN_MCC = {"BPNet (121k params)": 0.665, "BPNet large (28M params)": 0.683}


def reference_scores(tasks: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """Paper MCC per reference model and original-benchmark task: ``{model: {task: mcc}}``."""
    tasks = list(REFERENCE_MCC if tasks is None else tasks)
    return {
        model: {task: REFERENCE_MCC[task][column] for task in tasks if task in REFERENCE_MCC}
        for column, model in enumerate(REFERENCE_MODELS)
    }


def entry_name(result: BenchmarkResult) -> str:
    """Leaderboard row name of a result: ``model (method)``."""
    return f"{result.model} ({result.method})"


def is_test_only(result: BenchmarkResult) -> bool:
    """True when the result has no cross-validation folds, i.e. its headline score is the test-split score."""
    return result.mean is None


def best_results(results: Iterable[BenchmarkResult]) -> list[BenchmarkResult]:
    """Per (benchmark, task, model, method), the result with the best headline score (e.g. the best layer)."""
    best: dict[tuple[str, str, str, str], BenchmarkResult] = {}
    for result in results:
        key = (result.benchmark, result.task, result.model, result.method)
        if key not in best or result.score > best[key].score:
            best[key] = result
    return list(best.values())


def leaderboard_rows(results: Iterable[BenchmarkResult]) -> list[dict[str, Any]]:
    """One flat row per kept result (the CSV)."""
    rows = []
    for result in sorted(best_results(results), key=_sort_key):
        spec = TASKS.get(result.benchmark, {}).get(result.task)
        rows.append(
            {
                "benchmark": result.benchmark,
                "task": result.task,
                "group": spec.group if spec else "",
                "model": result.model,
                "method": result.method,
                "layer": result.layer,
                "metric": result.metric,
                "score": result.score,
                "score_source": "test-only" if is_test_only(result) else "cv-mean",
                "n_folds": len(result.fold_scores),
                "mean": result.mean,
                "two_sd": result.two_sd,
                "test_score": result.test_score,
                "trainable_params": result.trainable_params,
            }
        )
    return rows


def _sort_key(result: BenchmarkResult) -> tuple[str, int, str, str]:
    return (result.benchmark, _task_order(result.benchmark, result.task), result.model, result.method)


def _task_order(benchmark: str, task: str) -> int:
    order = list(TASKS.get(benchmark, {}))
    return order.index(task) if task in order else len(order)


def score_matrix(
    results: Iterable[BenchmarkResult], benchmark: str, with_reference: bool = True
) -> tuple[list[str], list[str], list[list[float | None]], int]:
    """MCC matrix of one benchmark: ``(row names, tasks, values, number of result rows)``.

    Rows are ``model (method)`` entries, then (original benchmark, ``with_reference``) the paper's models;
    columns are the tasks present in the results, in registry order, and a final ``mean`` over them.
    """
    kept = [result for result in best_results(results) if result.benchmark == benchmark]
    tasks = sorted({result.task for result in kept}, key=lambda task: _task_order(benchmark, task))
    entries: dict[str, dict[str, float]] = {}
    for result in sorted(kept, key=_sort_key):
        entries.setdefault(entry_name(result), {})[result.task] = result.score
    n_results = len(entries)
    if with_reference and benchmark == "original":
        for model, scores in reference_scores(tasks).items():
            entries[f"paper: {model}"] = scores
    values = []
    for scores in entries.values():
        row = [scores.get(task) for task in tasks]
        present = [value for value in row if value is not None]
        values.append([*row, sum(present) / len(present) if present else None])
    return list(entries), [*tasks, "mean"], values, n_results


def test_only_cells(results: Iterable[BenchmarkResult], benchmark: str) -> set[tuple[str, str]]:
    """``(row name, task)`` of the cells of :func:`score_matrix` whose score is a test-split score only."""
    return {
        (entry_name(result), result.task)
        for result in best_results(results)
        if result.benchmark == benchmark and is_test_only(result)
    }


def _format_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def leaderboard_markdown(
    results: list[BenchmarkResult], title: str | None = "Leaderboard", level: int = 2
) -> str:
    """The leaderboard as markdown: per benchmark (a ``level`` heading), CV mean ± 2 s.d. per task, then
    test-set scores; under a level-1 ``title`` heading when one is given."""
    sections = [f"# {title}", ""] if title else []
    by_key = {(entry_name(result), result.task, result.benchmark): result for result in best_results(results)}
    for benchmark in sorted({result.benchmark for result in results}):
        names, columns, values, n_results = score_matrix(results, benchmark)
        tasks = columns[:-1]
        metric_names = sorted({result.metric for result in results if result.benchmark == benchmark})
        sections += [f"{'#' * level} {benchmark} benchmark ({', '.join(metric_names)})", ""]
        test_only = test_only_cells(results, benchmark)
        rows = []
        for index, (name, row) in enumerate(zip(names, values, strict=True)):
            cells = [
                _cv_cell(by_key.get((name, task, benchmark))) if index < n_results else _format_cell(value)
                for task, value in zip(tasks, row, strict=False)
            ]
            scored = [task for task, value in zip(tasks, row, strict=False) if value is not None]
            all_test_only = bool(scored) and all((name, task) in test_only for task in scored)
            rows.append(
                [name, *cells, _format_cell(row[-1]) + (f" {TEST_ONLY_MARK}" if all_test_only else "")]
            )
        sections += [_markdown_table(["model (method)", *columns], rows), ""]
        if test_only:
            sections += [TEST_ONLY_LEGEND, ""]
        test_rows = [
            [name, *(_format_cell(_test_score(by_key.get((name, task, benchmark)))) for task in tasks)]
            for name in names[:n_results]
        ]
        if any(any(cell for cell in row[1:]) for row in test_rows):
            sections += ["Test-set scores:", "", _markdown_table(["model (method)", *tasks], test_rows), ""]
        if benchmark == "original":
            sections += [f"Reference rows (`paper: ...`): {REFERENCE_SOURCE}.", ""]
    return "\n".join(sections)


def _cv_cell(result: BenchmarkResult | None) -> str:
    if result is None:
        return ""
    if is_test_only(result):
        return f"{result.score:.3f} {TEST_ONLY_MARK}"
    layer = f" (L{result.layer})" if result.layer is not None else ""
    return f"{result.mean:.3f} ± {result.two_sd:.3f}{layer}"


def _test_score(result: BenchmarkResult | None) -> float | None:
    return None if result is None else result.test_score


def plot_heatmap(results: list[BenchmarkResult], path: str | Path) -> Path:
    """PNG heatmap of the score per model (rows) and task (columns), one panel per benchmark.

    Test-split-only scores carry :data:`TEST_ONLY_MARK` and the figure the legend :data:`TEST_ONLY_LEGEND`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    benchmarks = sorted({result.benchmark for result in results})
    panels = [score_matrix(results, benchmark) for benchmark in benchmarks]
    marked = {benchmark: test_only_cells(results, benchmark) for benchmark in benchmarks}
    heights = [max(2.0, 0.45 * len(names) + 1.8) for names, *_ in panels]
    width = max(6.0, 0.6 * max(len(columns) for _, columns, *_ in panels) + 3.5)
    figure, axes = plt.subplots(len(panels), 1, figsize=(width, sum(heights)), squeeze=False)
    for axis, benchmark, (names, columns, values, n_results) in zip(
        axes[:, 0], benchmarks, panels, strict=True
    ):
        matrix = np.array([[np.nan if value is None else value for value in row] for row in values])
        image = axis.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        for (row, column), value in np.ndenumerate(matrix):
            if not np.isnan(value):
                color = "black" if value > 0.6 else "white"
                mark = TEST_ONLY_MARK if (names[row], columns[column]) in marked[benchmark] else ""
                axis.text(
                    column, row, f"{value:.2f}{mark}", ha="center", va="center", fontsize=7, color=color
                )
        title = f"{benchmark} benchmark: MCC per task"
        if n_results < len(names):
            axis.axhline(n_results - 0.5, color="red", linewidth=2)
            title += " (below the red line: paper reference)"
        axis.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(names)), names, fontsize=8)
        axis.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.03)
    if any(marked.values()):
        figure.text(0.01, 0.005, TEST_ONLY_LEGEND, fontsize=8, ha="left", va="bottom")
    figure.tight_layout(rect=(0, 0.02 if any(marked.values()) else 0, 1, 1))
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_leaderboard(results: list[BenchmarkResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` into ``out_dir``."""
    import csv

    if not results:
        raise ValueError("no results to build a leaderboard from")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "md": out_dir / "leaderboard.md",
        "csv": out_dir / "leaderboard.csv",
        "png": out_dir / "leaderboard.png",
    }
    paths["md"].write_text(leaderboard_markdown(results))
    rows = leaderboard_rows(results)
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_heatmap(results, paths["png"])
    return paths


def _hub_cards_dir(templates_dir: str | Path | None) -> Path:
    folder = Path(templates_dir) if templates_dir else HUB_CARDS_DIR
    if not (folder / "sizes.yaml").is_file():
        raise FileNotFoundError(
            f"model card templates not found: {folder / 'sizes.yaml'} is missing (the templates live in the "
            "repository's hub_cards/ folder; pass templates_dir= or run from a source checkout)"
        )
    return folder


def card_sizes(templates_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Per-size card variables from ``hub_cards/sizes.yaml``."""
    import yaml

    return yaml.safe_load((_hub_cards_dir(templates_dir) / "sizes.yaml").read_text())


def card_size(model_name: str, sizes: dict[str, dict[str, Any]]) -> str:
    """The size key matching a model name (``nt-v2-50m-hf`` -> ``v2-50m``; v1 keys match without ``v1-``; ``_``
    reads as ``-``: ``NTv3_100M_pre`` -> ``ntv3-100m-pre``)."""
    name = model_name.lower().replace("_", "-")
    matches = [
        key
        for key in sizes
        if key in name or (key.startswith("v1-") and key.removeprefix("v1-") in name and "v2" not in name)
    ]
    if not matches:
        raise ValueError(f"cannot tell the model size of {model_name!r}; pass a size, one of {sorted(sizes)}")
    return max(matches, key=len)


def _eval_results(results: list[BenchmarkResult]) -> list[Any]:
    from huggingface_hub import EvalResult

    entries = []
    for result in sorted(results, key=_sort_key):
        common = {
            "task_type": "text-classification",
            "task_name": result.task,
            "dataset_type": HUB_REPOS.get(result.benchmark, result.benchmark),
            "dataset_name": f"NT downstream tasks ({result.benchmark})",
            "dataset_config": result.task,
            "metric_type": "matthews_correlation" if result.metric == "mcc" else result.metric,
            "metric_config": result.method
            if result.layer is None
            else f"{result.method}, layer {result.layer}",
        }
        if result.mean is not None:
            entries.append(
                EvalResult(
                    **common,
                    dataset_split="train",
                    metric_name=f"{result.metric.upper()} ({len(result.fold_scores)}-fold CV mean)",
                    metric_value=round(result.mean, 4),
                )
            )
        if result.test_score is not None:
            entries.append(
                EvalResult(
                    **common,
                    dataset_split="test",
                    metric_name=f"{result.metric.upper()} (test)",
                    metric_value=round(result.test_score, 4),
                )
            )
    return entries


def _eval_result_files(results: list[BenchmarkResult]) -> dict[str, list[dict[str, Any]]]:
    """``.eval_results/<benchmark>.yaml`` contents: one entry per task, for benchmarks hosted on the Hub."""
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    files = {}
    for benchmark in sorted({result.benchmark for result in results} & set(HUB_REPOS)):
        entries = [
            EvalResultEntry(
                dataset_id=HUB_REPOS[benchmark],
                task_id=result.task,
                value=round(result.score, 4),
                notes=_result_note(result),
            )
            for result in sorted(results, key=_sort_key)
            if result.benchmark == benchmark
        ]
        files[f"{benchmark}.yaml"] = eval_result_entries_to_yaml(entries)
    return files


def _result_note(result: BenchmarkResult) -> str:
    layer = f", layer {result.layer}" if result.layer is not None else ""
    if result.mean is None:
        return f"{result.method}{layer}: {result.metric} on the test split"
    note = f"{result.method}{layer}: {result.metric}, {len(result.fold_scores)}-fold CV mean ± 2 s.d. {result.two_sd:.3f}"
    return note if result.test_score is None else f"{note}; test {result.test_score:.4f}"


def evaluation_note(results: list[BenchmarkResult]) -> str:
    """The card's sentence on how the scores were obtained, with the fold counts found in ``results``.

    E.g. "mean ± 2 s.d. over 5 cross-validation folds (probe) and 3 folds (full) of the training split";
    test-split-only results are named with :data:`TEST_ONLY_MARK`.
    """
    folds_by_method: dict[str, set[int]] = {}
    for result in results:
        if not is_test_only(result):
            folds_by_method.setdefault(result.method, set()).add(len(result.fold_scores))
    groups: dict[tuple[int, ...], list[str]] = {}
    for method, counts in sorted(folds_by_method.items()):
        groups.setdefault(tuple(sorted(counts)), []).append(method)
    parts = []
    if len(groups) == 1:
        (counts,) = groups
        parts.append(
            f"mean ± 2 s.d. over {_counts_text(counts)} cross-validation folds of the training split"
        )
    elif groups:
        per_method = [
            f"{_counts_text(counts)} folds ({', '.join(methods)})" for counts, methods in groups.items()
        ]
        parts.append(
            f"mean ± 2 s.d. over the cross-validation folds of the training split: {'; '.join(per_method)}"
        )
    test_only = sorted({result.method for result in results if is_test_only(result)})
    if test_only:
        parts.append(
            f"{TEST_ONLY_MARK}: scored on the test split only, no cross-validation ({', '.join(test_only)})"
        )
    return (
        f"Scores of this model on the downstream benchmark ({'; '.join(parts)}; best layer for probes), "
        "from `nt leaderboard`."
    )


def _counts_text(counts: tuple[int, ...]) -> str:
    return " or ".join(str(count) for count in counts)


def check_card(
    results: list[BenchmarkResult],
    model_name: str,
    size: str | None = None,
    templates_dir: str | Path | None = None,
) -> tuple[str, Path]:
    """What :func:`render_model_card` needs, checked before any output is written: ``(size key, template)``.

    Raises:
        ValueError: no result of ``model_name``, an unknown ``size``, or none given and none guessable.
        FileNotFoundError: the templates are missing.
    """
    sizes = card_sizes(templates_dir)
    if not any(result.model == model_name for result in results):
        raise ValueError(f"no results for model {model_name!r}; models: {sorted({r.model for r in results})}")
    size = size or card_size(model_name, sizes)
    if size not in sizes:
        raise ValueError(f"unknown model size {size!r}; known sizes: {sorted(sizes)}")
    template = _hub_cards_dir(templates_dir) / f"{sizes[size]['family']}.md"
    if not template.is_file():
        raise FileNotFoundError(f"model card template missing: {template}")
    return size, template


def render_model_card(
    results: list[BenchmarkResult],
    model_name: str,
    out_dir: str | Path,
    size: str | None = None,
    repo_id: str | None = None,
    templates_dir: str | Path | None = None,
) -> Path:
    """Render ``out_dir/README.md`` (with ``model-index``) and ``out_dir/.eval_results/*.yaml`` for one model.

    Args:
        results: benchmark results; those of ``model_name`` fill the card (best per task and method).
        model_name: the model's name in the results (and on the card).
        size: a key of ``hub_cards/sizes.yaml`` (default: guessed from ``model_name``).
        repo_id: Hub repo the card is for (default ``model_name``).
        templates_dir: folder holding ``sizes.yaml`` and the family templates (default the repo's ``hub_cards/``).
    """
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    size, template = check_card(results, model_name, size, templates_dir)
    variables = card_sizes(templates_dir)[size]
    own = best_results(result for result in results if result.model == model_name)
    card_data = ModelCardData(
        model_name=model_name,
        license="cc-by-nc-sa-4.0",
        library_name="transformers",
        pipeline_tag="fill-mask",
        tags=["dna", "genomics", "biology", "nucleotide-transformer"],
        base_model=variables.get("hub_id"),
        datasets=sorted({HUB_REPOS[r.benchmark] for r in own if r.benchmark in HUB_REPOS}) or None,
        eval_results=_eval_results(own),
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_name=model_name,
        repo_id=repo_id or model_name,
        results_table=leaderboard_markdown(own, title=None, level=3).strip(),
        evaluation_note=evaluation_note(own),
        **variables,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card_path = out_dir / "README.md"
    card.save(card_path)
    eval_dir = out_dir / ".eval_results"
    for name, entries in _eval_result_files(own).items():
        eval_dir.mkdir(exist_ok=True)
        (eval_dir / name).write_text(yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))
    return card_path
