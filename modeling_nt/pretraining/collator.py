"""The NT masked-language-model collator (BERT 80/10/10 over 6-mer tokens, or single bases for NT v3).

Of the non-special tokens, each is selected with probability ``mlm_probability`` (15%); a selected token
becomes ``<mask>`` with probability ``mask_replace_prob`` (80%), a random *standard* token (v1/v2: a 6-mer or a
single nucleotide; v3: one of A, T, C, G, N; never a special token) with probability ``random_replace_prob``
(10%; 0 switches it off as in the 1000 Genomes runs, the share then stays unchanged), and stays unchanged
otherwise. The layouts come from :func:`~modeling_nt.pretraining.tokens.mlm_vocabulary`. ``<cls>``, padding and the
other special tokens are never selected. Labels hold the original id at selected positions and -100 elsewhere.

An example may carry a ``mask_seed`` (any int or list of ints): its mask is then drawn from that seed alone,
which makes the batches of a resumed run identical to those of an uninterrupted one. Examples without one draw
from the collator's own generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tokenization.vocab import MASK, PAD, SPECIAL_TOKENS

from .tokens import mlm_vocabulary

IGNORE_INDEX = -100


@dataclass
class NTMaskingCollator:
    """Pad a list of ``{"input_ids": [...]}`` examples and apply MLM masking; returns torch tensors.

    ``version`` is the token layout ("v1", "v2" or "v3"); ``pad_to_length`` a fixed width (None: the longest
    example of the batch).
    """

    version: str = "v2"
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_length: int | None = None
    seed: int = 0
    _generator: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("mlm_probability", "mask_replace_prob", "random_replace_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1")
        vocab = mlm_vocabulary(self.version)
        self.pad_id = vocab[PAD]
        self.mask_id = vocab[MASK]
        self.special_ids = np.array(sorted(vocab[token] for token in SPECIAL_TOKENS))
        self.standard_ids = np.array(sorted(set(vocab.values()) - set(self.special_ids.tolist())))
        self._generator = np.random.default_rng(self.seed)

    def pad(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Right-pad token id sequences into one int64 array (to ``pad_to_length`` when set)."""
        longest = max(len(ids) for ids in sequences)
        width = self.pad_to_length or longest
        if longest > width:
            raise ValueError(f"an example has {longest} tokens, more than pad_to_length={width}")
        batch = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(sequences):
            batch[row, : len(ids)] = ids
        return batch

    def mask_tokens(self, input_ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Masked ids and labels for one row (or a batch) of ids, drawing from ``rng``."""
        eligible = ~np.isin(input_ids, self.special_ids)
        selected = eligible & (rng.random(input_ids.shape) < self.mlm_probability)
        labels = np.where(selected, input_ids, IGNORE_INDEX)
        action = rng.random(input_ids.shape)
        to_mask = selected & (action < self.mask_replace_prob)
        to_random = selected & ~to_mask & (action < self.mask_replace_prob + self.random_replace_prob)
        random_ids = self.standard_ids[rng.integers(len(self.standard_ids), size=input_ids.shape)]
        masked = np.where(to_mask, self.mask_id, np.where(to_random, random_ids, input_ids))
        return masked, labels

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = self.pad([np.asarray(example["input_ids"]) for example in examples])
        masked = np.empty_like(input_ids)
        labels = np.empty_like(input_ids)
        for row, example in enumerate(examples):
            seed = example.get("mask_seed")
            rng = self._generator if seed is None else np.random.default_rng(seed)
            masked[row], labels[row] = self.mask_tokens(input_ids[row], rng)
        return {
            "input_ids": torch.from_numpy(masked),
            "attention_mask": torch.from_numpy((input_ids != self.pad_id).astype(np.int64)),
            "labels": torch.from_numpy(labels),
        }
