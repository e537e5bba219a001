"""Attention per genomic element: which heads attend to tokens of an element type more than expected?

For each window (:func:`benchmarks.analysis.annotation.sample_mixed_windows`), every token gets the class of
its centre base. For each layer ``l`` (1-based: block ``l``, whose output is hidden state ``l``), head ``h`` and
class ``c``, the *observed share* is the attention mass that the window's tokens put on tokens of class ``c``,
as a share of their attention on sequence tokens (``<cls>`` and padding excluded as keys and as queries),
averaged over query tokens; shares over the classes sum to one per head and window. The *expected share* is
the share of the window's tokens in class ``c``.

The reported shares are means over all windows (so they too sum to one per head); enrichment is mean observed /
mean expected share. Over the windows that contain class ``c``, a two-sided Wilcoxon signed-rank test compares
observed and expected shares; p-values of all (layer, head, class) tests are corrected
with Benjamini-Hochberg (``scipy.stats.false_discovery_control``). A head whose share for a class is enriched at
q < alpha is "specialised" for it.

NTv3: the transformer core attends between blocks of ``2 ** num_downsamples`` bases (one state per block, see
:mod:`benchmarks.generation`), so the units above are blocks rather than tokens: a block's class is that of the
centre of its bases (the ``N`` padding of the window's end excluded), and blocks of padding only are neither
keys nor queries. ``attention_summary.json`` names the unit.

Attention weights need the eager attention implementation; they are reduced per layer inside a forward hook, so
memory stays at one layer's ``[batch, heads, tokens, tokens]`` map. Outputs in ``out_dir``:
``attention_shares.csv``, ``attention_summary.json``, ``attention_enrichment.png`` (heads x layers heatmap of
log2 enrichment per class, significant cells starred) and ``attention_windows.tsv``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import progress as report_progress
from .annotation import LabelledWindow, token_classes, window_inputs
from .outputs import prepare_out_dir, pyplot, save_figure, write_csv, write_json

OUTPUT_FILES = (
    "attention_shares.csv",
    "attention_summary.json",
    "attention_enrichment.png",
    "attention_windows.tsv",
)
SHARE_COLUMNS = (
    "layer",
    "head",
    "class",
    "observed_share",
    "expected_share",
    "enrichment",
    "log2_enrichment",
    "n_windows",
    "p_value",
    "q_value",
    "significant",
)


@dataclass
class AttentionShares:
    """Per window: ``observed [windows, layers, heads, classes]`` and ``expected [windows, classes]``; ``unit``:
    what attends (``"token"``, or for NTv3 ``"block of <2**n> bases"``)."""

    observed: np.ndarray
    expected: np.ndarray
    classes: tuple[str, ...]
    unit: str = "token"


def load_eager_backbone(model: Any) -> Any:
    """The NT encoder of ``model`` (see :func:`benchmarks.embeddings.load_backbone`) on eager attention, which
    returns attention weights."""
    from benchmarks.embeddings import load_backbone

    backbone = load_backbone(model)
    if backbone is getattr(model, "base_model", model) and backbone.config._attn_implementation != "eager":
        backbone = copy.deepcopy(backbone)  # the caller's model keeps its attention implementation
    backbone.set_attn_implementation("eager")
    return backbone


def unit_classes(window: LabelledWindow, rules: Any) -> np.ndarray:
    """Class index of each attention unit of a window (``<cls>`` and padding excluded): its tokens (the class
    of their centre base), or for NTv3 its core blocks of ``2 ** num_downsamples`` bases (the centre of the
    block's bases; the last block may be partly padding)."""
    stride = rules.layer_stride(1)  # a core layer: NTv3 blocks; 1 (tokens) for NT v1/v2
    if stride == 1:
        return token_classes(window.sequence, window.base_labels, rules)
    starts = np.arange(0, len(window.base_labels), stride)
    ends = np.minimum(starts + stride, len(window.base_labels))
    return window.base_labels[(starts + ends - 1) // 2]


def _class_onehot(windows: Sequence[LabelledWindow], width: int, n_classes: int, rules: Any) -> np.ndarray:
    """``[batch, width, classes]`` one-hot of each attention unit's class; zero rows for ``<cls>`` and
    padding."""
    onehot = np.zeros((len(windows), width, n_classes), dtype=np.float32)
    for row, window in enumerate(windows):
        labels = unit_classes(window, rules)
        onehot[row, rules.cls_offset + np.arange(len(labels)), labels] = 1.0
    return onehot


def attention_shares(
    model: Any,
    windows: Sequence[LabelledWindow],
    classes: Sequence[str],
    batch_size: int = 4,
    progress: bool = True,
) -> AttentionShares:
    """Observed and expected attention shares per class (module docstring) of every window."""
    import torch

    from benchmarks.generation import same_width_batches, token_rules
    from tokenization import as_sequence_list

    classes = as_sequence_list(classes, "classes")  # class names; a bare str is one class, not its letters
    backbone = load_eager_backbone(model)
    rules = token_rules(backbone)
    inputs = window_inputs([window.sequence for window in windows], rules)
    device = next(backbone.parameters()).device
    observed, expected = [], []
    captured: dict[int, torch.Tensor] = {}
    onehot_holder: dict[str, torch.Tensor] = {}

    def reduce_layer(module: Any, _inputs: Any, output: tuple) -> None:
        onehot = onehot_holder["classes"]
        mass = torch.matmul(output[1].float(), onehot.unsqueeze(1))  # [B, H, T, C]
        mass = mass / mass.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        queries = onehot.sum(dim=-1)  # 1 on sequence tokens
        captured[module.layer_idx] = (mass * queries[:, None, :, None]).sum(2) / queries.sum(1)[:, None, None]

    hooks = [layer.attention.register_forward_hook(reduce_layer) for layer in backbone.layers]
    try:
        batches = same_width_batches([len(ids) for ids, _ in inputs], batch_size, rules)
        for indices in report_progress(batches, desc="attention", unit="batches", enabled=progress):
            batch = [windows[index] for index in indices]
            width = max(len(inputs[index][0]) for index in indices)
            input_ids = np.full((len(indices), width), rules.pad_id, dtype=np.int64)
            for row, index in enumerate(indices):
                input_ids[row, : len(inputs[index][0])] = inputs[index][0]
            units = -(-width // rules.layer_stride(1))  # attention positions: tokens, or NTv3 core blocks
            onehot = _class_onehot(batch, units, len(classes), rules)
            onehot_holder["classes"] = torch.from_numpy(onehot).to(device)
            with torch.inference_mode():
                backbone(
                    input_ids=torch.from_numpy(input_ids).to(device),
                    attention_mask=torch.from_numpy((input_ids != rules.pad_id).astype(np.int64)).to(device),
                )
            layers = [captured[index] for index in range(len(backbone.layers))]
            observed.append(torch.stack(layers, dim=1).cpu().numpy())
            counts = onehot.sum(axis=1)
            expected.append(counts / counts.sum(axis=1, keepdims=True))
    finally:
        for hook in hooks:
            hook.remove()
    stride = rules.layer_stride(1)
    unit = "token" if stride == 1 else f"block of {stride} bases"
    return AttentionShares(np.concatenate(observed), np.concatenate(expected), tuple(classes), unit)


def enrichment_table(shares: AttentionShares, alpha: float = 0.05) -> list[dict]:
    """One row per (layer, head, class present in some window): shares, enrichment, Wilcoxon p and BH q."""
    from scipy.stats import false_discovery_control, wilcoxon

    _, n_layers, n_heads, n_classes = shares.observed.shape
    rows, p_values = [], []
    for label in range(n_classes):
        present = shares.expected[:, label] > 0
        if not present.any():
            continue
        observed = shares.observed[present, :, :, label].reshape(int(present.sum()), -1)
        expected = shares.expected[present, label][:, None]
        differences = observed - expected
        p_value = np.ones(observed.shape[1])
        testable = np.any(differences != 0, axis=0)
        if present.sum() > 1 and testable.any():
            p_value[testable] = np.nan_to_num(wilcoxon(differences[:, testable], axis=0).pvalue, nan=1.0)
        mean_observed = shares.observed[:, :, :, label].reshape(len(present), -1).mean(axis=0)
        mean_expected = float(shares.expected[:, label].mean())
        for flat, (layer, head) in enumerate(np.ndindex(n_layers, n_heads)):
            enrichment = mean_observed[flat] / mean_expected
            rows.append(
                {
                    "layer": layer + 1,
                    "head": head,
                    "class": shares.classes[label],
                    "observed_share": float(mean_observed[flat]),
                    "expected_share": mean_expected,
                    "enrichment": float(enrichment),
                    "log2_enrichment": float(np.log2(max(enrichment, 1e-12))),
                    "n_windows": int(present.sum()),
                }
            )
            p_values.append(p_value[flat])
    q_values = false_discovery_control(np.asarray(p_values)) if p_values else []
    for row, p_value, q_value in zip(rows, p_values, q_values, strict=True):
        row.update(p_value=float(p_value), q_value=float(q_value), significant=bool(q_value < alpha))
    return rows


def analyze_attention(
    model: Any,
    windows: Sequence[LabelledWindow],
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    batch_size: int = 4,
    alpha: float = 0.05,
    overwrite: bool = False,
    model_name: str | None = None,
) -> dict:
    """Attention shares, enrichment, tests, heatmap and numbers (module docstring); returns the JSON summary.

    ``model_name`` is recorded in the summary (default :func:`benchmarks.results.model_name_of`)."""
    from benchmarks.results import model_name_of

    if not 0 < alpha < 1:
        raise ValueError(f"alpha (--alpha) must be in (0, 1), got {alpha}")
    out_dir = prepare_out_dir(out_dir, OUTPUT_FILES, overwrite)
    shares = attention_shares(model, windows, classes, batch_size)
    rows = enrichment_table(shares, alpha)
    specialised = [
        {key: row[key] for key in ("layer", "head", "class", "enrichment", "q_value")}
        for row in rows
        if row["significant"] and row["enrichment"] > 1
    ]
    summary = {
        "model": model_name or model_name_of(model),
        "n_windows": len(windows),
        "attention_unit": shares.unit,
        "classes": list(classes),
        "n_layers": int(shares.observed.shape[1]),
        "n_heads": int(shares.observed.shape[2]),
        "alpha": alpha,
        "test": "two-sided Wilcoxon signed-rank over windows (observed - expected share), Benjamini-Hochberg",
        "n_tests": len(rows),
        "n_significant": sum(row["significant"] for row in rows),
        "specialised_heads": specialised,
    }
    write_csv(out_dir / "attention_shares.csv", rows, SHARE_COLUMNS)
    write_json(out_dir / "attention_summary.json", summary)
    window_rows = [{"chrom": w.chrom, "start": w.start, "end": w.end} for w in windows]
    write_csv(out_dir / "attention_windows.tsv", window_rows, ["chrom", "start", "end"], delimiter="\t")
    plot_enrichment(rows, summary["n_layers"], summary["n_heads"], out_dir / "attention_enrichment.png")
    return summary


def plot_enrichment(rows: list[dict], n_layers: int, n_heads: int, path: str | Path) -> Path:
    """Heads x layers heatmap of log2 enrichment, one panel per class; ``*`` marks q < alpha."""
    plt = pyplot()
    classes = list(dict.fromkeys(row["class"] for row in rows))
    grids = {name: np.full((n_heads, n_layers), np.nan) for name in classes}
    stars = {name: np.zeros((n_heads, n_layers), dtype=bool) for name in classes}
    for row in rows:
        grids[row["class"]][row["head"], row["layer"] - 1] = row["log2_enrichment"]
        stars[row["class"]][row["head"], row["layer"] - 1] = row["significant"]
    limit = max(0.1, float(np.nanmax(np.abs(np.concatenate([grid.ravel() for grid in grids.values()])))))
    columns = min(3, len(classes))
    n_rows = -(-len(classes) // columns)
    size = (max(3.5, 0.45 * n_layers + 1.5) * columns, max(2.8, 0.3 * n_heads + 1.2) * n_rows)
    figure, axes = plt.subplots(n_rows, columns, figsize=size, squeeze=False, layout="constrained")
    for axis, name in zip(axes.flat, classes, strict=False):
        image = axis.imshow(
            grids[name],
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            aspect="auto",
            origin="lower",
            extent=(0.5, n_layers + 0.5, -0.5, n_heads - 0.5),
        )
        for head, layer in zip(*np.nonzero(stars[name]), strict=True):
            axis.text(layer + 1, head, "*", ha="center", va="center", fontsize=9)
        axis.set_title(name)
        axis.set_xticks(range(1, n_layers + 1, max(1, n_layers // 12)))
        axis.set_yticks(range(0, n_heads, max(1, n_heads // 10)))
        axis.set_xlabel("layer")
        axis.set_ylabel("head")
    for axis in list(axes.flat)[len(classes) :]:
        axis.axis("off")
    figure.colorbar(image, ax=axes.ravel().tolist(), label="log2(observed / expected attention share)")
    figure.suptitle("Attention enrichment per element class (* = BH q < alpha)")
    return save_figure(figure, path)
