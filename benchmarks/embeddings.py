"""Sequence embeddings from an NT model: pooled or per-token hidden states of chosen layers.

Conventions
-----------
- **Layers** index the model's ``hidden_states``: ``0`` is the embedding output, ``i`` the output of block
  ``i`` and ``num_layers`` (the default) the last block *after the final LayerNorm*. Negative numbers count
  from the end (``-1`` = ``num_layers``).
- **Pooling**: ``"mean"`` averages the token embeddings of the sequence, excluding padding and, as a
  documented choice, the ``<cls>`` token (it carries no sequence content of its own); ``"cls"`` takes the
  ``<cls>`` embedding; ``"none"`` keeps one vector per token (``<cls>`` excluded), in sequence order.
- **Long sequences**: a window holds ``window_tokens`` tokens, ``<cls>`` included (``nt embed
  --window-tokens``; from 2 to the architecture's ``max_tokens``). The default is the context the model was
  trained at, :attr:`modeling_nt.NTConfig.default_window_tokens`: ``trained_max_tokens``, recorded by ``nt
  pretrain``, and the published context of official checkpoints (1000 tokens v1, 2048 v2); a model that does
  not record it falls back to ``max_tokens``. A sequence whose tokens (plus ``<cls>``) exceed the window is
  tokenized once, as a whole (so it keeps its own 6-mer frame), then cut into windows of ``window_tokens - 1``
  tokens; consecutive windows overlap by ``overlap`` tokens (default 64, at most half a window; a given
  overlap must be below ``window_tokens - 1``) and the last window is aligned to the sequence end; each
  window gets its own ``<cls>``. Merge rule: every token is *owned* by exactly one
  window, the overlap between two neighbouring windows being split at its midpoint (so each token comes from
  the window where it is farther from an edge). Per-token output concatenates the owned tokens; ``"mean"`` is
  the mean over all owned tokens (every token counted once, whatever the windowing); ``"cls"`` is the mean of
  the windows' ``<cls>`` embeddings.
- **Batches**: inside a chunk, windows run longest first in forward passes of at most ``max_batch_tokens``
  token slots (rows x padded width, ``<cls>`` included; :data:`DEFAULT_MAX_BATCH_TOKENS`) and optionally at
  most ``batch_size`` rows (:func:`plan_batches`). With ``packing`` several short windows share a row
  (per-window position ids, block-diagonal attention: :meth:`modeling_nt.NTModel.forward`); either way each
  window gets the values it gets alone (within 1e-5). Only the blocks up to the deepest requested layer run,
  and only the requested hidden states are kept.
- **Outputs** (:func:`embed_fasta`): a parquet file with columns ``index`` (0-based input order), ``name``,
  ``length`` (bp), ``n_windows`` and one ``layer_<k>`` column per layer (a fixed-size float32 list, or a list
  of them for ``"none"``); or, with ``fmt="npy"``, a folder ``out`` holding ``layer_<k>.npy`` (``[N, d]``;
  ``[total tokens, d]`` for ``"none"``) and ``index.tsv`` (``row``, ``name``, ``length``, ``n_windows``, plus
  ``n_tokens``/``offset`` for ``"none"``). :func:`read_embeddings` reads both back.
- **Resume**: work goes to ``<out>.parts/`` in atomically written parts of ``chunk_size`` sequences; a killed
  run restarted with the same arguments skips every sequence already in a part, so no row is duplicated. The
  parts folder records the run's fingerprint (:func:`embedding_run_fingerprint`, written once the inputs are
  validated); a rerun with another model, input file or value-changing argument is refused. The
  final file is assembled (in input order) once every sequence is done, and the parts are removed.
- **NTv3** (single-base models; the rules live in :mod:`benchmarks.generation`): one token per nucleotide and
  no ``<cls>``, so output row i is nucleotide i. Each sequence is padded on the right with ``N`` to a multiple
  of ``2 ** num_downsamples`` (the official advice: the models never saw ``<pad>``) and the padded positions
  are dropped from every output: an L-base sequence gives ``[L, conv_init_embed_dim]`` per-token rows at the
  default layer, the first L rows of what the N-padded sequence gives. ``--window-tokens`` and ``--overlap``
  count bases: windows of ``trained_max_length`` bases by default (else 1 Mb), a multiple of
  ``2 ** num_downsamples``; the overlap is rounded up to whole blocks of ``2 ** num_downsamples`` bases and
  windows start on that block grid. Layers: ``0 .. num_hidden_layers`` are the transformer core's states
  (``hidden_states``; one vector per block of ``2 ** num_downsamples`` bases, ``ceil(L / 2**n)`` rows for
  ``"none"``, the mean weighting each block by its real bases), ``num_hidden_layers + 1`` (the default,
  ``-1``) the U-Net's base-resolution output. ``"cls"`` pooling and ``packing`` are refused; a forward pass
  holds windows of one length (no ``<pad>`` in any row).
- **Data parallel**: under ``torchrun`` / ``accelerate launch`` (``RANK`` / ``WORLD_SIZE`` set) each process
  embeds every ``WORLD_SIZE``-th sequence of the length-sorted order on its own device and writes its own
  parts; rank 0 waits until the parts cover all sequences, then merges them in input order.
"""

from __future__ import annotations

import collections
import itertools
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from tokenization import as_sequence_list, validate_sequence

from .checks import require_at_least
from .generation import token_rules
from .progress import progress as report_progress

POOLINGS = ("mean", "cls", "none")
FORMATS = ("parquet", "npy")
DEFAULT_OVERLAP_TOKENS = 64
DEFAULT_CHUNK_SIZE = 1024
#: Default token slots (rows x padded width, ``<cls>`` included) per forward pass (``nt embed
#: --max-batch-tokens``), by device type. On CPU small passes measured fastest and leanest (one thread, 48 records
#: of 300-6,000 nt, 4 x 256 v2 model, CPU s: 2.9 at 512 and 1,024 tokens, 3.2 at 2,048, 3.6-3.9 at 4,096, 4.7 at
#: 8,192; README, "Padding-free embedding batches"); a GPU needs large passes to be busy.
DEFAULT_MAX_BATCH_TOKENS = {"cpu": 1024, "cuda": 16384}


@dataclass
class Window:
    """Tokens ``[start, start + len(ids))`` of sequence ``sequence``; it owns ``[own_start, own_end)``.
    ``real_length``: the sequence's tokens before its padding (NTv3: ``N`` to a multiple of
    ``2 ** num_downsamples``; None: no padding)."""

    sequence: int
    start: int
    ids: np.ndarray
    own_start: int
    own_end: int
    real_length: int | None = None


def load_backbone(model: Any, dtype: str = "fp32", device: str | None = None, compile_model: bool = False):
    """The NT encoder (no LM/classification head) to embed with, in eval mode.

    A model object given by the caller is never modified: when it is in training mode or not on ``device`` in
    ``dtype``, a converted copy is returned instead (:func:`benchmarks.inference.model_for_inference`).

    Args:
        model: a loaded model (its ``base_model`` is used), a checkpoint folder (ours, or an official ESM / v2
            Hub folder, converted on load), or a preset name (random weights with seed 0, the same in every
            process of a sharded run; announced on stderr). See :func:`modeling_nt.loading.load_model`.
        dtype: ``"fp32"`` or ``"bf16"``.
        device: torch device; default the process's GPU (``LOCAL_RANK``) when there is one, else CPU.
        compile_model: return it wrapped in ``torch.compile(dynamic=True)`` (the model itself is not changed).
            On CPU this is slower: 0.94-0.98x per CPU-second embedding 16 records of 300-3,000 nt with a 4 x 256
            v2 model, after 13 s of compiling (README, Speed); meant for GPUs.

    Raises:
        FileNotFoundError, ValueError: a spec that names no folder or preset, or a folder that does not hold
            a complete checkpoint (one line naming the folder and the problem).
    """
    import torch

    from modeling_nt import NTModel
    from modeling_nt.loading import load_model

    from .generation import refuse_conditioned
    from .inference import model_for_inference

    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"dtype must be 'fp32' or 'bf16', got {dtype!r}")
    owned = isinstance(model, str | Path)  # loaded here: ours to convert in place
    name = model if owned else type(model).__name__
    if owned:
        model = load_model(model, NTModel, seed=0)
    backbone = getattr(model, "base_model", model)
    refuse_conditioned(backbone, name)  # a post-trained NTv3 model needs a species: not run here
    if device is None:
        device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    if not owned:  # never change the caller's model: itself when ready, else a converted copy
        backbone = model_for_inference(backbone, device, torch_dtype)
    else:
        backbone = backbone.to(device=device, dtype=torch_dtype).eval()
    return torch.compile(backbone, dynamic=True) if compile_model else backbone


def resolve_layers(layers: Sequence[int] | None, num_layers: int) -> list[int]:
    """Validated hidden-state indices (0..num_layers); default ``[num_layers]`` (the last, after LayerNorm)."""
    if not layers:
        return [num_layers]
    resolved = []
    for layer in layers:
        index = layer + num_layers + 1 if layer < 0 else layer
        if not 0 <= index <= num_layers:
            raise ValueError(f"layer {layer} out of range: the model has hidden states 0..{num_layers}")
        resolved.append(index)
    return sorted(set(resolved))


def make_windows(
    index: int, ids: np.ndarray, width: int, overlap: int, grid: int = 1, real_length: int | None = None
) -> list[Window]:
    """Cut the tokens of one sequence (without ``<cls>``) into windows of at most ``width`` tokens.

    Consecutive windows overlap by ``overlap`` tokens (the last one by more, as it ends at the sequence end);
    the overlap is split at its midpoint between the two windows (see the module docstring). ``grid``: the
    ownership bounds are rounded down to multiples of it (NTv3: ``2 ** num_downsamples``, with ``width``,
    ``overlap`` and ``len(ids)`` multiples of it, so that every window shares the core's block grid).
    ``real_length``: tokens of the sequence before its padding (default ``len(ids)``).
    """
    if not 0 <= overlap < width:
        raise ValueError(f"window overlap must be in [0, {width}), got {overlap}")
    length = len(ids)
    starts = [0]
    while starts[-1] + width < length:
        starts.append(min(starts[-1] + width - overlap, length - width))
    bounds = [0] + [
        (next_start + start + width) // 2 // grid * grid for start, next_start in itertools.pairwise(starts)
    ]
    bounds.append(length)
    real = length if real_length is None else real_length
    return [
        Window(index, start, ids[start : start + width], bounds[i], bounds[i + 1], real)
        for i, start in enumerate(starts)
    ]


def tokenize_windows(
    sequences: Sequence[str], indices: Sequence[int], version: Any, context: int, overlap: int
) -> list[Window]:
    """Windows of the given sequences (tokenized whole, so that long sequences keep their own 6-mer frame).

    ``version``: ``"v1"`` / ``"v2"``, a model config or :class:`benchmarks.generation.TokenRules`;
    ``context``: tokens per window (``<cls>`` included where the generation has it). NTv3: each sequence is
    padded with ``N`` to a multiple of ``2 ** num_downsamples`` first, windows start on that block grid, and
    each window records the sequence's real length (its padded positions are dropped from the outputs).
    """
    from tokenization import validate_sequence

    rules = token_rules(version)
    if not isinstance(sequences, list):  # iter_embeddings passes its checked list: no O(N) check per chunk
        sequences = as_sequence_list(sequences)

    for index in indices:
        if not sequences[index].strip():
            raise ValueError(f"sequence {index} is empty")
    try:
        encoded = rules.encode([sequences[i] for i in indices])
    except ValueError:
        for index in indices:  # name the offending sequence by its input index
            validate_sequence(sequences[index], strict=False, index=index)
        raise
    width = rules.content_width(context)
    windows = []
    for (ids, length), index in zip(encoded, indices, strict=True):
        overlap_tokens = rules.window_overlap(overlap, width)
        windows.extend(make_windows(index, ids, width, overlap_tokens, rules.length_multiple, length))
    return windows


def plan_batches(
    windows: list[Window],
    max_batch_tokens: int,
    batch_size: int | None = None,
    packing: bool = False,
    rules: Any = "v2",
) -> list[list[list[Window]]]:
    """Group windows (sorted longest first) into forward passes of at most ``max_batch_tokens`` token slots.

    Each pass is a list of rows, each row a list of windows (``1 + len(ids)`` tokens each, ``<cls>``
    included; NTv3: ``len(ids)``). Padded batches (default) hold one window per row and are cut so that rows x
    the longest window <= ``max_batch_tokens`` (and at most ``batch_size`` rows); with ``packing`` the windows
    are packed first-fit into rows of the longest window's size, and rows x that size <= ``max_batch_tokens``.
    A pass always holds at least one row. ``rules`` (:func:`benchmarks.generation.token_rules`; default 6-mer
    rules): NTv3 passes also hold windows of one length only (its convolutions would read another row's
    ``<pad>``), so each window gets the values it gets alone.
    """
    rules = token_rules(rules)
    sizes = [rules.cls_offset + len(window.ids) for window in windows]
    if packing and windows:
        width, rows, room = max(sizes), [], []
        for window, size in zip(windows, sizes, strict=True):
            slot = next((i for i, free in enumerate(room) if free >= size), None)
            if slot is None:
                rows.append([window])
                room.append(width - size)
            else:
                rows[slot].append(window)
                room[slot] -= size
        per_pass = max(1, max_batch_tokens // width)
        if batch_size:
            per_pass = min(per_pass, batch_size)
        return [rows[start : start + per_pass] for start in range(0, len(rows), per_pass)]
    passes: list[list[list[Window]]] = []
    for window, size in zip(windows, sizes, strict=True):
        current = passes[-1] if passes else None
        first = rules.cls_offset + len(current[0][0].ids) if current else size
        if current is None or (
            (len(current) + 1) * max(size, first) > max_batch_tokens
            or (batch_size is not None and len(current) >= batch_size)
            or (rules.same_width_passes and size != first)
        ):
            passes.append([[window]])
        else:
            current.append([window])
    return passes


def _forward_windows(
    backbone: Any,
    windows: list[Window],
    layers: list[int],
    pad_id: int,
    cls_id: int,
    row_sizes: list[int] | None = None,
) -> list[dict[int, np.ndarray]]:
    """Hidden states ``[1 + len(ids), d]`` (float32) of each window of one pass, per requested layer, in the
    given order (NTv3: ``[len(ids) / stride, d]``, stride ``2 ** num_downsamples`` for core layers, else 1;
    no ``<cls>``). ``row_sizes``: windows per row (default one each); rows holding several windows run packed
    (restarting position ids, no attention between windows: :meth:`modeling_nt.NTModel.forward`). Only blocks
    up to the deepest requested layer run (NT v1/v2), and only the requested hidden states are kept."""
    import torch

    rules = token_rules(backbone.config)
    sizes = row_sizes or [1] * len(windows)
    bounds = np.cumsum([0, *sizes])
    rows = [windows[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    packed = any(size > 1 for size in sizes)
    offset = rules.cls_offset
    width = max(sum(offset + len(window.ids) for window in row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    position_ids = np.zeros_like(input_ids)
    first = 0 if not packed or backbone.config.position_embedding_type == "rotary" else pad_id + 1  # ESM v1
    for number, row in enumerate(rows):
        start = 0
        for window in row:
            size = offset + len(window.ids)
            input_ids[number, start : start + size] = rules.input_ids(window.ids)
            position_ids[number, start : start + size] = np.arange(first, first + size)
            start += size
        position_ids[number, start:] = pad_id if first else 0
    device = next(backbone.parameters()).device
    inputs = {"input_ids": torch.from_numpy(input_ids).to(device)}
    if packed:
        inputs["position_ids"] = torch.from_numpy(position_ids).to(device)
    else:
        inputs["attention_mask"] = inputs["input_ids"].ne(pad_id).long()
    with torch.inference_mode():
        _, outputs = rules.forward(backbone, inputs, layers)
    states = {layer: outputs[layer].float().cpu() for layer in layers}
    per_window = []
    for number, row in enumerate(rows):
        start = 0
        for window in row:
            size = offset + len(window.ids)
            per_window.append(
                {
                    layer: states[layer][
                        number,
                        start // rules.layer_stride(layer) : (start + size) // rules.layer_stride(layer),
                    ].numpy()
                    for layer in layers
                }
            )
            start += size
    return per_window


class _Accumulator:
    """Merges window outputs into per-sequence embeddings (rule in the module docstring). NTv3: the states
    of the ``N`` padding are dropped; a core layer's downsampled rows are kept while they hold a real base
    (``ceil(L / 2**n)``), and its mean weights each row by its real bases (the mean over the real
    nucleotides of the state covering each)."""

    def __init__(self, layers: list[int], pooling: str, rules: Any = "v2") -> None:
        self.layers, self.pooling, self.rules = layers, pooling, token_rules(rules)
        self.parts: dict[int, dict[int, list[tuple[int, np.ndarray]]]] = {}
        self.lengths: dict[int, int | None] = {}

    def add(self, window: Window, states: dict[int, np.ndarray]) -> None:
        """Keep the owned part of one window's states ``{layer: [1 + len(ids), d]}`` (NTv3: ``[len(ids) /
        stride, d]``)."""
        offset = self.rules.cls_offset
        by_layer = self.parts.setdefault(window.sequence, {layer: [] for layer in self.layers})
        self.lengths[window.sequence] = window.real_length
        for layer in self.layers:
            stride = self.rules.layer_stride(layer)
            lo = offset + (window.own_start - window.start) // stride
            hi = offset + (window.own_end - window.start) // stride
            hidden = states[layer]
            by_layer[layer].append((window.start, hidden[0] if self.pooling == "cls" else hidden[lo:hi]))

    def result(self, sequence: int) -> dict[int, np.ndarray]:
        from .generation import mean_over, rows_of

        by_layer = self.parts.pop(sequence)
        real = self.lengths.pop(sequence)
        merged = {}
        for layer, starts_and_pieces in by_layer.items():
            pieces = [piece for _, piece in sorted(starts_and_pieces, key=lambda item: item[0])]
            if self.pooling == "cls":
                merged[layer] = np.mean(pieces, axis=0)
                continue
            tokens = np.concatenate(pieces, axis=0)
            stride = self.rules.layer_stride(layer)
            length = len(tokens) * stride if real is None else real
            tokens = tokens[: rows_of(length, stride)]
            merged[layer] = mean_over(tokens, 0, length, stride) if self.pooling == "mean" else tokens
        return merged


def resolve_window_tokens(config: Any, window_tokens: int | None = None) -> int:
    """Tokens per window, ``<cls>`` included (module docstring): ``window_tokens`` checked against the model,
    or by default its trained context (``config.default_window_tokens``; ``config.max_tokens`` for a config
    that lacks it). NTv3: bases (one token each, no ``<cls>``), a multiple of ``2 ** num_downsamples``; by
    default ``config.trained_max_length``, else 1 Mb (:mod:`benchmarks.generation`).

    Raises:
        ValueError: ``window_tokens`` is not an integer from 2 to ``config.max_tokens`` (NTv3: not a multiple
            of ``2 ** num_downsamples`` up to 1 Mb; one line naming ``--window-tokens``).
    """
    rules = token_rules(config)
    if window_tokens is None:
        return rules.default_window_tokens
    return rules.check_window_tokens(window_tokens)


def check_embedding_options(config: Any, pooling: str, packing: bool = False) -> None:
    """ValueError (one line naming the flag) for a ``pooling`` the model cannot give or ``packing`` it cannot
    run: NTv3 has no ``<cls>`` (``--pooling cls``) and its convolutions would mix windows packed into one row
    (``--packing``)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    rules = token_rules(config)
    if pooling == "cls" and not rules.cls_offset:
        raise ValueError(
            "--pooling cls: NTv3 models have no <cls> token; use --pooling mean (mean over the real "
            "nucleotides) or none"
        )
    if packing and not rules.packing:
        raise ValueError(
            "--packing is not available for NTv3 models: their convolutions would mix the windows packed "
            "into one row"
        )


def check_window_options(
    backbone: Any,
    *,
    batch_size: int | None,
    chunk_size: int,
    overlap: int,
    window_tokens: int | None = None,
    max_batch_tokens: int | None = None,
) -> int:
    """The window size in tokens (:func:`resolve_window_tokens`), after a ValueError naming the parameter
    unless ``batch_size`` (None: no limit), ``chunk_size``, ``max_batch_tokens >= 1`` and ``0 <= overlap <``
    the window minus ``<cls>``. The default overlap is exempt: on windows shorter than 129 tokens it is
    reduced to half a window (module docstring)."""
    require_at_least(1, batch_size=batch_size, chunk_size=chunk_size, max_batch_tokens=max_batch_tokens)
    tokens = resolve_window_tokens(backbone.config, window_tokens)
    rules = token_rules(backbone.config)
    window = rules.content_width(tokens)
    if overlap < 0 or (overlap >= window and overlap != DEFAULT_OVERLAP_TOKENS):
        minus = " minus <cls>" if rules.cls_offset else ""
        raise ValueError(
            f"overlap (--overlap) must be in [0, {window}) tokens, below the {tokens}-token window "
            f"(--window-tokens){minus}, got {overlap}"
        )
    return tokens


def iter_embeddings(
    backbone: Any,
    sequences: Sequence[str],
    indices: Sequence[int],
    *,
    layers: list[int],
    pooling: str = "mean",
    batch_size: int | None = None,
    overlap: int = DEFAULT_OVERLAP_TOKENS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    window_tokens: int | None = None,
    max_batch_tokens: int | None = None,
    packing: bool = False,
) -> Iterator[tuple[list[int], dict[int, list[np.ndarray]], list[int]]]:
    """Embed ``sequences[indices]`` chunk by chunk, in the given order.

    Yields ``(chunk indices, {layer: [embedding per sequence]}, windows per sequence)`` once per chunk of
    ``chunk_size`` sequences. Inside a chunk, windows run longest first in passes of at most
    ``max_batch_tokens`` token slots and ``batch_size`` rows (:func:`plan_batches`; ``packing`` packs short
    windows into shared rows). ``window_tokens``: tokens per window, ``<cls>`` included (default: the model's
    trained context; module docstring).
    """
    check_embedding_options(backbone.config, pooling, packing)
    sequences = as_sequence_list(sequences)
    context = check_window_options(
        backbone,
        batch_size=batch_size,
        chunk_size=chunk_size,
        overlap=overlap,
        window_tokens=window_tokens,
        max_batch_tokens=max_batch_tokens,
    )
    if max_batch_tokens is None:
        device = next(backbone.parameters()).device.type
        max_batch_tokens = DEFAULT_MAX_BATCH_TOKENS.get(device, DEFAULT_MAX_BATCH_TOKENS["cuda"])
    rules = token_rules(backbone.config)
    bar = report_progress(total=len(indices), desc="embed", unit="sequences", enabled=progress)
    for chunk_start in range(0, len(indices), chunk_size):
        chunk = list(indices[chunk_start : chunk_start + chunk_size])
        windows = tokenize_windows(sequences, chunk, rules, context, overlap)
        windows.sort(key=lambda window: -len(window.ids))
        accumulator = _Accumulator(layers, pooling, rules)
        for rows in plan_batches(windows, max_batch_tokens, batch_size, packing, rules):
            batch = list(itertools.chain(*rows))
            row_sizes = [len(row) for row in rows] if packing else None
            states = _forward_windows(backbone, batch, layers, rules.pad_id, rules.cls_id, row_sizes)
            for window, window_states in zip(batch, states, strict=True):
                accumulator.add(window, window_states)
        windows_per_sequence = collections.Counter(window.sequence for window in windows)
        n_windows = [windows_per_sequence[index] for index in chunk]
        merged = [accumulator.result(index) for index in chunk]
        bar.update(len(chunk))
        yield chunk, {layer: [item[layer] for item in merged] for layer in layers}, n_windows
    bar.close()


def length_sorted(sequences: Sequence[str]) -> list[int]:
    """Input indices, longest sequence first (stable), so that batches hold similar lengths."""
    sequences = as_sequence_list(sequences)
    return sorted(range(len(sequences)), key=lambda index: -len(sequences[index]))


def embed_sequences(
    model: Any,
    sequences: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    pooling: str = "mean",
    batch_size: int | None = None,
    dtype: str = "fp32",
    overlap: int = DEFAULT_OVERLAP_TOKENS,
    progress: bool = True,
    window_tokens: int | None = None,
    max_batch_tokens: int | None = None,
    packing: bool = False,
) -> dict[int, np.ndarray | list[np.ndarray]]:
    """Embed sequences in memory.

    Args:
        model: model, checkpoint folder or preset (see :func:`load_backbone`).
        sequences: DNA strings (input policy of the tokenizer).
        layers: hidden-state indices (module docstring); default the last.
        pooling: ``"mean"``, ``"cls"`` or ``"none"``.
        batch_size: at most this many windows (rows) per forward pass; default None, no limit besides
            ``max_batch_tokens``.
        max_batch_tokens: token slots per forward pass, rows x padded width, ``<cls>`` included (windows
            are length-sorted first; a window longer than the budget runs alone). Default
            :data:`DEFAULT_MAX_BATCH_TOKENS`: 1024 on CPU, 16384 on a GPU.
        packing: pack several short windows into one row (block-diagonal attention, per-window positions)
            instead of padding each to the longest of its pass; same values within float rounding. Off by
            default: on CPU it measured slower than length-sorted padded passes (README, performance).
        dtype: ``"fp32"`` or ``"bf16"`` (outputs are float32 either way).
        overlap: window overlap in tokens for sequences longer than a window.
        progress: show a progress bar.
        window_tokens: tokens per window, ``<cls>`` included, 2 to the model's ``max_tokens`` (default: the
            context the model was trained at; module docstring, "Long sequences").

    Returns:
        ``{layer: array [N, d]}`` in input order, or for ``"none"`` ``{layer: [array [n_tokens_i, d]]}``.

    Raises:
        ValueError: a bad ``window_tokens`` or ``overlap`` (one line naming ``--window-tokens`` /
            ``--overlap``), bad layers, pooling or sequences.
    """
    sequences = as_sequence_list(sequences)
    backbone = load_backbone(model, dtype)
    layers = resolve_layers(layers, token_rules(backbone).last_layer)
    collected: dict[int, list[np.ndarray | None]] = {layer: [None] * len(sequences) for layer in layers}
    for chunk, embeddings, _ in iter_embeddings(
        backbone,
        sequences,
        length_sorted(sequences),
        layers=layers,
        pooling=pooling,
        batch_size=batch_size,
        overlap=overlap,
        progress=progress,
        window_tokens=window_tokens,
        max_batch_tokens=max_batch_tokens,
        packing=packing,
    ):
        for layer in layers:
            for index, embedding in zip(chunk, embeddings[layer], strict=True):
                collected[layer][index] = embedding
    if pooling == "none":
        return collected
    return {layer: np.stack(items).astype(np.float32) for layer, items in collected.items()}


def iter_fasta(path: str | Path, *, full_header: bool = False) -> Iterator[tuple[str, str]]:
    """``(name, sequence)`` of every record of a FASTA file (plain, gzip or bgzip), streamed one at a time.

    The package's one FASTA record reader. ``name`` is the header's first word, or with ``full_header`` the
    whole header line after ``>``. The record rules of :class:`tokenization.FastaRecordChecker` apply while
    reading: a repeated name, a header without sequence or a file without records raises a one-line
    ValueError naming the file and the record number(s) (1-based).
    """
    import pysam

    from tokenization import FastaRecordChecker, require_file

    path = require_file(path, "FASTA")
    head = _head_bytes(path)
    if not _is_binary(head):
        _check_first_line(path, head)
    checker = FastaRecordChecker(path)
    try:
        with pysam.FastxFile(str(path)) as records:
            while (record := _next_record(records, path, checker.count)) is not None:
                name = f"{record.name} {record.comment}" if full_header and record.comment else record.name
                sequence = record.sequence or ""
                checker.record(name, len(sequence))
                yield name, sequence
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable FASTA file ({error})") from None
    if not checker.count and _is_binary(head):
        raise ValueError(f"{path}: not a readable FASTA file (binary content, not FASTA text)")
    checker.finish()


def _next_record(records: Any, path: Path, done: int) -> Any:
    """The next record of a ``pysam.FastxFile`` (None at the end), with htslib's own multi-line messages off
    (as ``modeling_nt.pretraining.genome.quiet_htslib``): a truncated gzip stream is one line naming the file."""
    import pysam

    previous = pysam.set_verbosity(0)
    try:
        return next(records)
    except StopIteration:
        return None
    except ValueError as error:  # htslib: "unknown problem parsing", e.g. a gzip stream cut short
        raise ValueError(
            f"{path}: cannot read past record {done} ({error}): a truncated or corrupt file?"
        ) from None
    finally:
        pysam.set_verbosity(previous)


def _head_bytes(path: Path, size: int = 4096) -> bytes | None:
    """The first ``size`` bytes of a file, decompressed when it is gzip (None: a broken gzip stream)."""
    import gzip

    with open(path, "rb") as handle:
        head = handle.read(size)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(size)
        except (OSError, EOFError):
            return None
    return head


def _check_first_line(path: Path, head: bytes) -> None:
    """Refuse a text file whose first non-blank line is not a ``>`` header (or a FASTQ ``@`` record): pysam
    would skip everything before the first ``>`` without a word (sequence lines above the first header, or a
    VCF / CSV given as FASTA)."""
    if head.startswith(b"\xef\xbb\xbf"):  # pysam would read '\ufeff>name' as text before the first header
        raise ValueError(
            f"{path}: starts with a UTF-8 byte-order mark (U+FEFF, written by some Windows editors); save it as "
            "UTF-8 without BOM"
        )
    for number, line in enumerate(head.splitlines(), start=1):
        text = line.strip()
        if text[:1] in (b">", b"@"):
            return
        if text:
            shown = text[:30].decode("utf-8", "replace")
            raise ValueError(
                f"{path}: not a FASTA file: line {number} ({shown!r}) comes before the first '>' header line"
            )


def _is_binary(head: bytes | None) -> bool:
    """Whether ``head`` (see :func:`_head_bytes`; None is a broken gzip stream) is not UTF-8 text."""
    if head is None:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start < len(head) - 3  # not a multi-byte character cut at the 4 KiB boundary
    return b"\x00" in head


def read_fasta(path: str | Path) -> tuple[list[str], list[str]]:
    """Names and sequences of a FASTA file (rules of :func:`iter_fasta`); characters outside the input policy
    are errors naming the record (1-based number) and the position."""
    names, sequences = [], []
    for number, (name, sequence) in enumerate(iter_fasta(path), start=1):
        try:
            validate_sequence(sequence, strict=False)
        except ValueError as error:
            raise ValueError(f"{path}: record {number} ({name!r}): {error}") from None
        names.append(name)
        sequences.append(sequence)
    return names, sequences


def distributed_rank() -> tuple[int, int]:
    """``(rank, world size)`` from the ``torchrun`` / ``accelerate launch`` environment; ``(0, 1)`` alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def parts_dir(out: str | Path) -> Path:
    """Folder holding the resumable parts of an output."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _embedding_column(values: list[np.ndarray], pooling: str):
    import pyarrow as pa

    if pooling != "none":
        matrix = np.stack(values).astype(np.float32)
        return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])
    tokens = np.concatenate(values).astype(np.float32)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(tokens.ravel()), tokens.shape[1])
    offsets = np.concatenate([[0], np.cumsum([len(value) for value in values])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), vectors)


def _write_part(
    folder: Path,
    rank: int,
    chunk: list[int],
    names: Sequence[str],
    sequences: Sequence[str],
    embeddings: dict[int, list[np.ndarray]],
    n_windows: list[int],
    pooling: str,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "index": pa.array(chunk, pa.int64()),
        "name": pa.array([names[index] for index in chunk], pa.string()),
        "length": pa.array([len(sequences[index]) for index in chunk], pa.int64()),
        "n_windows": pa.array(n_windows, pa.int32()),
    }
    for layer, values in embeddings.items():
        columns[f"layer_{layer}"] = _embedding_column(values, pooling)
    final = folder / f"part-{min(chunk):010d}-r{rank}.parquet"
    partial = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(pa.table(columns), partial)
    os.replace(partial, final)


def _done_indices(folder: Path) -> set[int]:
    import pyarrow.parquet as pq

    done: set[int] = set()
    for part in sorted(folder.glob("part-*.parquet")):
        done.update(pq.read_table(part, columns=["index"])["index"].to_pylist())
    return done


def embed_fasta(model: Any, fasta: str | Path, out: str | Path, **options: Any) -> Path | None:
    """Embed every record of a FASTA file (plain, gzip or bgzip) into ``out``; ``options`` as in
    :func:`embed_records`."""
    names, sequences = read_fasta(fasta)
    return embed_records(model, names, sequences, out, source=fasta, **options)


def embed_records(
    model: Any,
    names: Sequence[str],
    sequences: Sequence[str],
    out: str | Path,
    *,
    layers: Sequence[int] | None = None,
    pooling: str = "mean",
    batch_size: int | None = None,
    dtype: str = "fp32",
    fmt: str = "parquet",
    overlap: int = DEFAULT_OVERLAP_TOKENS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    merge_timeout_s: float = 3600.0,
    source: str | Path | None = None,
    window_tokens: int | None = None,
    max_batch_tokens: int | None = None,
    packing: bool = False,
    compile_model: bool = False,
) -> Path | None:
    """Embed named sequences into ``out`` (formats, resume and data parallelism in the module docstring).

    Args:
        model: model, checkpoint folder or preset (see :func:`load_backbone`).
        names, sequences: record names and DNA strings.
        out: output parquet file (``fmt="parquet"``) or folder (``fmt="npy"``); never overwritten.
        layers, pooling, batch_size, dtype, overlap, window_tokens, max_batch_tokens, packing: as in
            :func:`embed_sequences`.
        chunk_size: sequences per resumable part.
        compile_model: run the model through ``torch.compile`` (see :func:`load_backbone`; not recorded in the
            resume fingerprint: it changes speed, not values beyond float rounding).
        merge_timeout_s: how long rank 0 waits for the other ranks' parts.
        source: the file the records were read from (recorded for the resume check as ``--fasta``; default:
            the records themselves).

    Returns:
        The finished output on rank 0, None on the other ranks.

    Raises:
        FingerprintMismatch: ``out``'s parts were written by a run with another model, input or setting
            (:func:`embedding_run_fingerprint`); the message names each difference.
    """
    out = Path(out)
    names, sequences = as_sequence_list(names, "names"), as_sequence_list(sequences)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if out.exists():
        raise FileExistsError(f"{out} exists (a finished run); remove it or choose another --out")
    if len(names) != len(sequences) or not sequences:
        raise ValueError(f"need one name per sequence and at least one sequence, got {len(names)} names")
    rank, world = distributed_rank()
    folder = parts_dir(out)
    fingerprint = embedding_run_fingerprint(
        model, names, sequences, source, layers, pooling, overlap, dtype, window_tokens
    )
    check_fingerprint(
        folder / FINGERPRINT_FILE, fingerprint, partial=folder, started=any(folder.glob("part-*.parquet"))
    )
    done = _done_indices(folder)
    todo = [index for index in length_sorted(sequences)[rank::world] if index not in done]
    if todo:
        backbone = load_backbone(model, dtype, compile_model=compile_model)
        resolved = resolve_layers(layers, token_rules(backbone).last_layer)
        check_embedding_options(backbone.config, pooling, packing)
        options = {"batch_size": batch_size, "chunk_size": chunk_size, "overlap": overlap}
        window_tokens = check_window_options(
            backbone, **options, window_tokens=window_tokens, max_batch_tokens=max_batch_tokens
        )
        record_fingerprint(folder / FINGERPRINT_FILE, fingerprint)  # validated: the work starts here
        for chunk, embeddings, n_windows in iter_embeddings(
            backbone,
            sequences,
            todo,
            layers=resolved,
            pooling=pooling,
            batch_size=batch_size,
            overlap=overlap,
            chunk_size=chunk_size,
            progress=progress and rank == 0,
            window_tokens=window_tokens,
            max_batch_tokens=max_batch_tokens,
            packing=packing,
        ):
            _write_part(folder, rank, chunk, names, sequences, embeddings, n_windows, pooling)
    if rank != 0:
        return None
    _wait_for_parts(folder, len(sequences), merge_timeout_s)
    return _merge_parts(folder, out, fmt, pooling)


def embedding_run_fingerprint(
    model: Any,
    names: Sequence[str],
    sequences: Sequence[str],
    source: str | Path | None,
    layers: Sequence[int] | None,
    pooling: str,
    overlap: int,
    dtype: str,
    window_tokens: int | None = None,
) -> RunFingerprint:
    """What determines the rows of an embedding run: the model, the FASTA file (``source``) or else the
    records themselves, ``--layers`` (as given), ``--pooling``, ``--overlap``, ``--dtype`` and
    ``--window-tokens`` (as given; ``"model default"`` when not given: the model's entry pins the config that
    sets it, :attr:`modeling_nt.NTConfig.default_window_tokens`). Not recorded:
    ``--batch-size``, ``--max-batch-tokens`` and ``--packing`` (how windows are grouped into forward passes:
    padding and packed neighbours are masked, so the same values up to float rounding, checked to 1e-5 by
    ``tests/test_padding_free.py``), ``--chunk-size`` and the number of
    processes (they only cut the work into parts), ``--format`` (applied when the parts are merged)."""
    records = (
        {"--fasta": source} if source is not None else {"sequences": content_fingerprint(names, sequences)}
    )
    settings = {
        "--layers": list(layers) if layers else "last",
        "--pooling": pooling,
        "--overlap": overlap,
        "--dtype": dtype,
        "--window-tokens": "model default" if window_tokens is None else window_tokens,
    }
    return fingerprint_run(model=model, inputs=records, settings=settings)


def _wait_for_parts(folder: Path, total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_done_indices(folder)) < total:
        if time.monotonic() > deadline:
            missing = total - len(_done_indices(folder))
            raise TimeoutError(f"{folder}: {missing} sequences still missing after {timeout_s:.0f} s")
        time.sleep(1.0)


def _merge_parts(folder: Path, out: Path, fmt: str, pooling: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables(pq.read_table(part) for part in sorted(folder.glob("part-*.parquet")))
    table = table.sort_by("index")
    indices = table["index"].to_numpy()
    if not np.array_equal(indices, np.arange(len(indices))):
        raise RuntimeError(f"{folder}: parts do not hold each input index exactly once")
    if fmt == "parquet":
        partial = out.with_name(f".{out.name}.tmp")
        pq.write_table(table, partial)
        os.replace(partial, out)
    else:
        _write_npy(table, out, pooling)
    shutil.rmtree(folder)
    return out


def _write_npy(table, out: Path, pooling: str) -> None:
    import pyarrow.compute as pc

    partial = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    index = table.select(["name", "length", "n_windows"]).to_pandas()
    index.insert(0, "row", np.arange(len(index)))
    for column in (name for name in table.column_names if name.startswith("layer_")):
        values = table[column].combine_chunks()
        if pooling == "none":
            lengths = pc.list_value_length(values).to_numpy()
            index["n_tokens"] = lengths
            index["offset"] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            values = values.flatten()
        np.save(partial / f"{column}.npy", np.stack(values.to_numpy(zero_copy_only=False)).astype(np.float32))
    index.to_csv(partial / "index.tsv", sep="\t", index=False)
    os.replace(partial, out)


def read_embeddings(path: str | Path) -> tuple[Any, dict[int, np.ndarray | list[np.ndarray]]]:
    """Read an :func:`embed_fasta` output back: ``(index DataFrame, {layer: embeddings})`` in input order."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        index = pd.read_csv(path / "index.tsv", sep="\t")
        arrays = {int(file.stem.split("_")[1]): np.load(file) for file in sorted(path.glob("layer_*.npy"))}
        if "offset" in index:
            bounds = list(zip(index["offset"], index["offset"] + index["n_tokens"], strict=True))
            arrays = {layer: [array[lo:hi] for lo, hi in bounds] for layer, array in arrays.items()}
        return index, arrays
    table = pq.read_table(path)
    layers = {}
    for column in (name for name in table.column_names if name.startswith("layer_")):
        values = table[column].to_pylist()
        layer = int(column.split("_")[1])
        is_tokens = values and isinstance(values[0][0], list)
        layers[layer] = (
            [np.asarray(value, np.float32) for value in values]
            if is_tokens
            else np.asarray(values, np.float32)
        )
    index = table.drop_columns([name for name in table.column_names if name.startswith("layer_")])
    return index.to_pandas(), layers
