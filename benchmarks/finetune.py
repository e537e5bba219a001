"""Parameter-efficient (IA3, LoRA) and full fine-tuning of NT models on a benchmark task (NT_SPEC section 5).

- **IA3** (the paper's method, default): through ``peft``, learned rescaling vectors on the keys and values
  of every self-attention and on the FFN intermediate activation (the input of ``fc2``), initialised to 1;
  the backbone is frozen; a new linear classification (or regression) head ``classifier`` is trained too.
  About 0.07% of the ``nt-v2-50m-multi-species`` backbone is trainable (:func:`parameter_report`).
- **LoRA** (option): rank-``lora_rank`` updates of the query/key/value/output projections, head trained.
- **Full** (option): every weight trained.

Training follows the paper's defaults: Adam (``adamw_torch`` with no weight decay), constant learning rate
3e-3, batch 8, 10,000 steps, with the checkpoint of best validation score kept (``Trainer``'s
``load_best_model_at_end``). Each of the shared cross-validation folds (:mod:`benchmarks.folds`) trains one
model on the fold's training part minus an inner validation part (used for checkpoint selection only),
scores it on the fold's evaluation part and on the official test split. The reported ``test_score`` is that of
the fold model with the best validation score (the selected checkpoint); every fold's test score is kept in
``extra``. A finished fold writes ``fold_<k>/score.json`` and its adapter (or model), so a killed run resumes
with the next fold; a rerun with another model, task data or training setting is refused
(:func:`finetuning_run_fingerprint`).

Fine-tuning truncates sequences longer than the model's context (``tokenizer_for``'s maximum length).
Adapters save and load on their own (:func:`load_adapter`; ``adapter_model.safetensors`` is kilobytes),
:func:`push_adapter` publishes one with ``PeftModel.push_to_hub``, and :func:`save_merged` writes a merged model
as an ordinary ``NTForSequenceClassification`` checkpoint.

**NTv3** checkpoints and presets (``model_type`` ``ntv3``) fine-tune the same way, as
``NTv3ForSequenceClassification`` (the head reads the mean of the base-resolution output over the real
nucleotides; ``pooling`` can only be ``"mean"``). Batches are padded to a multiple of ``config.length_multiple``
(``2 ** num_downsamples``) with ``N``, which the models saw in training, with attention_mask 0 on the padding:
the padding is left out of the pooled mean and, block by block, out of the core's attention keys
(:func:`data_collator`, :func:`predict`; the rule: :mod:`benchmarks.generation`). IA3 adapts the same core
modules as for NT v1/v2 (keys, values, FFN activation): peft 0.21's IA3 has no ``torch.nn.Conv1d`` layer, so
the convolution towers stay frozen. LoRA adapts the whole core (``query``/``key``/``value``/``output``,
``fc1``/``fc2``) and every plain ``Conv1d`` of the towers (the kernel-5 convolution of each down block, the
kernel-1 convolution of every residual block), but not the upsampling convolution of the up blocks: peft has
no LoRA layer for ``ConvTranspose1d``, and the ``repeat+conv`` variant repeats positions inside its forward,
where a LoRA side path would see the un-repeated input (:func:`lora_target_modules`). ``nt finetune`` trains
sequence-level tasks only (classification, regression); per-nucleotide tasks are ``nt segment``'s.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modeling_nt.fingerprint import (
    FINGERPRINT_FILE,
    RunFingerprint,
    check_fingerprint,
    content_fingerprint,
    fingerprint_run,
    record_fingerprint,
)

from .checks import require_at_least, require_positive
from .folds import inner_split, stratified_folds
from .generation import token_rules
from .metrics import MAIN_METRIC, compute_metrics
from .probing import task_type_of
from .progress import is_terminal, trainer_progress_callback
from .results import BenchmarkResult, model_name_of, save_results

METHODS = ("ia3", "lora", "full")
IA3_TARGET_MODULES = ("key", "value", "fc2")
IA3_FEEDFORWARD_MODULES = ("fc2",)
LORA_TARGET_MODULES = ("query", "key", "value", "output")
#: LoRA on NTv3: the transformer core's projections (the NT v1/v2 names) and FFN, plus the towers' Conv1d.
NTV3_LORA_CORE_MODULES = ("query", "key", "value", "output", "fc1", "fc2")
NTV3_LORA_TOWER_MODULES = ("conv_block.conv", "residual_block.block.conv")
PAPER_DEFAULTS = {"learning_rate": 3e-3, "batch_size": 8, "steps": 10_000}


def load_classifier(model: Any, num_labels: int, *, pooling: str | None = None, seed: int = 0):
    """A fresh ``NTForSequenceClassification``: the given backbone with a new, randomly initialised head.

    Args:
        model: a checkpoint folder (any NT checkpoint: masked-LM, base or classifier; only the backbone is
            kept), a preset name (randomly initialised with ``seed``), or a loaded NT model (its backbone
            weights are copied).
        num_labels: number of classes; 1 for regression.
        pooling: ``"cls"`` or ``"mean"`` for the head (default: the checkpoint's ``config.pooling``); NTv3
            models pool the mean over real nucleotides only.
        seed: seed of the new head (and of the whole model for a preset).

    Returns:
        ``NTForSequenceClassification``, or ``NTv3ForSequenceClassification`` for an NTv3 model.

    Raises:
        FileNotFoundError, ValueError: as :func:`modeling_nt.loading.load_model` (one line naming the problem);
            ValueError for ``pooling="cls"`` with an NTv3 model.
    """
    import torch

    from modeling_nt import NTForSequenceClassification, NTModel
    from modeling_nt.loading import class_for, load_model, preset_config, resolve_spec

    preset = resolve_spec(model) if isinstance(model, str | Path) else None
    if isinstance(preset, str):
        overrides = {"num_labels": num_labels, **head_pooling(preset_config(preset), pooling)}
        return load_model(model, NTForSequenceClassification, seed=seed, **overrides)
    backbone = load_model(model, NTModel) if isinstance(model, str | Path) else model.base_model
    overrides = {"num_labels": num_labels, **head_pooling(backbone.config, pooling)}
    config = backbone.config.to_dict()
    for name in ("problem_type", "id2label", "label2id", "architectures"):
        config.pop(name, None)
    torch.manual_seed(seed)
    new_config = type(backbone.config).from_dict({**config, **overrides})
    classifier = class_for(new_config, NTForSequenceClassification)(new_config)
    classifier.base_model.load_state_dict(backbone.state_dict())
    return classifier


def head_pooling(config: Any, pooling: str | None) -> dict[str, str]:
    """The config override that sets a new head's ``pooling`` (empty: keep the checkpoint's).

    NTv3 heads always pool the mean over real nucleotides (there is no ``<cls>`` token): ``"mean"`` and None
    give no override.

    Raises:
        ValueError: ``pooling`` is ``"cls"`` (or anything but ``"mean"``) for an NTv3 config.
    """
    if pooling is None:
        return {}
    if token_rules(config).cls_offset:  # the input starts with <cls>: both poolings exist
        return {"pooling": pooling}
    if pooling != "mean":
        raise ValueError(
            f"--pooling {pooling}: NTv3 models have no <cls> token; their classifier pools the mean over the "
            "real nucleotides (give --pooling mean or leave it out)"
        )
    return {}


def wrap_model(classifier: Any, method: str = "ia3", *, lora_rank: int = 8):
    """A trainable copy of a classifier for ``method``: a ``PeftModel`` for IA3/LoRA, the plain copy for full.

    ``classifier`` itself is not changed (PEFT injects its layers into the copy); the copy costs one model's
    memory, released with ``classifier`` when the caller drops it. The adapted modules: module docstring
    (NTv3 LoRA: :func:`lora_target_modules`).
    """
    from peft import IA3Config, LoraConfig, TaskType, get_peft_model

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    classifier = copy.deepcopy(classifier)
    if method == "full":
        return classifier
    if method == "ia3":
        config = IA3Config(
            task_type=TaskType.SEQ_CLS,
            target_modules=list(IA3_TARGET_MODULES),
            feedforward_modules=list(IA3_FEEDFORWARD_MODULES),
        )
    else:
        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            target_modules=lora_target_modules(classifier),
            r=lora_rank,
            lora_alpha=2 * lora_rank,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft reads a deprecated transformers attribute
        return get_peft_model(classifier, config)


def lora_target_modules(classifier: Any) -> list[str]:
    """Names of the modules LoRA adapts in ``classifier``: :data:`LORA_TARGET_MODULES` (suffixes) for NT
    v1/v2; for NTv3 the full names of the core's :data:`NTV3_LORA_CORE_MODULES` and of the towers'
    :data:`NTV3_LORA_TOWER_MODULES` that are plain ``torch.nn.Conv1d`` (the up blocks' upsampling convolutions
    are left out: see the module docstring)."""
    from torch import nn

    if token_rules(classifier.config).generation != "v3":
        return list(LORA_TARGET_MODULES)
    prefix = classifier.base_model_prefix
    names = []
    for name, module in classifier.named_modules():
        part, _, leaf = name.removeprefix(f"{prefix}.").partition(".")
        rest = leaf.partition(".")[2]
        core = part == "layers" and rest.rpartition(".")[2] in NTV3_LORA_CORE_MODULES
        tower = part in ("down_blocks", "up_blocks") and rest in NTV3_LORA_TOWER_MODULES
        if (core and isinstance(module, nn.Linear)) or (tower and type(module) is nn.Conv1d):
            names.append(name)
    return names


def count_parameters(wrapped: Any) -> dict[str, int]:
    """Backbone, head, adapter (trainable minus head) and total trainable parameter counts."""
    backbone = wrapped.base_model if hasattr(wrapped, "peft_config") else wrapped
    base = getattr(backbone, "model", backbone)
    head_names = {f"classifier.{name}" for name, _ in base.classifier.named_parameters()}
    trainable = {name: p.numel() for name, p in wrapped.named_parameters() if p.requires_grad}
    head = sum(count for name, count in trainable.items() if any(name.endswith(h) for h in head_names))
    n_backbone = sum(
        p.numel()
        for name, p in base.base_model.named_parameters()
        if "ia3_l" not in name and "lora_" not in name
    )
    return {
        "backbone": n_backbone,
        "head": head,
        "adapter": sum(trainable.values()) - head,
        "trainable": sum(trainable.values()),
    }


def parameter_report(
    model: str = "nt-v2-50m-multi-species", method: str = "ia3", num_labels: int = 2, lora_rank: int = 8
) -> dict[str, Any]:
    """Trainable parameters of ``method`` on the architecture of a preset or checkpoint folder (its config only),
    built on the meta device (no weights are allocated or run), and the implied fp32 sizes on disk: adapter +
    head against a full checkpoint."""
    import torch

    from modeling_nt import NTForSequenceClassification
    from modeling_nt.loading import class_for, load_config

    config = load_config(model)
    config.num_labels = num_labels
    with torch.device("meta"):
        classifier = class_for(config, NTForSequenceClassification)(config)
    counts = count_parameters(wrap_model(classifier, method, lora_rank=lora_rank))
    full_bytes = 4 * (counts["backbone"] + counts["head"])
    adapter_bytes = 4 * counts["trainable"] if method != "full" else full_bytes
    return {
        "model": model,
        "method": method,
        **counts,
        "trainable_percent": 100.0 * counts["trainable"] / counts["backbone"],
        "adapter_percent": 100.0 * counts["adapter"] / counts["backbone"],
        "adapter_bytes": adapter_bytes,
        "full_checkpoint_bytes": full_bytes,
        "size_ratio": full_bytes / adapter_bytes,
    }


def format_parameter_report(report: dict[str, Any]) -> str:
    """One human-readable paragraph of :func:`parameter_report`."""
    return (
        f"{report['method']} on {report['model']}: {report['trainable']:,} trainable parameters "
        f"({report['adapter']:,} adapter + {report['head']:,} head) = {report['trainable_percent']:.4f}% of the "
        f"{report['backbone']:,}-parameter backbone; adapter {report['adapter_bytes'] / 1e3:,.1f} kB vs full "
        f"checkpoint {report['full_checkpoint_bytes'] / 1e6:,.1f} MB ({report['size_ratio']:,.0f}x smaller)"
    )


def folder_bytes(path: str | Path) -> int:
    """Total size of the files under ``path``."""
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def save_adapter(wrapped: Any, path: str | Path) -> Path:
    """Save a trained adapter alone (``adapter_config.json`` + ``adapter_model.safetensors``), or the whole
    model for full fine-tuning."""
    wrapped.save_pretrained(str(path))
    return Path(path)


def load_adapter(
    model: Any, adapter_dir: str | Path, num_labels: int, *, pooling: str | None = None, seed: int = 0
):
    """A fresh backbone (``model`` as in :func:`load_classifier`) with the saved adapter (and head) applied.

    For a preset ``model`` the backbone's random weights come from ``seed``: give the seed the adapter was
    trained on (a fold of :func:`run_finetuning` uses the run's seed + the fold index)."""
    from peft import PeftModel

    classifier = load_classifier(model, num_labels, pooling=pooling, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft reads a deprecated transformers attribute
        return PeftModel.from_pretrained(classifier, str(adapter_dir)).eval()


def push_adapter(wrapped: Any, repo_id: str, **kwargs: Any) -> Any:
    """Publish an adapter to the Hub with ``PeftModel.push_to_hub`` (needs a token and network)."""
    return wrapped.push_to_hub(repo_id, **kwargs)


def save_merged(wrapped: Any, path: str | Path, tokenizer: Any = None) -> Path:
    """Fold the adapter into the weights and save an ordinary ``NTForSequenceClassification`` checkpoint.

    The merge runs on a copy: ``wrapped`` keeps its adapter (costs one model's memory while saving)."""
    merged = copy.deepcopy(wrapped).merge_and_unload() if hasattr(wrapped, "merge_and_unload") else wrapped
    merged.save_pretrained(str(path))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return Path(path)


def predict(model: Any, tokenizer: Any, sequences: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Logits ``[N, num_labels]`` of a (possibly adapted) classifier, in eval mode, without gradients.

    ``sequences``: DNA strings (a bare ``str`` is one sequence). The model's train/eval mode is restored.
    """
    import torch

    from tokenization import as_sequence_list

    from .inference import eval_mode

    sequences = as_sequence_list(sequences)
    rules = token_rules(model.config)
    device = next(model.parameters()).device
    outputs = []
    with torch.inference_mode(), eval_mode(model):
        for start in range(0, len(sequences), batch_size):
            batch = tokenizer(
                list(sequences[start : start + batch_size]),
                padding=True,
                truncation=True,
                pad_to_multiple_of=rules.length_multiple,
                return_tensors="pt",
            )
            batch = rules.fill_padding(batch)
            outputs.append(model(**batch.to(device)).logits.float().cpu().numpy())
    return np.concatenate(outputs)


def data_collator(tokenizer: Any, config: Any) -> Any:
    """The training batch builder of a model ``config``: ``DataCollatorWithPadding`` to the generation's length
    multiple, the padding then filled by :meth:`benchmarks.generation.TokenRules.fill_padding` (NTv3: ``N``,
    attention_mask 0, so it stays out of the pooled mean and of the core's attention keys)."""
    from transformers import DataCollatorWithPadding

    rules = token_rules(config)
    pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=rules.length_multiple)
    return lambda features: rules.fill_padding(pad(features))


def score_logits(logits: np.ndarray, labels: np.ndarray, task_type: str) -> float:
    """Main metric (MCC, or Pearson for regression) of logits against labels; a NaN score counts as -1.

    Raises:
        ValueError: some logits are NaN or infinite (the training diverged; see :func:`compute_metrics`).
    """
    if task_type == "regression":
        score = compute_metrics(labels, logits[:, 0], task_type=task_type)[MAIN_METRIC[task_type]]
    else:
        score = compute_metrics(labels, y_score=logits, task_type=task_type)[MAIN_METRIC[task_type]]
    return -1.0 if np.isnan(score) else float(score)


def _tokenized(dataset: Any, tokenizer: Any) -> Any:
    columns = [name for name in dataset.column_names if name != "label"]
    return dataset.map(
        lambda batch: tokenizer(batch["sequence"], truncation=True), batched=True, remove_columns=columns
    )


def train_one(
    wrapped: Any,
    tokenizer: Any,
    train_dataset: Any,
    val_dataset: Any,
    output_dir: str | Path,
    task_type: str,
    *,
    steps: int = PAPER_DEFAULTS["steps"],
    batch_size: int = PAPER_DEFAULTS["batch_size"],
    learning_rate: float = PAPER_DEFAULTS["learning_rate"],
    eval_steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> float:
    """Train with ``Trainer`` and keep the checkpoint of best validation score; returns that score."""
    import torch
    from transformers import Trainer, TrainingArguments

    metric = MAIN_METRIC[task_type]
    eval_steps = eval_steps or max(1, steps // 10)
    bar = progress and is_terminal()  # in a log: step lines with the time left instead of a redrawn bar
    lines = [trainer_progress_callback(f"finetune {Path(output_dir).name}")] if progress and not bar else []
    arguments = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        learning_rate=learning_rate,
        weight_decay=0.0,
        optim="adamw_torch",
        lr_scheduler_type="constant",
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        logging_steps=eval_steps,
        report_to="none",
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not bar,
        ddp_find_unused_parameters=False,
    )

    def trainer_metrics(prediction: Any) -> dict[str, float]:
        logits = np.asarray(
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        if not np.isfinite(logits).all():  # a diverged checkpoint is never the best one
            return {metric: -1.0}
        return {metric: score_logits(logits, np.asarray(prediction.label_ids), task_type)}

    trainer = Trainer(
        model=wrapped,
        args=arguments,
        train_dataset=_tokenized(train_dataset, tokenizer),
        eval_dataset=_tokenized(val_dataset, tokenizer),
        # no processing_class: the collator pads, and the Trainer would otherwise copy the tokenizer's unused
        # <bos>/<eos> ids into the model's config (with a warning on every fold)
        data_collator=data_collator(tokenizer, wrapped.config),
        compute_metrics=trainer_metrics,
        callbacks=lines,
    )
    checkpoint_log = logging.getLogger("transformers.trainer_utils")
    checkpoint_log.addFilter(_no_mtime_notice)
    try:
        trainer.train()
    finally:
        checkpoint_log.removeFilter(_no_mtime_notice)
    return float(trainer.state.best_metric)


def _no_mtime_notice(record: logging.LogRecord) -> bool:
    """Drop the Trainer's notice that checkpoints saved within a second are ordered by step number (noise)."""
    return "mtime may not be reliable" not in str(record.msg)


def run_fold(
    model: Any,
    train: Any,
    test: Any,
    split: tuple[np.ndarray, np.ndarray],
    fold_dir: Path,
    task_type: str,
    *,
    method: str,
    num_labels: int,
    pooling: str | None,
    lora_rank: int,
    inner_fraction: float,
    seed: int,
    **training: Any,
) -> dict[str, Any]:
    """Train one fold (validation part carved from its training part), score it on its evaluation part and the
    test split, save its adapter; returns the fold record (also written to ``fold_dir/score.json``)."""
    from modeling_nt import tokenizer_for

    train_idx, eval_idx = split
    fit_idx, val_idx = inner_split(train_idx, np.asarray(train["label"]), fraction=inner_fraction, seed=seed)
    fold = int(fold_dir.name.rsplit("_", 1)[1])
    classifier = load_classifier(model, num_labels, pooling=pooling, seed=seed + fold)
    wrapped = wrap_model(classifier, method, lora_rank=lora_rank)
    del classifier  # wrap_model trains a copy: free the original
    tokenizer = tokenizer_for(wrapped.config)
    checkpoints = fold_dir / "checkpoints"
    val_score = train_one(
        wrapped,
        tokenizer,
        train.select(fit_idx),
        train.select(val_idx),
        checkpoints,
        task_type,
        seed=seed,
        **training,
    )
    eval_rows = train.select(eval_idx)
    eval_logits = predict(wrapped, tokenizer, eval_rows["sequence"])
    test_logits = predict(wrapped, tokenizer, test["sequence"])
    save_adapter(wrapped, fold_dir / "adapter")
    shutil.rmtree(checkpoints, ignore_errors=True)
    record = {
        "fold": fold,
        "validation_score": val_score,
        "eval_score": score_logits(eval_logits, np.asarray(eval_rows["label"]), task_type),
        "test_score": score_logits(test_logits, np.asarray(test["label"]), task_type),
        "adapter_bytes": folder_bytes(fold_dir / "adapter"),
        **count_parameters(wrapped),
    }
    partial = fold_dir / ".score.json.partial"
    partial.write_text(json.dumps(record, indent=2))
    os.replace(partial, fold_dir / "score.json")
    return record


def finetuning_run_fingerprint(model: Any, dataset_dict: Any, **settings: Any) -> RunFingerprint:
    """What determines the folds of a fine-tuning run: the model, the task data (sequences and labels of the
    ``train`` and ``test`` splits) and every training setting (``--method``, ``--steps``, ``--batch-size``,
    ``--lr``, ``--eval-steps``, ``--folds``, ``--pooling``, ``--lora-rank``, ``--seed``, the inner validation
    fraction: all change the trained models). Not recorded: progress display."""
    splits = [dataset_dict[name] for name in ("train", "test") if name in dataset_dict]
    data = content_fingerprint(*(list(split[column]) for split in splits for column in ("sequence", "label")))
    flags = {"learning_rate": "--lr", "inner_fraction": "inner_fraction"}
    values = {flags.get(key, "--" + key.replace("_", "-")): value for key, value in settings.items()}
    return fingerprint_run(model=model, inputs={"task data": data}, settings=values)


def run_finetuning(
    model: Any,
    dataset_dict: Any,
    task_name: str,
    out_dir: str | Path,
    *,
    method: str = "ia3",
    benchmark: str = "gue",
    model_name: str | None = None,
    steps: int = PAPER_DEFAULTS["steps"],
    batch_size: int = PAPER_DEFAULTS["batch_size"],
    learning_rate: float = PAPER_DEFAULTS["learning_rate"],
    eval_steps: int | None = None,
    folds: int = 10,
    inner_fraction: float = 0.1,
    pooling: str | None = None,
    lora_rank: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> list[BenchmarkResult]:
    """Cross-validated fine-tuning of a model on one task (protocol in the module docstring).

    Args:
        model: checkpoint folder, preset name or loaded NT model (see :func:`load_classifier`).
        dataset_dict: the task's splits (``train``, ``test``), columns ``sequence`` and ``label``.
        task_name: task name written into the results.
        out_dir: working folder: ``<task>_<method>/fold_<k>/`` (adapter, ``score.json``) and
            ``finetune_<task>_<method>.json`` (the result).
        method: ``"ia3"``, ``"lora"`` or ``"full"``.
        steps, batch_size, learning_rate: training schedule (paper: 10,000, 8, 3e-3).
        eval_steps: validation (and checkpoint) interval; default ``steps // 10``.
        folds: cross-validation folds (paper: 10).
        pooling: head pooling, ``"cls"`` or ``"mean"`` (default: the checkpoint's).

    Returns:
        A one-element list with the :class:`BenchmarkResult` (method = ``method``).

    Raises:
        FingerprintMismatch: the working folder holds folds of a run with another model, task data or
            setting (:func:`finetuning_run_fingerprint`, recorded in ``<task>_<method>/fingerprint.json``).
        ValueError: before any work, a post-trained (species-conditioned) NTv3 model (no species is given
            here: :func:`benchmarks.generation.refuse_conditioned`) or ``pooling="cls"`` with an NTv3 model.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    require_at_least(1, steps=steps, batch_size=batch_size, eval_steps=eval_steps, lora_rank=lora_rank)
    require_positive(learning_rate=learning_rate)
    from modeling_nt.loading import load_config

    from .generation import refuse_conditioned

    # refused before any work: a post-trained NTv3 model (no species here), --pooling cls on NTv3
    config = load_config(model) if isinstance(model, str | Path) else model.config
    refuse_conditioned(config, model if isinstance(model, str | Path) else type(model).__name__)
    if pooling is not None:
        head_pooling(config, pooling)
    train, test = dataset_dict["train"], dataset_dict["test"]
    task_type = task_type_of(train)
    labels = np.asarray(train["label"])
    num_labels = 1 if task_type == "regression" else int(train.features["label"].num_classes)
    work = Path(out_dir) / f"{task_name}_{method}"
    fold_splits = stratified_folds(
        labels, n_folds=folds, seed=seed, source=f"task {task_name!r} (train split)"
    )
    fingerprint = finetuning_run_fingerprint(
        model,
        dataset_dict,
        method=method,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        eval_steps=eval_steps,
        folds=folds,
        inner_fraction=inner_fraction,
        pooling=pooling,
        lora_rank=lora_rank,
        seed=seed,
    )
    record_path = work / FINGERPRINT_FILE
    check_fingerprint(record_path, fingerprint, partial=work, started=any(work.glob("fold_*/score.json")))
    record_fingerprint(record_path, fingerprint)  # validated: the work starts here
    fold_records = []
    for fold, split in enumerate(fold_splits):
        score_path = work / f"fold_{fold}" / "score.json"
        if score_path.is_file():
            fold_records.append(json.loads(score_path.read_text()))
            continue
        fold_records.append(
            run_fold(
                model,
                train,
                test,
                split,
                score_path.parent,
                task_type,
                method=method,
                num_labels=num_labels,
                pooling=pooling,
                lora_rank=lora_rank,
                inner_fraction=inner_fraction,
                seed=seed,
                steps=steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
                eval_steps=eval_steps,
                progress=progress,
            )
        )
    best = max(fold_records, key=lambda record: record["validation_score"])
    result = BenchmarkResult(
        model=model_name or model_name_of(model),
        task=task_name,
        benchmark=benchmark,
        method=method,
        metric=MAIN_METRIC[task_type],
        fold_scores=[record["eval_score"] for record in fold_records],
        test_score=best["test_score"],
        n_params=best["backbone"] + best["head"],
        trainable_params=best["trainable"],
        seed=seed,
        extra={
            "selected_fold": best["fold"],
            "num_labels": num_labels,
            "fold_test_scores": [record["test_score"] for record in fold_records],
            "validation_scores": [record["validation_score"] for record in fold_records],
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "pooling": pooling,
            "adapter_bytes": best["adapter_bytes"],
            "full_checkpoint_bytes": 4 * (best["backbone"] + best["head"]),
            "trainable_percent": 100.0 * best["trainable"] / best["backbone"],
        },
    )
    save_results([result], Path(out_dir) / f"finetune_{task_name}_{method}.json", overwrite=True)
    return [result]
