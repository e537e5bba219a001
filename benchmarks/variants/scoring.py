"""Zero-shot scores of variant windows with an NT masked language model (NT_SPEC section 6).

Embedding scores compare the reference and alternative windows per chosen layer (``hidden_states`` index:
0 = embeddings, ``num_hidden_layers`` = last layer after the final LayerNorm), on two regions:

- ``mean``: mean embedding of all tokens but ``<cls>``;
- ``local``: mean embedding of the tokens holding the allele, plus ``flank_tokens`` tokens on each side.

Scores: ``cosine`` similarity and ``dot`` product (lower = larger effect), ``l1`` and ``l2`` distance
(higher = larger effect). Columns are named ``{score}_{region}_L{layer}``.

``llr``: the masked-LM log-likelihood ratio. The tokens where the reference and alternative windows differ
are masked together (the masked inputs of both windows are then identical) and
``llr = sum over masked tokens of log p(alt token) - log p(ref token)``: positive when the model predicts
the alternative allele better. It is defined for substitutions (SNVs, and MNVs over one or more tokens)
whose windows tokenize into the same token boundaries. For indels every token after the allele is shifted
(no single 6-mer holds the change), and a substitution to or from N changes the token boundaries: the LLR
is then NaN, with the reason in the row's note.

With ``reverse_complement=True`` every score is the mean of the forward and the reverse-complement strand.

NTv3 models (one token per base, no ``<cls>``; :mod:`benchmarks.generation`): each window is padded on the right
with ``N`` to a multiple of ``2 ** num_downsamples`` and the padded positions are left out of every score.
``llr`` of a substitution masks exactly its changed bases (one for an SNV) and sums
``log p(ALT base) - log p(REF base)`` there; substitutions to or from N are scored too (N is a token of the
vocabulary), indels get NaN as above. ``flank_tokens`` counts bases. Layers ``0 .. num_hidden_layers`` are the
transformer core's states (one vector per block of ``2 ** num_downsamples`` bases, weighted by the bases of the
region each block covers), ``num_hidden_layers + 1`` (``last``, the default) the base-resolution output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..generation import mean_over, token_rules
from .alleles import VariantWindow

EMBEDDING_SCORES = ("cosine", "dot", "l1", "l2")
SCORE_NAMES = (*EMBEDDING_SCORES, "llr")
REGIONS = ("mean", "local")
LLR_UNDEFINED = (
    "llr: defined for substitutions only (this allele is an indel or changes the tokenization via N)"
)
#: The note of an NTv3 allele without LLR (single-base tokens: only indels).
LLR_UNDEFINED_SINGLE_BASE = "llr: defined for substitutions only (this allele is an indel)"


@dataclass(frozen=True)
class ScoringOptions:
    """What to compute. ``layers`` are ``hidden_states`` indices (negative counts from the end)."""

    scores: tuple[str, ...] = SCORE_NAMES
    layers: str | tuple[int, ...] = "last"
    flank_tokens: int = 2
    reverse_complement: bool = False
    batch_size: int = 8

    def __post_init__(self) -> None:
        """``scores`` as a tuple of known names (a bare ``str`` is one score, not its letters)."""
        from tokenization import as_sequence_list

        scores = tuple(as_sequence_list(self.scores, "scores"))
        unknown = [score for score in scores if score not in SCORE_NAMES]
        if unknown or not scores:
            raise ValueError(f"unknown score(s) {unknown or scores!r}: choose from {','.join(SCORE_NAMES)}")
        object.__setattr__(self, "scores", scores)


def parse_scores(text: str) -> tuple[str, ...]:
    """``"cosine,llr"`` -> ``("cosine", "llr")``; raises a ValueError naming unknown scores."""
    scores = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [score for score in scores if score not in SCORE_NAMES]
    if unknown or not scores:
        raise ValueError(f"unknown score(s) {unknown or text!r}: choose from {','.join(SCORE_NAMES)}")
    return scores


def parse_layers(spec: str | Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Absolute ``hidden_states`` indices (0..num_layers) from ``"all"``, ``"last"`` or ``"0,6,-1"``."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return tuple(range(num_layers + 1))
        if text == "last":
            return (num_layers,)
        try:
            spec = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(
                f"--layers {spec!r}: expected 'all', 'last' or comma-separated integers"
            ) from None
    layers = []
    for layer in spec:
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(f"layer {layer} outside the model's hidden states 0..{num_layers} (or negative)")
        layers.append(layer % (num_layers + 1))
    return tuple(dict.fromkeys(layers))


def score_columns(scores: Sequence[str], layers: Sequence[int]) -> list[str]:
    """Output column names for the chosen scores and absolute layers."""
    columns = [
        f"{score}_{region}_L{layer}"
        for score in scores
        if score in EMBEDDING_SCORES
        for region in REGIONS
        for layer in layers
    ]
    return [*columns, "llr"] if "llr" in scores else columns


def load_scoring_model(spec: str | Path) -> tuple[Any, Any]:
    """(masked LM in eval mode, tokenizer) from a checkpoint folder (its LM head included; official ESM / v2
    Hub folders are converted on load) or a preset name (random weights from the caller's torch RNG state,
    announced on stderr). Errors as :func:`modeling_nt.loading.load_model`."""
    from benchmarks.generation import refuse_conditioned
    from modeling_nt import NTForMaskedLM, tokenizer_for
    from modeling_nt.loading import load_model

    model = load_model(spec, NTForMaskedLM, seed=None)
    refuse_conditioned(model, spec)  # a post-trained NTv3 model needs a species: not run here
    return model.eval(), tokenizer_for(model.config)


@dataclass
class _Request:
    """One forward pass to run: embedding reductions (``local`` token range) or masked-token log-probs."""

    ids: list[int]
    length: int = 0
    local: tuple[int, int] | None = None
    masked: list[int] | None = None
    ref_tokens: list[int] | None = None
    alt_tokens: list[int] | None = None
    result: Any = None


class VariantScorer:
    """Scores :class:`VariantWindow` pairs with a masked LM that returns ``logits`` and ``hidden_states``."""

    def __init__(
        self, model: Any, tokenizer: Any, options: ScoringOptions, device: str | None = None
    ) -> None:

        from benchmarks.inference import model_for_inference, resolve_device

        self.device = resolve_device(device)
        self.model = model_for_inference(model, self.device)  # the caller's model is never changed
        self.tokenizer = tokenizer
        self.rules = token_rules(model.config)
        self.options = options
        self.layers = parse_layers(options.layers, self.rules.last_layer)
        self.columns = score_columns(options.scores, self.layers)
        self.embedding_scores = [score for score in options.scores if score in EMBEDDING_SCORES]

    @property
    def max_tokens(self) -> int:
        """The longest input the model takes, ``<cls>`` included (NTv3: bases)."""
        return int(self.tokenizer.model_max_length)

    @property
    def default_window_tokens(self) -> int:
        """Tokens per window by default, ``<cls>`` included: the context the model was trained at
        (:attr:`modeling_nt.NTConfig.default_window_tokens`; :attr:`max_tokens` for a config without it; NTv3:
        ``trained_max_length`` bases, else 1 Mb), at most :attr:`max_tokens`."""
        return min(self.max_tokens, self.rules.default_window_tokens)

    def score(self, windows: Sequence[VariantWindow]) -> list[tuple[dict[str, float], str]]:
        """(column -> score, note) per window, in input order (no windows: an empty list)."""
        if not windows:  # a chunk whose alleles were all skipped: nothing to tokenize or run
            return []
        strands = [list(windows)]
        if self.options.reverse_complement:
            strands.append([window.reverse_complement() for window in windows])
        per_strand = [self._score_strand(strand) for strand in strands]
        results = []
        for index in range(len(windows)):
            scores = {
                column: float(np.mean([strand[index][0][column] for strand in per_strand]))
                for column in self.columns
            }
            results.append((scores, per_strand[0][index][1]))
        return results

    def _score_strand(self, windows: Sequence[VariantWindow]) -> list[tuple[dict[str, float], str]]:
        ref_ids = self._tokenize([window.ref_seq for window in windows])
        alt_ids = self._tokenize([window.alt_seq for window in windows])
        pairs = []
        for window, ref, alt in zip(windows, ref_ids, alt_ids, strict=True):
            pair: dict[str, _Request | None] = {"ref": None, "alt": None, "masked": None}
            if self.embedding_scores:
                pair["ref"] = self._embedding_request(window.ref_seq, window.ref_span, ref)
                pair["alt"] = self._embedding_request(window.alt_seq, window.alt_span, alt)
            if "llr" in self.options.scores:
                pair["masked"] = self._masked_request(window, ref, alt)
            pairs.append(pair)
        self._run([request for pair in pairs for request in pair.values() if request is not None])
        return [self._pair_scores(pair) for pair in pairs]

    def _tokenize(self, sequences: list[str]) -> list[list[int]]:
        """Tokenizer ids of each sequence (``<cls>`` first where the generation has it), unpadded: each request
        pads its input (:meth:`benchmarks.generation.TokenRules.pad_ids`) and keeps the real length."""
        return self.tokenizer(sequences, add_special_tokens=True)["input_ids"]

    def _embedding_request(self, sequence: str, span: tuple[int, int], ids: list[int]) -> _Request:
        return _Request(
            self.rules.pad_ids(ids), length=len(ids), local=self._local_range(sequence, span, len(ids))
        )

    def _local_range(self, sequence: str, span: tuple[int, int], n_tokens: int) -> tuple[int, int]:
        first, last = self.rules.token_span(sequence, span[0], span[1])
        flank = self.options.flank_tokens
        return max(self.rules.cls_offset, first - flank), min(n_tokens, last + flank + 1)

    def _masked_request(self, window: VariantWindow, ref: list[int], alt: list[int]) -> _Request | None:
        substitution = window.ref_span == window.alt_span and len(window.ref_seq) == len(window.alt_seq)
        if not substitution or not self.rules.same_token_boundaries(window.ref_seq, window.alt_seq):
            return None
        changed = [index for index, (r, a) in enumerate(zip(ref, alt, strict=True)) if r != a]
        masked_ids = self.rules.pad_ids(ref)
        for index in changed:
            masked_ids[index] = self.tokenizer.mask_token_id
        return _Request(
            masked_ids,
            length=len(ref),
            masked=changed,
            ref_tokens=[ref[i] for i in changed],
            alt_tokens=[alt[i] for i in changed],
        )

    def _batches(self, requests: list[_Request]) -> list[list[_Request]]:
        """Requests sorted by length in batches of at most ``batch_size``; NTv3 batches hold one length only
        (its convolutions would read the ``<pad>`` of shorter rows), so that batching never changes a score."""
        ordered = sorted(requests, key=lambda request: len(request.ids))
        batches: list[list[_Request]] = []
        for request in ordered:
            current = batches[-1] if batches else None
            if (
                current is None
                or len(current) >= self.options.batch_size
                or (self.rules.same_width_passes and len(request.ids) != len(current[0].ids))
            ):
                batches.append([request])
            else:
                current.append(request)
        return batches

    def _run(self, requests: list[_Request]) -> None:
        """Forward passes in batches of similar length; fills each request's ``result``."""
        import torch

        pad_id = self.tokenizer.pad_token_id
        layers = self.layers if self.embedding_scores else ()
        for batch in self._batches(requests):
            width = max(len(request.ids) for request in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, request in enumerate(batch):
                input_ids[row, : len(request.ids)] = torch.tensor(request.ids)
                attention_mask[row, : len(request.ids)] = 1
            inputs = {
                "input_ids": input_ids.to(self.device),
                "attention_mask": attention_mask.to(self.device),
            }
            with torch.inference_mode():
                logits, states = self.rules.forward(self.model, inputs, layers, logits=True)
            for row, request in enumerate(batch):
                request.result = self._reduce(logits, states, row, request)

    def _reduce(self, logits: Any, states: dict[int, Any], row: int, request: _Request) -> Any:
        """The masked request's LLR, or per region the list of one pooled vector per layer (the padding left
        out: positions ``[cls_offset, length)``)."""
        import torch

        if request.masked is not None:
            log_probs = torch.log_softmax(logits[row, request.masked].float(), dim=-1)
            columns = torch.arange(len(request.masked))
            alt = log_probs[columns, request.alt_tokens]
            ref = log_probs[columns, request.ref_tokens]
            return float((alt - ref).sum())
        first, end = request.local
        pooled: dict[str, list[np.ndarray]] = {"mean": [], "local": []}
        for layer in self.layers:
            hidden, stride = states[layer][row].float(), self.rules.layer_stride(layer)
            pooled["mean"].append(
                mean_over(hidden, self.rules.cls_offset, request.length, stride).cpu().numpy()
            )
            pooled["local"].append(mean_over(hidden, first, end, stride).cpu().numpy())
        return pooled

    def _pair_scores(self, pair: dict[str, _Request | None]) -> tuple[dict[str, float], str]:
        scores: dict[str, float] = {}
        notes = []
        if self.embedding_scores:
            ref, alt = pair["ref"].result, pair["alt"].result
            for region in REGIONS:
                for index, layer in enumerate(self.layers):
                    values = embedding_scores(ref[region][index], alt[region][index])
                    for score in self.embedding_scores:
                        scores[f"{score}_{region}_L{layer}"] = float(values[score])
        if "llr" in self.options.scores:
            masked = pair["masked"]
            scores["llr"] = masked.result if masked is not None else float("nan")
            if masked is None:
                notes.append(
                    LLR_UNDEFINED_SINGLE_BASE if self.rules.nucleotides_per_token == 1 else LLR_UNDEFINED
                )
        return scores, "; ".join(notes)


def embedding_scores(ref: np.ndarray, alt: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine similarity, dot product, L1 and L2 distance between rows of two ``[layers, hidden]`` arrays (or
    two vectors: scalars)."""
    dot = np.sum(ref * alt, axis=-1)
    norms = np.linalg.norm(ref, axis=-1) * np.linalg.norm(alt, axis=-1)
    return {
        "cosine": dot / np.maximum(norms, 1e-12),
        "dot": dot,
        "l1": np.abs(ref - alt).sum(axis=-1),
        "l2": np.linalg.norm(ref - alt, axis=-1),
    }
