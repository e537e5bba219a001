"""BPNet-style supervised baseline: a dilated residual CNN trained from scratch on one task.

The paper compares NT with BPNet-style networks trained per task (NT_SPEC section 4: ~121k parameters, mean MCC
0.665; a large ~28M variant, 0.683). The architecture follows BPNet (Avsec et al. 2021): one-hot DNA, a wide
first convolution (25 nt), a stack of residual convolutions (kernel 3) whose dilation doubles per layer (2, 4,
..., 512), global average pooling and a small MLP head (classification logits, or one value for regression).

Input encoding: channels A, C, G, T; ``N`` (and the IUPAC ambiguity letters, read as N by the tokenizer's
lenient policy) is the all-zero vector. Sequences of different lengths are padded at the end with all-zero
columns and a mask: every layer zeroes the padded positions and the pooling averages over real positions
only, so a sequence gives the same output alone or padded in a batch (N positions count in the average,
padding does not).

Training (:func:`fit`): Adam, cross-entropy (or MSE for regression), optional reverse-complement
augmentation, early stopping on the task's main metric (MCC, or Pearson for regression) computed on an inner
validation split, keeping the best epoch's weights. :func:`evaluate_task` runs the shared 10-fold
cross-validation (:func:`benchmarks.folds.stratified_folds` / :func:`~benchmarks.folds.inner_split`) and/or
one train -> test run, and returns a :class:`~benchmarks.results.BenchmarkResult`; it records finished folds
in a state file so that a killed run resumes where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from modeling_nt.fingerprint import RunFingerprint, check_recorded, content_fingerprint, fingerprint_run
from tokenization import as_sequence_list, normalize_sequence, validate_sequence

from .checks import require_at_least, require_positive
from .folds import check_classes, inner_split, stratified_folds
from .inference import resolve_device
from .metrics import MAIN_METRIC, compute_metrics
from .progress import progress as report_progress

if TYPE_CHECKING:
    from .results import BenchmarkResult
    from .tasks import TaskSpec

#: One-hot channel order; the reverse complement of a one-hot sequence is a flip of both axes.
ONE_HOT_ALPHABET = "ACGT"
#: Code of the right padding in :func:`encode_sequences` arrays (A, C, G, T, N are 0-4).
PAD_CODE = 5
_INVALID_CODE = 255
_CODE_OF_BYTE = np.full(256, _INVALID_CODE, dtype=np.uint8)
for _code, _letter in enumerate(ONE_HOT_ALPHABET + "N"):
    _CODE_OF_BYTE[ord(_letter)] = _code
#: Row ``code`` is the one-hot column of that code: A, C, G, T one-hot; N and padding all zeros.
_ONE_HOT_TABLE = torch.cat([torch.eye(4), torch.zeros(2, 4)])

RESULT_MODEL_NAME = "BPNet"
METHOD_OF_VARIANT = {"original": "bpnet", "large": "bpnet-large"}


# --------------------------------------------------------------------------------------------------------------
# Encoding


def _sequence_codes(text: str, index: int) -> np.ndarray:
    validate_sequence(text, strict=False, index=index)
    sequence = normalize_sequence(text)
    if not sequence:
        raise ValueError(f"sequence {index} is empty")
    codes = _CODE_OF_BYTE[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]
    invalid = np.flatnonzero(codes == _INVALID_CODE)
    if len(invalid):
        position = int(invalid[0])
        raise ValueError(
            f"sequence {index}: {sequence[position : position + 6]!r} at position {position} (0-based, after "
            "normalisation) is not a nucleotide; one-hot input takes A/C/G/T/N only (no special tokens)"
        )
    return codes


def encode_sequences(sequences: Sequence[str], length: int | None = None) -> np.ndarray:
    """Nucleotide codes (A=0, C=1, G=2, T=3, N=4), right-padded with :data:`PAD_CODE` to a common length.

    Input follows the tokenizer's lenient policy: upper/lowercase A/C/G/T/N, U read as T, IUPAC ambiguity
    letters read as N, whitespace removed. Other characters raise a ValueError naming the sequence and
    position.

    Args:
        sequences: DNA strings of any lengths (a bare ``str`` is one sequence).
        length: pad to this length (default: the longest sequence); a longer sequence is an error.

    Returns:
        ``uint8`` array of shape ``(len(sequences), length)``.
    """
    rows = [_sequence_codes(text, index) for index, text in enumerate(as_sequence_list(sequences))]
    longest = max((len(row) for row in rows), default=0)
    length = longest if length is None else length
    if longest > length:
        index = next(index for index, row in enumerate(rows) if len(row) > length)
        raise ValueError(f"sequence {index} has {len(rows[index])} nt, more than length={length}")
    codes = np.full((len(rows), length), PAD_CODE, dtype=np.uint8)
    for index, row in enumerate(rows):
        codes[index, : len(row)] = row
    return codes


def codes_to_one_hot(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot input ``(batch, 4, length)`` (float32) and mask ``(batch, length)`` (bool) of code arrays."""
    codes = torch.as_tensor(codes).long()
    one_hot = _ONE_HOT_TABLE.to(codes.device)[codes].transpose(1, 2).contiguous()
    return one_hot, codes != PAD_CODE


def one_hot(sequences: Sequence[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot encode DNA strings: ``(n, 4, length)`` float32 (channels A, C, G, T; N all zeros) and a
    ``(n, length)`` bool mask that is False on the right padding of shorter sequences.

    See :func:`encode_sequences` for the input policy and ``length``.
    """
    return codes_to_one_hot(torch.from_numpy(encode_sequences(sequences, length)))


def reverse_complement(one_hot: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse complement of one-hot input (A<->T, C<->G, order reversed); padding moves to the left."""
    return one_hot.flip((1, 2)), mask.flip(1)


# --------------------------------------------------------------------------------------------------------------
# Model


@dataclasses.dataclass(frozen=True)
class BPNetConfig:
    """Architecture of a :class:`BPNet`.

    Attributes:
        num_labels: classes, or 1 for a regression task.
        filters: channels of every convolution.
        first_kernel_size: width of the first convolution (nt).
        dilated_layers: residual dilated convolutions; layer ``i`` (1-based) has dilation ``2**i``.
        dilated_kernel_size: width of the dilated convolutions.
        head_hidden: width of the hidden layer of the head (0: a single linear layer).
        dropout: dropout before the output layer.
    """

    num_labels: int = 2
    filters: int = 64
    first_kernel_size: int = 25
    dilated_layers: int = 9
    dilated_kernel_size: int = 3
    head_hidden: int = 64
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("num_labels", "filters", "first_kernel_size", "dilated_kernel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"BPNetConfig.{name} must be positive, got {getattr(self, name)}")
        if self.dilated_layers < 0 or self.head_hidden < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"bad BPNetConfig {self}")


#: The two sizes of the paper: ``original`` is BPNet's 64-filter, 9-layer network (121,922 parameters for 2
#: classes); ``large`` widens it to 1,000 filters (28,113,002 parameters for 2 classes).
PRESETS: dict[str, dict[str, int]] = {
    "original": {"filters": 64, "head_hidden": 64},
    "large": {"filters": 1000, "head_hidden": 1000},
}


def bpnet_config(variant: str, num_labels: int, **overrides: Any) -> BPNetConfig:
    """The :class:`BPNetConfig` of a preset (``"original"`` or ``"large"``) for a task with ``num_labels``."""
    if variant not in PRESETS:
        raise ValueError(f"unknown BPNet variant {variant!r}; choose one of {list(PRESETS)}")
    return BPNetConfig(num_labels=num_labels, **{**PRESETS[variant], **overrides})


class BPNet(nn.Module):
    """Dilated residual CNN over one-hot DNA, with masked global average pooling and an MLP head."""

    def __init__(self, config: BPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.first_conv = nn.Conv1d(4, config.filters, config.first_kernel_size, padding="same")
        self.dilated_convs = nn.ModuleList(
            nn.Conv1d(
                config.filters, config.filters, config.dilated_kernel_size, dilation=2**layer, padding="same"
            )
            for layer in range(1, config.dilated_layers + 1)
        )
        if config.head_hidden:
            self.head = nn.Sequential(
                nn.Linear(config.filters, config.head_hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.head_hidden, config.num_labels),
            )
        else:
            self.head = nn.Sequential(
                nn.Dropout(config.dropout), nn.Linear(config.filters, config.num_labels)
            )

    def _encode(self, one_hot: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Per-position features ``(batch, filters, length)``; ``keep`` (0/1 per position) zeroes padding."""
        hidden = torch.relu(self.first_conv(one_hot))
        hidden = hidden if keep is None else hidden * keep
        for conv in self.dilated_convs:
            update = torch.relu(conv(hidden))
            hidden = hidden + (update if keep is None else update * keep)
        return hidden

    def forward(self, one_hot: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, num_labels)`` (regression: ``(batch, 1)``) of one-hot input ``(batch, 4, length)``.

        ``mask`` ``(batch, length)`` marks real positions (default: all); padded positions are ignored.
        """
        if one_hot.ndim != 3 or one_hot.shape[1] != 4:
            raise ValueError(
                f"expected one-hot input of shape (batch, 4, length), got {tuple(one_hot.shape)}"
            )
        if mask is None or bool(mask.all()):
            return self.head(self._encode(one_hot, None).mean(dim=2))
        keep = mask.unsqueeze(1).to(one_hot.dtype)
        pooled = self._encode(one_hot, keep).sum(dim=2) / keep.sum(dim=2).clamp(min=1.0)
        return self.head(pooled)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def build_bpnet(variant: str, num_labels: int, seed: int = 0, **overrides: Any) -> BPNet:
    """A freshly initialised preset model (initialisation seeded by ``seed``)."""
    torch.manual_seed(seed)
    return BPNet(bpnet_config(variant, num_labels, **overrides))


# --------------------------------------------------------------------------------------------------------------
# Training


@dataclasses.dataclass
class TrainingConfig:
    """Optimisation settings of :func:`fit`.

    Attributes:
        max_epochs: epochs at most.
        patience: stop after this many epochs without a better validation score.
        batch_size: training batch size (prediction uses 4x).
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
        rc_augment: reverse-complement each training example with probability 1/2.
        seed: seed of the batch order, the augmentation and dropout.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        progress: show a progress bar over epochs.
    """

    max_epochs: int = 100
    patience: int = 5
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    rc_augment: bool = False
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        require_at_least(1, max_epochs=self.max_epochs, patience=self.patience, batch_size=self.batch_size)
        require_positive(learning_rate=self.learning_rate)
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


@dataclasses.dataclass
class TrainingHistory:
    """What :func:`fit` did: per-epoch training loss and validation score, and the epoch it kept (1-based)."""

    train_loss: list[float] = dataclasses.field(default_factory=list)
    val_score: list[float] = dataclasses.field(default_factory=list)
    best_epoch: int = 0
    best_val_score: float = -math.inf
    seconds: float = 0.0


def _labels_tensor(labels: Sequence | np.ndarray, task_type: str) -> torch.Tensor:
    dtype = torch.float32 if task_type == "regression" else torch.long
    return torch.as_tensor(np.asarray(labels), dtype=dtype)


def _batch_input(
    codes: torch.Tensor, lengths: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, ...]:
    width = int(lengths.max())
    return codes_to_one_hot(codes[:, :width].to(device))


def _validation_score(metrics: dict[str, float], task_type: str) -> float:
    score = metrics[MAIN_METRIC[task_type]]
    return -math.inf if math.isnan(score) else score


def predict(
    model: BPNet, codes: np.ndarray, batch_size: int = 256, device: str | torch.device = "auto"
) -> np.ndarray:
    """Model outputs for encoded sequences: logits ``(n, num_labels)``, or values ``(n,)`` for regression.

    The caller's ``model`` keeps its device and train/eval mode (a copy runs when it must move).
    """
    from .inference import model_for_inference

    device = resolve_device(device) if isinstance(device, str) else device
    codes_tensor = torch.from_numpy(np.asarray(codes))
    lengths = (codes_tensor != PAD_CODE).sum(dim=1)
    model = model_for_inference(model, device)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(codes_tensor), batch_size):
            rows = slice(start, start + batch_size)
            outputs.append(model(*_batch_input(codes_tensor[rows], lengths[rows], device)).float().cpu())
    logits = torch.cat(outputs).numpy() if outputs else np.zeros((0, model.config.num_labels), np.float32)
    return logits[:, 0] if model.config.num_labels == 1 else logits


def score_predictions(outputs: np.ndarray, labels: Sequence | np.ndarray, task_type: str) -> dict[str, float]:
    """Benchmark metrics (:func:`benchmarks.metrics.compute_metrics`) of :func:`predict` outputs."""
    if task_type == "regression":
        return compute_metrics(labels, outputs, task_type="regression")
    return compute_metrics(labels, outputs.argmax(axis=1), y_score=outputs, task_type="classification")


def _augment(
    one_hot: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    flip = (torch.rand(one_hot.shape[0], generator=generator) < 0.5).to(one_hot.device)
    flipped_input, flipped_mask = reverse_complement(one_hot, mask)
    return (
        torch.where(flip[:, None, None], flipped_input, one_hot),
        torch.where(flip[:, None], flipped_mask, mask),
    )


def fit(
    model: BPNet,
    train_codes: np.ndarray,
    train_labels: Sequence | np.ndarray,
    val_codes: np.ndarray,
    val_labels: Sequence | np.ndarray,
    task_type: str = "classification",
    config: TrainingConfig | None = None,
    description: str = "bpnet",
) -> TrainingHistory:
    """Train ``model`` in place with early stopping on the validation split; it ends with the best epoch's weights.

    Args:
        model: a :class:`BPNet` (``num_labels`` 1 for regression).
        train_codes, val_codes: :func:`encode_sequences` arrays.
        train_labels, val_labels: class indices, or float targets for regression.
        task_type: ``"classification"`` or ``"regression"``; sets the loss and the validation metric (MCC or
            Pearson, as :data:`benchmarks.metrics.MAIN_METRIC`).
        config: optimisation settings.
        description: progress bar label.
    """
    config = config or TrainingConfig()
    if task_type not in MAIN_METRIC:
        raise ValueError(f"task_type must be one of {sorted(MAIN_METRIC)}, got {task_type!r}")
    if (task_type == "regression") != (model.config.num_labels == 1):
        raise ValueError(
            f"a {task_type} task needs num_labels {'1' if task_type == 'regression' else '>= 2'}"
        )
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    codes = torch.from_numpy(np.asarray(train_codes))
    lengths = (codes != PAD_CODE).sum(dim=1)
    labels = _labels_tensor(train_labels, task_type)
    if len(labels) != len(codes) or len(val_labels) != len(val_codes):
        raise ValueError("codes and labels must have the same number of rows")
    if (
        task_type == "classification"
        and len(labels)
        and not 0 <= labels.min() <= labels.max() < model.config.num_labels
    ):
        raise ValueError(
            f"class labels must lie in 0..{model.config.num_labels - 1}, got {int(labels.min())}..{int(labels.max())}"
        )
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_function = nn.MSELoss() if task_type == "regression" else nn.CrossEntropyLoss()
    history, best_state = TrainingHistory(), copy.deepcopy(model.state_dict())
    started = time.perf_counter()
    epochs = report_progress(
        range(1, config.max_epochs + 1), desc=description, unit="epochs", enabled=config.progress, leave=False
    )
    for epoch in epochs:
        model.train()
        total_loss = 0.0
        for rows in torch.randperm(len(codes), generator=generator).split(config.batch_size):
            one_hot, mask = _batch_input(codes[rows], lengths[rows], device)
            if config.rc_augment:
                one_hot, mask = _augment(one_hot, mask, generator)
            outputs = model(one_hot, mask)
            targets = labels[rows].to(device)
            loss = loss_function(outputs[:, 0] if task_type == "regression" else outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(rows)
        val_outputs = predict(model, val_codes, 4 * config.batch_size, device)
        score = _validation_score(score_predictions(val_outputs, val_labels, task_type), task_type)
        history.train_loss.append(total_loss / len(codes))
        history.val_score.append(score)
        if score > history.best_val_score:
            history.best_epoch, history.best_val_score = epoch, score
            best_state = copy.deepcopy(model.state_dict())
        epochs.set_postfix(loss=f"{history.train_loss[-1]:.4f}", val=f"{score:.4f}", best=history.best_epoch)
        if epoch - history.best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - started
    return history


def train_and_score(
    variant: str,
    task: TaskSpec,
    codes: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    eval_codes: np.ndarray,
    eval_labels: np.ndarray,
    config: TrainingConfig,
    model_overrides: dict[str, Any] | None = None,
    description: str = "bpnet",
) -> dict[str, Any]:
    """Fit a fresh preset model on ``train_idx`` (early stopping on its inner split) and score it on eval data.

    Returns a JSON-ready record: ``metrics`` (all metrics on the evaluation data), ``score`` (the main one),
    ``best_epoch``, ``epochs``, ``seconds``, ``n_fit``, ``n_val``.
    """
    fit_idx, val_idx = inner_split(train_idx, labels, fraction=0.1, seed=config.seed)
    model = build_bpnet(variant, task.num_labels, seed=config.seed, **(model_overrides or {}))
    history = fit(
        model,
        codes[fit_idx],
        labels[fit_idx],
        codes[val_idx],
        labels[val_idx],
        task.task_type,
        config,
        description,
    )
    outputs = predict(model, eval_codes, 4 * config.batch_size, config.device)
    metrics = score_predictions(outputs, eval_labels, task.task_type)
    return {
        "metrics": metrics,
        "score": metrics[task.metric],
        "best_epoch": history.best_epoch,
        "epochs": len(history.train_loss),
        "seconds": round(history.seconds, 2),
        "n_fit": len(fit_idx),
        "n_val": len(val_idx),
    }


# --------------------------------------------------------------------------------------------------------------
# Benchmark runs


def bpnet_run_fingerprint(
    variant: str,
    task: TaskSpec,
    n_folds: int,
    config: TrainingConfig,
    model_overrides: dict[str, Any] | None,
    train_sequences: Sequence[str],
    train_labels: Sequence | np.ndarray,
    test_sequences: Sequence[str] | None,
    test_labels: Sequence | np.ndarray | None,
) -> RunFingerprint:
    """What determines the runs of :func:`evaluate_task`: the training and test data (sequences and labels),
    ``--variant``, ``--benchmark``, ``--task``, ``--folds``, the model overrides and every training setting
    (``--max-epochs``, ``--patience``, ``--batch-size``, ``--lr``, ``--weight-decay``, ``--rc-augment``,
    ``--seed``). Not recorded: ``--device``, ``--threads`` and progress display."""
    test = None if test_sequences is None else content_fingerprint(test_sequences, test_labels)
    training = {
        f"--{key.replace('_', '-')}".replace("--learning-rate", "--lr"): value
        for key, value in dataclasses.asdict(config).items()
        if key not in ("progress", "device")
    }
    return fingerprint_run(
        inputs={"train data": content_fingerprint(train_sequences, train_labels), "test data": test},
        settings={
            "--variant": variant,
            "--benchmark": task.benchmark,
            "--task": task.name,
            "--folds": n_folds,
            **training,
            "model overrides": model_overrides or {},
        },
    )


def _load_state(path: Path, fingerprint: RunFingerprint) -> dict[str, Any]:
    """The finished runs recorded at ``path`` (none when absent); refused when recorded by another run."""
    if not path.exists():
        return {"fingerprint": fingerprint, "runs": {}}
    state = json.loads(path.read_text())
    check_recorded(state.get("fingerprint"), fingerprint, path=path, started=True)
    return state


def _save_state(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(partial, path)


def evaluate_task(
    variant: str,
    task: TaskSpec,
    train_sequences: Sequence[str],
    train_labels: Sequence | np.ndarray,
    test_sequences: Sequence[str] | None = None,
    test_labels: Sequence | np.ndarray | None = None,
    n_folds: int = 10,
    config: TrainingConfig | None = None,
    state_path: str | Path | None = None,
    model_overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> BenchmarkResult:
    """Benchmark the BPNet baseline on one task.

    With ``n_folds >= 2``: the shared stratified folds of the training data; in each fold a fresh model is
    trained on the fold's training part (early stopping on :func:`~benchmarks.folds.inner_split`) and scored on
    the fold's evaluation part. With test data: one more model trained on the whole training split the same
    way and scored on the test split. At least one of the two is needed.

    Args:
        variant: ``"original"`` or ``"large"``.
        task: the task's :class:`~benchmarks.tasks.TaskSpec` (classes, task type, metric).
        train_sequences, train_labels: the training split.
        test_sequences, test_labels: the official test split (optional).
        n_folds: cross-validation folds; 0 for a train -> test run only.
        config: optimisation settings (also the seed of folds and inner splits).
        state_path: JSON file recording finished folds and the run's fingerprint
            (:func:`bpnet_run_fingerprint`); a rerun with the same data and settings skips them, any other rerun
            is refused (:class:`~modeling_nt.fingerprint.FingerprintMismatch` naming the difference).
        model_overrides: :class:`BPNetConfig` fields to change from the preset.
        log: where one line per finished run goes.
    """
    from .results import BenchmarkResult

    config = config or TrainingConfig()
    if n_folds == 1 or n_folds < 0:
        raise ValueError(f"n_folds must be 0 (no cross-validation) or at least 2, got {n_folds}")
    if n_folds == 0 and test_sequences is None:
        raise ValueError("nothing to do: n_folds is 0 and there is no test split")
    train_sequences = as_sequence_list(train_sequences, "train_sequences")
    if test_sequences is not None:
        test_sequences = as_sequence_list(test_sequences, "test_sequences")
    codes = encode_sequences(train_sequences)
    labels = np.asarray(train_labels)
    if len(labels) != len(train_sequences):
        raise ValueError(f"{len(train_sequences)} training sequences but {len(labels)} training labels")
    source = f"task {task.name!r} (train split)"
    if task.task_type != "regression":
        check_classes(labels, source)
    folds = stratified_folds(labels, n_folds, seed=config.seed, source=source) if n_folds else []
    runs = [
        (f"fold {fold}", train_idx, codes[eval_idx], labels[eval_idx])
        for fold, (train_idx, eval_idx) in enumerate(folds)
    ]
    if test_sequences is not None:
        test_codes = encode_sequences(test_sequences)
        runs.append(("test", np.arange(len(labels)), test_codes, np.asarray(test_labels)))
    settings = {
        "variant": variant,
        "task": task.name,
        "benchmark": task.benchmark,
        "n_folds": n_folds,
        "n_train": len(labels),
        "training": {
            key: value
            for key, value in dataclasses.asdict(config).items()
            if key not in ("progress", "device")
        },
        "model_overrides": model_overrides or {},
    }
    fingerprint = bpnet_run_fingerprint(
        variant,
        task,
        n_folds,
        config,
        model_overrides,
        train_sequences,
        train_labels,
        test_sequences,
        test_labels,
    )
    state_file = Path(state_path) if state_path else None
    state = _load_state(state_file, fingerprint) if state_file else {"fingerprint": fingerprint, "runs": {}}
    for name, train_idx, eval_codes, eval_labels in runs:
        if name in state["runs"]:
            log(f"{name}: {task.metric} {state['runs'][name]['score']:.4f} (done before, kept)")
            continue
        record = train_and_score(
            variant, task, codes, labels, train_idx, eval_codes, eval_labels, config, model_overrides, name
        )
        state["runs"][name] = record
        if state_file:
            _save_state(state_file, state)
        log(
            f"{name}: {task.metric} {record['score']:.4f} (best epoch {record['best_epoch']}, {record['seconds']:.0f} s)"
        )
    fold_runs = [state["runs"][name] for name, *_ in runs if name != "test"]
    test_run = state["runs"].get("test")
    model = BPNet(bpnet_config(variant, task.num_labels, **(model_overrides or {})))
    return BenchmarkResult(
        model=RESULT_MODEL_NAME,
        task=task.name,
        benchmark=task.benchmark,
        method=METHOD_OF_VARIANT[variant],
        metric=task.metric,
        fold_scores=[run["score"] for run in fold_runs],
        test_score=test_run["score"] if test_run else None,
        n_params=count_parameters(model),
        trainable_params=count_parameters(model),
        seed=config.seed,
        extra={
            "variant": variant,
            "architecture": dataclasses.asdict(model.config),
            "training": settings["training"],
            "device": str(resolve_device(config.device)),
            "runs": state["runs"],
        },
    )
