"""`nt demo`: the main job on bundled real data (the README's first command).

The chain, each step reusing its finished outputs on a rerun:

1. tokenize the bundled 2 Mb of human chr20 and summarise the tokens;
2. pretrain the ``tiny`` preset on it with the NT masked-LM recipe, held-out loss against the 6-mer unigram
   baseline, loss-curve PNG;
3. on a subset of the bundled GUE ``prom_300_tata`` task: probe the pretrained model's layers (logistic regression
   and MLP, TPE search, cross-validation), the raw-token baseline, IA3 fine-tuning, and the BPNet baseline;
4. leaderboard (markdown, CSV, PNG) and a Hub model card with the results.

``--generation v3`` (``make demo-v3``) runs the chain on NT v3 instead, in ``OUT/ntv3``: step 1 is skipped (the
6-mer summary does not apply), step 2 pretrains a small single-base U-Net (``configs/demo_v3.yaml``: the
``tiny-v3`` layout widened, a 512 -> 1024 bp length curriculum) and compares its held-out loss with the entropy
of the held-out nucleotide frequencies; the model card is left out (the Hub card templates describe NT v1/v2
checkpoints). About 4 minutes of one CPU core (it runs single-threaded).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from ._args import check_writable_folder, fold_count, positive_int

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DATA = REPO_ROOT / "data"
GENOME = BUNDLED_DATA / "chr20_GRCh37_slice.fa.gz"
TASK_DIR = BUNDLED_DATA / "gue" / "prom" / "prom_300_tata"
TASK = "prom_300_tata"
MODEL_NAME = "nt-tiny-chr20-demo"


@dataclass(frozen=True)
class DemoPlan:
    """What differs between the generations' demos: the pretraining run, the model's name, the steps run."""

    config: str  #: name of the pretraining YAML in ``modeling_nt/pretraining/configs``
    model_name: str
    description: str  #: of the pretraining step
    tokenize: bool  #: step 1, the 6-mer token summary
    model_card: bool  #: a Hub card (templates for NT v1/v2 only)
    subfolder: str = ""  #: of ``--out`` holding this generation's outputs


PLANS = {
    "v2": DemoPlan("demo.yaml", MODEL_NAME, "the tiny NT model (6-mer tokens, NT recipe)", True, True),
    "v3": DemoPlan(
        "demo_v3.yaml",
        "ntv3-tiny-chr20-demo",
        "a small NT v3 U-Net (single bases, 512 -> 1024 bp curriculum)",
        False,
        False,
        "ntv3",
    ),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on bundled real data")
    parser.add_argument(
        "--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output)"
    )
    parser.add_argument(
        "--train-size", type=positive_int, default=1000, help="task training sequences (default 1000)"
    )
    parser.add_argument(
        "--test-size", type=positive_int, default=300, help="task test sequences (default 300)"
    )
    parser.add_argument(
        "--folds", type=fold_count, default=5, help="cross-validation folds (default 5; paper: 10)"
    )
    parser.add_argument(
        "--trials", type=positive_int, default=10, help="TPE trials per probe (default 10; paper: 100)"
    )
    parser.add_argument(
        "--ia3-steps", type=positive_int, default=300, help="IA3 steps per fold (default 300)"
    )
    parser.add_argument(
        "--generation",
        choices=sorted(PLANS),
        default="v2",
        help="v2: the tiny 6-mer NT model (default); v3: a small single-base NT v3 U-Net",
    )
    parser.set_defaults(func=run)


def _step(title: str) -> float:
    print(f"\n== {title} ==", flush=True)
    return time.perf_counter()


def _done(started: float) -> None:
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.cli import main as nt

    torch.set_num_threads(1)  # the tiny model gains nothing from more threads; on a busy machine they contend
    out: Path = check_writable_folder(args.out)
    plan = PLANS[args.generation]
    out = out / plan.subfolder if plan.subfolder else out  # the generations' runs never mix
    out.mkdir(parents=True, exist_ok=True)
    model_name = plan.model_name
    if plan.tokenize:
        started = _step(f"1/5 Tokenizing the bundled human chr20 slice ({GENOME.name})")
        nt(["tokenize", str(GENOME)])
        _done(started)
    else:
        print("\n== 1/5 Token summary: skipped (single-base tokens: one per nucleotide) ==", flush=True)

    pretraining = pretrain(out / "pretrain", plan)
    model_dir = Path(pretraining["model_dir"])
    task_data = task_subset(args.train_size, args.test_size, out / "cache")

    results = []
    started = _step(f"3/5 Probing {model_name} on GUE {TASK} (+ raw-token baseline)")
    from benchmarks.probing import run_probing

    results += run_probing(
        str(model_dir),
        task_data,
        TASK,
        out / "probing",
        model_name=model_name,
        trials=args.trials,
        folds=args.folds,
        batch_size=32,
    )
    from benchmarks.finetune import run_finetuning

    results += run_finetuning(
        str(model_dir),
        task_data,
        TASK,
        out / "finetune",
        method="ia3",
        model_name=model_name,
        steps=args.ia3_steps,
        eval_steps=50,
        folds=min(args.folds, 3),
        pooling="mean",
    )
    _done(started)

    started = _step(f"4/5 BPNet baseline (original preset) on GUE {TASK}")
    results.append(bpnet_baseline(task_data, out / "bpnet_state.json"))
    _done(started)

    started = _step("5/5 Leaderboard" + (" and model card" if plan.model_card else ""))
    from benchmarks.leaderboard import render_model_card, write_leaderboard
    from benchmarks.results import save_results

    save_results(results, out / "results.json", overwrite=True)
    paths = write_leaderboard(results, out / "leaderboard")
    card = (
        render_model_card(results, model_name, out / "model_card", size="tiny") if plan.model_card else None
    )
    print((out / "leaderboard" / "leaderboard.md").read_text())
    _done(started)

    print("\nWhere everything went:")
    print(f"  pretrained model       {model_dir}")
    print(f"  loss curve             {pretraining.get('loss_curve')}")
    print(f"  probing per layer      {out / 'probing'}")
    print(f"  IA3 adapters           {out / 'finetune'}")
    print(f"  all results (JSON)     {out / 'results.json'}")
    for kind, path in paths.items():
        print(f"  leaderboard ({kind}){' ' * (9 - len(kind))}{path}")
    if card is not None:
        print(f"  model card             {card}")
    return 0


def pretrain(output_dir: Path, plan: DemoPlan = PLANS["v2"]) -> dict:
    """Pretrain the demo model of ``plan`` on the bundled chr20 slice and report it against the unigram
    baseline (of the training split; for NT v3 also of the held-out nucleotides' own frequencies)."""
    from modeling_nt.pretraining.trainer import DEMO_CONFIG, PretrainingConfig, run_pretraining

    started = _step(f"2/5 Pretraining {plan.description} on 2 Mb of chr20 (masked LM)")
    config = PretrainingConfig.from_yaml(DEMO_CONFIG.with_name(plan.config), output_dir=str(output_dir))
    result = run_pretraining(config)
    print(pretraining_summary(result))
    _done(started)
    return {**result, "model_dir": str(output_dir / "final")}


def pretraining_summary(result: dict) -> str:
    """The pretraining figures of a ``run_pretraining`` result in a few lines: held-out loss and accuracy
    against the unigram baselines, steps, record lengths, training time."""
    baseline, name = result["baseline"], result.get("baseline_name", "6-mer unigram")
    lines = [
        f"   held-out masked-token loss {result['masked_loss']:.3f} nats ({name} baseline of the training split "
        f"{baseline['entropy_nats']:.3f}); masked accuracy {result['masked_accuracy']:.4f} (unigram "
        f"{baseline['accuracy']:.4f}); {'beats' if result['beats_baseline'] else 'does NOT beat'} the baseline"
    ]
    held = result.get("held_out_baseline")
    if held and name == "nucleotide unigram":  # for 6-mers the held-out plug-in entropy is biased low
        margin = held["entropy_nats"] - result["masked_loss"]
        lines.append(
            f"   entropy of the held-out nucleotide frequencies {held['entropy_nats']:.3f} nats "
            f"({held['tokens']} bases): the model is {abs(margin):.3f} nats per masked base "
            f"{'below' if margin > 0 else 'ABOVE'} it"
        )
    runtime = next((e["train_runtime"] for e in result.get("log_history", []) if "train_runtime" in e), None)
    stages = result.get("length_curriculum")
    lines.append(
        f"   {result['global_step']} optimizer steps"
        + (
            f", records {' -> '.join(f'{length} bp (step {step})' for step, length in stages)}"
            if stages
            else ""
        )
        + (f", {runtime:.0f} s of training" if runtime is not None else "")
    )
    return "\n".join(lines)


def task_subset(train_size: int, test_size: int, cache_dir: Path):
    """The bundled GUE task, with seeded random subsets of its train and test splits."""
    from benchmarks.builders import load_task

    task = load_task("gue", TASK, data_dir=TASK_DIR, cache_dir=cache_dir, splits=["train", "test"])
    for split, size in (("train", train_size), ("test", test_size)):
        task[split] = task[split].shuffle(seed=0).select(range(min(size, len(task[split]))))
    return task


def bpnet_baseline(task_data, state_path: Path):
    """Train the original BPNet on the training subset and score it on the test subset."""
    from benchmarks.bpnet import TrainingConfig, evaluate_task
    from benchmarks.tasks import get_task

    return evaluate_task(
        "original",
        get_task("gue", TASK),
        task_data["train"]["sequence"],
        task_data["train"]["label"],
        task_data["test"]["sequence"],
        task_data["test"]["label"],
        n_folds=0,
        config=TrainingConfig(),
        state_path=state_path,
    )
