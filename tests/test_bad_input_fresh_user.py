"""Mistakes a new genomics user makes with the `nt` command line, found by trying to break it (issue 12).

Each case: exit status 2, one stderr line naming the file / flag and the problem, no traceback. They cover
kinds that were silent or unclear before: sequence lines above the first FASTA header dropped without a word,
a folder given where a file is expected (or a file where a folder is), a VCF position 0, a ``--device`` this
machine lacks (a traceback), and Ctrl-C (a traceback).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam
import pytest
from conftest import assert_bad_input

SEQUENCE = "ACGTTGCAAGGCTTACCGATAGCTAGGCTTAACGGATCCATGCATGCAAGTCGATCGGATCCTAGCTAGGACTTACGATCG" * 4
VCF_HEADER = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
TASK_CSV = "sequence,label\n" + "".join(f"{SEQUENCE[i * 10 : i * 10 + 60]},{i % 2}\n" for i in range(20))


@dataclass
class Case:
    """Files to write under tmp (name -> text; a name ending in ``/`` is a folder), argv with ``{tmp}``, and
    the words the one error line must hold."""

    id: str
    files: dict[str, str]
    argv: list[str]
    words: tuple[str, ...]
    setup: Callable[[Path], None] | None = field(default=None)


def _truncated_gzip_fasta(tmp: Path) -> None:
    """A gzip FASTA cut in the middle, as an interrupted download leaves it (htslib printed three lines)."""
    import gzip
    import random

    rng = random.Random(0)
    text = "".join(f">r{i}\n{''.join(rng.choice('ACGT') for _ in range(300))}\n" for i in range(40))
    data = gzip.compress(text.encode())
    (tmp / "reads.fa.gz").write_bytes(data[: len(data) // 2])


def _reference(tmp: Path) -> None:
    (tmp / "ref.fa").write_text(f">chr1\n{SEQUENCE}\n")
    pysam.faidx(str(tmp / "ref.fa"))


EMBED = ["embed", "--model", "tiny", "--out", "{tmp}/e.parquet"]
SCORE = ["score-variants", "--model", "tiny", "--fasta", "{tmp}/ref.fa", "--window", "60"]
TASK = ["--benchmark", "gue", "--task", "mytask", "--out", "{tmp}/r.json"]
GOOD_VCF = {"calls.vcf": VCF_HEADER + f"chr1\t100\t.\t{SEQUENCE[99]}\tN\t.\t.\t.\n"}
BPNET = ["bpnet", "--data-dir", "{tmp}/task", *TASK, "--folds", "2", "--max-epochs", "1"]
TASK_FILES = {"task/train.csv": TASK_CSV, "task/dev.csv": TASK_CSV, "task/test.csv": TASK_CSV}

CASES = [
    # FASTA: what comes before the first '>' header was dropped without a word (pysam skips it)
    Case(
        "tokenize-sequence-above-first-header",
        {"in.fa": "ACGTACGTAAAC\nGGGG\n>a\nACGTAAACCC\n"},
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "not a FASTA file", "line 1", "'ACGTACGTAAAC'", "'>'"),
    ),
    Case(
        "tokenize-comment-line-above-header",
        {"in.fa": "# my promoters\n>a\nACGTAAACCC\n"},
        ["tokenize", "{tmp}/in.fa"],
        ("in.fa", "not a FASTA file", "line 1", "# my promoters"),
    ),
    Case(
        "embed-vcf-given-as-fasta",
        {"calls.vcf": VCF_HEADER + "chr1\t100\t.\tA\tG\t.\t.\tNOTE=x>y\n>a\nACGT\n"},
        [*EMBED, "--fasta", "{tmp}/calls.vcf"],
        ("calls.vcf", "not a FASTA file", "##fileformat"),
    ),
    Case(
        "embed-csv-given-as-fasta",
        {"task.csv": TASK_CSV},
        [*EMBED, "--fasta", "{tmp}/task.csv"],
        ("task.csv", "not a FASTA file", "sequence,label"),
    ),
    Case(
        "embed-gz-name-on-plain-text",
        {"in.fa.gz": "hello\n>a\nACGT\n"},
        [*EMBED, "--fasta", "{tmp}/in.fa.gz"],
        ("in.fa.gz", "not a FASTA file", "'hello'"),
    ),
    # tokenize --sequence: an empty one printed only <cls>; --out was ignored (no file, exit 0)
    Case("tokenize-empty-sequence", {}, ["tokenize", "--sequence", ""], ("--sequence", "empty")),
    Case(
        "tokenize-sequence-with-out",
        {},
        ["tokenize", "--sequence", "ACGTAC", "--out", "{tmp}/t.parquet"],
        ("--out", "FASTA file", "--sequence"),
    ),
    Case(
        "tokenize-truncated-gzip",
        {},
        ["tokenize", "{tmp}/reads.fa.gz"],
        ("reads.fa.gz", "cannot read past record", "truncated"),
        _truncated_gzip_fasta,
    ),
    Case(
        "embed-truncated-gzip",
        {},
        [*EMBED, "--fasta", "{tmp}/reads.fa.gz"],
        ("reads.fa.gz", "cannot read past record", "truncated"),
        _truncated_gzip_fasta,
    ),
    # a folder where a file is expected: "not found" before, or a message about something else
    Case(
        "embed-fasta-is-folder", {"reads/": ""}, [*EMBED, "--fasta", "{tmp}/reads"], ("reads", "is a folder")
    ),
    Case(
        "tokenize-out-is-folder",
        {"in.fa": ">a\nACGT\n", "tokens/": ""},
        ["tokenize", "{tmp}/in.fa", "--out", "{tmp}/tokens"],
        ("--out", "tokens", "is a folder"),
    ),
    Case(
        "score-vcf-is-folder",
        {"calls/": ""},
        [*SCORE, "--vcf", "{tmp}/calls", "--out", "{tmp}/s.tsv"],
        ("calls", "is a folder", "VCF"),
        _reference,
    ),
    Case(
        "score-fasta-is-folder",
        {**GOOD_VCF, "genome/": ""},
        [
            "score-variants",
            "--model",
            "tiny",
            "--fasta",
            "{tmp}/genome",
            "--vcf",
            "{tmp}/calls.vcf",
            "--out",
            "o",
        ],
        ("genome", "is a folder", "FASTA"),
    ),
    Case(
        "score-labels-is-folder",
        {**GOOD_VCF, "labels/": ""},
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/s.tsv", "--labels", "{tmp}/labels"],
        ("labels", "is a folder"),
        _reference,
    ),
    Case(
        "score-out-is-folder",
        {**GOOD_VCF, "scores/": ""},
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/scores"],
        ("--out", "scores", "is a folder"),
        _reference,
    ),
    Case(
        "haplotypes-fasta-is-folder",
        {**GOOD_VCF, "genome/": ""},
        ["haplotypes", "--fasta", "{tmp}/genome", "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/h.fa"],
        ("genome", "is a folder", "FASTA"),
    ),
    Case(
        "bpnet-out-is-folder-with-overwrite",
        {**TASK_FILES, "results/": ""},
        [*BPNET[:3], "--benchmark", "gue", "--task", "t", "--out", "{tmp}/results", "--overwrite"],
        ("--out", "results", "is a folder"),
    ),
    Case(
        "embed-parquet-name-with-npy-format",
        {"in.fa": ">a\nACGTACGT\n"},
        ["embed", "--model", "tiny", "--fasta", "{tmp}/in.fa", "--out", "{tmp}/e.parquet", "--format", "npy"],
        ("--out", "e.parquet", "--format npy", "folder"),
    ),
    # a file where a folder is expected
    Case(
        "probe-data-dir-is-file",
        {"task.csv": TASK_CSV},
        ["probe", "--model", "tiny", "--data-dir", "{tmp}/task.csv", *TASK],
        ("data folder", "task.csv", "is a file"),
    ),
    Case(
        "probe-cache-dir-is-file",
        {**TASK_FILES, "cache": "x"},
        ["probe", "--model", "tiny", "--data-dir", "{tmp}/task", *TASK, "--cache-dir", "{tmp}/cache"],
        ("--cache-dir", "cache", "is a file"),
    ),
    Case(
        "bpnet-cache-dir-is-file",
        {**TASK_FILES, "cache": "x"},
        [*BPNET, "--cache-dir", "{tmp}/cache"],
        ("--cache-dir", "cache", "is a file"),
    ),
    Case(
        "probe-work-dir-is-file",
        {**TASK_FILES, "work": "x"},
        ["probe", "--model", "tiny", "--data-dir", "{tmp}/task", *TASK, "--work-dir", "{tmp}/work"],
        ("--work-dir", "work", "is a file"),
    ),
    # VCF position 0: read by htslib as start -1 ("start out of range (-1)", naming nothing)
    Case(
        "score-vcf-pos-zero",
        {"calls.vcf": VCF_HEADER + "chr1\t0\t.\tA\tG\t.\t.\t.\n"},
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/s.tsv"],
        ("calls.vcf", "chr1:0", "POS 0", "1-based"),
        _reference,
    ),
    # --device: an unknown name or a device this machine lacks ended in a traceback in score-variants
    Case(
        "score-device-unknown",
        GOOD_VCF,
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/s.tsv", "--device", "gpu0"],
        ("unknown device", "'gpu0'"),
        _reference,
    ),
    Case(
        "score-device-absent-gpu",
        GOOD_VCF,
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/s.tsv", "--device", "cuda:99"],
        ("device", "'cuda:99'"),
        _reference,
    ),
    Case("bpnet-device-absent-gpu", TASK_FILES, [*BPNET, "--device", "cuda:99"], ("device", "'cuda:99'")),
    # an output that is one of the inputs: tokenize overwrote the FASTA with parquet (exit 0); score-variants
    # called the VCF "partial results" and advised deleting it; bpnet --overwrite replaced the training data
    Case(
        "tokenize-out-is-input-fasta",
        {"in.fa": ">a\nACGTACGT\n"},
        ["tokenize", "{tmp}/in.fa", "--out", "{tmp}/in.fa"],
        ("--out", "in.fa", "--fasta input file"),
    ),
    Case(
        "tokenize-out-exists",
        {"in.fa": ">a\nACGTACGT\n", "tokens.parquet": "my earlier results"},
        ["tokenize", "{tmp}/in.fa", "--out", "{tmp}/tokens.parquet"],
        ("--out", "tokens.parquet", "exists"),
    ),
    Case(
        "embed-out-is-input-fasta",
        {"in.fa": ">a\nACGTACGT\n"},
        ["embed", "--model", "tiny", "--fasta", "{tmp}/in.fa", "--out", "{tmp}/in.fa"],
        ("--out", "in.fa", "--fasta input file"),
    ),
    Case(
        "score-out-is-input-vcf",
        GOOD_VCF,
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/calls.vcf"],
        ("--out", "calls.vcf", "--vcf input file"),
        _reference,
    ),
    Case(
        "score-vcf-out-is-input-vcf",
        GOOD_VCF,
        [*SCORE, "--vcf", "{tmp}/calls.vcf", "--out", "{tmp}/s.tsv", "--vcf-out", "{tmp}/calls.vcf"],
        ("--vcf-out", "calls.vcf", "--vcf input file"),
        _reference,
    ),
    Case(
        "bpnet-out-is-train-file-with-overwrite",
        {"train.csv": TASK_CSV},
        ["bpnet", "--train", "{tmp}/train.csv", "--out", "{tmp}/train.csv", "--overwrite"],
        ("--out", "train.csv", "--train input file"),
    ),
    # pretraining genome that is binary or a broken gzip: a UnicodeDecodeError naming no file before
    Case(
        "pretrain-genome-binary",
        {},
        ["pretrain", "--preset", "tiny", "--train-genome", "{tmp}/genome.fa", "--output-dir", "{tmp}/run"],
        ("genome.fa", "not a readable FASTA"),
        lambda tmp: (tmp / "genome.fa").write_bytes(bytes(range(128, 256)) * 8),
    ),
    Case(
        "pretrain-genome-broken-gzip",
        {},
        ["pretrain", "--preset", "tiny", "--train-genome", "{tmp}/genome.fa.gz", "--output-dir", "{tmp}/run"],
        ("genome.fa.gz", "not a readable FASTA"),
        lambda tmp: (tmp / "genome.fa.gz").write_bytes(b"\x1f\x8b\x08\x00garbage"),
    ),
    # convert: OUT the source folder (with --overwrite the source was replaced in place); OUT a file
    Case(
        "convert-out-is-source",
        {"esm/config.json": '{"model_type": "esm"}'},
        ["convert", "--from", "esm", "{tmp}/esm", "{tmp}/esm/", "--overwrite"],
        ("esm", "is the source folder"),
    ),
    Case(
        "convert-out-is-file",
        {"esm/config.json": '{"model_type": "esm"}', "converted": "x"},
        ["convert", "--from", "esm", "{tmp}/esm", "{tmp}/converted"],
        ("OUT", "converted", "is a file, not a folder"),
    ),
    Case("bpnet-device-unknown", TASK_FILES, [*BPNET, "--device", "tpu"], ("unknown device", "'tpu'")),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fresh_user_mistake_is_one_clear_line(tmp_path, run_nt, case):
    for name, text in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(text)
    if case.setup is not None:
        case.setup(tmp_path)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
    assert_bad_input(run_nt(*argv), *case.words)


def test_ctrl_c_is_one_line_not_a_traceback(tmp_path, run_nt, monkeypatch):
    """Ctrl-C during a command: exit status 130 (128 + SIGINT) and one line, no traceback."""
    from benchmarks import embeddings

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(embeddings, "iter_fasta", interrupted)
    (tmp_path / "in.fa").write_text(">a\nACGT\n")
    result = run_nt("tokenize", str(tmp_path / "in.fa"))
    assert result.code == 130
    assert result.err.splitlines() == ["nt tokenize: interrupted"]


@pytest.mark.parametrize(
    ("y_score", "task_type"),
    [
        ([[np.nan, np.nan], [0.2, 0.1]], "classification"),  # arg-max of NaN was class 0, scored silently
        ([[np.inf, 1.0], [0.2, 0.1]], "classification"),
        ([np.nan, 0.5], "regression"),  # Pearson of NaN was scored as -1
    ],
)
def test_diverged_outputs_are_refused_not_scored(y_score, task_type):
    """A diverged model's NaN / infinite outputs are an error naming the cause (`--lr 1e9`), not a score."""
    from benchmarks.finetune import score_logits

    with pytest.raises(ValueError, match=r"NaN or infinite for 1 of 2 sequences: the training diverged"):
        score_logits(np.asarray(y_score, dtype=float).reshape(2, -1), np.asarray([0, 1]), task_type)


def test_pretrain_report_to_auto_resolves_without_import_error():
    """``report_to: auto`` (the example config's and the CLI's default) imported a name this transformers does
    not have: every default ``nt pretrain`` ended in an ImportError traceback."""
    import importlib.util

    from modeling_nt.pretraining.trainer import _report_to

    expected = "tensorboard" if importlib.util.find_spec("tensorboard") else "none"
    assert _report_to("auto") == expected
    assert _report_to("none") == "none"


def test_tilde_in_path_flags_means_home(tmp_path, run_nt, monkeypatch):
    """``--out=~/x`` reaches the program unexpanded (the shell expands ``~`` only at a word's start): it must
    mean $HOME, not a folder named ``~`` in the working folder."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "in.fa").write_text(">a\nACGTACGTAC\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result = run_nt("tokenize", "~/in.fa", "--out=~/tokens.parquet")
    assert result.code == 0, result.err
    assert (home / "tokens.parquet").is_file()
    assert list(work.iterdir()) == []
