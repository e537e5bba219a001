"""A new genomics user's own files and regions, found by trying to break the issue-13 features.

Bad input (exit 2, one stderr line naming the file / flag and the problem, no traceback): kinds that were
silent or misleading before — a test file with a class no training record has (scored without a word), a
held-out test split of one record (test Pearson NaN, exit 0), a FASTA saved with a byte-order mark (reported
as text before the first header), a SegmentNT region outside a FASTA slice (reported as "contig not in the
FASTA") or shorter than the model's shortest window (reported against the 30 kb default window).

Odd but valid files (Windows line endings, byte-order mark, quoted fields, extra columns, spaces around the
header names, lower-case sequences) read to exactly the records written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import assert_bad_input

SEQUENCES = [
    "ACGTTGCAAGGCTTACCGATAGCTAGGCTTAACGGA",
    "TTGACCGATGCATGCAAGTCGATCGGATCCTAGCTA",
    "GGACTTACGATCGACGTTGCAAGGCTTACCGATAGC",
    "CATGCAAGTCGATCGGATCCTAGCTAGGACTTACGA",
]


def _csv(labels: list[int], sep: str = ",") -> str:
    rows = [
        f"{SEQUENCES[i % 4]}{'ACGT'[i % 4] * (i // 4 + 1)}{sep}{label}\n" for i, label in enumerate(labels)
    ]
    return f"sequence{sep}label\n" + "".join(rows)


def _parquet_with_missing_label() -> bytes:
    """A parquet file with a nullable integer label column (pandas ``Int64``) whose row 3 is missing."""
    import io

    import pandas as pd

    frame = pd.DataFrame({"sequence": SEQUENCES, "label": pd.array([0, 1, None, 1], dtype="Int64")})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


@dataclass
class Case:
    """Files to write under tmp (name -> text or bytes), argv with ``{tmp}``, the words of the one error line."""

    id: str
    files: dict[str, str | bytes]
    argv: list[str]
    words: tuple[str, ...]


SLICE = ">20:30000001-30000200\n" + "ACGT" * 50 + "\n"
PREDICT = ["segment", "predict", "--model", "tiny", "--fasta", "{tmp}/slice.fa", "--out", "{tmp}/pred"]

CASES = [
    # a class in the test file that no training record has was scored silently (a K-class head, K-1 trained)
    Case(
        "probe-test-class-absent-from-train",
        {"train.csv": _csv([0, 1] * 6), "test.csv": _csv([0, 2, 1, 0])},
        [
            "probe",
            "--model",
            "tiny",
            "--train",
            "{tmp}/train.csv",
            "--test",
            "{tmp}/test.csv",
            "--cv",
            "2",
            "--out",
            "{tmp}/r.json",
        ],
        ("test.csv", "row 2", "class 2", "no training record", "[0, 1]"),
    ),
    Case(
        "bpnet-train-lacks-a-middle-class",
        {"train.csv": _csv([0, 2] * 6), "test.csv": _csv([0, 1, 2])},
        [
            "bpnet",
            "--train",
            "{tmp}/train.csv",
            "--test",
            "{tmp}/test.csv",
            "--cv",
            "2",
            "--max-epochs",
            "1",
            "--out",
            "{tmp}/r.json",
        ],
        ("test.csv", "row 2", "class 1", "no training record", "[0, 2]"),
    ),
    # 10% of 12 records held out one record: exit 0 with "test pearson nan"
    Case(
        "bpnet-held-out-split-of-one-record",
        {"task.csv": _csv([0, 1] * 6).replace(",0\n", ",0.5\n").replace(",1\n", ",1.5\n")},
        ["bpnet", "--train", "{tmp}/task.csv", "--cv", "2", "--max-epochs", "1", "--out", "{tmp}/r.json"],
        ("task.csv", "--test-fraction 0.1", "12 records", "1 record", "--test"),
    ),
    # word labels: the message now says how to write classes
    Case(
        "probe-word-labels-pos-neg",
        {"task.csv": _csv([0, 1] * 6).replace(",0\n", ",neg\n").replace(",1\n", ",pos\n")},
        ["probe", "--model", "tiny", "--train", "{tmp}/task.csv", "--cv", "2", "--out", "{tmp}/r.json"],
        ("task.csv", "row 1", "'neg'", "not a number", "integers 0..K-1"),
    ),
    # an empty label cell was "label '' is not a number"
    Case(
        "probe-empty-label-cell",
        {"task.csv": _csv([0, 1] * 6).replace(",1\n", ",\n", 1)},
        ["probe", "--model", "tiny", "--train", "{tmp}/task.csv", "--cv", "2", "--out", "{tmp}/r.json"],
        ("task.csv", "row 2", "missing label"),
    ),
    # pandas' <NA> in a nullable parquet column was "label '<NA>' is not a number"
    Case(
        "probe-parquet-nullable-label-missing",
        {"task.parquet": _parquet_with_missing_label()},
        ["probe", "--model", "tiny", "--train", "{tmp}/task.parquet", "--cv", "2", "--out", "{tmp}/r.json"],
        ("task.parquet", "row 3", "missing label"),
    ),
    # a spreadsheet's semicolon CSV: the message now says why no column was found
    Case(
        "probe-semicolon-separated-csv",
        {"task.csv": _csv([0, 1] * 6, sep=";")},
        ["probe", "--model", "tiny", "--train", "{tmp}/task.csv", "--cv", "2", "--out", "{tmp}/r.json"],
        ("task.csv", "no sequence column", "'sequence;label'", "semicolon-separated"),
    ),
    # the one record of a rare class held out whole by --test-fraction (seed 2 puts row 1 in the test split):
    # trained without class 2, scored on it, exit 0
    Case(
        "bpnet-rare-class-held-out-whole",
        {"task.csv": _csv([2] + [i % 2 for i in range(1, 20)])},
        [
            "bpnet",
            "--train",
            "{tmp}/task.csv",
            "--test-fraction",
            "0.3",
            "--seed",
            "2",
            "--cv",
            "2",
            "--out",
            "{tmp}/r.json",
        ],
        ("task.csv", "class 2 has 1 record", "all held out", "--test-fraction 0.3", "seed 2"),
    ),
    # a one-record test file gave "test mcc 0.0000" with exit 0
    Case(
        "bpnet-test-file-of-one-record",
        {"train.csv": _csv([0, 1] * 6), "test.csv": _csv([1])},
        [
            "bpnet",
            "--train",
            "{tmp}/train.csv",
            "--test",
            "{tmp}/test.csv",
            "--cv",
            "2",
            "--out",
            "{tmp}/r.json",
        ],
        ("test.csv", "1 record", "too few"),
    ),
    # the training file given as the test file too: scored on its own training records, exit 0
    Case(
        "probe-test-file-is-the-train-file",
        {"train.csv": _csv([0, 1] * 6)},
        [
            "probe",
            "--model",
            "tiny",
            "--train",
            "{tmp}/train.csv",
            "--test",
            "{tmp}/./train.csv",
            "--cv",
            "2",
            "--out",
            "{tmp}/r.json",
        ],
        ("--test", "train.csv", "is the --train file"),
    ),
    # Windows Notepad's UTF-8 BOM: was "line 1 ('\ufeff>r0|0') comes before the first '>' header line"
    Case(
        "probe-fasta-saved-with-bom",
        {"task.fa": "\ufeff" + "".join(f">r{i}|{i % 2}\n{SEQUENCES[i % 4]}\n" for i in range(8))},
        ["probe", "--model", "tiny", "--train", "{tmp}/task.fa", "--cv", "2", "--out", "{tmp}/r.json"],
        ("task.fa", "byte-order mark", "without BOM"),
    ),
    # a BED of CTCF sites trained as exon/intron: every target 0, exit 0 ("no positives in the held-out windows")
    Case(
        "segment-train-classes-absent-from-annotation",
        {"slice.fa": SLICE, "ctcf.bed": "20\t30000010\t30000050\tCTCF Binding Site\t0\t.\n"},
        [
            "segment",
            "train",
            "--model",
            "tiny",
            "--fasta",
            "{tmp}/slice.fa",
            "--annotation",
            "{tmp}/ctcf.bed",
            "--held-out",
            "20:30000101-30000200",
            "--classes",
            "exon",
            "intron",
            "--steps",
            "1",
            "--window-tokens",
            "4",
            "--out",
            "{tmp}/pred",
        ],
        ("--classes exon intron", "none is in", "ctcf.bed", "CTCF-bound", "every target would be 0"),
    ),
    # a region on the slice's contig but outside the slice was "contig '20' is not in the FASTA"
    Case(
        "segment-region-before-the-slice",
        {"slice.fa": SLICE},
        [*PREDICT, "--region", "20:1-100"],
        ("--region 20:1-100", "outside record", "covers 20:30000001-30000200"),
    ),
    Case(
        "segment-region-past-the-slice-end",
        {"slice.fa": SLICE},
        [*PREDICT, "--region", "chr20:30000101-30000300"],
        ("--region", "30000300", "outside record", "20:30000001-30000200 (200 nt"),
    ),
    # a 1-nt region was "shorter than one window (30000 nt)", though 24-nt regions are scored
    Case(
        "segment-region-of-one-nucleotide",
        {"slice.fa": SLICE},
        [*PREDICT, "--region", "20:30000011-30000011"],
        ("region of 1 nt", "shorter than one window", "shortest this model takes is 24 nt"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, run_nt) -> None:
    for name, content in case.files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, newline="")
    result = run_nt(*[arg.replace("{tmp}", str(tmp_path)) for arg in case.argv])
    assert_bad_input(result, *case.words)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "pred").exists()


# odd but valid table files: (file name, bytes) -> exactly the records written
ODD_FILES = [
    ("windows-crlf-and-bom.tsv", "\ufeffsequence\tlabel\r\nACGTAC\t0\r\nGGTTCA\t1\r\n".encode()),
    ("quoted-fields-extra-columns.csv", b'"id","sequence","score","label"\n"a","ACGTAC","0.5","0"\n"b","GGTTCA","1","1"\n'),
    ("spaces-around-header-names.csv", b" Sequence , Label \nACGTAC,0\nGGTTCA,1\n"),
    ("lower-case-sequences.csv", b"seq,labels\nacgtac,0\nggttca,1\n"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content"), ODD_FILES, ids=[name for name, _ in ODD_FILES])
def test_odd_but_valid_files_read_exactly(name: str, content: bytes, tmp_path: Path) -> None:
    from benchmarks.user_tasks import load_user_task

    path = tmp_path / name
    path.write_bytes(content)
    train = load_user_task(path)["train"]
    assert train["sequence"] == ["ACGTAC", "GGTTCA"]
    assert train["label"] == [0, 1]
    assert train.features["label"].names == ["0", "1"]


def test_push_of_user_task_results_does_not_claim_eval_results(tmp_path: Path) -> None:
    """``nt push --results`` of a user task (benchmark ``user``, on no Hub dataset): the card has its
    model-index, no ``.eval_results/`` is staged, and the report says so (it claimed ``.eval_results/``)."""
    from benchmarks.publish import stage_checkpoint
    from benchmarks.results import BenchmarkResult
    from modeling_nt import NTConfig, NTForMaskedLM
    from modeling_nt.checkpoint import save_checkpoint

    save_checkpoint(NTForMaskedLM(NTConfig.from_preset("tiny")), tmp_path / "ck")
    result = BenchmarkResult(
        model="mine", task="my_task", benchmark="user", method="probe", metric="mcc", fold_scores=[0.5, 0.7],
        test_score=0.6, layer=1,
    )  # fmt: skip
    staged = stage_checkpoint(
        tmp_path / "ck", tmp_path / "staged", "me/mine", results=[result], model_name="mine", card_size="tiny"
    )
    assert staged.card == "rendered from 1 result(s) of 'mine' (model-index, no .eval_results/: no result on a " \
        "Hub-hosted benchmark)"  # fmt: skip
    assert not (tmp_path / "staged" / ".eval_results").exists()
    assert "my_task" in (tmp_path / "staged" / "README.md").read_text()
