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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenization import token_index_of_position, token_starts

from .alleles import VariantWindow

EMBEDDING_SCORES = ("cosine", "dot", "l1", "l2")
SCORE_NAMES = (*EMBEDDING_SCORES, "llr")
REGIONS = ("mean", "local")
LLR_UNDEFINED = (
    "llr: defined for substitutions only (this allele is an indel or changes the tokenization via N)"
)


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
    from modeling_nt import NTForMaskedLM, tokenizer_for
    from modeling_nt.loading import load_model

    model = load_model(spec, NTForMaskedLM, seed=None)
    return model.eval(), tokenizer_for(model.config)


@dataclass
class _Request:
    """One forward pass to run: embedding reductions (``local`` token range) or masked-token log-probs."""

    ids: list[int]
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
        num_layers = model.config.num_hidden_layers
        self.options = options
        self.layers = parse_layers(options.layers, num_layers)
        self.columns = score_columns(options.scores, self.layers)
        self.embedding_scores = [score for score in options.scores if score in EMBEDDING_SCORES]

    @property
    def max_tokens(self) -> int:
        """The longest input the model takes, ``<cls>`` included."""
        return int(self.tokenizer.model_max_length)

    @property
    def default_window_tokens(self) -> int:
        """Tokens per window by default, ``<cls>`` included: the context the model was trained at
        (:attr:`modeling_nt.NTConfig.default_window_tokens`; :attr:`max_tokens` for a config without it), at
        most :attr:`max_tokens`."""
        return min(self.max_tokens, int(getattr(self.model.config, "default_window_tokens", self.max_tokens)))

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
                pair["ref"] = _Request(
                    ref, local=self._local_range(window.ref_seq, window.ref_span, len(ref))
                )
                pair["alt"] = _Request(
                    alt, local=self._local_range(window.alt_seq, window.alt_span, len(alt))
                )
            if "llr" in self.options.scores:
                pair["masked"] = self._masked_request(window, ref, alt)
            pairs.append(pair)
        self._run([request for pair in pairs for request in pair.values() if request is not None])
        return [self._pair_scores(pair) for pair in pairs]

    def _tokenize(self, sequences: list[str]) -> list[list[int]]:
        return self.tokenizer(sequences, add_special_tokens=True)["input_ids"]

    def _local_range(self, sequence: str, span: tuple[int, int], n_tokens: int) -> tuple[int, int]:
        first, last = token_index_of_position(sequence, [span[0], span[1] - 1])
        flank = self.options.flank_tokens
        return max(1, int(first) - flank), min(n_tokens, int(last) + flank + 1)

    def _masked_request(self, window: VariantWindow, ref: list[int], alt: list[int]) -> _Request | None:
        substitution = window.ref_span == window.alt_span and len(window.ref_seq) == len(window.alt_seq)
        if not substitution or not np.array_equal(token_starts(window.ref_seq), token_starts(window.alt_seq)):
            return None
        changed = [index for index, (r, a) in enumerate(zip(ref, alt, strict=True)) if r != a]
        masked_ids = list(ref)
        for index in changed:
            masked_ids[index] = self.tokenizer.mask_token_id
        return _Request(
            masked_ids,
            masked=changed,
            ref_tokens=[ref[i] for i in changed],
            alt_tokens=[alt[i] for i in changed],
        )

    def _run(self, requests: list[_Request]) -> None:
        """Forward passes in batches of similar length; fills each request's ``result``."""
        import torch

        order = sorted(range(len(requests)), key=lambda index: len(requests[index].ids))
        pad_id = self.tokenizer.pad_token_id
        want_hidden = bool(self.embedding_scores)
        for offset in range(0, len(order), self.options.batch_size):
            batch = [requests[index] for index in order[offset : offset + self.options.batch_size]]
            width = max(len(request.ids) for request in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, request in enumerate(batch):
                input_ids[row, : len(request.ids)] = torch.tensor(request.ids)
                attention_mask[row, : len(request.ids)] = 1
            with torch.inference_mode():
                output = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                    output_hidden_states=want_hidden,
                )
            for row, request in enumerate(batch):
                request.result = self._reduce(output, row, request)

    def _reduce(self, output: Any, row: int, request: _Request) -> Any:
        import torch

        if request.masked is not None:
            log_probs = torch.log_softmax(output.logits[row, request.masked].float(), dim=-1)
            columns = torch.arange(len(request.masked))
            alt = log_probs[columns, request.alt_tokens]
            ref = log_probs[columns, request.ref_tokens]
            return float((alt - ref).sum())
        length = len(request.ids)
        first, end = request.local
        stacked = torch.stack([output.hidden_states[layer][row].float() for layer in self.layers])
        return {
            "mean": stacked[:, 1:length].mean(dim=1).cpu().numpy(),
            "local": stacked[:, first:end].mean(dim=1).cpu().numpy(),
        }

    def _pair_scores(self, pair: dict[str, _Request | None]) -> tuple[dict[str, float], str]:
        scores: dict[str, float] = {}
        notes = []
        if self.embedding_scores:
            ref, alt = pair["ref"].result, pair["alt"].result
            for region in REGIONS:
                values = embedding_scores(ref[region], alt[region])
                for score in self.embedding_scores:
                    for layer, value in zip(self.layers, values[score], strict=True):
                        scores[f"{score}_{region}_L{layer}"] = float(value)
        if "llr" in self.options.scores:
            masked = pair["masked"]
            scores["llr"] = masked.result if masked is not None else float("nan")
            if masked is None:
                notes.append(LLR_UNDEFINED)
        return scores, "; ".join(notes)


def embedding_scores(ref: np.ndarray, alt: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine similarity, dot product, L1 and L2 distance between rows of two ``[layers, hidden]`` arrays."""
    dot = np.sum(ref * alt, axis=-1)
    norms = np.linalg.norm(ref, axis=-1) * np.linalg.norm(alt, axis=-1)
    return {
        "cosine": dot / np.maximum(norms, 1e-12),
        "dot": dot,
        "l1": np.abs(ref - alt).sum(axis=-1),
        "l2": np.linalg.norm(ref - alt, axis=-1),
    }
