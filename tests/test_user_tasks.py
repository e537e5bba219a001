"""A task given as the user's own files (issue 13, section 2): the same ``DatasetDict``, folds and scores from
CSV, TSV, parquet and FASTA (plain and gzip), through `nt probe`, `nt finetune` and `nt bpnet`.

The records are the first 40 of each class of the bundled real GUE task ``prom_300_tata`` (``data/gue``,
see data/README.md), written by the test in each format.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from benchmarks.builders import load_task, split_files
from benchmarks.cli import main as nt
from benchmarks.folds import stratified_folds
from benchmarks.results import load_results
from benchmarks.tasks import get_task
from benchmarks.user_tasks import load_user_task, user_task_spec

PER_CLASS = 40


@pytest.fixture(scope="module")
def records(bundled_data) -> pd.DataFrame:
    """80 real records (40 per class) with names ``row_<n>``, the default names of a table without them."""
    table = pd.read_csv(bundled_data / "gue/prom/prom_300_tata/train.csv.gz", dtype={"label": int})
    table = pd.concat([table[table.label == label].head(PER_CLASS) for label in (0, 1)]).sort_index()
    table = table.reset_index(drop=True)
    table.insert(0, "name", [f"row_{row}" for row in range(1, len(table) + 1)])
    return table


def write_formats(table: pd.DataFrame, folder) -> dict[str, object]:
    """The same records as CSV, TSV (columns ``seq``/``labels``), parquet (with names), FASTA ``>name|label``
    and gzipped CSV; the FASTA sequences in lower case over two lines."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["csv"] = folder / "task.csv"
    table[["sequence", "label"]].to_csv(files["csv"], index=False)
    files["tsv"] = folder / "task.tsv"
    table.rename(columns={"sequence": "seq", "label": "labels"})[["labels", "seq"]].to_csv(
        files["tsv"], sep="\t", index=False
    )
    files["parquet"] = folder / "task.parquet"
    table.to_parquet(files["parquet"], index=False)
    files["fasta"] = folder / "task.fa"
    files["fasta"].write_text(
        "".join(
            f">{name}|{label}\n{seq[:150].lower()}\n{seq[150:].lower()}\n"
            for name, seq, label in table[["name", "sequence", "label"]].itertuples(index=False)
        )
    )
    files["csv.gz"] = folder / "task.csv.gz"
    files["csv.gz"].write_bytes(gzip.compress(files["csv"].read_bytes()))
    return files


@pytest.fixture(scope="module")
def files(records, tmp_path_factory):
    return write_formats(records, tmp_path_factory.mktemp("formats"))


FORMATS = ("csv", "tsv", "parquet", "fasta", "csv.gz")


def test_every_format_gives_the_same_dataset_dict_and_folds(files, records):
    loaded = {fmt: load_user_task(files[fmt], test_fraction=0.25, seed=0) for fmt in FORMATS}
    reference = loaded["csv"]
    assert {split: len(data) for split, data in reference.items()} == {"train": 60, "test": 20}
    assert np.bincount(reference["test"]["label"]).tolist() == [10, 10]  # stratified hold-out
    assert reference["train"].features["label"].names == ["0", "1"]
    # every record is in exactly one split, unchanged (upper case) and in file order
    names = sorted(
        list(reference["train"]["name"]) + list(reference["test"]["name"]), key=lambda name: int(name[4:])
    )
    assert names == list(records["name"])
    by_name = dict(zip(records["name"], records["sequence"], strict=True))
    for split in reference.values():
        assert [by_name[name] for name in split["name"]] == list(split["sequence"])
    folds = stratified_folds(reference["train"]["label"], n_folds=3, seed=0)
    for fmt, dataset in loaded.items():
        assert dataset["train"].features == reference["train"].features, fmt
        for split in ("train", "test"):
            assert dataset[split].to_dict() == reference[split].to_dict(), (fmt, split)
        for (train_a, eval_a), (train_b, eval_b) in zip(
            stratified_folds(dataset["train"]["label"], n_folds=3, seed=0), folds, strict=True
        ):
            assert train_a.tolist() == train_b.tolist() and eval_a.tolist() == eval_b.tolist()
    assert user_task_spec(reference, "task").num_labels == 2
    assert user_task_spec(reference, "task").sequence_length == 300


def test_train_and_test_files_equal_the_gue_builder(bundled_data, tmp_path):
    folder = bundled_data / "gue/prom/prom_300_tata"
    user = load_user_task(folder / "train.csv.gz", folder / "test.csv.gz")
    bench = load_task("gue", "prom_300_tata", data_dir=folder, cache_dir=tmp_path, splits=("train", "test"))
    for split, rows in (("train", 4904), ("test", 613)):
        assert len(user[split]) == rows
        assert list(user[split]["sequence"]) == list(bench[split]["sequence"])
        assert list(user[split]["label"]) == list(bench[split]["label"])
    assert user_task_spec(user, "prom").num_labels == get_task("gue", "prom_300_tata").num_labels


def test_columns_chosen_by_flags_and_regression_targets(tmp_path, records):
    table = records.rename(columns={"sequence": "dna", "label": "activity"})
    table["activity"] = np.linspace(-1.0, 1.0, len(table)).round(3)
    path = tmp_path / "activity.csv"
    table.to_csv(path, index=False)
    dataset = load_user_task(path, sequence_column="dna", label_column="activity", test_fraction=0.2)
    assert str(dataset["train"].features["label"].dtype) == "float64"
    assert (len(dataset["train"]), len(dataset["test"])) == (64, 16)
    assert user_task_spec(dataset, "activity").task_type == "regression"
    assert list(dataset["train"]["name"][:2]) == ["row_1", "row_2"]  # the table's own name column
    # integer labels made a regression target on request
    forced = load_user_task(files_of(records, tmp_path), task_type="regression")
    assert str(forced["train"].features["label"].dtype) == "float64"
    assert sorted(set(forced["train"]["label"])) == [0.0, 1.0]


def files_of(records: pd.DataFrame, folder):
    path = folder / "classes.csv"
    records[["sequence", "label"]].to_csv(path, index=False)
    return path


def test_gue_folder_accepts_tsv_and_lists_each_candidate_once(tmp_path, records):
    folder = tmp_path / "gue_tsv"
    folder.mkdir()
    for split in ("train", "dev", "test"):
        records[["sequence", "label"]].to_csv(folder / f"{split}.tsv.gz", sep="\t", index=False)
    dataset = load_task("gue", "mine", data_dir=folder, cache_dir=tmp_path / "cache")
    assert {split: len(data) for split, data in dataset.items()} == {"train": 80, "dev": 80, "test": 80}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as error:
        split_files("gue", get_task("gue", "prom_300_tata"), empty, ("train",))
    message = str(error.value)
    candidates = message.split("expected one of: ")[1].split(", ")
    assert len(candidates) == len(set(candidates)) == 8  # 2 folders x .csv, .csv.gz, .tsv, .tsv.gz
    with pytest.raises(FileNotFoundError) as error:  # data_dir is the task folder: each path once, not twice
        load_task("gue", "mine", data_dir=empty, splits=("train",))
    assert str(error.value).count(f"{empty}/train.csv,") == 1


def test_original_layout_from_a_folder_holding_only_test_fna(tmp_path, records):
    folder = tmp_path / "promoter_tata"
    folder.mkdir()
    folder.joinpath("test.fna").write_text(
        "".join(f">{name}|{label}\n{seq}\n" for name, seq, label in records.head(6).itertuples(index=False))
    )
    for data_dir in (tmp_path, folder):  # the benchmark root, or the task folder itself
        dataset = load_task(
            "original", "promoter_tata", data_dir=data_dir, cache_dir=tmp_path / "cache", splits=("test",)
        )
        assert list(dataset) == ["test"] and dataset["test"]["name"][0] == f"row_1|{records.label[0]}"
        assert list(dataset["test"]["label"]) == records["label"].head(6).tolist()


PROBE = ["--model", "tiny", "--layers", "1,2", "--probes", "probe", "--trials", "2", "--cv", "3"]


def probe_scores(out) -> list[tuple]:
    return [(r.method, r.layer, r.fold_scores, r.test_score) for r in load_results(out)]


@pytest.fixture(scope="module")
def csv_probe(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "csv.json"
    assert nt(["probe", *PROBE, "--no-baseline", "--train", str(files["csv"]), "--out", str(out)]) == 0
    return out


def test_probe_on_a_single_file_gives_cv_and_test_scores(csv_probe):
    results = load_results(csv_probe)
    assert [(r.benchmark, r.task, r.method, r.layer) for r in results] == [
        ("user", "task", "probe", 1),
        ("user", "task", "probe", 2),
    ]
    for result in results:
        assert len(result.fold_scores) == 3 and result.test_score is not None
        assert result.metric == "mcc"
    # real, distinct numbers (a random tiny model: measured MCC -0.34..-0.17 and -0.50..-0.33 per fold), so the
    # equality across formats below compares something
    assert len({score for result in results for score in result.fold_scores}) >= 4


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "fasta", "csv.gz"])
def test_probe_scores_are_the_same_in_every_format(fmt, files, csv_probe, tmp_path):
    out = tmp_path / "probe.json"
    assert nt(["probe", *PROBE, "--no-baseline", "--train", str(files[fmt]), "--out", str(out)]) == 0
    assert probe_scores(out) == probe_scores(csv_probe)


def test_probe_on_regression_targets(tmp_path, records):
    path = tmp_path / "expression.tsv"
    gc = records["sequence"].map(lambda s: (s.count("G") + s.count("C")) / len(s))
    pd.DataFrame({"sequence": records["sequence"], "label": gc.round(4)}).to_csv(path, sep="\t", index=False)
    out = tmp_path / "reg.json"
    argv = ["probe", *PROBE, "--train", str(path), "--test-fraction", "0.2", "--out", str(out)]
    assert nt(argv) == 0
    results = load_results(out)
    assert {r.metric for r in results} == {"pearson"}
    assert [r.method for r in results] == ["raw-tokens", "probe", "probe"]
    assert all(len(r.fold_scores) == 3 and r.test_score is not None for r in results)


def test_finetune_on_a_single_file(files, tmp_path):
    out = tmp_path / "ft.json"
    argv = ["finetune", "--model", "tiny", "--train", str(files["fasta"]), "--task", "tata", "--cv", "2"]
    assert nt([*argv, "--steps", "2", "--batch-size", "4", "--out", str(out)]) == 0
    [result] = load_results(out)
    assert (result.benchmark, result.task, result.method) == ("user", "tata", "ia3")
    assert len(result.fold_scores) == 2 and result.test_score is not None


def test_bpnet_on_a_single_file(files, tmp_path):
    out = tmp_path / "bpnet.json"
    argv = ["bpnet", "--train", str(files["parquet"]), "--cv", "2", "--max-epochs", "1"]
    assert nt([*argv, "--batch-size", "16", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    [result] = load_results(out)
    assert (result.benchmark, result.task, result.method) == ("user", "task", "bpnet")
    assert len(result.fold_scores) == 2 and result.test_score is not None
    assert set(result.extra["runs"]) == {"fold 0", "fold 1", "test"}
