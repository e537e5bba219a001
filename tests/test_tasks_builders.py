"""Task registry and `datasets` builders: upstream layouts, record checks, real GUE / revised data, `nt data`."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from benchmarks.builders import (
    TaskDataError,
    fetch_task_files,
    format_summary,
    load_task,
    summarize,
)
from benchmarks.cli import main as nt
from benchmarks.tasks import TASKS, get_task, task_names

# Rows per task of shared/data/tasks/nt_revised_sample/train.tsv (its README): task -> label counts.
REVISED_SAMPLE_COUNTS = {
    "H2AFZ": (27, 31),
    "H3K27ac": (48, 22),
    "H3K27me3": (30, 32),
    "H3K36me3": (31, 31),
    "H3K4me1": (40, 36),
    "H3K4me2": (24, 31),
    "H3K4me3": (13, 12),
    "H3K9ac": (21, 28),
    "H3K9me3": (29, 34),
    "H4K20me1": (25, 20),
    "enhancers": (40, 32),
    "enhancers_types": (29, 24, 38),
    "promoter_all": (35, 36),
    "promoter_no_tata": (32, 34),
    "promoter_tata": (7, 2),
    "splice_sites_acceptors": (20, 36),
    "splice_sites_all": (21, 20, 462),
    "splice_sites_donors": (28, 39),
}


def _seq(index: int, length: int = 12) -> str:
    bases = "ACGT"
    return "".join(bases[(index * 7 + position * 3 + position // 2) % 4] for position in range(length))


def write_fasta(path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in records))


@pytest.fixture
def original_dir(tmp_path):
    """The upstream layout of the original benchmark: <task>/{train,test}.fna, header `name|label`."""
    root = tmp_path / "original"
    for split, count in (("train", 10), ("test", 4)):
        write_fasta(
            root / "promoter_tata" / f"{split}.fna",
            [(f"{split}_seq{index}|{index % 2}", _seq(index)) for index in range(count)],
        )
    return root


def test_registry_has_the_18_tasks_of_each_nt_benchmark():
    assert len(task_names("original")) == 18 and len(task_names("revised")) == 18
    original = TASKS["original"]
    assert original["splice_sites_all"].class_names == ["donor", "acceptor", "none"]
    assert original["enhancers_types"].num_labels == 3 and original["enhancers"].sequence_length == 200
    assert TASKS["revised"]["enhancers"].sequence_length == 400
    groups = {spec.group for spec in original.values()}
    assert groups == {"histone", "regulatory", "splicing"}
    assert sum(spec.group == "histone" for spec in TASKS["revised"].values()) == 10
    assert get_task("gue", "prom_300_tata").path == "prom/prom_300_tata"
    with pytest.raises(ValueError, match="known tasks: promoter_all"):
        get_task("original", "promoters")
    with pytest.raises(ValueError, match="unknown benchmark"):
        task_names("nt3")


def test_original_builder_reads_fasta_headers(original_dir, tmp_path):
    dataset = load_task("original", "promoter_tata", data_dir=original_dir, cache_dir=tmp_path / "cache")
    assert {split: len(data) for split, data in dataset.items()} == {"train": 10, "test": 4}
    first = dataset["train"][1]
    assert first == {"sequence": _seq(1), "name": "train_seq1|1", "label": 1}
    assert dataset["train"].features["label"].names == ["non_promoter", "promoter"]
    summary = summarize(dataset, get_task("original", "promoter_tata"))
    assert summary["train"] == {
        "examples": 10,
        "min_length": 12,
        "max_length": 12,
        "classes": {"non_promoter": 5, "promoter": 5},
    }
    assert "test: 4 examples, length 12-12, classes non_promoter=2, promoter=2" in format_summary(
        get_task("original", "promoter_tata"), summary
    )


def test_revised_builder_reads_per_task_parquet_and_combined_tsv(tmp_path):
    per_task = tmp_path / "per_task" / "enhancers_types"
    per_task.mkdir(parents=True)
    for split, count in (("train", 9), ("test", 3)):
        pd.DataFrame(
            {
                "sequence": [_seq(index) for index in range(count)],
                "name": [f"chr1:{index}-{index + 12}|{index % 3}" for index in range(count)],
                "label": [index % 3 for index in range(count)],
                "task": "enhancers_types",
            }
        ).to_parquet(per_task / f"{split}.parquet")
    dataset = load_task("revised", "enhancers_types", data_dir=per_task.parent, cache_dir=tmp_path / "c1")
    assert dataset["train"]["label"] == [0, 1, 2] * 3 and len(dataset["test"]) == 3

    combined = tmp_path / "combined"
    combined.mkdir()
    rows = [
        ("ACGTAC", "a|0", 0, "enhancers"),
        ("GGGTTT", "b|1", 1, "enhancers"),
        ("ACGTAC", "c|1", 1, "H3K9ac"),
    ]
    for split in ("train", "test"):
        pd.DataFrame(rows, columns=["sequence", "name", "label", "task"]).to_csv(
            combined / f"{split}.tsv", sep="\t", index=False
        )
    dataset = load_task("revised", "enhancers", data_dir=combined, cache_dir=tmp_path / "c2")
    assert dataset["train"]["name"] == ["a|0", "b|1"]
    with pytest.raises(TaskDataError, match=r"no rows with task 'H3K4me1'.*'H3K9ac', 'enhancers'"):
        load_task("revised", "H3K4me1", data_dir=combined, cache_dir=tmp_path / "c3")


def test_gue_builder_reads_folders_and_infers_unregistered_regression_tasks(tmp_path):
    task_dir = tmp_path / "gue" / "prom" / "prom_300_tata"
    task_dir.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        with gzip.open(task_dir / f"{split}.csv.gz", "wt") as handle:
            handle.write("sequence,label\n" + "".join(f"{_seq(index)},{index % 2}\n" for index in range(6)))
    dataset = load_task("gue", "prom_300_tata", data_dir=tmp_path / "gue", cache_dir=tmp_path / "cache")
    assert list(dataset) == ["train", "dev", "test"] and dataset["dev"]["name"][:2] == ["dev_0", "dev_1"]

    own = tmp_path / "my_expression_task"
    own.mkdir()
    for split in ("train", "test"):
        (own / f"{split}.csv").write_text("sequence,label\nACGTACGT,0.25\nTTTTGGGG,-1.5\nACACACAC,3\n")
    dataset = load_task(
        "gue", "my_expression_task", data_dir=own, cache_dir=tmp_path / "cache", splits=["train", "test"]
    )
    assert dataset["train"].features["label"].dtype == "float64"
    assert dataset["test"]["label"] == [0.25, -1.5, 3.0]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([("a|0", "ACGT"), ("b|1", "")], r"record 2 \('b\|1'\) has a header but no sequence"),
        ([("a|0", "ACGT"), ("b|1", "ACGXT")], r"record 2 \('b\|1'\): non-DNA character 'X' at position 4"),
        ([("a|zero", "ACGT")], r"record 1 \('a\|zero'\): label 'zero' is not an integer"),
        ([("a|2", "ACGT")], r"label 2 out of range for 'promoter_tata' \(2 classes: 0..1\)"),
        (
            [("a|0", "ACGT"), ("a|0", "GGGG")],
            r"record 2 has the same name 'a\|0' as record 1",
        ),
        ([("no_label", "ACGT")], r"record 1 \('no_label'\): header has no '\|<label>' field"),
    ],
)
def test_bad_records_are_reported_with_file_and_record(tmp_path, records, message):
    write_fasta(tmp_path / "data" / "promoter_tata" / "train.fna", records)
    write_fasta(tmp_path / "data" / "promoter_tata" / "test.fna", [("t|0", "ACGT")])
    with pytest.raises(TaskDataError, match=message) as error:
        load_task("original", "promoter_tata", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert "promoter_tata/train.fna" in str(error.value)


def test_missing_split_lists_the_expected_files(original_dir, tmp_path):
    (original_dir / "promoter_tata" / "test.fna").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"missing split 'test'; expected one of: .*promoter_tata/test.fna"
    ):
        load_task("original", "promoter_tata", data_dir=original_dir, cache_dir=tmp_path / "cache")


def test_offline_without_data_explains_where_files_are_expected(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError) as error:
        fetch_task_files("original", get_task("original", "H3"), cache_dir=tmp_path)
    message = str(error.value)
    assert "DATA_DIR/H3/train.fna" in message
    assert "hf download InstaDeepAI/nucleotide_transformer_downstream_tasks" in message
    with pytest.raises(FileNotFoundError, match="no Hub copy"):
        fetch_task_files("gue", get_task("gue", "tf_0"))


def test_real_gue_prom_300_tata_counts(shared_data, tmp_path):
    dataset = load_task("gue", "prom_300_tata", data_dir=shared_data / "tasks" / "gue", cache_dir=tmp_path)
    summary = summarize(dataset, get_task("gue", "prom_300_tata"))
    assert {split: entry["examples"] for split, entry in summary.items()} == {
        "train": 4904,
        "dev": 613,
        "test": 613,
    }
    assert summary["train"]["classes"] == {"non_promoter": 2460, "promoter": 2444}
    assert summary["test"]["classes"] == {"non_promoter": 315, "promoter": 298}
    assert summary["dev"]["min_length"] == summary["dev"]["max_length"] == 300


def test_real_gue_folder_without_train_split(shared_data, tmp_path):
    emp = shared_data / "tasks" / "gue"
    with pytest.raises(FileNotFoundError, match="missing split 'train'"):
        load_task("gue", "EMP_H3", data_dir=emp, cache_dir=tmp_path)
    dataset = load_task("gue", "EMP_H3", data_dir=emp, cache_dir=tmp_path, splits=["dev", "test"])
    assert (len(dataset["dev"]), len(dataset["test"])) == (1497, 1497)


def test_real_revised_sample_loads_per_task(shared_data, tmp_path):
    sample = shared_data / "tasks" / "nt_revised_sample"
    for task, counts in REVISED_SAMPLE_COUNTS.items():
        dataset = load_task("revised", task, data_dir=sample, cache_dir=tmp_path, splits=["train"])
        summary = summarize(dataset, get_task("revised", task))["train"]
        assert tuple(summary["classes"].values()) == counts, task
        assert summary["max_length"] == get_task("revised", task).sequence_length, task


def test_cli_data_prepare_writes_parquet_and_refuses_to_overwrite(original_dir, tmp_path, capsys):
    out = tmp_path / "prepared"
    argv = ["data", "prepare", "--benchmark", "original", "--task", "promoter_tata"]
    argv += ["--data-dir", str(original_dir), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert nt(argv) == 0
    assert "train: 10 examples" in capsys.readouterr().out
    train = pd.read_parquet(out / "train.parquet")
    assert list(train.columns) == ["sequence", "name", "label"] and train["label"].tolist() == [0, 1] * 5
    assert nt(argv) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_cli_data_push_dry_run_and_tasks(tmp_path, capsys):
    for task in ("H3", "H4"):
        (tmp_path / "bench" / task).mkdir(parents=True)
        for split in ("train", "test"):
            pd.DataFrame({"sequence": ["ACGT"], "name": ["a"], "label": [0]}).to_parquet(
                tmp_path / "bench" / task / f"{split}.parquet"
            )
    assert nt(["data", "push", str(tmp_path / "bench"), "--repo-id", "me/nt-tasks", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["me/nt-tasks config H3", "me/nt-tasks config H4"]
    assert nt(["data", "push", str(tmp_path / "empty"), "--repo-id", "me/x", "--dry-run"]) == 2
    assert nt(["data", "tasks", "--benchmark", "revised"]) == 0
    assert "H4K20me1" in capsys.readouterr().out
