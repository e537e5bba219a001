"""Bad input data: FASTA and task files that cannot be right end in one line naming the file and record
(issue 12, section 5), across `nt tokenize`, `embed`, `data prepare`, `probe`, `finetune`, `bpnet` and
`analyze elements`.

Each case writes its files into ``tmp_path`` and gives the ``nt`` arguments and the words the one stderr
line must hold (``{tmp}`` in an argument becomes ``tmp_path``). Decisions recorded here:

- FASTA records are named uniquely, every record has a sequence, and a file holds at least one record
  (the one reader, :func:`benchmarks.embeddings.iter_fasta`; record numbers are 1-based).
- Class labels of an unregistered (GUE-folder) task must be ``0..K-1`` with ``K >= 2``: labels are never
  renumbered silently; ``{0, 5}`` is refused naming the file, row and labels.
- Training labels must hold two classes, at least as many examples as folds, and every class at least as
  many examples as folds (stratified folds).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import assert_bad_input

# ---------------------------------------------------------------------------------------------------------------
# Builders of bad (and good) files

DNA = ["ACGTACGTAC", "TTGACATTGA", "GGGCCCAAAT", "CATCATCATG", "ATATATGCGC", "CCGGTTAACC"]


def fasta(records: list[tuple[str, str]]) -> str:
    return "".join(f">{name}\n{sequence}\n" if sequence else f">{name}\n" for name, sequence in records)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def gue_task(labels: list[str], header: str = "sequence,label") -> Callable[[Path], None]:
    """A GUE-style folder ``{tmp}/task``: train.csv holds ``labels``, dev.csv and test.csv their first four."""

    def build(tmp: Path) -> None:
        rows = [f"{DNA[i % len(DNA)]}{'ACGT'[i % 4] * (i % 5)},{label}" for i, label in enumerate(labels)]
        write(tmp / "task" / "train.csv", "\n".join([header, *rows]) + "\n")
        for split in ("dev", "test"):
            write(tmp / "task" / f"{split}.csv", "\n".join([header, *rows[:4]]) + "\n")

    return build


def original_task(train: list[tuple[str, str]], test: list[tuple[str, str]] | None = None):
    """The original benchmark's layout for the registered task promoter_tata: ``{tmp}/data/promoter_tata``."""

    def build(tmp: Path) -> None:
        write(tmp / "data" / "promoter_tata" / "train.fna", fasta(train))
        write(
            tmp / "data" / "promoter_tata" / "test.fna", fasta(test or [("t0|0", DNA[0]), ("t1|1", DNA[1])])
        )

    return build


def balanced(n_per_class: dict[int, int]) -> list[tuple[str, str]]:
    records = []
    for label, count in n_per_class.items():
        records += [(f"s{label}_{i}|{label}", DNA[(i + label) % len(DNA)] * 2) for i in range(count)]
    return records


GARBAGE = bytes(range(128, 256)) * 4  # not text: invalid UTF-8 from the first byte

# ---------------------------------------------------------------------------------------------------------------
# The cases


@dataclass
class Case:
    id: str
    build: Callable[[Path], None]
    argv: list[str]
    words: tuple[str, ...]


def fasta_file(text: str | bytes, name: str = "in.fa") -> Callable[[Path], None]:
    return lambda tmp: write(tmp / name, text)


DUPLICATES = fasta([("a", "ACGTACGT"), ("b", "GGGG"), ("a", "TTTT")])
HEADER_ONLY = fasta([("a", "ACGTACGT"), ("empty", ""), ("c", "GGGG")])
INVALID_CHAR = fasta([("a", "ACGTACGT"), ("b", "ACGT-ACGT")])
EMBED = ["embed", "--model", "tiny", "--fasta", "{tmp}/in.fa", "--out", "{tmp}/out.parquet", "--no-progress"]
PREPARE = ["data", "prepare", "--benchmark", "gue", "--task", "task", "--data-dir", "{tmp}/task", "--out"]
PREPARE_ORIGINAL = ["data", "prepare", "--benchmark", "original", "--task", "promoter_tata", "--data-dir"]
PROBE = ["probe", "--model", "tiny", "--benchmark", "gue", "--task", "task", "--data-dir", "{tmp}/task"]
PROBE_ORIGINAL = ["probe", "--model", "tiny", "--benchmark", "original", "--task", "promoter_tata"]
FINETUNE_ORIGINAL = ["finetune", "--model", "tiny", "--benchmark", "original", "--task", "promoter_tata"]
BPNET = ["bpnet", "--benchmark", "gue", "--task", "task", "--data-dir", "{tmp}/task", "--quiet"]
ELEMENTS = ["analyze", "elements", "--model", "tiny", "--sequences", "{tmp}/seqs.tsv", "--out", "{tmp}/el"]


def tsv(rows: list[str]) -> Callable[[Path], None]:
    return lambda tmp: write(tmp / "seqs.tsv", "\n".join(rows) + "\n")


ELEMENT_ROWS = [f"n{i}\t{DNA[i % 6] * 3}\t{'promoter' if i % 2 else 'exon'}" for i in range(12)]

CASES = [
    # --- nt tokenize: the one FASTA reader ---------------------------------------------------------------------
    Case(
        "tokenize-duplicate-names",
        fasta_file(DUPLICATES),
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "record 3", "'a'", "record 1", "unique"),
    ),
    Case(
        "tokenize-header-only-record",
        fasta_file(HEADER_ONLY),
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "record 2", "'empty'", "no sequence"),
    ),
    Case("tokenize-empty-file", fasta_file(""), ["tokenize", "{tmp}/in.fa"], ("in.fa", "no FASTA records")),
    Case(
        "tokenize-sequence-without-header",
        fasta_file("ACGTACGT\nACGT\n"),
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "not a FASTA file", "line 1", "'>'"),
    ),
    Case(
        "tokenize-binary-garbage",
        fasta_file(GARBAGE),
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "not a readable FASTA"),
    ),
    Case(
        "tokenize-invalid-character",
        fasta_file(INVALID_CHAR),
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "'b'", "'-'", "position 4"),
    ),
    Case(
        "tokenize-gzip-duplicates",
        fasta_file(gzip.compress(DUPLICATES.encode()), "in.fa.gz"),
        ["tokenize", "{tmp}/in.fa.gz"],
        ("in.fa.gz", "record 3", "'a'", "record 1"),
    ),
    # --- nt embed -------------------------------------------------------------------------------------------------
    Case("embed-duplicate-names", fasta_file(DUPLICATES), EMBED, ("in.fa", "record 3", "'a'", "record 1")),
    Case("embed-header-only-record", fasta_file(HEADER_ONLY), EMBED, ("in.fa", "record 2", "no sequence")),
    Case(
        "embed-trailing-header-only-record",
        fasta_file(fasta([("a", "ACGT"), ("last", "")])),
        EMBED,
        ("in.fa", "record 2", "'last'", "no sequence"),
    ),
    Case("embed-empty-file", fasta_file(""), EMBED, ("in.fa", "no FASTA records")),
    Case("embed-binary-garbage", fasta_file(GARBAGE), EMBED, ("in.fa", "not a readable FASTA")),
    Case(
        "embed-invalid-character", fasta_file(INVALID_CHAR), EMBED, ("in.fa", "record 2", "'-'", "position 4")
    ),
    # --- nt data prepare: task files ------------------------------------------------------------------------------
    Case(
        "prepare-gue-labels-0-and-5",
        gue_task(["0", "5"] * 6),
        [*PREPARE, "{tmp}/out"],
        ("train.csv", "row 2", "label 5", "[0, 5]", "0..1"),
    ),
    Case(
        "prepare-gue-labels-1-and-2",
        gue_task(["1", "2"] * 6),
        [*PREPARE, "{tmp}/out"],
        ("train.csv", "row 2", "label 2", "[1, 2]", "renumber"),
    ),
    Case(
        "prepare-gue-one-class",
        gue_task(["0"] * 12),
        [*PREPARE, "{tmp}/out"],
        ("task", "is 0", "at least two classes"),
    ),
    Case(
        "prepare-gue-missing-label-column",
        gue_task(["0", "1"] * 6, header="sequence,target"),
        [*PREPARE, "{tmp}/out"],
        ("train.csv", "missing column", "label"),
    ),
    Case(
        "prepare-gue-non-numeric-label",
        gue_task(["0", "1", "high"] * 4),
        [*PREPARE, "{tmp}/out"],
        ("train.csv", "row 3", "'high'", "not a number"),
    ),
    Case(
        "prepare-gue-nan-label",
        gue_task(["0.5", "nan", "1.5"] * 4),
        [*PREPARE, "{tmp}/out"],
        ("train.csv", "row 2", "'nan'", "not finite"),
    ),
    Case(
        "prepare-original-duplicate-names",
        original_task([("a|0", DNA[0]), ("a|0", DNA[1])]),
        [*PREPARE_ORIGINAL, "{tmp}/data", "--out", "{tmp}/out"],
        ("promoter_tata/train.fna", "record 2", "'a|0'", "record 1"),
    ),
    Case(
        "prepare-original-header-only-record",
        original_task([("a|0", DNA[0]), ("b|1", "")]),
        [*PREPARE_ORIGINAL, "{tmp}/data", "--out", "{tmp}/out"],
        ("promoter_tata/train.fna", "record 2", "'b|1'", "no sequence"),
    ),
    Case(
        "prepare-original-empty-file",
        lambda tmp: original_task([])(tmp),
        [*PREPARE_ORIGINAL, "{tmp}/data", "--out", "{tmp}/out"],
        ("promoter_tata/train.fna", "no FASTA records"),
    ),
    Case(
        "prepare-original-label-out-of-range",
        original_task([("a|0", DNA[0]), ("b|7", DNA[1])]),
        [*PREPARE_ORIGINAL, "{tmp}/data", "--out", "{tmp}/out"],
        ("train.fna", "record 2", "label 7", "0..1"),
    ),
    Case(
        "prepare-original-non-dna",
        original_task([("a|0", DNA[0]), ("b|1", "ACGTXACG")]),
        [*PREPARE_ORIGINAL, "{tmp}/data", "--out", "{tmp}/out"],
        ("train.fna", "record 2", "'X'", "position 5"),
    ),
    # --- nt probe ---------------------------------------------------------------------------------------------------
    Case(
        "probe-gue-labels-0-and-5",
        gue_task(["0", "5"] * 6),
        [*PROBE, "--out", "{tmp}/r.json"],
        ("train.csv", "label 5", "0..1"),
    ),
    Case(
        "probe-gue-one-class",
        gue_task(["1"] * 12),
        [*PROBE, "--out", "{tmp}/r.json"],
        ("task", "is 1", "at least two classes"),
    ),
    Case(
        "probe-fewer-examples-than-folds",
        original_task(balanced({0: 2, 1: 2})),
        [*PROBE_ORIGINAL, "--data-dir", "{tmp}/data", "--out", "{tmp}/r.json", "--folds", "10"],
        ("promoter_tata", "10 folds", "4 examples"),
    ),
    Case(
        "probe-class-smaller-than-folds",
        original_task(balanced({0: 8, 1: 2})),
        [*PROBE_ORIGINAL, "--data-dir", "{tmp}/data", "--out", "{tmp}/r.json", "--folds", "5"],
        ("promoter_tata", "class 1", "2 examples", "5 folds"),
    ),
    Case(
        "probe-one-class-train-split",
        original_task(balanced({0: 12})),
        [*PROBE_ORIGINAL, "--data-dir", "{tmp}/data", "--out", "{tmp}/r.json", "--folds", "2"],
        ("promoter_tata", "train split", "label 0", "at least two classes"),
    ),
    # --- nt finetune ------------------------------------------------------------------------------------------------
    Case(
        "finetune-one-class-train-split",
        original_task(balanced({1: 12})),
        [*FINETUNE_ORIGINAL, "--data-dir", "{tmp}/data", "--out", "{tmp}/r.json", "--folds", "2"],
        ("promoter_tata", "train split", "label 1", "at least two classes"),
    ),
    Case(
        "finetune-class-smaller-than-folds",
        original_task(balanced({0: 9, 1: 1})),
        [*FINETUNE_ORIGINAL, "--data-dir", "{tmp}/data", "--out", "{tmp}/r.json", "--folds", "3"],
        ("promoter_tata", "class 1", "1 examples", "3 folds"),
    ),
    # --- nt bpnet -----------------------------------------------------------------------------------------------------
    Case(
        "bpnet-gue-labels-0-and-5",
        gue_task(["0", "5"] * 6),
        [*BPNET, "--out", "{tmp}/r.json"],
        ("train.csv", "label 5", "0..1"),
    ),
    Case(
        "bpnet-one-class-without-folds",
        original_task(balanced({0: 6})),
        [
            "bpnet",
            "--benchmark",
            "original",
            "--task",
            "promoter_tata",
            "--data-dir",
            "{tmp}/data",
            "--quiet",
            "--folds",
            "0",
            "--out",
            "{tmp}/r.json",
        ],
        ("promoter_tata", "train split", "label 0", "at least two classes"),
    ),
    Case(
        "bpnet-class-smaller-than-folds",
        original_task(balanced({0: 6, 1: 3})),
        [
            "bpnet",
            "--benchmark",
            "original",
            "--task",
            "promoter_tata",
            "--data-dir",
            "{tmp}/data",
            "--quiet",
            "--folds",
            "4",
            "--out",
            "{tmp}/r.json",
        ],
        ("promoter_tata", "class 1", "3 examples", "4 folds"),
    ),
    # --- nt analyze elements --sequences ------------------------------------------------------------------------------
    Case(
        "elements-duplicate-names",
        tsv(["name\tsequence\tclass", *ELEMENT_ROWS, ELEMENT_ROWS[0]]),
        ELEMENTS,
        ("seqs.tsv", "'n0'", "line 2", "line 14"),
    ),
    Case(
        "elements-one-class",
        tsv(["sequence\tclass", *(f"{DNA[i]}\texon" for i in range(6))]),
        ELEMENTS,
        ("seqs.tsv", "two classes", "exon"),
    ),
    Case(
        "elements-missing-class-column",
        tsv(["sequence\tlabel", *(f"{DNA[i]}\t{i % 2}" for i in range(6))]),
        ELEMENTS,
        ("seqs.tsv", "missing column", "class"),
    ),
    Case(
        "elements-invalid-character",
        tsv(["name\tsequence\tclass", *ELEMENT_ROWS[:5], "bad\tACGT*ACGT\texon", *ELEMENT_ROWS[5:]]),
        ELEMENTS,
        ("seqs.tsv", "'bad'", "'*'", "position 4"),
    ),
    Case(
        "elements-class-with-one-sequence",
        tsv(["sequence\tclass", *(f"{DNA[i % 6]}\texon" for i in range(10)), f"{DNA[0]}\tpromoter"]),
        ELEMENTS,
        ("seqs.tsv", "'promoter'", "single sequence"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_data_is_one_line_naming_file_and_record(case, tmp_path, run_nt):
    case.build(tmp_path)
    argv = [part.replace("{tmp}", str(tmp_path)) for part in case.argv]
    if case.argv[0] in ("data", "probe", "finetune", "bpnet"):
        argv += ["--cache-dir", str(tmp_path / "cache")]
    assert_bad_input(run_nt(*argv), *case.words)


# ---------------------------------------------------------------------------------------------------------------
# The same record rules in the Python readers: the benchmark reader and the streamed genome reader of pretraining


READER_CASES = [
    (DUPLICATES, r"in.fa: record 3 has the same name 'a' as record 1; record names must be unique"),
    (HEADER_ONLY, r"in.fa: record 2 \('empty'\) has a header but no sequence"),
    (fasta([("a", "ACGT"), ("last", "")]), r"in.fa: record 2 \('last'\) has a header but no sequence"),
    ("", r"in.fa: no FASTA records"),
]


@pytest.mark.parametrize(("text", "message"), READER_CASES)
def test_fasta_reader_refuses_records_that_cannot_be_right(tmp_path, text, message):
    from benchmarks.embeddings import read_fasta

    with pytest.raises(ValueError, match=message):
        read_fasta(write(tmp_path / "in.fa", text))


@pytest.mark.parametrize(("text", "message"), READER_CASES)
@pytest.mark.parametrize("compressed", [False, True])
def test_streamed_genome_reader_shares_the_record_rules(tmp_path, text, message, compressed):
    from modeling_nt.pretraining.genome import ChunkingConfig, GenomeReader

    path = write(tmp_path / "in.fa", gzip.compress(text.encode()) if compressed else text)
    reader = GenomeReader(path, ChunkingConfig(chunk_length=2, overlap=0, max_offset=0, min_length=1))
    with pytest.raises(ValueError, match=message):
        list(reader.records())


def test_good_fasta_reads_in_order_with_full_headers(tmp_path):
    from benchmarks.embeddings import iter_fasta, read_fasta

    path = write(tmp_path / "in.fa", ">a first|0\nACGT\nAC\n>b\nGG\n")
    assert read_fasta(path) == (["a", "b"], ["ACGTAC", "GG"])
    assert list(iter_fasta(path, full_header=True)) == [("a first|0", "ACGTAC"), ("b", "GG")]
