"""Masked-token reconstruction: accuracy and perplexity of an NT masked LM (NT v1/v2: 6-mer tokens; NTv3: one
token per base), overall, per region class and at variant sites.

Masking (``<mask>`` for every chosen token; no random or kept tokens, unlike training; ``N`` tokens, i.e.
assembly gaps and ambiguity codes of an exact ``--region``, are never masked: there is no base to reconstruct):

- ``"random"``: each sequence token is masked with probability ``mask_rate`` (15%), all in one forward pass per
  window (the masking of :class:`modeling_nt.pretraining.collator.NTMaskingCollator`);
- ``"every"``: every token in turn, one forward pass per token (for short regions).

A masked token is *correct* when the arg-max prediction is the original token; perplexity is
``exp(mean negative log-likelihood)`` of the original tokens. Tokens get the class of their centre base (see
:mod:`.annotation`). At variant sites (SNVs of a VCF, REF checked against the FASTA) the token holding the
variant position is masked, alone, in a window centred on it, and the REF token is scored. Chance accuracy is
1/4096 for 6-mers, 1/4 for single bases (``TokenRules.chance_accuracy``); a model predicting uniformly over its
vocabulary has perplexity ``vocab_size`` (4107; NTv3 11).

The token rules of the model's generation come from :func:`benchmarks.generation.token_rules`: NTv3 windows are
padded with ``N`` to a multiple of ``2 ** num_downsamples`` bases (the padding is never masked or scored), and
windows of different lengths never share a forward pass (the convolutions would read the padding).

Outputs in ``out_dir``: ``reconstruction.json`` (summary), ``reconstruction_groups.csv`` (one row per group:
overall, each class, variant sites), ``masked_tokens.csv`` (every scored token; ``position`` is the 0-based
start of a window token, or the 0-based variant position) and ``reconstruction.png``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import progress as report_progress
from .annotation import LabelledWindow, token_classes, window_inputs
from .outputs import prepare_out_dir, pyplot, save_figure, write_csv, write_json

MASKING_MODES = ("random", "every")
CHANCE_ACCURACY = 1 / 4096  # 6-mers; per model: token_rules(model).chance_accuracy
OUTPUT_FILES = ("reconstruction.json", "reconstruction_groups.csv", "masked_tokens.csv", "reconstruction.png")
TOKEN_COLUMNS = ("source", "window", "chrom", "position", "class", "token", "predicted", "correct", "nll")
GROUP_COLUMNS = ("group", "n_masked", "accuracy", "perplexity", "mean_nll")


@dataclass
class MaskRequest:
    """One forward pass: input ids (``<cls>`` first where the generation has one; NTv3: ``N``-padded) with
    ``positions`` (input positions) to mask, and what to record of each."""

    ids: np.ndarray
    positions: list[int]
    records: list[dict]


def load_masked_lm(model: Any) -> Any:
    """A masked LM in eval mode, on the GPU when there is one: a loaded model (kept where it is), a checkpoint
    folder or a preset name (random weights)."""
    import torch

    if not isinstance(model, str | Path):
        from benchmarks.inference import model_for_inference

        return model_for_inference(model)  # the caller's model keeps its mode (a copy when in training mode)
    from benchmarks.variants.scoring import load_scoring_model

    return load_scoring_model(model)[0].to("cuda" if torch.cuda.is_available() else "cpu")


def _token_records(index: int, window: LabelledWindow, classes: Sequence[str], rules: Any) -> list[dict]:
    """What to record of each token of a window (in token order, ``<cls>`` and padding excluded)."""
    labels = token_classes(window.sequence, window.base_labels, rules)
    return [
        {
            "source": "window",
            "window": index,
            "chrom": window.chrom,
            "position": window.start + int(start),
            "class": classes[label],
        }
        for start, label in zip(rules.token_starts(window.sequence), labels, strict=True)
    ]


def window_requests(
    windows: Sequence[LabelledWindow],
    classes: Sequence[str],
    config: Any,
    mode: str = "random",
    mask_rate: float = 0.15,
    seed: int = 0,
) -> list[MaskRequest]:
    """Masking requests for the tokens of each window (module docstring). ``config``: the model's config (or
    anything :func:`benchmarks.generation.token_rules` takes)."""
    from benchmarks.generation import token_rules
    from modeling_nt.pretraining.collator import NTMaskingCollator
    from tokenization import as_sequence_list

    classes = as_sequence_list(classes, "classes")  # class names; a bare str is one class, not its letters

    if mode not in MASKING_MODES:
        raise ValueError(f"masking mode must be one of {MASKING_MODES}, got {mode!r}")
    rules = token_rules(config)
    masker = NTMaskingCollator(
        rules.generation, mlm_probability=mask_rate, mask_replace_prob=1.0, random_replace_prob=0.0
    )
    rng = np.random.default_rng(seed)
    requests = []
    first = rules.cls_offset  # input position of the first sequence token
    inputs = window_inputs([window.sequence for window in windows], rules)
    for index, (window, (ids, real)) in enumerate(zip(windows, inputs, strict=True)):
        records = _token_records(index, window, classes, rules)
        # N tokens (assembly gaps, ambiguity codes: an N-holding token is one N) have no base to reconstruct
        sequence = window.sequence.upper()
        starts = rules.token_starts(sequence)
        maskable = {first + row for row, start in enumerate(starts) if sequence[start] in "ACGTU"}
        if mode == "every":
            requests += [
                MaskRequest(ids, [position], [records[position - first]])
                for position in range(first, first + real)
                if position in maskable
            ]
        else:  # the padding (NTv3 N) is never drawn
            drawn = np.flatnonzero(masker.mask_tokens(ids[: first + real], rng)[1] != -100).tolist()
            positions = [position for position in drawn if position in maskable]
            if positions:
                requests.append(
                    MaskRequest(ids, positions, [records[position - first] for position in positions])
                )
    return requests


def variant_requests(vcf: str | Path, genome: Any, config: Any, window_bp: int) -> list[MaskRequest]:
    """One request per SNV of ``vcf``: the token holding it masked in a ``window_bp`` window centred on it."""
    from benchmarks.generation import token_rules
    from benchmarks.variants.alleles import read_variant_alleles

    rules = token_rules(config)
    requests, skipped = [], 0
    seen: set[tuple[str, int]] = set()
    for allele in read_variant_alleles(vcf):
        contig = genome.contig_for(allele.chrom)
        is_snv = len(allele.ref) == 1 and len(allele.alt) == 1 and allele.alt in "ACGT"
        if not is_snv or contig is None or (contig, allele.pos) in seen:
            skipped += not is_snv or contig is None
            continue
        seen.add((contig, allele.pos))
        mismatch = genome.check_ref(allele)
        if mismatch is not None:
            raise ValueError(f"{vcf}: {mismatch}")
        length = genome.lengths[contig]
        start = max(0, min(allele.pos - 1 - window_bp // 2, length - window_bp))
        sequence = genome.fetch(contig, start, min(start + window_bp, length))
        position = rules.token_span(sequence, allele.pos - 1 - start, allele.pos - start)[0]
        record = {
            "source": "variant",
            "window": -1,
            "chrom": contig,
            "position": allele.pos - 1,
            "class": "variant sites",
        }
        requests.append(MaskRequest(window_inputs([sequence], rules)[0][0], [position], [record]))
    if skipped:
        warnings.warn(
            f"{vcf}: skipped {skipped} non-SNV alleles or alleles on contigs absent from the FASTA",
            stacklevel=2,
        )
    return requests


def score_requests(
    model: Any, requests: Sequence[MaskRequest], batch_size: int = 8, progress: bool = True
) -> list[dict]:
    """Run the requests through the masked LM; returns their records with the true and predicted token, whether
    the prediction is correct and the negative log-likelihood of the true token. At most ``batch_size``
    requests per forward pass; NTv3: only requests of one length share a pass."""
    import torch

    from benchmarks.generation import same_width_batches, token_rules

    rules = token_rules(model)
    tokens = {index: token for token, index in rules.vocab.items()}
    device = next(model.parameters()).device
    scored = []
    batches = same_width_batches([len(request.ids) for request in requests], batch_size, rules)
    for indices in report_progress(batches, desc="reconstruction", unit="batches", enabled=progress):
        batch = [requests[index] for index in indices]
        width = max(len(request.ids) for request in batch)
        input_ids = np.full((len(batch), width), rules.pad_id, dtype=np.int64)
        for row, request in enumerate(batch):
            input_ids[row, : len(request.ids)] = request.ids
            input_ids[row, request.positions] = rules.mask_id
        with torch.inference_mode():
            logits = model(
                input_ids=torch.from_numpy(input_ids).to(device),
                attention_mask=torch.from_numpy((input_ids != rules.pad_id).astype(np.int64)).to(device),
            ).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        for row, request in enumerate(batch):
            for position, record in zip(request.positions, request.records, strict=True):
                true_id = int(request.ids[position])
                predicted = int(log_probs[row, position].argmax())
                scored.append(
                    {
                        **record,
                        "token": tokens[true_id],
                        "predicted": tokens[predicted],
                        "correct": predicted == true_id,
                        "nll": float(-log_probs[row, position, true_id]),
                    }
                )
    return scored


def group_metrics(name: str, records: Sequence[dict]) -> dict:
    """Accuracy, perplexity and mean NLL of a group of scored tokens."""
    nll = float(np.mean([record["nll"] for record in records]))
    return {
        "group": name,
        "n_masked": len(records),
        "accuracy": float(np.mean([record["correct"] for record in records])),
        "perplexity": math.exp(nll),
        "mean_nll": nll,
    }


def analyze_reconstruction(
    model: Any,
    windows: Sequence[LabelledWindow],
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    mode: str = "random",
    mask_rate: float = 0.15,
    vcf: str | Path | None = None,
    genome: Any = None,
    variant_window_bp: int = 600,
    batch_size: int = 8,
    seed: int = 0,
    overwrite: bool = False,
    model_name: str | None = None,
) -> dict:
    """Reconstruction accuracy and perplexity (module docstring); returns the JSON summary.

    ``model_name`` is recorded in the summary (default :func:`benchmarks.results.model_name_of`)."""
    from benchmarks.generation import token_rules
    from benchmarks.results import model_name_of

    out_dir = prepare_out_dir(out_dir, OUTPUT_FILES, overwrite)
    model_name = model_name or model_name_of(model)
    model = load_masked_lm(model)
    rules = token_rules(model)
    requests = window_requests(windows, classes, model.config, mode, mask_rate, seed)
    if vcf is not None:
        requests += variant_requests(vcf, genome, model.config, variant_window_bp)
    records = score_requests(model, requests, batch_size)
    window_records = [record for record in records if record["source"] == "window"]
    if not window_records:
        raise ValueError(
            "no token was masked (N and ambiguity codes never are); give more or longer windows with A/C/G/T, "
            "or a higher mask rate"
        )
    groups = [group_metrics("overall", window_records)]
    for name in classes:
        chosen = [record for record in window_records if record["class"] == name]
        if chosen:
            groups.append(group_metrics(name, chosen))
    variant_records = [record for record in records if record["source"] == "variant"]
    if variant_records:
        groups.append(group_metrics("variant sites", variant_records))
    summary = {
        "model": model_name,
        "mode": mode,
        "mask_rate": mask_rate if mode == "random" else None,
        "n_windows": len(windows),
        "chance_accuracy": rules.chance_accuracy,
        "uniform_perplexity": model.config.vocab_size,
        "groups": groups,
    }
    write_json(out_dir / "reconstruction.json", summary)
    write_csv(out_dir / "reconstruction_groups.csv", groups, GROUP_COLUMNS)
    write_csv(out_dir / "masked_tokens.csv", records, TOKEN_COLUMNS)
    plot_reconstruction(groups, summary, out_dir / "reconstruction.png")
    return summary


def plot_reconstruction(groups: Sequence[dict], summary: dict, path: str | Path) -> Path:
    """Bar charts of accuracy (with chance) and perplexity (with the uniform-guess level) per group."""
    plt = pyplot()
    names = [f"{group['group']}\n(n={group['n_masked']})" for group in groups]
    figure, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(groups) + 4), 4), layout="constrained")
    for axis, key, reference, label in (
        (
            axes[0],
            "accuracy",
            summary["chance_accuracy"],
            f"chance (1/{round(1 / summary['chance_accuracy'])})",
        ),
        (axes[1], "perplexity", summary["uniform_perplexity"], "uniform guess"),
    ):
        bars = axis.bar(
            names, [group[key] for group in groups], color="tab:blue" if key == "accuracy" else "tab:orange"
        )
        axis.bar_label(bars, fmt="%.4f" if key == "accuracy" else "%.0f", fontsize=7)
        axis.axhline(reference, color="red", linestyle="--", label=label)
        axis.set_ylim(0, max([reference, *(group[key] for group in groups)]) * 1.15 or 1)
        axis.set_ylabel("masked-token accuracy" if key == "accuracy" else "perplexity")
    for axis in axes:
        axis.legend(fontsize=8)
        axis.tick_params(axis="x", labelsize=8, rotation=30)
    mode = summary["mode"] if summary["mode"] == "every" else f"random {summary['mask_rate']:.0%}"
    figure.suptitle(f"Masked-token reconstruction ({mode} masking)")
    return save_figure(figure, path)
