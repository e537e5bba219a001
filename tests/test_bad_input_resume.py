"""Bad input, resumable jobs: a rerun of a killed (or, for analyses, interrupted) job with another model,
input file or value-changing argument exits 2 with one line naming the difference, and leaves the partial
results as they were (issue 12, section 2).

One killed run per job is made once for the module; every case reruns it with one thing changed. A refused
rerun must not touch the partial results, so the cases can share them (each case checks that they are intact).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest
import yaml
from conftest import BUNDLED_DATA, assert_bad_input
from test_run_fingerprint import (
    _built,
    _checkpoint,
    _dna,
    _genome,
    _Killer,
    _once_then,
    _vcf,
    _write_fasta,
    _write_task,
)

from benchmarks import bpnet, finetune, probing
from benchmarks import embeddings as emb
from benchmarks.cli import main
from modeling_nt import fingerprint as fp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@dataclass
class Killed:
    """The argv of a killed run of one job (``argv(changes)`` replaces or adds flags) and what holds its
    partial results."""

    base: dict[str, str]
    partial: Path

    def argv(self, **changes: str | None) -> list[str]:
        values = {**self.base, **{flag.replace("_", "-"): value for flag, value in changes.items()}}
        words = [values.pop("command")]
        words += values.pop("subcommand", "").split()
        for flag, value in values.items():
            if value is not None:
                words += [f"--{flag}"] if value == "" else [f"--{flag}", str(value)]
        return words


def _digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(
            str(file.relative_to(path) if path.is_dir() else file.name).encode() + file.read_bytes()
        )
    return digest.hexdigest()


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[dict[str, Killed], dict[str, Path]]:
    """The killed run of every job, and the paths of the models and other inputs."""
    root = tmp_path_factory.mktemp("killed")
    a, b = _checkpoint(root / "model_a", 0), _checkpoint(root / "model_b", 1)
    jobs: dict[str, Killed] = {}
    with pytest.MonkeyPatch.context() as patch:
        # nt embed: 8 of 12 sequences done
        fasta = _write_fasta(root / "in.fa", _dna(12, 30, 90, seed=3))
        _write_fasta(root / "other.fa", _dna(12, 30, 90, seed=4))
        out = root / "emb.parquet"
        base = {"command": "embed", "model": str(a), "fasta": str(fasta), "out": str(out), "layers": "1,2"}
        base |= {"chunk-size": "4", "batch-size": "4", "no-progress": ""}
        jobs["embed"] = Killed(base, emb.parts_dir(out))
        patch.setattr(emb, "_forward_windows", _Killer(8))
        assert main(jobs["embed"].argv()) == 130  # Ctrl-C: one line, exit status 130
        patch.undo()
        # nt embed, parts of an older version (no record)
        legacy = root / "legacy.parquet"
        jobs["embed-legacy"] = Killed({**base, "out": str(legacy)}, emb.parts_dir(legacy))
        patch.setattr(emb, "_forward_windows", _Killer(8))
        assert main(jobs["embed-legacy"].argv()) == 130  # Ctrl-C: one line, exit status 130
        patch.undo()
        (emb.parts_dir(legacy) / fp.FINGERPRINT_FILE).unlink()
        # nt score-variants: 4 of 10 rows written
        genome, sequence = _genome(root)
        other = root / "other_genome.fa"  # the same REF at every variant, another base at position 10
        other.write_text(genome.read_text().replace(sequence[:60], sequence[:9] + "N" + sequence[10:60], 1))
        pysam.faidx(str(other))
        _vcf(root / "other.vcf", sequence, range(310, 2810, 250))
        vcf = _vcf(root / "in.vcf", sequence, range(300, 2800, 250))
        out = root / "scores.tsv"
        base = {"command": "score-variants", "model": str(a), "fasta": str(genome), "vcf": str(vcf)}
        base |= {"out": str(out), "window": "120", "scores": "cosine,llr"}
        jobs["score-variants"] = Killed(base, out)
        assert main(jobs["score-variants"].argv()) == 0
        lines = out.read_text().splitlines(keepends=True)
        out.write_text("".join(lines[:5]))
        # probe, finetune, bpnet on a small GUE-layout task
        task, cache = _write_task(root / "gc", seed=0), root / "cache"
        other_task = _write_task(root / "other" / "gc", seed=1)
        for folder in (task, other_task):
            _built(folder, cache)
            _built(folder, cache, ("train",))
        common = {
            "benchmark": "gue",
            "task": "gc",
            "data-dir": str(task),
            "cache-dir": str(cache),
            "folds": "2",
        }
        base = {"command": "probe", "model": str(a), **common, "out": str(root / "probe.json"), "trials": "1"}
        base |= {"layers": "1,2", "probes": "probe", "no-baseline": ""}
        jobs["probe"] = Killed(base, root / "probe_work" / "probing_gc.json")
        patch.setattr(
            probing, "cross_validate_probe", _once_then(KeyboardInterrupt, probing.cross_validate_probe)
        )
        assert main(jobs["probe"].argv()) == 130  # Ctrl-C: one line, exit status 130
        patch.undo()
        base = {"command": "finetune", "model": str(a), **common, "out": str(root / "ft.json"), "steps": "2"}
        jobs["finetune"] = Killed(base, root / "ft_work" / "gc_ia3")
        patch.setattr(finetune, "run_fold", _once_then(KeyboardInterrupt, finetune.run_fold))
        assert main(jobs["finetune"].argv()) == 130  # Ctrl-C: one line, exit status 130
        patch.undo()
        out = root / "bp.json"
        base = {
            "command": "bpnet",
            **common,
            "out": str(out),
            "no-test": "",
            "max-epochs": "1",
            "threads": "1",
        }
        jobs["bpnet"] = Killed(base | {"quiet": ""}, out.with_name(out.name + ".progress.json"))
        patch.setattr(bpnet, "train_and_score", _once_then(KeyboardInterrupt, bpnet.train_and_score))
        assert main(jobs["bpnet"].argv()) == 130  # Ctrl-C: one line, exit status 130
        patch.undo()
    # nt analyze reconstruction: interrupted before its last output
    out = root / "recon"
    base = {"command": "analyze", "subcommand": "reconstruction", "model": str(a), "fasta": str(genome)}
    base |= {"region": "chr1:1-60", "masking": "every", "out": str(out)}
    jobs["analyze"] = Killed(base, out)
    assert main(jobs["analyze"].argv()) == 0
    (out / "reconstruction.png").unlink()
    return jobs, {"a": a, "b": b, "root": root, "other_task": other_task}


def _pretrain(tmp_path: Path) -> Killed:
    """A pretraining run killed after its first checkpoint: the config file, its record and checkpoint-4."""
    from modeling_nt.pretraining import PretrainingConfig
    from modeling_nt.pretraining.trainer import pretraining_run_fingerprint

    values = {
        "preset": "tiny",
        "train_genomes": [str(BUNDLED_DATA / "chr20_GRCh37_slice.fa.gz")],
        "held_out": ["20:30000001-32000000:1980001-2000000"],
        "chunk_length": 360,
        "min_length": 60,
        "max_tokens": 64,
        "tokens_per_update": None,
        "gradient_accumulation_steps": 1,
        "warmup_steps": 4,
        "max_steps": 8,
        "save_steps": 4,
        "report_to": "none",
        "output_dir": str(tmp_path / "run"),
    }
    config = tmp_path / "pretrain.yaml"
    config.write_text(yaml.safe_dump(values))
    run = Path(values["output_dir"])
    fp.record_fingerprint(
        run / fp.FINGERPRINT_FILE, pretraining_run_fingerprint(PretrainingConfig.from_yaml(config))
    )
    (run / "checkpoint-4").mkdir()
    (run / "checkpoint-4" / "trainer_state.json").write_text("{}")
    return Killed({"command": "pretrain", "config": str(config), "resume": ""}, run)


def _other(name: str) -> Callable[[dict], str]:
    return lambda paths: str(paths["root"] / name)


MODEL_B: Callable[[dict], str] = lambda paths: str(paths["b"])  # noqa: E731
OTHER_TASK: Callable[[dict], str] = lambda paths: str(paths["other_task"])  # noqa: E731

# (job, changed flags, words of the one error line); a callable value is resolved against the fixture's paths
CASES = [
    ("embed", {"model": MODEL_B}, ["--model: was", "model_a", "now", "model_b", "weights sha256"]),
    ("embed", {"model": "tiny"}, ["--model: was", "model_a", "now preset tiny"]),
    ("embed", {"fasta": _other("other.fa")}, ["--fasta: was", "in.fa", "now", "other.fa", "sha256"]),
    ("embed", {"layers": "2"}, ["--layers: was [1, 2], now [2]"]),
    ("embed", {"layers": None}, ['--layers: was [1, 2], now "last"']),
    ("embed", {"pooling": "cls"}, ['--pooling: was "mean", now "cls"']),
    ("embed", {"overlap": "32"}, ["--overlap: was 64, now 32"]),
    ("embed", {"dtype": "bf16"}, ['--dtype: was "fp32", now "bf16"']),
    ("embed-legacy", {}, ["legacy.parquet.parts", "without a record", "delete"]),
    ("score-variants", {"model": MODEL_B}, ["--model: was", "model_a", "now", "model_b"]),
    ("score-variants", {"vcf": _other("other.vcf")}, ["--vcf: was", "in.vcf", "now", "other.vcf"]),
    (
        "score-variants",
        {"fasta": _other("other_genome.fa")},
        ["--fasta: was", "genome.fa", "other_genome.fa"],
    ),
    ("score-variants", {"window": "240"}, ["--window: was 120, now 240"]),
    ("score-variants", {"flank_tokens": "3"}, ["--flank-tokens: was 2, now 3"]),
    ("score-variants", {"reverse_complement": ""}, ["--reverse-complement: was false, now true"]),
    ("score-variants", {"layers": "all"}, ['--layers: was "last", now "all"']),
    ("score-variants", {"scores": "cosine"}, ['--scores: was ["cosine", "llr"], now ["cosine"]']),
    ("probe", {"model": MODEL_B}, ["--model: was", "model_a", "now", "model_b"]),
    ("probe", {"model": "tiny"}, ["--model: was", "now preset tiny"]),
    ("probe", {"data_dir": OTHER_TASK}, ["task data: was 24 records", "now 24 records"]),
    ("probe", {"trials": "2"}, ["--trials: was 1, now 2"]),
    ("probe", {"folds": "3"}, ["--folds: was 2, now 3"]),
    ("probe", {"seed": "1"}, ["--seed: was 0, now 1"]),
    ("probe", {"dtype": "bf16"}, ['--dtype: was "fp32", now "bf16"']),
    ("finetune", {"model": MODEL_B}, ["--model: was", "model_a", "now", "model_b"]),
    ("finetune", {"data_dir": OTHER_TASK}, ["task data: was 24 records", "now 24 records"]),
    ("finetune", {"steps": "3"}, ["--steps: was 2, now 3"]),
    ("finetune", {"lr": "0.01"}, ["--lr: was 0.003, now 0.01"]),
    ("finetune", {"batch_size": "4"}, ["--batch-size: was 8, now 4"]),
    ("finetune", {"pooling": "mean"}, ['--pooling: was null, now "mean"']),
    ("bpnet", {"data_dir": OTHER_TASK}, ["train data: was 24 records", "now 24 records"]),
    ("bpnet", {"lr": "0.01"}, ["--lr: was 0.002, now 0.01"]),
    ("bpnet", {"rc_augment": ""}, ["--rc-augment: was false, now true"]),
    ("bpnet", {"max_epochs": "2"}, ["--max-epochs: was 1, now 2"]),
    ("bpnet", {"variant": "large"}, ['--variant: was "original", now "large"']),
    ("bpnet", {"seed": "1"}, ["--seed: was 0, now 1"]),
    ("analyze", {"model": MODEL_B}, ["--model: was", "model_a", "now", "model_b", "pass --overwrite"]),
    ("analyze", {"seed": "2"}, ["--seed: was 0, now 2"]),
    ("analyze", {"masking": "random"}, ['--masking: was "every", now "random"']),
    ("analyze", {"fasta": _other("other_genome.fa")}, ["--fasta: was", "genome.fa", "other_genome.fa"]),
    ("pretrain", {"max_steps": "9"}, ["max_steps: was 8, now 9"]),
    ("pretrain", {"peak_lr": "0.01"}, ["peak_lr: was 0.0001, now 0.01"]),
    ("pretrain", {"seed": "5"}, ["seed: was 0, now 5"]),
    ("pretrain", {"preset": "tiny-v1"}, ["preset: was preset tiny", "now preset tiny-v1"]),
    ("pretrain", {"train_genome": _other("other.fa")}, ["train_genomes[0].path: was", "chr20_GRCh37_slice"]),
]


@pytest.mark.parametrize(
    ("job", "changes", "words"),
    CASES,
    ids=[f"{job}-{'-'.join(changes) or 'legacy'}" for job, changes, _ in CASES],
)
def test_rerun_that_differs_from_the_killed_run_is_refused(killed, run_nt, tmp_path, job, changes, words):
    jobs, paths = killed
    run = _pretrain(tmp_path) if job == "pretrain" else jobs[job]
    resolved = {flag: value(paths) if callable(value) else value for flag, value in changes.items()}
    before = _digest(run.partial)
    assert_bad_input(run_nt(*run.argv(**resolved)), *words)
    assert _digest(run.partial) == before  # the partial results are as the killed run left them
