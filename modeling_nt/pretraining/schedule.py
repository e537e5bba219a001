"""The NT learning-rate schedule: linear warm-up from ``init_lr`` to ``peak_lr``, then square-root decay.

``lr(step) = init_lr + (peak_lr - init_lr) * step / warmup_steps`` for ``step < warmup_steps``, then
``peak_lr * sqrt(warmup_steps / step)`` (NT: 5e-5 -> 1e-4 over 16,000 updates). ``step`` counts optimizer
updates. :class:`WarmupSqrtDecay` returns the factor relative to ``peak_lr``, the form that
``torch.optim.lr_scheduler.LambdaLR`` expects when the optimizer's learning rate is ``peak_lr``; being a
plain dataclass it is saved in the scheduler's state dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WarmupSqrtDecay:
    """LR factor for ``LambdaLR`` (relative to ``peak_lr``)."""

    init_lr: float = 5e-5
    peak_lr: float = 1e-4
    warmup_steps: int = 16_000

    def __post_init__(self) -> None:
        if self.peak_lr <= 0 or self.init_lr < 0 or self.warmup_steps < 0:
            raise ValueError(
                f"schedule needs peak_lr > 0, init_lr >= 0 and warmup_steps >= 0, got "
                f"{self.peak_lr}, {self.init_lr}, {self.warmup_steps}"
            )

    def learning_rate(self, step: int) -> float:
        """The learning rate after ``step`` optimizer updates."""
        if step < self.warmup_steps:
            return self.init_lr + (self.peak_lr - self.init_lr) * step / self.warmup_steps
        return self.peak_lr * math.sqrt(max(self.warmup_steps, 1) / max(step, 1))

    def __call__(self, step: int) -> float:
        return self.learning_rate(step) / self.peak_lr


def warmup_sqrt_decay(
    optimizer: torch.optim.Optimizer, schedule: WarmupSqrtDecay
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following ``schedule``; sets the optimizer's base learning rate to ``peak_lr``."""
    for group in optimizer.param_groups:
        group["lr"] = schedule.peak_lr
        group.pop("initial_lr", None)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
