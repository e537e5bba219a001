"""Running a caller's model without changing it: the one rule for every public function given a model object.

A public function may need a model in eval mode, on a device or in a dtype. It never converts the caller's
object in place (``embed_sequences(model, dtype="bf16")`` once left the caller with a bf16 model):

- :func:`model_for_inference`: the model itself when it already is in eval mode on that device in that dtype,
  else a converted **copy** (exact; costs one model's memory while it is used);
- :func:`eval_mode`: eval mode for the duration of a ``with`` block, every module's own train/eval flag
  restored afterwards (for a model that stays where it is: no copy).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any


def resolve_device(device: Any = "auto") -> Any:
    """The ``torch.device`` a ``--device`` value names: ``"auto"`` (or None) is CUDA when available, else CPU;
    other names (``cpu``, ``cuda``, ``cuda:1``, ``mps``, a ``torch.device``) are checked to exist here.

    Raises:
        ValueError: an unknown device name, or one this machine does not have (one line naming it).
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS (Apple GPU) is not available")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return resolved


def _device(device: Any) -> Any:
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def model_for_inference(model: Any, device: Any = None, dtype: Any = None) -> Any:
    """``model`` in eval mode on ``device`` (default: where it is) in ``dtype`` (default: as it is).

    Returns ``model`` itself when every module is in eval mode and every parameter already has that device and
    dtype; otherwise a deep copy, converted and put in eval mode. The caller's object is never modified.
    """
    device = None if device is None else _device(device)
    ready = not any(module.training for module in model.modules()) and all(
        (device is None or parameter.device == device) and (dtype is None or parameter.dtype == dtype)
        for parameter in model.parameters()
    )
    if ready:
        return model
    converted = copy.deepcopy(model)
    if device is not None or dtype is not None:
        converted = converted.to(device=device, dtype=dtype)
    return converted.eval()


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """``with eval_mode(model):`` runs with ``model`` in eval mode and restores each module's own mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
