"""Every numeric flag of every `nt` command is range-checked when parsed (one line naming the flag), and an
output path that cannot be written is refused before any work (issue 12, section 4).

Each case is a real mistake a user makes on the command line. Parse-time cases need no files; the
unwritable-output cases name a path under a regular file (tests run as root, where permission bits do not
stop writes, but no one can create a folder inside a file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from conftest import assert_bad_input

from benchmarks.checks import require_at_least, require_positive
from benchmarks.cli import _args

MODEL = ["--model", "tiny"]
PROBE = ["probe", *MODEL, "--benchmark", "gue", "--task", "prom_300_tata", "--out", "{tmp}/p.json"]
FINETUNE = ["finetune", *MODEL, "--benchmark", "gue", "--task", "prom_300_tata", "--out", "{tmp}/f.json"]
BPNET = ["bpnet", "--benchmark", "gue", "--task", "prom_300_tata", "--out", "{tmp}/b.json"]
EMBED = ["embed", *MODEL, "--fasta", "{fa}", "--out", "{tmp}/e.parquet"]
SCORE = ["score-variants", *MODEL, "--fasta", "{fa}", "--vcf", "{tmp}/v.vcf", "--out", "{tmp}/s.tsv"]
ELEMENTS = ["analyze", "elements", *MODEL, "--sequences", "{tmp}/s.tsv", "--out", "{tmp}/el"]
ATTENTION = [
    "analyze",
    "attention",
    *MODEL,
    "--fasta",
    "{fa}",
    "--annotation",
    "{tmp}/a.gtf",
    "--out",
    "{tmp}/at",
]
RECON = ["analyze", "reconstruction", *MODEL, "--fasta", "{fa}", "--out", "{tmp}/r"]
PRETRAIN = ["pretrain", "--train-genome", "{fa}", "--output-dir", "{tmp}/run"]
CONVERT = ["convert", "--from", "esm", "{tmp}/src", "{tmp}/converted"]
TOKENIZE = ["tokenize", "{fa}"]
DEMO = ["demo", "--out", "{tmp}/demo"]

# (case id, argv, words the one error line must hold)
CASES = [
    # nt tokenize
    ("tokenize-chunk-bp-negative", [*TOKENIZE, "--chunk-bp", "-5"], ["--chunk-bp", ">= 1", "-5"]),
    ("tokenize-chunk-bp-zero", [*TOKENIZE, "--chunk-bp", "0"], ["--chunk-bp", ">= 1", "got 0"]),
    ("tokenize-chunk-bp-fraction", [*TOKENIZE, "--chunk-bp", "1.5"], ["--chunk-bp", "integer", "1.5"]),
    # nt convert
    ("convert-eps-zero", [*CONVERT, "--layer-norm-eps", "0"], ["--layer-norm-eps", "> 0"]),
    ("convert-eps-negative", [*CONVERT, "--layer-norm-eps=-1e-5"], ["--layer-norm-eps", "> 0", "-1e-05"]),
    ("convert-eps-nan", [*CONVERT, "--layer-norm-eps", "nan"], ["--layer-norm-eps", "finite"]),
    # nt pretrain
    ("pretrain-steps-negative", [*PRETRAIN, "--max-steps", "-5"], ["--max-steps", ">= 1", "-5"]),
    ("pretrain-steps-word", [*PRETRAIN, "--max-steps", "ten"], ["--max-steps", "integer", "'ten'"]),
    ("pretrain-batch-zero", [*PRETRAIN, "--per-device-batch-size", "0"], ["--per-device-batch-size", ">= 1"]),
    ("pretrain-peak-lr-negative", [*PRETRAIN, "--peak-lr=-1e-4"], ["--peak-lr", "> 0", "-0.0001"]),
    ("pretrain-init-lr-negative", [*PRETRAIN, "--init-lr", "-1"], ["--init-lr", ">= 0", "-1"]),
    ("pretrain-warmup-negative", [*PRETRAIN, "--warmup-steps", "-100"], ["--warmup-steps", ">= 0"]),
    (
        "pretrain-random-prob",
        [*PRETRAIN, "--random-replace-prob", "1.5"],
        ["--random-replace-prob", "[0, 1]"],
    ),
    ("pretrain-threads-zero", [*PRETRAIN, "--torch-threads", "0"], ["--torch-threads", ">= 1"]),
    ("pretrain-chunk-zero", [*PRETRAIN, "--chunk-length", "0"], ["--chunk-length", ">= 1"]),
    ("pretrain-max-tokens-zero", [*PRETRAIN, "--max-tokens", "0"], ["--max-tokens", ">= 1"]),
    ("pretrain-seed-negative", [*PRETRAIN, "--seed", "-1"], ["--seed", ">= 0"]),
    ("pretrain-eval-steps-zero", [*PRETRAIN, "--eval-steps", "0"], ["--eval-steps", ">= 1"]),
    # nt embed
    ("embed-batch-zero", [*EMBED, "--batch-size", "0"], ["--batch-size", ">= 1", "got 0"]),
    ("embed-batch-word", [*EMBED, "--batch-size", "eight"], ["--batch-size", "integer", "'eight'"]),
    ("embed-chunk-zero", [*EMBED, "--chunk-size", "0"], ["--chunk-size", ">= 1"]),
    ("embed-overlap-negative", [*EMBED, "--overlap", "-1"], ["--overlap", ">= 0", "-1"]),
    # nt probe
    ("probe-trials-zero", [*PROBE, "--trials", "0"], ["--trials", ">= 1", "got 0"]),
    ("probe-folds-one", [*PROBE, "--folds", "1"], ["--folds", ">= 2", "got 1"]),
    ("probe-batch-negative", [*PROBE, "--batch-size", "-2"], ["--batch-size", ">= 1"]),
    ("probe-seed-negative", [*PROBE, "--seed", "-3"], ["--seed", ">= 0"]),
    # nt finetune / finetune-params
    ("finetune-steps-negative", [*FINETUNE, "--steps", "-5"], ["--steps", ">= 1", "-5"]),
    ("finetune-lr-negative", [*FINETUNE, "--lr", "-0.003"], ["--lr", "> 0", "-0.003"]),
    ("finetune-lr-inf", [*FINETUNE, "--lr", "inf"], ["--lr", "finite"]),
    ("finetune-eval-steps-zero", [*FINETUNE, "--eval-steps", "0"], ["--eval-steps", ">= 1"]),
    ("finetune-lora-rank-zero", [*FINETUNE, "--lora-rank", "0"], ["--lora-rank", ">= 1"]),
    ("finetune-batch-zero", [*FINETUNE, "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("finetune-folds-zero", [*FINETUNE, "--folds", "0"], ["--folds", ">= 2"]),
    ("finetune-params-labels-zero", ["finetune-params", "--num-labels", "0"], ["--num-labels", ">= 1"]),
    # nt bpnet
    ("bpnet-folds-one", [*BPNET, "--folds", "1"], ["--folds", "0 (no cross-validation) or >= 2", "got 1"]),
    ("bpnet-folds-negative", [*BPNET, "--folds", "-10"], ["--folds", ">= 2"]),
    ("bpnet-epochs-zero", [*BPNET, "--max-epochs", "0"], ["--max-epochs", ">= 1"]),
    ("bpnet-lr-zero", [*BPNET, "--lr", "0"], ["--lr", "> 0"]),
    ("bpnet-weight-decay-negative", [*BPNET, "--weight-decay", "-0.1"], ["--weight-decay", ">= 0"]),
    ("bpnet-threads-zero", [*BPNET, "--threads", "0"], ["--threads", ">= 1"]),
    ("bpnet-patience-zero", [*BPNET, "--patience", "0"], ["--patience", ">= 1"]),
    # nt score-variants
    ("score-window-zero", [*SCORE, "--window", "0"], ["--window", ">= 1", "got 0"]),
    ("score-window-negative", [*SCORE, "--window", "-100"], ["--window", ">= 1"]),
    ("score-flank-negative", [*SCORE, "--flank-tokens", "-1"], ["--flank-tokens", ">= 0"]),
    ("score-batch-zero", [*SCORE, "--batch-size", "0"], ["--batch-size", ">= 1"]),
    # nt analyze
    ("elements-folds-one", [*ELEMENTS, "--folds", "1"], ["--folds", ">= 2"]),
    ("elements-window-zero", [*ELEMENTS, "--window-bp", "0"], ["--window-bp", ">= 1"]),
    ("elements-per-class-zero", [*ELEMENTS, "--windows-per-class", "0"], ["--windows-per-class", ">= 1"]),
    ("elements-batch-zero", [*ELEMENTS, "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("attention-alpha-zero", [*ATTENTION, "--alpha", "0"], ["--alpha", "(0, 1)"]),
    ("attention-alpha-above-one", [*ATTENTION, "--alpha", "1.5"], ["--alpha", "(0, 1)", "1.5"]),
    ("attention-windows-zero", [*ATTENTION, "--windows", "0"], ["--windows", ">= 1"]),
    ("attention-promoter-negative", [*ATTENTION, "--promoter-bp", "-1000"], ["--promoter-bp", ">= 1"]),
    ("reconstruction-mask-rate-zero", [*RECON, "--mask-rate", "0"], ["--mask-rate", "(0, 1]"]),
    ("reconstruction-mask-rate-above", [*RECON, "--mask-rate", "1.2"], ["--mask-rate", "(0, 1]", "1.2"]),
    ("reconstruction-window-negative", [*RECON, "--window-bp", "-1200"], ["--window-bp", ">= 1"]),
    ("reconstruction-variant-window", [*RECON, "--variant-window-bp", "0"], ["--variant-window-bp", ">= 1"]),
    ("reconstruction-windows-zero", [*RECON, "--windows", "0"], ["--windows", ">= 1"]),
    # nt demo
    ("demo-trials-zero", [*DEMO, "--trials", "0"], ["--trials", ">= 1"]),
    ("demo-folds-one", [*DEMO, "--folds", "1"], ["--folds", ">= 2"]),
    ("demo-ia3-steps-zero", [*DEMO, "--ia3-steps", "0"], ["--ia3-steps", ">= 1"]),
    ("demo-train-size-zero", [*DEMO, "--train-size", "0"], ["--train-size", ">= 1"]),
    ("demo-test-size-negative", [*DEMO, "--test-size", "-300"], ["--test-size", ">= 1"]),
    # nt data (no numeric flags: its inputs)
    ("data-tasks-benchmark-unknown", ["data", "tasks", "--benchmark", "nope"], ["--benchmark", "'nope'"]),
    (
        "data-push-missing",
        ["data", "push", "{tmp}/nope", "--repo-id", "u/x", "--dry-run"],
        ["not found", "nope"],
    ),
    ("data-push-file", ["data", "push", "{tmp}/file.txt", "--repo-id", "u/x", "--dry-run"], ["is a file"]),
    # outputs that cannot be written ({blocked} is a path inside a regular file): refused before any work
    ("tokenize-out-blocked", [*TOKENIZE, "--out", "{blocked}/t.parquet"], ["--out", "is a file"]),
    ("convert-out-blocked", ["convert", "--from", "esm", "{tmp}/src", "{blocked}/c"], ["OUT", "is a file"]),
    (
        "pretrain-out-blocked",
        ["pretrain", "--train-genome", "{fa}", "--output-dir", "{blocked}/run"],
        ["--output-dir", "is a file"],
    ),
    (
        "haplotypes-out-blocked",
        ["haplotypes", "--fasta", "{fa}", "--vcf", "{tmp}/v.vcf", "--out", "{blocked}/h.fa"],
        ["--out", "is a file"],
    ),
    (
        "data-prepare-out-blocked",
        ["data", "prepare", "--benchmark", "gue", "--task", "prom_300_tata", "--out", "{blocked}/d"],
        ["--out", "is a file"],
    ),
    ("embed-out-blocked", [*EMBED[:-1], "{blocked}/e.parquet"], ["--out", "is a file"]),
    ("probe-out-blocked", [*PROBE[:-1], "{blocked}/p.json"], ["--out", "is a file"]),
    ("probe-work-dir-blocked", [*PROBE, "--work-dir", "{blocked}/w"], ["--work-dir", "is a file"]),
    ("finetune-out-blocked", [*FINETUNE[:-1], "{blocked}/f.json"], ["--out", "is a file"]),
    ("bpnet-out-blocked", [*BPNET[:-1], "{blocked}/b.json"], ["--out", "is a file"]),
    ("score-out-blocked", [*SCORE[:-1], "{blocked}/s.tsv"], ["--out", "is a file"]),
    ("score-vcf-out-blocked", [*SCORE, "--vcf-out", "{blocked}/s.vcf"], ["--vcf-out", "is a file"]),
    ("elements-out-blocked", [*ELEMENTS[:-1], "{blocked}/el"], ["--out", "is a file"]),
    ("attention-out-blocked", [*ATTENTION[:-1], "{blocked}/at"], ["--out", "is a file"]),
    ("reconstruction-out-blocked", [*RECON[:-1], "{blocked}/r"], ["--out", "is a file"]),
    (
        "scaling-out-blocked",
        ["analyze", "scaling", "{tmp}/results", "--out", "{blocked}/sc"],
        ["--out", "is a file"],
    ),
    (
        "leaderboard-out-blocked",
        ["leaderboard", "{tmp}/results", "--out", "{blocked}/lb"],
        ["--out", "is a file"],
    ),
    ("demo-out-blocked", ["demo", "--out", "{blocked}/demo"], ["--out", "is a file"]),
    ("out-under-file-itself", [*TOKENIZE, "--out", "{blocked}"], ["--out", "is a file"]),
]


def _expand(argv: list[str], tmp_path: Path) -> list[str]:
    fasta = tmp_path / "seqs.fa"
    fasta.write_text(">seq1\nACGTACGTACGTACGTACGTACGTACGT\n")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file, not a folder\n")
    values = {"fa": str(fasta), "tmp": str(tmp_path), "blocked": str(blocker / "sub")}
    return [arg.format(**values) for arg in argv]


@pytest.mark.parametrize(("argv", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_flag_is_one_line_naming_it(run_nt, tmp_path, argv, words) -> None:
    before = set(tmp_path.iterdir()) if tmp_path.exists() else set()
    result = run_nt(*_expand(argv, tmp_path))
    assert_bad_input(result, *words)
    created = set(tmp_path.iterdir()) - before - {tmp_path / "seqs.fa", tmp_path / "file.txt"}
    assert not created, f"a refused command left {sorted(map(str, created))}"
    assert result.out == ""


def test_at_least_45_cases_cover_every_command() -> None:
    assert len(CASES) >= 45
    covered = {
        case[1][0] if case[1][0] not in ("analyze", "data") else " ".join(case[1][:2]) for case in CASES
    }
    for command in (
        "tokenize",
        "convert",
        "pretrain",
        "haplotypes",
        "data prepare",
        "data tasks",
        "data push",
        "embed",
        "probe",
        "finetune",
        "finetune-params",
        "bpnet",
        "score-variants",
        "analyze elements",
        "analyze attention",
        "analyze reconstruction",
        "analyze scaling",
        "leaderboard",
        "demo",
    ):
        assert command in covered, command


def test_parse_error_format_is_the_argparse_line(run_nt) -> None:
    result = run_nt("embed", "--model", "tiny", "--fasta", "x.fa", "--out", "y", "--batch-size", "0")
    assert result.err == (
        "nt embed: error: argument --batch-size: must be >= 1, got 0 (see nt embed --help)\n"
    )


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (_args.positive_int, "1", 1),
        (_args.non_negative_int, "0", 0),
        (_args.fold_count, "2", 2),
        (_args.fold_count_or_zero, "0", 0),
        (_args.positive_float, "1e-4", 1e-4),
        (_args.non_negative_float, "0", 0.0),
        (_args.fraction, "0.0", 0.0),
        (_args.probability, "1", 1.0),
        (_args.positive_probability, "1", 1.0),
        (_args.open_unit, "0.05", 0.05),
    ],
)
def test_boundary_values_are_accepted(kind, text, value) -> None:
    assert kind(text) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (_args.fraction, "1"),
        (_args.open_unit, "1"),
        (_args.positive_float, "0"),
        (_args.fold_count_or_zero, "1"),
    ],
)
def test_boundary_values_outside_are_refused(kind, text) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        kind(text)


def test_check_writable_accepts_new_nested_folders_and_refuses_files(tmp_path) -> None:
    assert _args.check_writable(tmp_path / "a" / "b" / "out.tsv") == tmp_path / "a" / "b" / "out.tsv"
    assert not (tmp_path / "a").exists()  # the check creates nothing
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"--vcf-out .*f/deeper/x\.vcf.*is a file"):
        _args.check_writable(tmp_path / "f" / "deeper" / "x.vcf", "--vcf-out")


def test_embed_overlap_not_below_the_window_is_refused_and_blocks_no_rerun(run_nt, tmp_path) -> None:
    """--overlap can only be checked against the model at run time: the tiny preset has a 2048-token context
    (2047-token windows). The refused run must not block the corrected one."""
    argv = _expand(EMBED, tmp_path)
    assert_bad_input(run_nt(*argv, "--overlap", "2047", "--no-progress"), "--overlap", "2047", "[0, 2047)")
    fixed = run_nt(*argv, "--overlap", "10", "--no-progress")
    assert fixed.code == 0, fixed.err
    assert (tmp_path / "e.parquet").is_file()


def test_python_functions_check_the_same_ranges(tmp_path) -> None:
    from benchmarks.bpnet import TrainingConfig
    from benchmarks.cli.tokenize import iter_chunks
    from benchmarks.embeddings import embed_sequences
    from benchmarks.finetune import run_finetuning
    from benchmarks.probing import run_probing

    with pytest.raises(ValueError, match=r"^trials must be >= 1, got 0$"):
        run_probing("tiny", {}, "task", tmp_path, trials=0)
    with pytest.raises(ValueError, match=r"^steps must be >= 1, got -5$"):
        run_finetuning("tiny", {}, "task", tmp_path, steps=-5)
    with pytest.raises(ValueError, match=r"^learning_rate must be > 0, got -0.001$"):
        run_finetuning("tiny", {}, "task", tmp_path, learning_rate=-1e-3)
    with pytest.raises(ValueError, match=r"^chunk_bp must be >= 1, got -5$"):
        list(iter_chunks(tmp_path / "x.fa", -5))
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        embed_sequences("tiny", ["ACGTACGTAC"], batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"^overlap \(--overlap\) must be in \[0, 2047\)"):
        embed_sequences("tiny", ["ACGTACGTAC"], overlap=-1, progress=False)
    with pytest.raises(ValueError, match=r"^patience must be >= 1, got 0$"):
        TrainingConfig(patience=0)
    with pytest.raises(ValueError, match=r"^folds must be an integer >= 2, got 2.5$"):
        require_at_least(2, folds=2.5)
    with pytest.raises(ValueError, match=r"^peak_lr must be > 0, got nan$"):
        require_positive(peak_lr=float("nan"))
