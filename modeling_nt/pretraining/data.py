"""The pretraining stream: genome records (references or haplotypes, mixed by weight) -> token ids.

:class:`GenomeMLMDataset` is a ``torch.utils.data.IterableDataset`` that never holds more than a shuffle
buffer of records. Training streams forever: each source is read pass after pass, every pass with a fresh
random start offset, and sources are drawn by their sampling weights (the multispecies recipe). Validation is
one pass over the held-out regions at offset 0. Tokenization uses the numpy batch path
(:func:`tokenization.encode_batch`). Every example carries a ``mask_seed`` so that the MLM masks depend only on
the data position, not on a global random state: a resumed run then sees exactly the batches of an
uninterrupted one. NT v3 streams cut records into pieces of the length of the current
:class:`~modeling_nt.pretraining.curriculum.LengthCurriculum` stage; the token layout of each generation is
in :mod:`.tokens`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tokenization.vocab import SPECIAL_TOKENS

from .curriculum import LengthCurriculum
from .genome import ChunkingConfig, GenomeReader, GenomeRecord, Region, parse_region
from .tokens import check_generation, encode_records, mlm_vocabulary


class RecordReader(Protocol):
    def records(self, split: str = "train", offset: int = 0) -> Iterator[GenomeRecord]: ...


@dataclass(frozen=True)
class GenomeSource:
    """One genome of the training mixture.

    ``path`` is a FASTA (plain, gzip or bgzip). With ``vcf`` the records are haplotypes instead: for each
    sample of ``samples`` (default: all) and each of ``regions`` (required; ``chr20`` or ``20`` naming), the
    two phased haplotypes (:class:`~modeling_nt.pretraining.haplotypes.HaplotypeReader`: files, samples and
    regions are checked when the reader is made; a pass that applies no VCF record is an error).
    """

    path: str
    weight: float = 1.0
    vcf: str | None = None
    samples: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None

    def reader(self, chunking: ChunkingConfig, held_out: Sequence[Region]) -> RecordReader:
        """The record reader for this source."""
        if self.weight <= 0:
            raise ValueError(
                f"genome source {self.path}: sampling weight must be positive, got {self.weight}"
            )
        if self.vcf is None:
            return GenomeReader(self.path, chunking, tuple(held_out))
        from .haplotypes import HaplotypeReader

        if not self.regions:
            raise ValueError(
                f"haplotype source {self.vcf}: list the regions to build (e.g. ['20:1-2000000'])"
            )
        regions = [parse_region(text) for text in self.regions]
        return HaplotypeReader(self.path, self.vcf, regions, self.samples, chunking, tuple(held_out))


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last one shorter); ``itertools.batched`` needs Python 3.12."""
    items = iter(items)
    while batch := list(itertools.islice(items, size)):
        yield batch


def _shuffled(records: Iterator[Any], buffer_size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Approximate shuffle with a fixed-size buffer (as ``datasets.IterableDataset.shuffle``)."""
    buffer: list[Any] = []
    for record in records:
        if len(buffer) < buffer_size:
            buffer.append(record)
            continue
        index = int(rng.integers(buffer_size))
        yield buffer[index]
        buffer[index] = record
    rng.shuffle(buffer)
    yield from buffer


class GenomeMLMDataset(torch.utils.data.IterableDataset):
    """Token-id examples ``{"input_ids", "mask_seed"}`` cut from one or more genomes.

    Args:
        sources: the genomes and their sampling weights.
        chunking: record geometry, N rule and contig filters.
        version: token layout ("v1", "v2": 6-mers; "v3": single bases, :mod:`.tokens`).
        max_tokens: records are truncated to this many tokens (with ``<cls>``).
        curriculum: cut each record into consecutive pieces of the curriculum's length at the example being
            yielded (remainders shorter than that are dropped); required for "v3", whose inputs must be
            multiples of ``2 ** num_downsamples`` long.
        split: "train" (endless, random offsets, mixture, shuffle) or "validation" (one pass, offset 0).
        held_out: regions removed from training and used for validation.
        seed: seed of offsets, mixture draws, shuffling and masks.
        shuffle_buffer: records held for shuffling (0: genome order).
        tokenize_batch_size: records tokenized together.
    """

    def __init__(
        self,
        sources: Sequence[GenomeSource],
        chunking: ChunkingConfig | None = None,
        *,
        version: str = "v2",
        max_tokens: int | None = None,
        split: str = "train",
        held_out: Sequence[Region | str] = (),
        seed: int = 0,
        shuffle_buffer: int = 0,
        tokenize_batch_size: int = 64,
        curriculum: LengthCurriculum | None = None,
    ) -> None:
        super().__init__()
        if not sources:
            raise ValueError("no genome sources given")
        self.chunking = chunking or ChunkingConfig()
        self.held_out = tuple(parse_region(r) if isinstance(r, str) else r for r in held_out)
        self.readers = [source.reader(self.chunking, self.held_out) for source in sources]
        weights = np.array([source.weight for source in sources], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.version = version
        self.max_tokens = max_tokens
        self.split = split
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer if split == "train" else 0
        self.tokenize_batch_size = tokenize_batch_size
        self.epoch = 0
        self.curriculum = curriculum
        if check_generation(version) == "v3" and curriculum is None:
            raise ValueError("single-base (v3) records need a length curriculum (one stage at least)")

    def set_epoch(self, epoch: int) -> None:
        """Called by Trainer/accelerate at every epoch: reseeds offsets, draws, shuffling and masks."""
        self.epoch = epoch

    def records(self) -> Iterator[GenomeRecord]:
        """The raw records of this split (endless for training), before sharding, shuffling and tokenization."""
        if self.split != "train":
            for reader in self.readers:
                yield from reader.records(self.split, 0)
            return
        passes = [self._training_pass(index, 0) for index in range(len(self.readers))]
        pass_counts = [0] * len(self.readers)
        yielded_in_pass = [False] * len(self.readers)
        draws = np.random.default_rng([self.seed, self.epoch, 1])
        while True:
            index = int(draws.choice(len(self.readers), p=self.weights)) if len(self.readers) > 1 else 0
            for record in passes[index]:
                yielded_in_pass[index] = True
                yield record
                break
            else:
                if not yielded_in_pass[index]:
                    raise ValueError(
                        f"genome source {index} has no training records (all held out or filtered?)"
                    )
                pass_counts[index] += 1
                yielded_in_pass[index] = False
                passes[index] = self._training_pass(index, pass_counts[index])

    def _training_pass(self, index: int, pass_index: int) -> Iterator[GenomeRecord]:
        max_offset = self.chunking.max_offset
        rng = np.random.default_rng([self.seed, self.epoch, index, pass_index])
        offset = int(rng.integers(max_offset)) if max_offset > 0 else 0
        return self.readers[index].records("train", offset)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        records = itertools.islice(self.records(), worker_id, None, num_workers)
        if self.shuffle_buffer:
            records = _shuffled(
                records, self.shuffle_buffer, np.random.default_rng([self.seed, self.epoch, 2, worker_id])
            )
        sequences: Iterator[str] = (record.sequence for record in records)
        if self.curriculum is not None:
            sequences = self._pieces(sequences, worker_id, num_workers)
        counter = itertools.count()
        for batch in _batched(sequences, self.tokenize_batch_size):
            encoded = encode_records(batch, self.version, self.max_tokens)
            lengths = encoded["attention_mask"].sum(axis=1)
            for ids, length in zip(encoded["input_ids"], lengths, strict=True):
                yield {
                    "input_ids": ids[:length],
                    "mask_seed": [self.seed, self.epoch, worker_id, next(counter)],
                }

    def _pieces(self, sequences: Iterator[str], worker_id: int, num_workers: int) -> Iterator[str]:
        """Consecutive pieces of each sequence, each of the curriculum length of the example it becomes."""
        index = 0
        for sequence in sequences:
            start = 0
            while True:
                length = self.curriculum.length_of_example(index, worker_id, num_workers)
                if start + length > len(sequence):
                    break
                yield sequence[start : start + length]
                start += length
                index += 1


def sources_from_config(
    entries: Sequence[str | dict[str, Any]], base_dir: Path | None = None
) -> list[GenomeSource]:
    """GenomeSources from config entries: a path, or a mapping with ``path`` and optional ``weight``/``vcf``/..."""
    sources = []
    for entry in entries:
        fields = {"path": entry} if isinstance(entry, str) else dict(entry)
        for key in ("path", "vcf"):
            if fields.get(key) and base_dir is not None and not Path(fields[key]).is_absolute():
                fields[key] = str(base_dir / fields[key])
        for key in ("samples", "regions"):
            if isinstance(fields.get(key), str):
                fields[key] = tuple(part for part in fields[key].split(",") if part)
            elif fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        try:
            sources.append(GenomeSource(**fields))
        except TypeError as error:
            raise ValueError(f"genome source {entry!r}: {error}") from None
    return sources


def token_unigram_baseline(
    records: Iterator[GenomeRecord], version: str, max_tokens: int | None
) -> dict[str, float]:
    """Entropy (nats) and top-1 accuracy of the token unigram distribution of ``records``.

    This is the loss and masked-token accuracy of a model that ignores context and predicts the training
    frequency of each token (6-mers, plus the few single-nucleotide tokens at run ends, for v1/v2; the
    nucleotides A, T, C, G, N for v3); special tokens are not counted.
    """

    def token_ids() -> Iterator[np.ndarray]:
        for batch in _batched(records, 256):
            encoded = encode_records([record.sequence for record in batch], version, max_tokens)
            yield encoded["input_ids"][encoded["attention_mask"].astype(bool)]

    return unigram_of_ids(token_ids(), version)


def unigram_of_ids(token_ids: Iterable[Sequence[int]], version: str) -> dict[str, float]:
    """Entropy (nats), top-1 accuracy and count of the non-special tokens among ``token_ids`` (id arrays of
    the layout ``version``): the baseline of :func:`token_unigram_baseline`, from ids already made.

    Raises:
        ValueError: no non-special token at all.
    """
    vocab = mlm_vocabulary(version)
    counts = np.zeros(len(vocab), dtype=np.int64)
    for ids in token_ids:
        counts += np.bincount(np.asarray(ids, dtype=np.int64).ravel(), minlength=len(vocab))
    for token in SPECIAL_TOKENS:
        counts[vocab[token]] = 0
    total = int(counts.sum())
    if total == 0:
        raise ValueError("no tokens to compute the unigram baseline from")
    probabilities = counts[counts > 0] / total
    return {
        "entropy_nats": float(-(probabilities * np.log(probabilities)).sum()),
        "accuracy": float(probabilities.max()),
        "tokens": total,
    }
