"""Bad ``--model`` arguments on every command that takes one, and bad ``nt convert`` sources: each is one line on
stderr naming the problem, exit status 2, never random weights or a traceback (issue 12, section 1)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_bad_input
from test_checkpoint_loading import (  # offline_hub: a fixture of conftest
    edit_config,
    save_stock_esm,
    save_tiny,
    truncate_weights,
)
from test_convert import write_jax

from modeling_nt import NTForSequenceClassification, NTModel


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good checkpoints to copy and spoil: ours (masked LM and backbone-only) and a stock ESM (v1) folder."""
    root = tmp_path_factory.mktemp("good")
    return {
        "mlm": save_tiny(root / "mlm"),
        "base": save_tiny(root / "base", NTModel),
        "esm": save_stock_esm(root / "esm")[1],
        "classifier": save_tiny(root / "classifier", NTForSequenceClassification, num_labels=2),
    }


# ----------------------------------------------------------------- the bad models (name -> builder(tmp, good))


def _copy(checkpoints: dict[str, Path], tmp: Path, kind: str = "mlm") -> Path:
    return Path(shutil.copytree(checkpoints[kind], tmp / "ckpt"))


def _empty(checkpoints, tmp: Path) -> Path:
    (tmp / "ckpt").mkdir()
    return tmp / "ckpt"


def _run_folder(checkpoints, tmp: Path) -> Path:
    """`nt pretrain`'s output folder given instead of its final/ checkpoint."""
    shutil.copytree(checkpoints["mlm"], tmp / "run" / "final")
    return tmp / "run"


def _jax(checkpoints, tmp: Path) -> Path:
    return write_jax(tmp / "jax_model", "v1", old_names=False)[0]


BAD_MODELS: dict[str, tuple[Callable[[dict, Path], Path | str], list[str]]] = {
    "missing-path": (lambda c, t: str(t / "no_such_ckpt"), ["no such folder", "no_such_ckpt"]),
    "relative-missing": (lambda c, t: "./checkpoints/final", ["no such folder", "./checkpoints/final"]),
    "hub-id-not-cached": (
        lambda c, t: "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species",
        ["no such folder", "not in the cache", "offline"],
    ),
    "run-subfolder-typo": (lambda c, t: "runs/final", ["no such folder: runs/final"]),
    "typo-preset": (lambda c, t: "nt-v2-50m", ["unknown model 'nt-v2-50m'", "nt-v2-50m-multi-species"]),
    "empty-folder": (_empty, ["empty folder"]),
    "weights-file": (lambda c, t: _copy(c, t) / "model.safetensors", ["is a file, not a checkpoint folder"]),
    "no-config": (lambda c, t: _remove(_copy(c, t), "config.json"), ["ckpt", "no config.json"]),
    "no-weights": (lambda c, t: _remove(_copy(c, t), "model.safetensors"), ["ckpt", "no weights"]),
    "truncated": (lambda c, t: truncate_weights(_copy(c, t)), ["ckpt", "cannot read the weights"]),
    "4-layers-2-stored": (
        lambda c, t: edit_config(_copy(c, t), num_hidden_layers=4),
        ["ckpt", "weights do not fit config.json", "missing", "layers.2."],
    ),
    "shape-mismatch": (lambda c, t: edit_config(_copy(c, t), hidden_size=32), ["ckpt", "mis-shaped"]),
    "config-not-json": (
        lambda c, t: _write(_copy(c, t), "config.json", "{'hidden_size': 64}"),
        ["config.json", "invalid JSON"],
    ),
    "config-lacks-field": (
        lambda c, t: edit_config(_copy(c, t), num_hidden_layers=None),
        ["config.json", "num_hidden_layers"],
    ),
    "other-model-type": (lambda c, t: edit_config(_copy(c, t), model_type="bert"), ["'bert'", "not an NT"]),
    "run-folder": (_run_folder, ["no config.json", "final"]),
    "jax-folder": (_jax, ["official JAX checkpoint", "nt convert --from jax"]),
}
#: Only for commands that need the masked-LM head (score-variants, analyze reconstruction).
BAD_MASKED_LMS = {
    "backbone-only": (lambda c, t: _copy(c, t, "base"), ["ckpt", "no masked-LM head"]),
    "classifier": (
        lambda c, t: _copy(c, t, "classifier"),
        ["ckpt", "6 missing (lm_head.", "no masked-LM head"],
    ),
}


def _remove(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def _write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder


# ----------------------------------------------------------------- the commands (name -> argv(tmp, model))


def _fasta(tmp: Path) -> Path:
    (tmp / "ref.fa").write_text(">chr1\n" + "ACGTTGCAAGGCTTAC" * 20 + "\n")
    return tmp / "ref.fa"


def _task(tmp: Path) -> list[str]:
    folder = tmp / "task"
    folder.mkdir()
    rows = "".join(f"{'ACGTAC' * 3 if i % 2 else 'GGCCTA' * 3},{i % 2}\n" for i in range(8))
    for split in ("train", "dev", "test"):
        (folder / f"{split}.csv").write_text("sequence,label\n" + rows)
    return [
        "--benchmark",
        "gue",
        "--task",
        "gc",
        "--data-dir",
        str(folder),
        "--cache-dir",
        str(tmp / "cache"),
    ]


def _embed(tmp: Path, model: str) -> list[str]:
    (tmp / "in.fa").write_text(">a\nACGTACGTACGTAAAAAA\n>b\nGGGCCCAAATTT\n")
    return ["embed", "--model", model, "--fasta", tmp / "in.fa", "--out", tmp / "emb.parquet"]


def _score_variants(tmp: Path, model: str) -> list[str]:
    (tmp / "in.vcf").write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=320>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "chr1\t50\t.\tT\tC\t.\t.\t.\n"
    )
    fasta = _fasta(tmp)
    return [
        "score-variants",
        "--model",
        model,
        "--fasta",
        fasta,
        "--vcf",
        tmp / "in.vcf",
        "--out",
        tmp / "s.tsv",
    ]


def _probe(tmp: Path, model: str) -> list[str]:
    return ["probe", "--model", model, *_task(tmp), "--out", tmp / "p.json", "--folds", "2", "--trials", "1"]


def _finetune(tmp: Path, model: str) -> list[str]:
    return [
        "finetune",
        "--model",
        model,
        *_task(tmp),
        "--out",
        tmp / "f.json",
        "--folds",
        "2",
        "--steps",
        "1",
    ]


def _finetune_params(tmp: Path, model: str) -> list[str]:
    return ["finetune-params", "--model", model]


def _elements(tmp: Path, model: str) -> list[str]:
    (tmp / "seqs.tsv").write_text("sequence\tclass\n" + "ACGTACGTAC\tA\nGGGCCCGGGC\tB\n" * 3)
    return ["analyze", "elements", "--model", model, "--sequences", tmp / "seqs.tsv", "--out", tmp / "el"]


def _reconstruction(tmp: Path, model: str) -> list[str]:
    fasta = _fasta(tmp)
    return [
        "analyze",
        "reconstruction",
        "--model",
        model,
        "--fasta",
        fasta,
        "--region",
        "chr1:1-60",
        "--out",
        tmp / "r",
    ]


COMMANDS = {
    "embed": _embed,
    "score-variants": _score_variants,
    "probe": _probe,
    "finetune": _finetune,
    "finetune-params": _finetune_params,
    "analyze elements": _elements,
    "analyze reconstruction": _reconstruction,
}

#: (command, bad model): every bad model on `embed`; a spread of them on each other command.
CASES = [("embed", name) for name in BAD_MODELS] + [
    ("score-variants", "missing-path"),
    ("score-variants", "4-layers-2-stored"),
    ("score-variants", "truncated"),
    ("score-variants", "backbone-only"),
    ("score-variants", "classifier"),
    ("score-variants", "jax-folder"),
    ("score-variants", "hub-id-not-cached"),
    ("probe", "hub-id-not-cached"),
    ("probe", "shape-mismatch"),
    ("finetune", "4-layers-2-stored"),
    ("probe", "relative-missing"),
    ("probe", "truncated"),
    ("probe", "no-config"),
    ("probe", "config-lacks-field"),
    ("finetune", "typo-preset"),
    ("finetune", "jax-folder"),
    ("finetune", "no-weights"),
    ("finetune-params", "missing-path"),
    ("finetune-params", "config-lacks-field"),
    ("finetune-params", "empty-folder"),
    ("analyze elements", "missing-path"),
    ("analyze elements", "4-layers-2-stored"),
    ("analyze elements", "run-folder"),
    ("analyze reconstruction", "backbone-only"),
    ("analyze reconstruction", "truncated"),
    ("analyze reconstruction", "typo-preset"),
]


@pytest.mark.usefixtures("offline_hub")  # a Hub id is looked up in an empty cache, never downloaded
@pytest.mark.parametrize(("command", "bad_model"), CASES, ids=[f"{c}:{m}" for c, m in CASES])
def test_bad_model_is_one_line(run_nt, checkpoints, tmp_path: Path, command: str, bad_model: str) -> None:
    build, words = {**BAD_MODELS, **BAD_MASKED_LMS}[bad_model]
    model = str(build(checkpoints, tmp_path))
    result = run_nt(*COMMANDS[command](tmp_path, model))
    assert_bad_input(result, *words)


# --------------------------------------------------------------------------------- nt convert bad sources


def _esm_copy(checkpoints, tmp: Path) -> Path:
    return Path(shutil.copytree(checkpoints["esm"], tmp / "src"))


CONVERT_CASES = {
    "missing-folder": ("esm", lambda c, t: t / "nucleotide-transformer-500m-human-ref", ["no such folder"]),
    "empty-folder": ("esm", lambda c, t: _empty(c, t), ["empty folder"]),
    "esm-given-as-jax": ("jax", _esm_copy, ["is a esm checkpoint", "use --from esm"]),
    "jax-given-as-v2": ("nt-v2-hub", _jax, ["is a jax checkpoint", "use --from jax"]),
    "ours-given-as-esm": ("esm", lambda c, t: _copy(c, t), ["already a checkpoint of this package"]),
    "truncated-safetensors": (
        "esm",
        lambda c, t: truncate_weights(_esm_copy(c, t)),
        ["model.safetensors", "cannot read the weights"],
    ),
    "other-model-type": ("esm", lambda c, t: edit_config(_esm_copy(c, t), model_type="bert"), ["'bert'"]),
    "weights-file-as-source": (
        "esm",
        lambda c, t: _esm_copy(c, t) / "model.safetensors",
        ["is a file, not a checkpoint folder"],
    ),
}


@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_bad_convert_source_is_one_line(run_nt, checkpoints, tmp_path: Path, case: str) -> None:
    source, build, words = CONVERT_CASES[case]
    src = build(checkpoints, tmp_path)
    assert_bad_input(run_nt("convert", "--from", source, src, tmp_path / "out"), *words)
    assert not (tmp_path / "out" / "model.safetensors").exists()
