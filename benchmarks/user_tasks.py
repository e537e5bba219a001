"""A task given as the user's own files: the same ``DatasetDict`` the benchmark builders return.

:func:`load_user_task` reads a training file (and optionally a test file) of labelled sequences and returns a
``datasets.DatasetDict`` with the splits ``train`` (and ``test``), the columns ``sequence``, ``name`` and
``label`` and the features of :func:`benchmarks.builders.task_features`, so probing, fine-tuning and BPNet run
on it unchanged; :func:`user_task_spec` gives its :class:`~benchmarks.tasks.TaskSpec` (benchmark ``"user"``).

Formats, chosen by the file name (``.gz`` marks gzip; gzip is also detected by its magic bytes):

- tables: ``.csv``, ``.tsv`` (read as text) and ``.parquet``, one record per row. The sequence column is
  ``sequence`` or ``seq``, the label column ``label`` or ``labels`` (case-insensitive), unless named with
  ``sequence_column`` / ``label_column``; an optional ``name`` column names the records (else ``row_<n>``,
  1-based);
- FASTA (``.fa``, ``.fasta``, ``.fna``, ``.fas``): headers ``>name|label``, the label after the last ``|``;
  read by the package's one FASTA reader, :func:`benchmarks.embeddings.iter_fasta`.

Labels follow the builders' one rule (:func:`benchmarks.builders.task_from_labels`): integer labels are the
classes ``0..K-1`` (never renumbered), any other labels a regression target, unless ``task_type`` imposes one;
every record is checked by :class:`benchmarks.builders.RecordChecker` (DNA letters, unique names, label
values). Errors are one-line :class:`~benchmarks.builders.TaskDataError` / ``FileNotFoundError`` naming the
file and the row or record.

From a single file, ``test_fraction`` of the records are held out as the ``test`` split (seeded and stratified
by :func:`benchmarks.folds.inner_split`: class labels as they are, regression targets by quantile bins); the
commands then cross-validate the ``train`` split with the benchmarks' shared folds
(:func:`benchmarks.folds.stratified_folds`).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import zlib
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_nt.pretraining.genome import is_gzip

from .builders import RecordChecker, TaskDataError, task_features, task_from_labels
from .tasks import TASK_TYPES, USER_BENCHMARK, TaskSpec

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
SEQUENCE_COLUMNS = ("sequence", "seq")
LABEL_COLUMNS = ("label", "labels")
NAME_COLUMN = "name"
SUFFIX_HELP = "use .csv, .tsv, .parquet or FASTA (.fa, .fasta, .fna, .fas), each optionally gzipped (.gz)"


@dataclasses.dataclass
class Records:
    """The records of one file, as text: where each one is (``"FILE: row 3"``) for error messages."""

    names: list[str]
    sequences: list[str]
    labels: list[str]
    where: list[str]


def file_format(path: Path) -> tuple[str, bool]:
    """``(format, gzipped)`` of a task file: ``"csv"``, ``"tsv"``, ``"parquet"`` or ``"fasta"``.

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: a folder.
        TaskDataError: an unknown suffix (the message lists the known ones).
    """
    if path.is_dir():
        raise IsADirectoryError(
            f"{path}: is a folder, not a task file (a benchmark-style folder is read with --benchmark gue "
            "--data-dir)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"task file not found: {path}")
    gzipped = is_gzip(path)
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix in TABLE_FORMATS:
        return TABLE_FORMATS[suffix], gzipped
    if suffix in FASTA_SUFFIXES:
        return "fasta", gzipped
    raise TaskDataError(
        f"{path}: unknown task file type {''.join(path.suffixes) or '(none)'!r}; {SUFFIX_HELP}"
    )


def read_records(
    path: str | Path, sequence_column: str | None = None, label_column: str | None = None
) -> Records:
    """The records of one task file (formats in the module docstring), labels as stripped text.

    Raises:
        TaskDataError: unreadable or empty file, missing column (the message lists the columns found), FASTA
            header without ``|label``. FileNotFoundError: no such file.
    """
    path = Path(path)
    fmt, gzipped = file_format(path)
    if fmt == "fasta":
        if sequence_column is not None or label_column is not None:
            raise TaskDataError(
                f"{path}: a FASTA file has no columns (--sequence-column/--label-column are for tables); its "
                "labels are in the headers, >name|label"
            )
        records = _read_fasta(path)
    else:
        records = _records_of_table(path, _read_table(path, fmt, gzipped), sequence_column, label_column)
    if not records.sequences:
        raise TaskDataError(f"{path}: no records (a header but no rows)")
    return records


def _read_fasta(path: Path) -> Records:
    from .embeddings import iter_fasta

    records = Records([], [], [], [])
    try:
        for number, (title, sequence) in enumerate(iter_fasta(path, full_header=True), start=1):
            where = f"{path}: record {number} ({title!r})"
            if "|" not in title:
                raise TaskDataError(f"{where}: header has no '|<label>' field (write headers as >name|label)")
            name, label = title.rsplit("|", 1)
            records.names.append(name.strip())
            records.sequences.append(sequence)
            records.labels.append(label.strip())
            records.where.append(where)
    except TaskDataError:
        raise
    except ValueError as error:  # the reader's record rules (duplicates, empty records, no records)
        raise TaskDataError(str(error)) from None
    return records


def _read_table(path: Path, fmt: str, gzipped: bool):
    import pandas as pd
    import pyarrow

    try:
        if fmt == "parquet":
            source = io.BytesIO(gzip.decompress(path.read_bytes())) if gzipped else path
            return pd.read_parquet(source)
        return pd.read_csv(
            path,
            sep="\t" if fmt == "tsv" else ",",
            dtype=str,
            keep_default_na=False,
            compression="gzip" if gzipped else None,
        )
    except pd.errors.EmptyDataError:
        raise TaskDataError(f"{path}: empty file (no header, no rows)") from None
    except (
        pd.errors.ParserError,
        pyarrow.ArrowException,
        UnicodeDecodeError,
        EOFError,
        OSError,
        zlib.error,
    ) as error:
        reason = " ".join(str(error).split())[:160]
        raise TaskDataError(f"{path}: not a readable {fmt.upper()} file ({reason})") from None


def _records_of_table(
    path: Path, table: Any, sequence_column: str | None, label_column: str | None
) -> Records:
    sequence_key = _column(path, table, sequence_column, SEQUENCE_COLUMNS, "sequence")
    label_key = _column(path, table, label_column, LABEL_COLUMNS, "label")
    rows = range(1, len(table) + 1)
    names = table[NAME_COLUMN] if NAME_COLUMN in table.columns else [f"row_{row}" for row in rows]
    return Records(
        names=[_text(name) for name in names],
        sequences=[_text(sequence) for sequence in table[sequence_key]],
        labels=[_text(label).strip() for label in table[label_key]],
        where=[f"{path}: row {row}" for row in rows],
    )


def _column(path: Path, table: Any, chosen: str | None, defaults: tuple[str, ...], what: str) -> str:
    """The column holding the ``what`` values: ``chosen``, else the first of ``defaults`` present."""
    columns = [str(column) for column in table.columns]
    flag = f"--{what}-column"
    if chosen is not None:
        if chosen not in columns:
            raise TaskDataError(f"{path}: no column {chosen!r} ({flag}); found columns {columns}")
        return chosen
    lowered = {column.strip().lower(): column for column in columns}  # ' Sequence ' as written by hand
    for name in defaults:
        if name in lowered:
            return lowered[name]
    hint = "; tab-separated? name the file .tsv" if any("\t" in column for column in columns) else ""
    if any(";" in column for column in columns):  # a spreadsheet's CSV export in a comma-decimal locale
        hint = "; semicolon-separated? save it comma-separated (.csv) or tab-separated (.tsv)"
    raise TaskDataError(
        f"{path}: no {what} column (looked for {list(defaults)}); found columns {columns}; name it with "
        f"{flag}{hint}"
    )


def _text(value: Any) -> str:
    """A table cell as text: missing values (None, NaN, pandas' NA of nullable parquet columns) become empty
    text, caught by the record checks."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def load_user_task(
    train: str | Path,
    test: str | Path | None = None,
    *,
    name: str | None = None,
    sequence_column: str | None = None,
    label_column: str | None = None,
    task_type: str | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> datasets.DatasetDict:
    """A task given as the user's files, as the ``DatasetDict`` the benchmark builders return.

    Args:
        train: labelled sequences for training (formats in the module docstring).
        test: labelled sequences for testing only; or None.
        name: the task's name (default: ``train``'s file name without suffixes).
        sequence_column, label_column: table columns (default: ``sequence``/``seq``, ``label``/``labels``).
        task_type: ``"classification"`` or ``"regression"``; None infers it (integer labels are classes).
        test_fraction: share of ``train`` held out as the ``test`` split (seeded, stratified), in [0, 1);
            only without ``test``. 0 gives a ``train`` split only.
        seed: seed of the held-out split.

    Returns:
        ``DatasetDict`` with ``train`` (and ``test`` when ``test`` is given or ``test_fraction > 0``); columns
        ``sequence`` (upper case), ``name``, ``label`` (``ClassLabel`` ``"0"..."K-1"`` or float64). Records keep
        their file order.

    Raises:
        TaskDataError: a bad file, record or label set (one line naming the file and row or record).
        FileNotFoundError: a missing file. ValueError: bad arguments.
    """
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES} or None, got {task_type!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction (--test-fraction) must be in [0, 1), got {test_fraction:g}")
    if test is not None and test_fraction > 0:
        raise ValueError("give a test file (--test) or a held-out fraction (--test-fraction), not both")
    if test is not None and Path(test).resolve() == Path(train).resolve():
        raise ValueError(
            f"--test {test} is the --train file: a model scored on its training records says nothing"
        )
    train_records = read_records(train, sequence_column, label_column)
    files = (
        [train_records]
        if test is None
        else [train_records, read_records(test, sequence_column, label_column)]
    )
    if test is not None and len(files[1].sequences) < 2:  # one record scores nothing: Pearson NaN, MCC 0
        raise TaskDataError(f"{test}: 1 record, too few to score a test split (give at least 2)")
    spec = task_from_labels(
        name or task_name_of(train),
        USER_BENCHMARK,
        [label for records in files for label in records.labels],
        [where for records in files for where in records.where],
        max(len(sequence) for records in files for sequence in records.sequences),
        source=" and ".join(str(path) for path in (train, test) if path is not None),
        task_type=task_type,
    )
    if test is not None and spec.task_type != "regression":
        _check_test_classes(train_records, files[1])
    features = task_features(spec)
    examples = [_checked(spec, records) for records in files]
    splits = {"train": examples[0]} if test is None else {"train": examples[0], "test": examples[1]}
    if test_fraction > 0:
        classification = spec.task_type != "regression"
        splits = _hold_out(examples[0], test_fraction, seed, source=str(train), classification=classification)
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(columns, features=features) for split, columns in splits.items()}
    )


def _check_test_classes(train: Records, test: Records) -> None:
    """Refuse a test record whose class no training record has: the model never learns it, and the test score
    would silently count a class it cannot predict (a label typo, or the files swapped)."""
    classes = sorted({int(label) for label in train.labels})
    for where, label in zip(test.where, test.labels, strict=True):
        if int(label) not in classes:
            raise TaskDataError(
                f"{where}: class {label} is in the test file but in no training record (train classes "
                f"{classes[:10]}); every test class must be trained on"
            )


def task_name_of(path: str | Path) -> str:
    """The default task name of a task file: its name without suffixes (``promoters.csv.gz`` -> ``promoters``)."""
    path = Path(path)
    return path.name.split(".")[0] or path.name


def _checked(spec: TaskSpec, records: Records) -> dict[str, list]:
    checker = RecordChecker(spec)
    rows = [
        checker.check(where, name, sequence, label)
        for where, name, sequence, label in zip(
            records.where, records.names, records.sequences, records.labels, strict=True
        )
    ]
    return {column: [row[column] for row in rows] for column in ("sequence", "name", "label")}


def _hold_out(
    columns: dict[str, list], fraction: float, seed: int, source: str, classification: bool = False
) -> dict[str, dict[str, list]]:
    from .folds import inner_split

    labels = np.asarray(columns["label"])
    if len(labels) < 3:
        raise TaskDataError(f"{source}: {len(labels)} records are too few to hold out a test split")
    train_idx, test_idx = inner_split(np.arange(len(labels)), labels, fraction=fraction, seed=seed)
    if len(test_idx) < 2:  # one record scores nothing: Pearson is NaN, MCC 0
        raise TaskDataError(
            f"{source}: --test-fraction {fraction:g} of {len(labels)} records holds out {len(test_idx)} record, "
            "too few to score; raise --test-fraction, give --test FILE, or --test-fraction 0 (CV only)"
        )
    untrained = (
        sorted(set(labels[test_idx].tolist()) - set(labels[train_idx].tolist())) if classification else []
    )
    if untrained:  # a rare class held out whole (the split cannot stratify a class of one record)
        count = int((labels == untrained[0]).sum())
        raise TaskDataError(
            f"{source}: class {untrained[0]} has {count} record(s), all held out as the test split by "
            f"--test-fraction {fraction:g} (seed {seed}); add records of it, or give --test FILE"
        )
    return {
        split: {column: [values[i] for i in indices] for column, values in columns.items()}
        for split, indices in (("train", train_idx), ("test", test_idx))
    }


def user_task_spec(dataset_dict: datasets.DatasetDict, name: str) -> TaskSpec:
    """The :class:`TaskSpec` (benchmark ``"user"``) of a :func:`load_user_task` result: classes from the
    ``ClassLabel`` (or a regression for a float label), ``sequence_length`` the longest sequence."""
    label = next(iter(dataset_dict.values())).features["label"]
    length = max(len(sequence) for split in dataset_dict.values() for sequence in split["sequence"])
    if isinstance(label, datasets.ClassLabel):
        return TaskSpec(name, USER_BENCHMARK, label.num_classes, length, "regulatory", path=".")
    return TaskSpec(
        name, USER_BENCHMARK, 1, length, "regulatory", metric="pearson", task_type="regression", path="."
    )
