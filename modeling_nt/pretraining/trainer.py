"""NT masked-LM pretraining on ``transformers.Trainer``: configuration, wiring, evaluation, results.

:func:`run_pretraining` takes a :class:`PretrainingConfig` (or a YAML file / mapping of its fields), trains a
model from an ``NTConfig`` preset on genome records, evaluates held-out MLM loss, perplexity and masked-token
accuracy against the token unigram baseline, and writes into ``output_dir``: Trainer checkpoints, the final
model (``final/``), ``results.json`` and ``loss_curve.png``. A finished run is never overwritten: calling it
again returns the stored results. With ``resume`` it continues from the last checkpoint after a crash; the
data stream and the masks are deterministic, so the resumed run ends in the same state as an uninterrupted one.

Launch several processes with ``torchrun --nproc_per_node N`` (CPU: gloo; GPU: nccl); ``deepspeed`` names a
ZeRO config (``zero2``, ``zero3`` or a path) used through Trainer, which also needs ``torchrun``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from .collator import IGNORE_INDEX, NTMaskingCollator
from .data import GenomeMLMDataset, sources_from_config, token_unigram_baseline
from .genome import ChunkingConfig, parse_region
from .schedule import WarmupSqrtDecay, warmup_sqrt_decay

DEEPSPEED_CONFIGS = {
    name: Path(__file__).with_name("deepspeed") / f"{name}.json" for name in ("zero2", "zero3")
}
RESULTS_FILE = "results.json"
#: The demo run: the tiny preset on the bundled chr20 slice (a few minutes on 2 CPU cores).
DEMO_CONFIG = Path(__file__).with_name("configs") / "demo.yaml"


@dataclass
class PretrainingConfig:
    """Everything one pretraining run needs; YAML files hold these fields (see ``configs/example.yaml``)."""

    # model
    preset: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # data
    train_genomes: list[Any] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)
    chunk_length: int = 6000
    overlap: int = 100
    max_offset: int = 200
    min_length: int = 600
    max_n_fraction: float | None = None
    include_contigs: list[str] | None = None
    exclude_contigs: list[str] = field(default_factory=lambda: ["chrM", "MT", "M"])
    max_tokens: int | None = None
    shuffle_buffer: int = 1000
    max_eval_records: int | None = 512
    baseline_max_records: int | None = 5000
    # masking
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    # optimisation
    init_lr: float = 5e-5
    peak_lr: float = 1e-4
    warmup_steps: int = 16_000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_batch_size: int = 8
    tokens_per_update: int | None = 1_000_000
    gradient_accumulation_steps: int | None = None
    max_steps: int = 1000
    max_train_minutes: float | None = None
    # run
    output_dir: str = "runs/pretrain"
    seed: int = 0
    logging_steps: int = 10
    eval_steps: int | None = None
    eval_on_start: bool = False
    save_steps: int = 500
    save_total_limit: int | None = 2
    eval_batch_size: int | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = False
    deepspeed: str | None = None
    report_to: str | list[str] = "auto"
    dataloader_num_workers: int = 0
    torch_threads: int | None = None
    resume: bool = False
    plot: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> PretrainingConfig:
        """Build from a mapping, naming unknown keys (and the file they came from) in the error."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown pretraining setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> PretrainingConfig:
        """Load a YAML file of fields; relative genome paths are taken relative to the file's folder."""
        import yaml

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"pretraining config {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level")
        values["train_genomes"] = [
            _absolute_source(entry, path.parent) for entry in values.get("train_genomes", [])
        ]
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_mapping(values, source=str(path))

    def chunking(self) -> ChunkingConfig:
        return ChunkingConfig(
            chunk_length=self.chunk_length,
            overlap=self.overlap,
            max_offset=self.max_offset,
            min_length=self.min_length,
            max_n_fraction=self.max_n_fraction,
            include=tuple(self.include_contigs) if self.include_contigs is not None else None,
            exclude=tuple(self.exclude_contigs),
        )

    def schedule(self) -> WarmupSqrtDecay:
        return WarmupSqrtDecay(init_lr=self.init_lr, peak_lr=self.peak_lr, warmup_steps=self.warmup_steps)


def _absolute_source(entry: Any, base: Path) -> Any:
    if isinstance(entry, str):
        return entry if Path(entry).is_absolute() else str(base / entry)
    entry = dict(entry)
    for key in ("path", "vcf"):
        if entry.get(key) and not Path(entry[key]).is_absolute():
            entry[key] = str(base / entry[key])
    return entry


def gradient_accumulation_for(
    tokens_per_update: int, batch_size: int, world_size: int, tokens_per_sequence: int
) -> int:
    """Micro-batches to accumulate so that one update sees about ``tokens_per_update`` tokens (at least 1)."""
    tokens_per_micro_step = batch_size * world_size * tokens_per_sequence
    return max(1, round(tokens_per_update / tokens_per_micro_step))


def _masked_predictions(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token NLL and argmax (as floats, stacked on the last axis), so that eval keeps no full logits."""
    nll = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return torch.stack([nll, logits.argmax(-1).float()], dim=-1)


def masked_metrics(eval_prediction: Any) -> dict[str, float]:
    """Token-weighted MLM loss, perplexity and accuracy over the selected (label != -100) positions."""
    predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
    selected = labels != IGNORE_INDEX
    loss = float(predictions[..., 0][selected].mean())
    accuracy = float((predictions[..., 1][selected].astype(np.int64) == labels[selected]).mean())
    return {"masked_loss": loss, "perplexity": math.exp(loss), "masked_accuracy": accuracy}


def _report_to(choice: str | list[str]) -> str | list[str]:
    if choice != "auto":
        return choice
    from transformers.utils import is_tensorboard_available

    return "tensorboard" if is_tensorboard_available() else "none"


def _precision_flags(choice: str) -> dict[str, bool]:
    if choice not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be one of auto, fp32, bf16, fp16; got {choice!r}")
    if choice == "auto":
        if not torch.cuda.is_available():
            return {}
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def _checkpointing_flag(arguments_class: type, enabled: bool) -> dict[str, bool]:
    """``activation_checkpointing`` (transformers >= 5.2x) or its older name ``gradient_checkpointing``."""
    new_name = "activation_checkpointing" in arguments_class.__dataclass_fields__
    return {"activation_checkpointing" if new_name else "gradient_checkpointing": enabled}


def _deepspeed_config(choice: str | None) -> str | None:
    if choice is None:
        return None
    path = DEEPSPEED_CONFIGS.get(choice, Path(choice))
    if not path.exists():
        raise FileNotFoundError(f"DeepSpeed config {choice!r} not found (use zero2, zero3 or a JSON path)")
    return str(path)


def build_trainer(config: PretrainingConfig, callbacks: Sequence[Any] = ()) -> Any:
    """The model, datasets, collator and ``Trainer`` of a run (nothing trained yet)."""
    from transformers import Trainer, TrainingArguments, set_seed

    from modeling_nt import NTConfig, NTForMaskedLM

    class NTPretrainingTrainer(Trainer):
        """Trainer with the NT warm-up + square-root-decay schedule."""

        def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
            if self.lr_scheduler is None:
                self.lr_scheduler = warmup_sqrt_decay(optimizer or self.optimizer, config.schedule())
            return self.lr_scheduler

    if not config.train_genomes:
        raise ValueError("no train_genomes given: list at least one FASTA file")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    set_seed(config.seed)
    model_config = NTConfig.from_preset(config.preset, **config.model_overrides)
    version = model_config.tokenizer_version
    max_tokens = config.max_tokens or model_config.max_tokens
    model = NTForMaskedLM(model_config)

    sources = sources_from_config(config.train_genomes)
    dataset_options = {
        "version": version,
        "max_tokens": max_tokens,
        "held_out": config.held_out,
        "seed": config.seed,
    }
    train_dataset = GenomeMLMDataset(
        sources, config.chunking(), split="train", shuffle_buffer=config.shuffle_buffer, **dataset_options
    )
    eval_dataset = None
    if config.held_out:
        eval_dataset = _LimitedDataset(
            GenomeMLMDataset(sources, config.chunking(), split="validation", **dataset_options),
            config.max_eval_records,
        )
    collator_options = {
        "version": version,
        "mlm_probability": config.mlm_probability,
        "pad_to_length": max_tokens,
    }
    collator = NTMaskingCollator(
        mask_replace_prob=config.mask_replace_prob,
        random_replace_prob=config.random_replace_prob,
        **collator_options,
    )

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = config.gradient_accumulation_steps or (
        gradient_accumulation_for(
            config.tokens_per_update, config.per_device_batch_size, world_size, max_tokens
        )
        if config.tokens_per_update
        else 1
    )
    arguments = TrainingArguments(
        output_dir=config.output_dir,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=config.peak_lr,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        logging_steps=config.logging_steps,
        eval_strategy="steps" if eval_dataset is not None and config.eval_steps else "no",
        eval_steps=config.eval_steps,
        eval_on_start=eval_dataset is not None and config.eval_on_start,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        report_to=_report_to(config.report_to),
        **_checkpointing_flag(TrainingArguments, config.gradient_checkpointing),
        deepspeed=_deepspeed_config(config.deepspeed),
        ddp_find_unused_parameters=False,
        dataloader_num_workers=config.dataloader_num_workers,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        **_precision_flags(config.precision),
    )
    # Held-out evaluation masks every selected token (no random/unchanged share), so that the loss cannot
    # be lowered by copying visible tokens and compares directly with the unigram baseline.
    eval_collator = NTMaskingCollator(mask_replace_prob=1.0, random_replace_prob=0.0, **collator_options)
    return NTPretrainingTrainer(
        model=model,
        args=arguments,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=_TrainEvalCollator(collator, eval_collator),
        compute_metrics=masked_metrics,
        preprocess_logits_for_metrics=_masked_predictions,
        callbacks=[
            *callbacks,
            *([_TimeBudget(config.max_train_minutes)] if config.max_train_minutes else []),
        ],
    )


class _TimeBudget(TrainerCallback):
    """Stops training (cleanly, with a final evaluation) once ``minutes`` of training time are spent."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.start = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.start > self.seconds:
            control.should_training_stop = True


class _LimitedDataset(torch.utils.data.IterableDataset):
    """The first ``limit`` examples of an iterable dataset (all when ``limit`` is None)."""

    def __init__(self, dataset: torch.utils.data.IterableDataset, limit: int | None) -> None:
        super().__init__()
        self.dataset = dataset
        self.limit = limit

    def __iter__(self):
        for index, example in enumerate(self.dataset):
            if self.limit is not None and index >= self.limit:
                return
            yield {**example, "evaluation": True}


@dataclass
class _TrainEvalCollator:
    """Dispatches training and held-out batches (marked ``evaluation``) to their own masking rules."""

    train: NTMaskingCollator
    evaluation: NTMaskingCollator

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return (self.evaluation if examples[0].get("evaluation") else self.train)(examples)


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


def unigram_baseline(config: PretrainingConfig, version: str, max_tokens: int) -> dict[str, float]:
    """Token unigram entropy/accuracy of the training split (offset 0; first ``baseline_max_records`` records)."""
    chunking = dataclasses.replace(config.chunking(), max_offset=0)
    held_out = [parse_region(text) for text in config.held_out]
    readers = [source.reader(chunking, held_out) for source in sources_from_config(config.train_genomes)]
    one_pass = itertools.chain.from_iterable(reader.records("train", 0) for reader in readers)
    return token_unigram_baseline(
        itertools.islice(one_pass, config.baseline_max_records), version, max_tokens
    )


def plot_loss_curve(log_history: list[dict[str, Any]], baseline_nats: float | None, path: Path) -> None:
    """Training loss and held-out masked loss against steps, with the unigram baseline, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    held_out = [
        (entry["step"], entry["eval_masked_loss"]) for entry in log_history if "eval_masked_loss" in entry
    ]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    if train:
        axis.plot(*zip(*train, strict=True), label="training MLM loss (80/10/10)")
    if held_out:
        axis.plot(*zip(*held_out, strict=True), "o-", label="held-out masked loss (all <mask>)")
    if baseline_nats is not None:
        axis.axhline(
            baseline_nats, color="grey", linestyle="--", label=f"6-mer unigram entropy {baseline_nats:.3f}"
        )
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats)")
    axis.set_title("NT masked-LM pretraining")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _final_evaluation(trainer: Any) -> dict[str, float]:
    """Held-out metrics at the last step: the logged ones when the last evaluation ran there, else a new one."""
    logged = [entry for entry in trainer.state.log_history if "eval_masked_loss" in entry]
    metrics = logged[-1] if logged and logged[-1]["step"] == trainer.state.global_step else trainer.evaluate()
    return {key.removeprefix("eval_"): value for key, value in metrics.items() if key.startswith("eval_")}


def _as_config(config: PretrainingConfig | Mapping[str, Any] | str | Path) -> PretrainingConfig:
    if isinstance(config, PretrainingConfig):
        return config
    if isinstance(config, Mapping):
        return PretrainingConfig.from_mapping(config)
    return PretrainingConfig.from_yaml(config)


def _comparable(config: PretrainingConfig) -> dict[str, Any]:
    values = dataclasses.asdict(config)
    values.pop("resume")
    return json.loads(json.dumps(values, default=str))


def run_pretraining(
    config: PretrainingConfig | Mapping[str, Any] | str | Path, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Train (or resume), evaluate against the unigram baseline, write results and the loss curve.

    Returns a dict with ``world_size``, ``global_step``, ``train_loss``, the held-out ``masked_loss``,
    ``perplexity`` and ``masked_accuracy``, ``baseline`` (entropy in nats, accuracy), ``beats_baseline``,
    ``loss_curve`` and ``log_history``. A finished run in ``output_dir`` is returned as stored (``reused``).
    """
    config = _as_config(config)
    output_dir = Path(config.output_dir)
    results_path = output_dir / RESULTS_FILE
    if results_path.exists():
        stored = json.loads(results_path.read_text())
        if stored.get("config") != _comparable(config):
            raise ValueError(
                f"{output_dir} holds a finished run with a different configuration; choose another output_dir"
            )
        return {**stored, "reused": True}
    checkpoint = _last_checkpoint(config.output_dir) if config.resume else None
    if not config.resume and _last_checkpoint(config.output_dir):
        raise ValueError(
            f"{output_dir} already holds checkpoints: pass resume (--resume) or choose another output_dir"
        )

    trainer = build_trainer(config, callbacks)
    trainer.train(resume_from_checkpoint=checkpoint)
    results: dict[str, Any] = {
        "world_size": trainer.args.world_size,
        "global_step": trainer.state.global_step,
        "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
        "train_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
    }
    if trainer.eval_dataset is not None:
        results.update(_final_evaluation(trainer))
    trainer.save_model(str(output_dir / "final"))  # every process takes part (DeepSpeed ZeRO-3 gathers)
    if not trainer.is_world_process_zero():
        return results
    dataset = trainer.train_dataset
    baseline = unigram_baseline(config, dataset.version, dataset.max_tokens)
    results["baseline"] = baseline
    if "masked_loss" in results:
        results["beats_baseline"] = results["masked_loss"] < baseline["entropy_nats"]
    if config.plot:
        results["loss_curve"] = str(output_dir / "loss_curve.png")
        plot_loss_curve(trainer.state.log_history, baseline["entropy_nats"], output_dir / "loss_curve.png")
    results["log_history"] = trainer.state.log_history
    results["config"] = _comparable(config)
    results_path.write_text(json.dumps(results, indent=2, default=str))
    return results
