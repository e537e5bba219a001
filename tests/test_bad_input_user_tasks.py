"""Bad user task files and flags (issue 13, section 2): `nt probe`, `nt finetune` and `nt bpnet` given
``--train FILE [--test FILE]`` end in one stderr line naming the file, the row or record and the problem.

Each case writes its files into ``tmp_path`` and gives the ``nt`` arguments (``{tmp}`` becomes ``tmp_path``)
and the words the one stderr line must hold. Decisions recorded here: a table names its columns (defaults
``sequence``/``seq`` and ``label``/``labels``, case-insensitive), a FASTA header ends in ``|label``, class
labels are ``0..K-1`` (the builders' one rule), and a task is given either as files or as a benchmark task.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import assert_bad_input

DNA = ["ACGTACGTAC", "TTGACATTGA", "GGGCCCAAAT", "CATCATCATG", "ATATATGCGC", "CCGGTTAACC"]


def table(header: str, rows: list[str], separator: str = ",") -> str:
    return "\n".join([header, *rows]) + "\n"


def good_rows(labels: list[str], separator: str = ",") -> list[str]:
    return [f"{DNA[i % len(DNA)]}{separator}{label}" for i, label in enumerate(labels)]


def files(**contents: str | bytes) -> Callable[[Path], None]:
    """Write ``{file name: content}`` into the case's folder."""

    def build(tmp: Path) -> None:
        for name, content in contents.items():
            path = tmp / name.replace("__", ".")
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    return build


GOOD = table("sequence,label", good_rows(["0", "1"] * 12))


@dataclass
class Case:
    id: str
    build: Callable[[Path], None]
    argv: list[str]
    words: tuple[str, ...]


PROBE = ["probe", "--model", "tiny", "--out", "{tmp}/out.json", "--trials", "1"]
BPNET = ["bpnet", "--out", "{tmp}/out.json", "--max-epochs", "1", "--quiet"]
FINETUNE = ["finetune", "--model", "tiny", "--out", "{tmp}/out.json", "--steps", "1"]

CASES = [
    Case("missing-file", files(), [*PROBE, "--train", "{tmp}/task.csv"], ("task.csv", "not found")),
    Case("train-is-a-folder", files(), [*BPNET, "--train", "{tmp}"], ("is a folder", "--data-dir")),
    Case(
        "unknown-suffix",
        files(task__xlsx=GOOD),
        [*PROBE, "--train", "{tmp}/task.xlsx"],
        ("task.xlsx", "unknown task file type", "'.xlsx'", ".parquet", ".fasta"),
    ),
    Case(
        "missing-sequence-column",
        files(task__csv=table("dna,label", good_rows(["0", "1"] * 6))),
        [*PROBE, "--train", "{tmp}/task.csv"],
        ("task.csv", "no sequence column", "['dna', 'label']", "--sequence-column"),
    ),
    Case(
        "missing-label-column",
        files(task__tsv=table("sequence\ttarget", good_rows(["0", "1"] * 6, "\t"))),
        [*BPNET, "--train", "{tmp}/task.tsv"],
        ("task.tsv", "no label column", "['sequence', 'target']", "--label-column"),
    ),
    Case(
        "label-column-flag-names-absent-column",
        files(task__csv=GOOD),
        [*PROBE, "--train", "{tmp}/task.csv", "--label-column", "class"],
        ("task.csv", "no column 'class'", "--label-column", "['sequence', 'label']"),
    ),
    Case(
        "tab-separated-file-named-csv",
        files(task__csv=table("sequence\tlabel", good_rows(["0", "1"] * 6, "\t"))),
        [*PROBE, "--train", "{tmp}/task.csv"],
        ("task.csv", "no sequence column", "tab-separated", ".tsv"),
    ),
    Case(
        "fasta-header-without-label",
        files(task__fa=">a|0\nACGTACGT\n>b\nTTGACATT\n"),
        [*BPNET, "--train", "{tmp}/task.fa"],
        ("task.fa", "record 2", "'b'", "no '|<label>'"),
    ),
    Case(
        "fasta-with-column-flag",
        files(task__fa=">a|0\nACGTACGT\n>b|1\nTTGACATT\n"),
        [*BPNET, "--train", "{tmp}/task.fa", "--sequence-column", "seq"],
        ("task.fa", "FASTA file has no columns", ">name|label"),
    ),
    Case(
        "fasta-duplicated-name",
        files(task__fa=">a|0\nACGTACGT\n>a|0\nTTGACATT\n"),
        [*BPNET, "--train", "{tmp}/task.fa"],
        ("task.fa", "record 2", "'a|0'", "record 1"),
    ),
    Case(
        "class-label-not-an-integer",
        files(task__csv=table("sequence,label", good_rows(["0", "1", "promoter"] * 4))),
        [*PROBE, "--train", "{tmp}/task.csv", "--task-type", "classification"],
        ("task.csv", "row 3", "'promoter'", "not an integer"),
    ),
    Case(
        "inferred-label-not-a-number",
        files(task__csv=table("sequence,label", good_rows(["0.5", "1.5", "high"] * 4))),
        [*BPNET, "--train", "{tmp}/task.csv"],
        ("task.csv", "row 3", "'high'", "not a number"),
    ),
    Case(
        "labels-not-0-to-k-minus-1",
        files(task__csv=table("sequence,label", good_rows(["1", "2"] * 6))),
        [*BPNET, "--train", "{tmp}/task.csv"],
        ("task.csv", "row 2", "label 2", "[1, 2]", "renumber"),
    ),
    Case(
        "single-class",
        files(task__csv=table("sequence,label", good_rows(["1"] * 12))),
        [*BPNET, "--train", "{tmp}/task.csv", "--task-type", "classification"],
        ("task.csv", "every label", "is 1", "at least two classes"),
    ),
    Case(
        "non-dna-character",
        files(task__csv=table("sequence,label", ["ACGTACGT,0", "ACGUACGT,1"])),
        [*PROBE, "--train", "{tmp}/task.csv"],
        ("task.csv", "row 2", "'U'", "position 4"),
    ),
    Case(
        "empty-file",
        files(task__csv=""),
        [*PROBE, "--train", "{tmp}/task.csv"],
        ("task.csv", "empty file"),
    ),
    Case(
        "header-only-table",
        files(task__tsv="sequence\tlabel\n"),
        [*BPNET, "--train", "{tmp}/task.tsv"],
        ("task.tsv", "no records"),
    ),
    Case(
        "empty-fasta",
        files(task__fasta=""),
        [*BPNET, "--train", "{tmp}/task.fasta"],
        ("task.fasta", "no FASTA records"),
    ),
    Case(
        "corrupt-gzip",
        files(task__csv__gz=b"\x1f\x8b\x08\x00garbage, not deflate data"),
        [*BPNET, "--train", "{tmp}/task.csv.gz"],
        ("task.csv.gz", "not a readable CSV"),
    ),
    Case(
        "text-named-parquet",
        files(task__parquet=GOOD),
        [*BPNET, "--train", "{tmp}/task.parquet"],
        ("task.parquet", "not a readable PARQUET"),
    ),
    Case(
        "too-few-examples-per-class-for-the-folds",
        files(task__csv=table("sequence,label", good_rows(["0", "1"] * 8))),
        [*BPNET, "--train", "{tmp}/task.csv"],
        ("task", "class", "fewer than the 10 folds", "use"),
    ),
    Case(
        "train-with-benchmark",
        files(task__csv=GOOD),
        [*PROBE, "--train", "{tmp}/task.csv", "--benchmark", "gue", "--task", "prom_300_tata"],
        ("--train", "--benchmark", "mutually exclusive"),
    ),
    Case(
        "train-with-data-dir",
        files(task__csv=GOOD),
        [*BPNET, "--train", "{tmp}/task.csv", "--data-dir", "{tmp}"],
        ("--train", "--data-dir", "mutually exclusive"),
    ),
    Case(
        "no-task",
        files(),
        [*BPNET],
        ("no task", "--benchmark", "--train"),
    ),
    Case(
        "user-file-flag-with-benchmark",
        files(),
        [*BPNET, "--benchmark", "gue", "--task", "prom_300_tata", "--label-column", "y"],
        ("--label-column", "only apply", "--train"),
    ),
    Case(
        "test-fraction-out-of-range",
        files(task__csv=GOOD),
        [*PROBE, "--train", "{tmp}/task.csv", "--test-fraction", "1.5"],
        ("--test-fraction", "1.5", "[0, 1)"),
    ),
    Case(
        "test-file-and-test-fraction",
        files(task__csv=GOOD, test__csv=GOOD),
        [*BPNET, "--train", "{tmp}/task.csv", "--test", "{tmp}/test.csv", "--test-fraction", "0.2"],
        ("--test", "--test-fraction", "mutually exclusive"),
    ),
    Case(
        "bad-test-file",
        files(task__csv=GOOD, test__csv=table("sequence,label", ["ACGTACGT,0", ",1"])),
        [*BPNET, "--train", "{tmp}/task.csv", "--test", "{tmp}/test.csv", "--cv", "2"],
        ("test.csv", "row 2", "empty sequence"),
    ),
    Case(
        "finetune-without-test-split",
        files(task__csv=GOOD),
        [*FINETUNE, "--train", "{tmp}/task.csv", "--test-fraction", "0", "--cv", "2"],
        ("test split", "--test", "--test-fraction"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_user_task_input(case: Case, tmp_path, run_nt):
    case.build(tmp_path)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
    assert_bad_input(run_nt(*argv), *case.words)
    assert not (tmp_path / "out.json").exists()


def test_gzip_detected_by_magic_bytes(tmp_path):
    """A gzipped table without ``.gz`` in its name is read (the suffix only gives the format)."""
    from benchmarks.user_tasks import load_user_task

    path = tmp_path / "task.csv"
    path.write_bytes(gzip.compress(GOOD.encode()))
    dataset = load_user_task(path)
    assert len(dataset["train"]) == 24 and list(dataset["train"]["label"][:4]) == [0, 1, 0, 1]
