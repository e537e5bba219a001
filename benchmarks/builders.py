"""The downstream benchmarks as ``datasets`` builders (used directly: datasets 5 has no loading scripts).

Three builders, one config per registered task (:mod:`benchmarks.tasks`):

- :class:`OriginalBenchmark`: ``<data_dir>/<task>/{train,test}.fna`` (``.fna.gz`` too; ``data_dir`` may also
  be the task folder itself), FASTA headers ending in ``|<label>`` (the layout of
  ``InstaDeepAI/nucleotide_transformer_downstream_tasks``);
- :class:`RevisedBenchmark`: tables with columns ``sequence, name, label[, task]`` as parquet, TSV or CSV,
  either per task (``<data_dir>/<task>/<split>.parquet``, or ``<split>-*.parquet`` shards) or one file for
  every task (``<data_dir>/<split>.tsv``), filtered on the ``task`` column;
- :class:`GueBenchmark`: GUE-style folders ``<data_dir>/<task path>/{train,dev,test}.csv[.gz]`` (or
  ``.tsv[.gz]``) with header ``sequence,label``; ``data_dir`` may also be the task folder itself. Unregistered
  folders work too (:func:`load_task` infers the number of classes, or a float label for regression; class
  labels must be ``0..K-1`` with ``K >= 2`` and are never renumbered: ``{0, 5}`` is an error naming the file
  and row; the rule is :func:`task_from_labels`, shared with :mod:`benchmarks.user_tasks`).

Every record is checked while the split is generated: empty or non-DNA sequences, labels that are not
integers, labels out of range, duplicated names, header-only FASTA records, files without records and missing
splits raise :class:`TaskDataError` naming the file and the record (FASTA files are read by the package's one
reader, :func:`benchmarks.embeddings.iter_fasta`). Without ``data_dir`` the task's files are downloaded
from the Hub (checksums verified); offline, the error lists the expected files. :func:`load_task` wraps all
of this; :func:`summarize` describes a task.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from modeling_nt.fingerprint import file_fingerprint, file_sha256

from .tasks import HUB_REPOS, SPLITS, TASKS, TaskSpec, check_benchmark, get_task

TABLE_SUFFIXES = (".parquet", ".tsv", ".tsv.gz", ".csv", ".csv.gz")
GUE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
FASTA_TASK_SUFFIXES = (".fna", ".fna.gz")
NON_DNA = re.compile(r"[^ACGTNacgtn]")
INTEGER = re.compile(r"[+-]?\d+")


class TaskDataError(ValueError):
    """A task file breaks the expected layout or holds a bad record."""


@dataclasses.dataclass
class NTTaskConfig(datasets.BuilderConfig):
    """Builder config of one task.

    Attributes:
        task: the task's metadata.
        splits: splits to build (default: all splits of the benchmark); a missing one is an error.
        data_fingerprint: identity of the input files (names, sizes, sha256), so a changed file is rebuilt.
    """

    task: TaskSpec | None = None
    splits: tuple[str, ...] | None = None
    data_fingerprint: str | None = None


class _TaskBuilder(datasets.GeneratorBasedBuilder):
    """Shared part of the three builders: features, split discovery and record checks."""

    BENCHMARK = ""
    BUILDER_CONFIG_CLASS = NTTaskConfig
    VERSION = datasets.Version("1.0.0")

    @classmethod
    def configs_for(cls, benchmark: str) -> list[NTTaskConfig]:
        return [
            NTTaskConfig(
                name=spec.name, version=cls.VERSION, task=spec, description=f"{benchmark}: {spec.name}"
            )
            for spec in TASKS[benchmark].values()
        ]

    @property
    def task(self) -> TaskSpec:
        return self.config.task

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=self.config.description, features=task_features(self.task))

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = self.config.data_dir or fetch_task_files(self.BENCHMARK, self.task)
        files = split_files(self.BENCHMARK, self.task, data_dir, self.config.splits)
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"paths": tuple(map(str, paths)), "split": split})
            for split, paths in files.items()
        ]

    def _generate_examples(self, paths: tuple[str, ...], split: str) -> Iterator[tuple[int, dict[str, Any]]]:
        checker = RecordChecker(self.task)
        index = 0
        for path in paths:
            for where, name, sequence, label in self._read(Path(path), split):
                yield index, checker.check(f"{path}: {where}", name, sequence, label)
                index += 1
        if index == 0:
            raise TaskDataError(f"{', '.join(paths)}: no records for task {self.task.name!r} ({split} split)")

    def _read(self, path: Path, split: str) -> Iterator[tuple[str, str, str, str]]:
        """Yield ``(where, name, sequence, label_text)`` for every record of ``path``."""
        raise NotImplementedError


class OriginalBenchmark(_TaskBuilder):
    """The original NT benchmark: ``<task>/<split>.fna``, label = last ``|`` field of each FASTA header."""

    BENCHMARK = "original"
    BUILDER_CONFIGS = _TaskBuilder.configs_for("original")

    def _read(self, path: Path, split: str) -> Iterator[tuple[str, str, str, str]]:
        from .embeddings import iter_fasta

        records = iter_fasta(path, full_header=True)
        for number in itertools.count(1):
            try:
                title, sequence = next(records)
            except StopIteration:
                return
            except ValueError as error:  # the reader's record rules (duplicates, empty records, no records)
                raise TaskDataError(str(error)) from None
            where = f"record {number} ({title!r})"
            if "|" not in title:
                raise TaskDataError(f"{path}: {where}: header has no '|<label>' field")
            yield where, title, sequence, title.rsplit("|", 1)[1].strip()


class RevisedBenchmark(_TaskBuilder):
    """The revised NT benchmark: ``sequence, name, label, task`` tables (parquet, TSV or CSV)."""

    BENCHMARK = "revised"
    BUILDER_CONFIGS = _TaskBuilder.configs_for("revised")

    def _read(self, path: Path, split: str) -> Iterator[tuple[str, str, str, str]]:
        table = _read_table(path, required=("sequence", "name", "label"))
        if "task" in table.columns:
            present = sorted(set(table["task"]))
            table = table[table["task"] == self.task.name]
            if table.empty:
                raise TaskDataError(f"{path}: no rows with task {self.task.name!r}; tasks present: {present}")
        for row, record in zip(table.index, table.itertuples(index=False), strict=True):
            yield f"row {row + 1}", record.name, record.sequence, record.label


class GueBenchmark(_TaskBuilder):
    """GUE-style folders: ``train/dev/test.csv[.gz]`` (or ``.tsv[.gz]``) with header ``sequence,label``."""

    BENCHMARK = "gue"
    BUILDER_CONFIGS = _TaskBuilder.configs_for("gue")

    def _read(self, path: Path, split: str) -> Iterator[tuple[str, str, str, str]]:
        table = _read_table(path, required=("sequence", "label"))
        names = table["name"] if "name" in table.columns else [f"{split}_{row}" for row in table.index]
        for row, name, sequence, label in zip(
            table.index, names, table["sequence"], table["label"], strict=True
        ):
            yield f"row {row + 1}", name, sequence, label


BUILDERS: dict[str, type[_TaskBuilder]] = {
    "original": OriginalBenchmark,
    "revised": RevisedBenchmark,
    "gue": GueBenchmark,
}


def task_features(task: TaskSpec) -> datasets.Features:
    """``sequence`` and ``name`` strings, and a ``ClassLabel`` (or float64 for regression) ``label``."""
    label = datasets.Value("float64") if task.is_regression else datasets.ClassLabel(names=task.class_names)
    return datasets.Features(
        {"sequence": datasets.Value("string"), "name": datasets.Value("string"), "label": label}
    )


class RecordChecker:
    """Checks the records of one split and turns them into examples."""

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self.seen: dict[str, str] = {}

    def check(self, where: str, name: str, sequence: str, label: str) -> dict[str, Any]:
        """Return the example, or raise :class:`TaskDataError` naming ``where`` and the problem."""
        if not sequence:
            raise TaskDataError(f"{where}: empty sequence")
        bad = NON_DNA.search(sequence)
        if bad:
            raise TaskDataError(f"{where}: non-DNA character {bad.group()!r} at position {bad.start() + 1}")
        if name in self.seen:
            raise TaskDataError(f"{where}: duplicated name {name!r} (first seen at {self.seen[name]})")
        self.seen[name] = where
        return {
            "sequence": sequence.upper(),
            "name": name,
            "label": self.parse_label(where, str(label).strip()),
        }

    def parse_label(self, where: str, text: str) -> int | float:
        if not text:
            raise TaskDataError(f"{where}: missing label (an empty cell or header field)")
        if self.task.is_regression:
            try:
                value = float(text)
            except ValueError:
                raise TaskDataError(
                    f"{where}: label {text!r} is not a number (class labels are the integers 0..K-1, e.g. "
                    "neg/pos as 0/1; a regression target is a number)"
                ) from None
            if not math.isfinite(value):
                raise TaskDataError(f"{where}: label {text!r} is not finite")
            return value
        if not INTEGER.fullmatch(text):
            raise TaskDataError(f"{where}: label {text!r} is not an integer")
        label = int(text)
        if not 0 <= label < self.task.num_labels:
            raise TaskDataError(
                f"{where}: label {label} out of range for {self.task.name!r} "
                f"({self.task.num_labels} classes: 0..{self.task.num_labels - 1})"
            )
        return label


def _read_table(path: Path, required: tuple[str, ...]):
    """Read a parquet/TSV/CSV table as strings, checking its columns."""
    import pandas as pd

    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        separator = "\t" if ".tsv" in path.suffixes else ","
        table = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise TaskDataError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    return table.reset_index(drop=True)


def _layouts(benchmark: str, task: TaskSpec, data_dir: Path, split: str) -> list[Path]:
    """Candidate file patterns of one split, most specific first, each once (``data_dir`` may be the task
    folder itself for the original and GUE layouts: then ``data_dir / task.path`` and ``data_dir`` coincide)."""
    if benchmark == "revised":
        per_task = [data_dir / task.path / f"{split}{suffix}" for suffix in TABLE_SUFFIXES]
        shards = [data_dir / task.path / f"{split}-*.parquet"]
        combined = [data_dir / f"{split}{suffix}" for suffix in TABLE_SUFFIXES]
        return list(dict.fromkeys(per_task + shards + combined))
    suffixes = FASTA_TASK_SUFFIXES if benchmark == "original" else GUE_SUFFIXES
    folders = [data_dir / task.path, data_dir]
    return list(dict.fromkeys(folder / f"{split}{suffix}" for folder in folders for suffix in suffixes))


def split_files(
    benchmark: str, task: TaskSpec, data_dir: str | Path, splits: tuple[str, ...] | None = None
) -> dict[str, list[Path]]:
    """The files of each requested split (default: all of the benchmark's splits) under ``data_dir``.

    Raises:
        FileNotFoundError: a split has no file; the message lists the places that were searched.
    """
    data_dir = Path(data_dir)
    if data_dir.is_file():
        raise NotADirectoryError(f"data folder {data_dir}: is a file, not a folder")
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    found = {}
    for split in splits or SPLITS[check_benchmark(benchmark)]:
        for pattern in _layouts(benchmark, task, data_dir, split):
            matches = sorted(pattern.parent.glob(pattern.name)) if pattern.parent.is_dir() else []
            if matches:
                found[split] = matches
                break
        else:
            expected = ", ".join(str(path) for path in _layouts(benchmark, task, data_dir, split))
            raise FileNotFoundError(
                f"{benchmark} task {task.name!r}: missing split {split!r}; expected one of: {expected}"
            )
    return found


def data_fingerprint(files: dict[str, list[Path]]) -> str:
    """Hash of the names, sizes and contents (sha256) of the input files: the builder's cache key, so a changed
    file is rebuilt while a touched or moved one is not (the run fingerprint's rule,
    :func:`modeling_nt.fingerprint.file_fingerprint`)."""
    digest = hashlib.sha256()
    for split, paths in sorted(files.items()):
        for path in paths:
            entry = file_fingerprint(path)
            digest.update(f"{split}:{path.name}:{entry['size']}:{entry['sha256']}\n".encode())
    return digest.hexdigest()[:16]


def fetch_task_files(benchmark: str, task: TaskSpec, cache_dir: str | Path | None = None) -> str:
    """Download a task's files from its Hub dataset repo (verifying LFS checksums); return the local root.

    Raises:
        FileNotFoundError: the benchmark has no Hub repo, or the Hub cannot be reached (offline); the message
            says which files are expected where and how to get them.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    repo_id = HUB_REPOS.get(benchmark)
    if repo_id is None:
        raise FileNotFoundError(_offline_message(benchmark, task, "this benchmark has no Hub copy"))
    patterns = [
        f"{task.path}/*",
        *(f"{split}{suffix}" for split in SPLITS[benchmark] for suffix in TABLE_SUFFIXES),
    ]
    try:
        local_dir = snapshot_download(
            repo_id,
            repo_type="dataset",
            allow_patterns=patterns,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
        _verify_checksums(repo_id, Path(local_dir))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as error:
        reason = f"the Hub is unreachable ({type(error).__name__}: {' '.join(str(error).split())[:160]})"
        raise FileNotFoundError(_offline_message(benchmark, task, reason)) from None
    return local_dir


def _verify_checksums(repo_id: str, local_dir: Path) -> None:
    from huggingface_hub import HfApi

    files = [path for path in local_dir.rglob("*") if path.is_file()]
    relative = [path.relative_to(local_dir).as_posix() for path in files]
    for info in HfApi().get_paths_info(repo_id, relative, repo_type="dataset", expand=True):
        lfs = getattr(info, "lfs", None)
        if lfs is None:
            continue
        actual = file_sha256(local_dir / info.path)
        if actual != lfs.sha256:
            raise TaskDataError(
                f"{local_dir / info.path}: sha256 {actual} differs from the Hub's {lfs.sha256}"
            )


def _offline_message(benchmark: str, task: TaskSpec, reason: str) -> str:
    layout = [str(path) for path in _layouts(benchmark, task, Path("DATA_DIR"), SPLITS[benchmark][0])]
    advice = (
        f"download them on a machine with network access: hf download {HUB_REPOS[benchmark]} --repo-type dataset "
        f"--include '{task.path}/*' --local-dir DATA_DIR"
        if benchmark in HUB_REPOS
        else "GUE is distributed as a zip of folders by the DNABERT-2 authors"
    )
    return (
        f"no local data for {benchmark} task {task.name!r} and {reason}. Pass data_dir=DATA_DIR (--data-dir) holding, for each "
        f"split in {list(SPLITS[benchmark])}, one of: {', '.join(layout)} (shown for the {SPLITS[benchmark][0]!r} "
        f"split); {advice}"
    )


def infer_gue_task(name: str, data_dir: str | Path, splits: tuple[str, ...] | None = None) -> TaskSpec:
    """Describe an unregistered GUE-style task folder: integer labels give classes, others a regression.

    Class labels must be the integers ``0..K-1`` with ``K >= 2``, every class present in some split: labels
    are never renumbered (``{0, 5}`` is an error naming the file and row of label 5, not a 6-class task with
    4 empty classes), and a single class is an error.
    """
    probe = TaskSpec(name, "gue", 1, 0, "regulatory", task_type="regression", path=".")
    files = split_files("gue", probe, data_dir, splits)
    labels, where, max_length = [], [], 0
    for paths in files.values():
        for path in paths:
            table = _read_table(path, required=("sequence", "label"))
            labels.extend(table["label"].str.strip())
            where.extend(f"{path}: row {row + 1}" for row in table.index)
            if len(table):
                max_length = max(max_length, int(table["sequence"].str.len().max()))
    if not labels:
        raise TaskDataError(f"{data_dir}: the task's files hold no records")
    return task_from_labels(name, "gue", labels, where, max_length, source=str(data_dir))


def task_from_labels(
    name: str,
    benchmark: str,
    labels: list[str],
    where: list[str],
    max_length: int,
    *,
    source: str,
    task_type: str | None = None,
) -> TaskSpec:
    """The :class:`TaskSpec` of an unregistered task from the text of all its labels: the one rule for label sets.

    With ``task_type`` None, integer labels give classes and any other labels a regression (each label is then
    checked as a number by :class:`RecordChecker`). Class labels must be the integers ``0..K-1`` with
    ``K >= 2``: labels are never renumbered (``{0, 5}`` is an error naming the record of label 5, not a
    6-class task with 4 empty classes), and a single class is an error.

    Args:
        labels, where: the label text of every record and where the record is (``"FILE: row 3"``), in order.
        max_length: the longest sequence (the spec's ``sequence_length``).
        source: the task's files, named in errors about the label set as a whole.
        task_type: ``"classification"`` or ``"regression"`` to impose, None to infer.

    Raises:
        TaskDataError: a non-integer class label, a single class, or classes other than ``0..K-1``.
    """
    if task_type == "regression" or (
        task_type is None and not all(INTEGER.fullmatch(label) for label in labels)
    ):
        return TaskSpec(
            name, benchmark, 1, max_length, "regulatory", metric="pearson", task_type="regression", path="."
        )
    bad = next((row for row, label in enumerate(labels) if not INTEGER.fullmatch(label)), None)
    if bad is not None:
        raise TaskDataError(
            f"{where[bad]}: label {labels[bad]!r} is not an integer (class labels are 0..K-1)"
        )
    values = [int(label) for label in labels]
    classes = sorted(set(values))
    if len(classes) < 2:
        raise TaskDataError(
            f"{source}: every label of task {name!r} is {classes[0]}: a classification task needs at "
            "least two classes"
        )
    if classes != list(range(len(classes))):
        row = next(i for i, value in enumerate(values) if not 0 <= value < len(classes))
        raise TaskDataError(
            f"{where[row]}: label {values[row]}: the labels of task {name!r} are {classes[:10]}, not the "
            f"classes 0..{len(classes) - 1}; renumber them 0..K-1 (labels are not remapped)"
        )
    return TaskSpec(name, benchmark, len(classes), max_length, "regulatory", path=".")


def load_task(
    benchmark: str,
    task: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    splits: tuple[str, ...] | list[str] | None = None,
) -> datasets.DatasetDict:
    """Build (or reuse from ``cache_dir``) one task as a ``DatasetDict`` of its splits.

    Args:
        benchmark: ``"original"``, ``"revised"`` or ``"gue"``.
        task: a registered task name; for ``"gue"`` any folder name, when ``data_dir`` is that folder.
        data_dir: local data folder (layouts in the module docstring); None downloads from the Hub.
        cache_dir: ``datasets`` cache folder (and Hub cache for downloads).
        splits: splits to build; default all of the benchmark's (``train``/``test``, GUE adds ``dev``).

    Raises:
        TaskDataError: a bad record (the message names the file and record).
        FileNotFoundError: missing files (the message lists where they were expected).
    """
    splits = tuple(splits) if splits else None
    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise NotADirectoryError(f"cache folder {cache_dir} (--cache-dir): is a file, not a folder")
    spec = resolve_task(benchmark, task, data_dir, splits)
    if data_dir is None:
        data_dir = fetch_task_files(benchmark, spec, cache_dir)
    files = split_files(benchmark, spec, data_dir, splits)
    config_kwargs = {
        "data_dir": str(Path(data_dir).resolve()),
        "splits": tuple(files),
        "data_fingerprint": data_fingerprint(files),
    }
    builder_class = BUILDERS[benchmark]
    if spec.name in builder_class.builder_configs:
        builder = builder_class(config_name=spec.name, cache_dir=_str(cache_dir), **config_kwargs)
    else:
        builder = builder_class(name=spec.name, task=spec, cache_dir=_str(cache_dir), **config_kwargs)
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # "Generating train split" bars: noise before a one-line data error
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, TaskDataError):
            raise TaskDataError(str(cause)) from None
        raise
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return builder.as_dataset()


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def resolve_task(
    benchmark: str, task: str, data_dir: str | Path | None, splits: tuple[str, ...] | None = None
) -> TaskSpec:
    """The registered task, or (GUE with a ``data_dir``) a spec inferred from an unregistered folder."""
    if check_benchmark(benchmark) == "gue" and task not in TASKS["gue"] and data_dir is not None:
        return infer_gue_task(task, data_dir, splits)
    return get_task(benchmark, task)


def summarize(dataset: datasets.DatasetDict, task: TaskSpec) -> dict[str, dict[str, Any]]:
    """Per split: number of examples, counts per class (or label range for regression), length range."""
    summary = {}
    for split, data in dataset.items():
        lengths = [len(sequence) for sequence in data["sequence"]]
        labels = data["label"]
        entry: dict[str, Any] = {
            "examples": len(data),
            "min_length": min(lengths),
            "max_length": max(lengths),
        }
        if task.is_regression:
            entry.update(label_min=min(labels), label_max=max(labels))
        else:
            counts = Counter(labels)
            entry["classes"] = {name: counts.get(index, 0) for index, name in enumerate(task.class_names)}
        summary[split] = entry
    return summary


def format_summary(task: TaskSpec, summary: dict[str, dict[str, Any]]) -> str:
    """One line per split, e.g. ``train: 4904 examples, length 300-300, classes non_promoter=2460 ...``."""
    lines = [f"{task.benchmark} task {task.name} ({task.group}, {task.task_type}, metric {task.metric})"]
    for split, entry in summary.items():
        if "classes" in entry:
            labels = "classes " + ", ".join(f"{name}={count}" for name, count in entry["classes"].items())
        else:
            labels = f"label range {entry['label_min']:.4g}..{entry['label_max']:.4g}"
        lines.append(
            f"  {split}: {entry['examples']} examples, length {entry['min_length']}-{entry['max_length']}, {labels}"
        )
    return "\n".join(lines)
