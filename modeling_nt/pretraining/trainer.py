"""NT masked-LM pretraining on ``transformers.Trainer``: configuration, wiring, evaluation, results.

:func:`run_pretraining` takes a :class:`PretrainingConfig` (or a YAML file / mapping of its fields), trains a
model from an ``NTConfig`` preset (6-mer tokens) or an NT v3 pre-training preset (single-base tokens, records cut
to a length curriculum: :mod:`.curriculum`; the generation-dependent pieces are in :mod:`.tokens`) on genome
records, evaluates held-out MLM loss, perplexity and masked-token accuracy against the token unigram baseline
(of the training split, and of the held-out tokens' own frequencies), and writes into ``output_dir``: Trainer
checkpoints, the final model (``final/``), ``results.json`` and ``loss_curve.png``. A finished run is never overwritten: calling it
again returns the stored results. With ``resume`` it continues from the last checkpoint after a crash; the
data stream and the masks are deterministic, so the resumed run ends in the same state as an uninterrupted one.
Either is refused when the run recorded in ``output_dir/fingerprint.json`` had another preset, genome file or
setting (:func:`pretraining_run_fingerprint`).

The configuration is validated completely before the first step (:class:`PretrainingConfig`, a pydantic
dataclass, then :meth:`PretrainingConfig.check_genomes`): a wrong setting is one ``ValueError`` line naming the
config file and the field (``held_out[0]``), never a crash after hours of training.

Launch several processes with ``torchrun --nproc_per_node N`` (CPU: gloo; GPU: nccl); ``deepspeed`` names a
ZeRO config (``zero2``, ``zero3`` or a path) used through Trainer, which also needs ``torchrun``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import yaml
from pydantic import AfterValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from transformers import TrainerCallback

from modeling_nt.fingerprint import (
    FINGERPRINT_FILE,
    RunFingerprint,
    check_fingerprint,
    fingerprint_run,
    record_fingerprint,
)

from ..checkpoint import save_tokenizer
from .collator import IGNORE_INDEX, NTMaskingCollator
from .curriculum import LengthCurriculum, check_stages
from .data import GenomeMLMDataset, GenomeSource, sources_from_config, token_unigram_baseline, unigram_of_ids
from .genome import ChunkingConfig, GenomeReader, Region, _is_indexed, open_text, parse_region
from .schedule import WarmupSqrtDecay, warmup_sqrt_decay
from .tokens import generation_of, unigram_name

DEEPSPEED_CONFIGS = {
    name: Path(__file__).with_name("deepspeed") / f"{name}.json" for name in ("zero2", "zero3")
}
RESULTS_FILE = "results.json"
#: The demo run: the tiny preset on the bundled chr20 slice (a few minutes on 2 CPU cores).
DEMO_CONFIG = Path(__file__).with_name("configs") / "demo.yaml"
#: The NT v3 demo run: a small single-base U-Net on the same slice, with a two-stage length curriculum.
DEMO_V3_CONFIG = Path(__file__).with_name("configs") / "demo_v3.yaml"


_Strict = Field(strict=True)
PositiveInt = Annotated[int, _Strict, Field(ge=1)]
NonNegativeInt = Annotated[int, _Strict, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]
Share = Annotated[float, Field(ge=0, lt=1)]
_FORBID_EXTRA = ConfigDict(extra="forbid")


def _check_region(text: str) -> str:
    parse_region(text)
    return text


#: A region or contig (``"20"``, ``"20:1-2000000"``), checked by :func:`parse_region`.
RegionText = Annotated[str, AfterValidator(_check_region)]


@pydantic_dataclass(config=_FORBID_EXTRA)
class GenomeEntry:
    """One ``train_genomes`` entry: a FASTA ``path`` (must exist) and its sampling ``weight`` (> 0); with
    ``vcf`` the haplotypes of ``samples`` (default: all) over ``regions`` (required) instead."""

    path: str
    weight: PositiveFloat = 1.0
    vcf: str | None = None
    samples: list[str] | None = None
    regions: list[RegionText] | None = None

    @field_validator("path", "vcf")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file {value}")
        return value

    @field_validator("samples", "regions", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [part for part in value.split(",") if part] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _haplotypes_need_regions(self) -> GenomeEntry:
        if self.vcf is not None and not self.regions:
            raise ValueError(
                f"haplotype source {self.vcf}: list the regions to build (e.g. ['20:1-2000000'])"
            )
        return self


@pydantic_dataclass(config=_FORBID_EXTRA)
class PretrainingConfig:
    """Everything one pretraining run needs; YAML files hold these fields (see ``configs/example.yaml``).

    Validated on construction (pydantic): types, ranges, that files exist and names are known, and the
    settings that must agree with each other; :meth:`check_genomes` then checks the genomes themselves
    (every held-out region non-empty, training records left). :meth:`from_mapping` / :meth:`from_yaml` turn
    every problem into one ``ValueError`` line naming the file and the field (``train_genomes[0].weight``).
    """

    # model: an NT v1/v2 preset (6-mer tokens) or an NT v3 pre-training preset (``tiny-v3``, ``ntv3-8m-pre``:
    # single-base tokens, records cut to the length_curriculum)
    preset: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # data
    train_genomes: list[GenomeEntry] = field(default_factory=list)
    held_out: list[RegionText] = field(default_factory=list)
    chunk_length: PositiveInt = 6000
    overlap: NonNegativeInt = 100
    max_offset: NonNegativeInt = 200
    min_length: PositiveInt = 600
    max_n_fraction: Probability | None = None
    include_contigs: list[str] | None = None
    exclude_contigs: list[str] = field(default_factory=lambda: ["chrM", "MT", "M"])
    max_tokens: Annotated[int, _Strict, Field(ge=2)] | None = None
    #: NT v3 only: ``[[first_step, record_length_bp], ...]`` (e.g. ``[[0, 1024], [400, 4096]]``), lengths
    #: multiples of ``2 ** num_downsamples``; default one stage of ``max_tokens`` bp, else the largest multiple
    #: within ``chunk_length + 2 * overlap`` (:mod:`.curriculum`).
    length_curriculum: list[list[Annotated[int, _Strict]]] | None = None
    shuffle_buffer: NonNegativeInt = 1000
    max_eval_records: PositiveInt | None = 512
    baseline_max_records: PositiveInt | None = 5000
    # masking
    mlm_probability: Annotated[float, Field(gt=0, le=1)] = 0.15
    mask_replace_prob: Probability = 0.8
    random_replace_prob: Probability = 0.1
    # optimisation
    init_lr: NonNegativeFloat = 5e-5
    peak_lr: PositiveFloat = 1e-4
    warmup_steps: NonNegativeInt = 16_000
    adam_beta1: Share = 0.9
    adam_beta2: Share = 0.999
    adam_epsilon: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    max_grad_norm: NonNegativeFloat = 1.0
    per_device_batch_size: PositiveInt = 8
    tokens_per_update: PositiveInt | None = 1_000_000
    gradient_accumulation_steps: PositiveInt | None = None
    max_steps: PositiveInt = 1000
    max_train_minutes: PositiveFloat | None = None
    # run
    output_dir: str = "runs/pretrain"
    seed: NonNegativeInt = 0
    logging_steps: PositiveInt = 10
    eval_steps: PositiveInt | None = None
    eval_on_start: bool = False
    save_steps: PositiveInt = 500
    save_total_limit: PositiveInt | None = 2
    eval_batch_size: PositiveInt | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    #: ``torch.compile`` the model (Trainer's ``torch_compile``): 1.06x per CPU-second on a 4x256 v2 model
    #: after about 35 s of compiling (README, Speed); mostly worth it on GPUs.
    compile: bool = False
    deepspeed: str | None = None
    report_to: str | list[str] = "auto"
    dataloader_num_workers: NonNegativeInt = 0
    torch_threads: PositiveInt | None = None
    resume: bool = False
    plot: bool = True

    @field_validator("train_genomes", mode="before")
    @classmethod
    def _paths_as_entries(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"path": entry} if isinstance(entry, str | Path) else entry for entry in value]
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from modeling_nt.configuration_ntv3 import PRESETS as NTV3_PRESETS
        from modeling_nt.loading import PRESETS

        if value not in PRESETS:
            close = difflib.get_close_matches(value, PRESETS, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown NT preset {value!r}{hint}; choose one of: {', '.join(PRESETS)}")
        if NTV3_PRESETS.get(value, {}).get("condition_vocab_sizes"):
            raise ValueError(
                f"preset {value!r} is a post-trained (species-conditioned) NT v3 architecture; masked-LM "
                "pretraining takes a pre-training preset (tiny-v3, ntv3-8m-pre, ...)"
            )
        return value

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed_exists(cls, value: str | None) -> str | None:
        if value is not None and value not in DEEPSPEED_CONFIGS and not Path(value).is_file():
            raise ValueError(f"DeepSpeed config {value!r} not found (use zero2, zero3 or a JSON path)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PretrainingConfig:
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob must be at most 1, got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}"
            )
        if not self.held_out and (self.eval_steps or self.eval_on_start):
            raise ValueError("eval_steps / eval_on_start need held_out regions to evaluate on; none given")
        model_config = self.nt_config()
        if self.generation == "v3":
            self.length_stages()  # checks the curriculum (or max_tokens) against the preset and the records
            return self
        if self.length_curriculum is not None:
            raise ValueError(
                f"length_curriculum: record-length stages are for NT v3 presets (single-base tokens); preset "
                f"{self.preset!r} is NT {self.generation}: set max_tokens instead"
            )
        if (
            self.max_tokens is not None
            and model_config.position_embedding_type == "absolute"
            and self.max_tokens > model_config.max_tokens
        ):
            raise ValueError(
                f"max_tokens {self.max_tokens} exceeds the {model_config.max_tokens} positions of preset "
                f"{self.preset!r} (learned position embeddings)"
            )
        return self

    def nt_config(self) -> Any:
        """The model config of ``preset`` (``NTConfig`` for v1/v2, ``NTv3Config`` for v3) with
        ``model_overrides`` (a ValueError names an unknown field)."""
        from modeling_nt.loading import preset_config

        config_class = type(preset_config(self.preset))
        known = set(config_class().to_dict())
        for key in self.model_overrides:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"model_overrides: {key!r} is not an {config_class.__name__} field{hint}")
        return preset_config(self.preset, **self.model_overrides)

    @property
    def generation(self) -> str:
        """The token layout of the preset: ``"v1"``, ``"v2"`` (6-mers) or ``"v3"`` (single bases)."""
        return generation_of(self.nt_config())

    def length_stages(self) -> list[tuple[int, int]]:
        """NT v3: the curriculum stages ``[(first_step, length_bp), ...]``, checked (:func:`check_stages`);
        without ``length_curriculum`` one stage of ``max_tokens`` bp, or of the longest multiple of
        ``2 ** num_downsamples`` within a genome record (``chunk_length + 2 * overlap``)."""
        multiple = 2 ** self.nt_config().num_downsamples
        record_length = self.chunk_length + 2 * self.overlap
        if self.length_curriculum is not None:
            if self.max_tokens is not None:
                raise ValueError(
                    "max_tokens and length_curriculum both set: for NT v3 the curriculum gives the record lengths"
                )
            stages = self.length_curriculum
        elif self.max_tokens is not None:
            if self.max_tokens % multiple:
                lower = self.max_tokens // multiple * multiple
                raise ValueError(
                    f"max_tokens: {self.max_tokens} bp is not a multiple of {multiple} (2 ** num_downsamples of "
                    f"preset {self.preset!r}); nearest valid: {f'{lower} or ' if lower else ''}{lower + multiple}"
                )
            stages = [[0, self.max_tokens]]
        else:
            stages = [[0, max(multiple, record_length // multiple * multiple)]]
        name = "length_curriculum" if self.length_curriculum is not None else "max_tokens"
        check_stages(stages, multiple, record_length, self.max_steps, name=name)
        return [(step, length) for step, length in stages]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> PretrainingConfig:
        """Build from a mapping; any problem is one ValueError line naming ``source`` and the field."""
        known = [item.name for item in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
                raise ValueError(f"{source}: {key}: unknown pretraining setting ({hint})")
        try:
            config = cls(**values)
        except ValidationError as error:
            raise ValueError(f"{source}: {validation_message(error)}") from None
        config._source = source
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> PretrainingConfig:
        """Load a YAML file of fields; relative genome paths are taken relative to the file's folder."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretraining config {path} does not exist")
        try:
            values = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level")
        if not isinstance(values.get("train_genomes", []), list):
            raise ValueError(f"{path}: train_genomes: expected a list of FASTA paths or mappings")
        values["train_genomes"] = [
            _absolute_source(entry, path.parent) for entry in values.get("train_genomes", [])
        ]
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_mapping(values, source=str(path))

    def check_genomes(self) -> None:
        """Check the genomes before any training: every held-out region holds at least one validation record
        in some training genome, and every genome keeps at least one training record.

        Raises:
            ValueError: one line naming the config file, the field (``held_out[0]``, ``train_genomes[1]``)
                and the problem (an unknown contig lists the genome's contigs).
        """
        source = getattr(self, "_source", "pretraining config")
        if not self.train_genomes:
            raise ValueError(
                f"{source}: train_genomes: no training genome given; list at least one FASTA file"
            )
        chunking = dataclasses.replace(self.chunking(), max_offset=0)
        # NT v3 records are cut to the curriculum lengths: held-out records must hold the last stage's length
        # (evaluation), training records the longest stage's (else that stage would find no record).
        lengths = [length for _, length in self.length_stages()] if self.generation == "v3" else [0]
        validation_chunking = dataclasses.replace(chunking, min_length=max(self.min_length, lengths[-1]))
        chunking = dataclasses.replace(chunking, min_length=max(self.min_length, max(lengths)))
        regions = [parse_region(text) for text in self.held_out]
        for index, region in enumerate(regions):
            if not any(
                _has_records(GenomeReader(entry.path, validation_chunking, (region,)), "validation")
                for entry in self.train_genomes
            ):
                raise ValueError(
                    f"{source}: held_out[{index}]: {self._empty_region(region, validation_chunking)}"
                )
        for index, genome in enumerate(self.genome_sources()):
            if not _has_records(genome.reader(chunking, regions), "train"):
                raise ValueError(
                    f"{source}: train_genomes[{index}]: no training record of at least "
                    f"{self._length_rule(chunking, 'longest')} is left in {genome.path} once held_out regions "
                    "and the contig filters are applied"
                )

    def _empty_region(self, region: Region, chunking: ChunkingConfig) -> str:
        """Why ``region`` holds no validation record in any training genome."""
        contigs = {entry.path: _contig_names(entry.path) for entry in self.train_genomes}
        if not any(region.contig in names for names in contigs.values()):
            listing = "; ".join(
                f"{path}: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}"
                for path, names in contigs.items()
            )
            return (
                f"contig {region.contig!r} of region {region} is in no training genome (contigs: {listing})"
            )
        if not chunking.keeps_contig(region.contig):
            return (
                f"region {region}: contig {region.contig!r} is removed by include_contigs / exclude_contigs"
            )
        return (
            f"region {region} holds no record of at least {self._length_rule(chunking, 'last')} "
            "(empty, past the contig's end, or too many N)"
        )

    def _length_rule(self, chunking: ChunkingConfig, stage: str) -> str:
        """``"600 bp (min_length=600)"``, or naming the curriculum stage that sets the shortest record."""
        need = chunking.min_length
        why = f"min_length={need}" if need == self.min_length else f"the {stage} length_curriculum stage"
        return f"{need} bp ({why})"

    def genome_sources(self) -> list[GenomeSource]:
        """The ``GenomeSource`` of every ``train_genomes`` entry."""
        return sources_from_config([dataclasses.asdict(entry) for entry in self.train_genomes])

    def chunking(self) -> ChunkingConfig:
        return ChunkingConfig(
            chunk_length=self.chunk_length,
            overlap=self.overlap,
            max_offset=self.max_offset,
            min_length=self.min_length,
            max_n_fraction=self.max_n_fraction,
            include=tuple(self.include_contigs) if self.include_contigs is not None else None,
            exclude=tuple(self.exclude_contigs),
        )

    def schedule(self) -> WarmupSqrtDecay:
        return WarmupSqrtDecay(init_lr=self.init_lr, peak_lr=self.peak_lr, warmup_steps=self.warmup_steps)


def _absolute_source(entry: Any, base: Path) -> Any:
    if isinstance(entry, str):
        return entry if Path(entry).is_absolute() else str(base / entry)
    entry = dict(entry)
    for key in ("path", "vcf"):
        if entry.get(key) and not Path(entry[key]).is_absolute():
            entry[key] = str(base / entry[key])
    return entry


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML error (1-based, as editors count)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "tuple"}


def _field_path(location: Sequence[int | str]) -> str:
    """``("train_genomes", 0, "weight")`` -> ``train_genomes[0].weight`` (pydantic's union/type tags dropped)."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier() and part not in _TYPE_TAGS:
            path += f".{part}" if path else part
    return path


def validation_message(error: ValidationError) -> str:
    """The first problem of a pydantic ``ValidationError`` on one line: ``field.path: problem, got X``,
    then ``(and N more)`` when there are others."""
    first = error.errors(include_url=False)[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "unexpected_keyword_argument":
        message = "unknown setting"
    elif first["type"] != "value_error" and isinstance(first.get("input"), str | int | float | bool):
        message += f", got {first['input']!r}"
    path = _field_path(first["loc"])
    more = error.error_count() - 1
    return f"{path + ': ' if path else ''}{message}" + (f" (and {more} more)" if more else "")


def _has_records(reader: Any, split: str) -> bool:
    """Whether ``reader`` yields at least one record of ``split`` (reads only up to the first one)."""
    records = reader.records(split, 0)
    try:
        return next(records, None) is not None
    finally:
        records.close()


def _contig_names(path: str) -> list[str]:
    """The contig names of a FASTA file, in file order (from its ``.fai`` when indexed, else its headers)."""
    if _is_indexed(Path(path)):
        return [line.split("\t", 1)[0] for line in Path(f"{path}.fai").read_text().splitlines() if line]
    with open_text(Path(path)) as handle:
        return [line[1:].split(maxsplit=1)[0] for line in handle if line.startswith(">") and line[1:].strip()]


def gradient_accumulation_for(
    tokens_per_update: int, batch_size: int, world_size: int, tokens_per_sequence: int
) -> int:
    """Micro-batches to accumulate so that one update sees about ``tokens_per_update`` tokens (at least 1)."""
    tokens_per_micro_step = batch_size * world_size * tokens_per_sequence
    return max(1, round(tokens_per_update / tokens_per_micro_step))


def _masked_predictions(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token NLL and argmax [B, L, 2] (as floats; 0 where the label is -100), so that eval keeps no full
    logits. ``logits`` is [B, L, V], or [N, V] at the N positions of ``labels != -100`` (``sparse_logits``)."""
    if logits.dim() == labels.dim() + 1:
        nll = torch.nn.functional.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )
        return torch.stack([nll, logits.argmax(-1).float()], dim=-1)
    selected = labels != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(logits.float(), labels[selected], reduction="none")
    predictions = logits.new_zeros((*labels.shape, 2), dtype=torch.float32)
    predictions[selected] = torch.stack([nll, logits.argmax(-1).float()], dim=-1)
    return predictions


def masked_metrics(eval_prediction: Any) -> dict[str, float]:
    """Token-weighted MLM loss, perplexity and accuracy over the selected (label != -100) positions."""
    predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
    selected = labels != IGNORE_INDEX
    loss = float(predictions[..., 0][selected].mean())
    accuracy = float((predictions[..., 1][selected].astype(np.int64) == labels[selected]).mean())
    return {"masked_loss": loss, "perplexity": math.exp(loss), "masked_accuracy": accuracy}


def _report_to(choice: str | list[str]) -> str | list[str]:
    if choice != "auto":
        return choice
    from transformers.integrations import is_tensorboard_available

    return "tensorboard" if is_tensorboard_available() else "none"


def _precision_flags(choice: str) -> dict[str, bool]:
    if choice not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be one of auto, fp32, bf16, fp16; got {choice!r}")
    if choice == "auto":
        if not torch.cuda.is_available():
            return {}
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def _checkpointing_flag(arguments_class: type, enabled: bool) -> dict[str, bool]:
    """``activation_checkpointing`` (transformers >= 5.2x) or its older name ``gradient_checkpointing``."""
    new_name = "activation_checkpointing" in arguments_class.__dataclass_fields__
    return {"activation_checkpointing" if new_name else "gradient_checkpointing": enabled}


def _deepspeed_config(choice: str | None) -> str | None:
    if choice is None:
        return None
    path = DEEPSPEED_CONFIGS.get(choice, Path(choice))
    if not path.exists():
        raise FileNotFoundError(f"DeepSpeed config {choice!r} not found (use zero2, zero3 or a JSON path)")
    return str(path)


def build_trainer(config: PretrainingConfig, callbacks: Sequence[Any] = ()) -> Any:
    """The model, datasets, collator and ``Trainer`` of a run (nothing trained yet)."""
    from transformers import Trainer, TrainingArguments, set_seed

    from modeling_nt import NTForMaskedLM
    from modeling_nt.loading import class_for

    class NTPretrainingTrainer(Trainer):
        """Trainer with the NT warm-up + square-root-decay schedule, the LM head run only at labelled
        positions (``sparse_logits``, NT v1/v2, in training and held-out evaluation: :func:`_masked_predictions`),
        and the input length of the last training batch logged with the loss (``sequence_length``, tokens)."""

        sequence_length: int | None = None

        def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
            if model.training:
                self.sequence_length = int(inputs["input_ids"].shape[1])
            sparse = {"sparse_logits": inputs.get("labels") is not None} if sparse_head else {}
            return super().compute_loss(model, {**inputs, **sparse}, *args, **kwargs)

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs and self.sequence_length is not None:
                logs = {**logs, "sequence_length": self.sequence_length}
            super().log(logs, *args, **kwargs)

        def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
            if self.lr_scheduler is None:
                self.lr_scheduler = warmup_sqrt_decay(optimizer or self.optimizer, config.schedule())
            return self.lr_scheduler

    if not config.train_genomes:
        raise ValueError("no train_genomes given: list at least one FASTA file")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    set_seed(config.seed)
    model_config = config.nt_config()
    version = generation_of(model_config)
    sparse_head = version != "v3"  # the NT v3 head (11 logits) is cheap at every base
    stages = config.length_stages() if version == "v3" else None
    # v1/v2: records truncated to max_tokens tokens; v3: cut to the curriculum lengths (the last one counts).
    max_tokens = stages[-1][1] if stages else config.max_tokens or model_config.max_tokens
    # Saved with every checkpoint: the context trained at, and the run's name for results and cards.
    setattr(model_config, "trained_max_length" if version == "v3" else "trained_max_tokens", max_tokens)
    model_config.model_name = Path(config.output_dir).resolve().name
    model = class_for(model_config, NTForMaskedLM)(model_config)

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = config.gradient_accumulation_steps or (
        gradient_accumulation_for(
            config.tokens_per_update, config.per_device_batch_size, world_size, max_tokens
        )
        if config.tokens_per_update
        else 1
    )
    sources = config.genome_sources()
    dataset_options = {
        "version": version,
        "max_tokens": None if stages else max_tokens,
        "held_out": config.held_out,
        "seed": config.seed,
    }
    train_curriculum = eval_curriculum = None
    if stages:
        train_curriculum = LengthCurriculum(
            tuple(stages), config.per_device_batch_size, accumulation * world_size
        )
        eval_curriculum = LengthCurriculum(((0, max_tokens),))  # held out: at the final length throughout
    train_dataset = GenomeMLMDataset(
        sources,
        config.chunking(),
        split="train",
        shuffle_buffer=config.shuffle_buffer,
        curriculum=train_curriculum,
        **dataset_options,
    )
    eval_dataset = None
    if config.held_out:
        eval_dataset = _LimitedDataset(
            GenomeMLMDataset(
                sources, config.chunking(), split="validation", curriculum=eval_curriculum, **dataset_options
            ),
            config.max_eval_records,
        )
    collator_options = {
        "version": version,
        "mlm_probability": config.mlm_probability,
        "pad_to_length": None if stages else max_tokens,  # v3: every example of a batch has its stage length
    }
    collator = NTMaskingCollator(
        mask_replace_prob=config.mask_replace_prob,
        random_replace_prob=config.random_replace_prob,
        **collator_options,
    )
    arguments = TrainingArguments(
        output_dir=config.output_dir,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=config.peak_lr,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        logging_steps=config.logging_steps,
        eval_strategy="steps" if eval_dataset is not None and config.eval_steps else "no",
        eval_steps=config.eval_steps,
        eval_on_start=eval_dataset is not None and config.eval_on_start,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        report_to=_report_to(config.report_to),
        **_checkpointing_flag(TrainingArguments, config.gradient_checkpointing),
        torch_compile=config.compile,
        deepspeed=_deepspeed_config(config.deepspeed),
        ddp_find_unused_parameters=False,
        dataloader_num_workers=config.dataloader_num_workers,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not sys.stderr.isatty(),  # in a log: the logged values as lines, not a redrawn bar
        **_precision_flags(config.precision),
    )
    # Held-out evaluation masks every selected token (no random/unchanged share), so that the loss cannot
    # be lowered by copying visible tokens and compares directly with the unigram baseline.
    eval_collator = NTMaskingCollator(mask_replace_prob=1.0, random_replace_prob=0.0, **collator_options)
    return NTPretrainingTrainer(
        model=model,
        args=arguments,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=_TrainEvalCollator(collator, eval_collator),
        compute_metrics=masked_metrics,
        preprocess_logits_for_metrics=_masked_predictions,
        callbacks=[
            *callbacks,
            *([_TimeBudget(config.max_train_minutes)] if config.max_train_minutes else []),
        ],
    )


class _TimeBudget(TrainerCallback):
    """Stops training (cleanly, with a final evaluation) once ``minutes`` of training time are spent."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.start = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.start > self.seconds:
            control.should_training_stop = True


class _LimitedDataset(torch.utils.data.IterableDataset):
    """The first ``limit`` examples of an iterable dataset (all when ``limit`` is None)."""

    def __init__(self, dataset: torch.utils.data.IterableDataset, limit: int | None) -> None:
        super().__init__()
        self.dataset = dataset
        self.limit = limit

    def __iter__(self):
        for index, example in enumerate(self.dataset):
            if self.limit is not None and index >= self.limit:
                return
            yield {**example, "evaluation": True}


@dataclass
class _TrainEvalCollator:
    """Dispatches training and held-out batches (marked ``evaluation``) to their own masking rules."""

    train: NTMaskingCollator
    evaluation: NTMaskingCollator

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return (self.evaluation if examples[0].get("evaluation") else self.train)(examples)


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


def unigram_baseline(config: PretrainingConfig, version: str, max_tokens: int) -> dict[str, float]:
    """Token unigram entropy/accuracy of the training split (offset 0; first ``baseline_max_records`` records)."""
    chunking = dataclasses.replace(config.chunking(), max_offset=0)
    held_out = [parse_region(text) for text in config.held_out]
    readers = [source.reader(chunking, held_out) for source in config.genome_sources()]
    one_pass = itertools.chain.from_iterable(reader.records("train", 0) for reader in readers)
    return token_unigram_baseline(
        itertools.islice(one_pass, config.baseline_max_records), version, max_tokens
    )


def plot_loss_curve(
    log_history: list[dict[str, Any]],
    baseline_nats: float | None,
    path: Path,
    baseline_name: str = "6-mer unigram",
    stages: Sequence[Sequence[int]] = (),
) -> None:
    """Training loss and held-out masked loss against steps, with the unigram baseline and the NT v3 record-length
    switches (``stages``: ``[first_step, length_bp]``, a dotted line at each stage after the first), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    held_out = [
        (entry["step"], entry["eval_masked_loss"]) for entry in log_history if "eval_masked_loss" in entry
    ]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    if train:
        axis.plot(*zip(*train, strict=True), label="training MLM loss (80/10/10)")
    if held_out:
        axis.plot(*zip(*held_out, strict=True), "o-", label="held-out masked loss (all <mask>)")
    if baseline_nats is not None:
        axis.axhline(
            baseline_nats, color="grey", linestyle="--", label=f"{baseline_name} entropy {baseline_nats:.3f}"
        )
    for step, length in stages[1:]:
        axis.axvline(step, color="grey", linestyle=":", linewidth=1)
        axis.annotate(
            f"{length} bp",
            (step, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats)")
    axis.set_title("NT masked-LM pretraining")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _final_evaluation(trainer: Any) -> dict[str, float]:
    """Held-out metrics at the last step: the logged ones when the last evaluation ran there, else a new one."""
    logged = [entry for entry in trainer.state.log_history if "eval_masked_loss" in entry]
    metrics = logged[-1] if logged and logged[-1]["step"] == trainer.state.global_step else trainer.evaluate()
    return {key.removeprefix("eval_"): value for key, value in metrics.items() if key.startswith("eval_")}


def _as_config(config: PretrainingConfig | Mapping[str, Any] | str | Path) -> PretrainingConfig:
    if isinstance(config, PretrainingConfig):
        return config
    if isinstance(config, Mapping):
        return PretrainingConfig.from_mapping(config)
    return PretrainingConfig.from_yaml(config)


def _comparable(config: PretrainingConfig) -> dict[str, Any]:
    values = dataclasses.asdict(config)
    values.pop("resume")
    return json.loads(json.dumps(values, default=str))


#: Settings that change where, how often or how fast a run writes, shows or trains, not the weights it
#: trains: left out of the run fingerprint (a resume may change them).
NOT_FINGERPRINTED = (
    "resume",
    "output_dir",
    "logging_steps",
    "save_steps",
    "save_total_limit",
    "report_to",
    "dataloader_num_workers",
    "torch_threads",
    "compile",
    "plot",
    "max_train_minutes",
    "eval_batch_size",
)


def pretraining_run_fingerprint(config: PretrainingConfig) -> RunFingerprint:
    """What determines the weights and results of a pretraining run: the ``preset``, every training FASTA and
    VCF (size and sha256: ``train_genomes[i].path`` / ``.vcf``) and every other setting but
    :data:`NOT_FINGERPRINTED` (the genome weights, samples and regions included)."""
    values = _comparable(config)
    inputs, genomes = {}, []
    for index, entry in enumerate(values.pop("train_genomes")):
        for key in ("path", "vcf"):
            inputs[f"train_genomes[{index}].{key}"] = entry.pop(key, None)
        genomes.append(entry)
    settings = {key: value for key, value in values.items() if key not in (*NOT_FINGERPRINTED, "preset")}
    return fingerprint_run(
        model=config.preset,
        model_flag="preset",
        inputs=inputs,
        settings={**settings, "train_genomes": genomes},
    )


def run_pretraining(
    config: PretrainingConfig | Mapping[str, Any] | str | Path, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Train (or resume), evaluate against the unigram baseline, write results and the loss curve.

    Returns a dict with ``world_size``, ``global_step``, ``train_loss``, the held-out ``masked_loss``,
    ``perplexity`` and ``masked_accuracy``, ``baseline`` (entropy in nats, accuracy), ``beats_baseline``,
    ``loss_curve`` and ``log_history``. A finished run in ``output_dir`` is returned as stored (``reused``).

    Raises:
        FingerprintMismatch: ``output_dir`` holds a run (finished, or checkpoints to resume) with another
            preset, genome file or setting (:func:`pretraining_run_fingerprint`, recorded in
            ``output_dir/fingerprint.json`` when training starts).
    """
    config = _as_config(config)
    output_dir = Path(config.output_dir)
    results_path = output_dir / RESULTS_FILE
    fingerprint, record = pretraining_run_fingerprint(config), output_dir / FINGERPRINT_FILE
    if results_path.exists():
        check_fingerprint(record, fingerprint, partial=output_dir, started=True)
        return {**json.loads(results_path.read_text()), "reused": True}
    checkpoint = _last_checkpoint(config.output_dir) if config.resume else None
    if not config.resume and _last_checkpoint(config.output_dir):
        raise ValueError(
            f"{output_dir} already holds checkpoints: pass resume (--resume) or choose another output_dir"
        )
    check_fingerprint(record, fingerprint, partial=output_dir, started=checkpoint is not None)

    config.check_genomes()  # before any training: held-out regions non-empty, training records left
    output_dir.mkdir(parents=True, exist_ok=True)  # an unwritable output_dir fails now, not at a save
    record_fingerprint(record, fingerprint)  # validated: the work starts here
    trainer = build_trainer(config, callbacks)
    trainer.train(resume_from_checkpoint=checkpoint)
    results: dict[str, Any] = {
        "world_size": trainer.args.world_size,
        "global_step": trainer.state.global_step,
        "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
        "train_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
    }
    if trainer.eval_dataset is not None:
        results.update(_final_evaluation(trainer))
    trainer.save_model(str(output_dir / "final"))  # every process takes part (DeepSpeed ZeRO-3 gathers)
    if not trainer.is_world_process_zero():
        return results
    save_tokenizer(trainer.model.config, output_dir / "final")  # AutoTokenizer.from_pretrained(final) works
    dataset = trainer.train_dataset
    baseline = unigram_baseline(config, dataset.version, dataset.max_tokens)
    results["baseline"] = baseline
    results["baseline_name"] = unigram_name(dataset.version)
    if dataset.curriculum is not None:
        results["length_curriculum"] = [list(stage) for stage in dataset.curriculum.stages]
    if "masked_loss" in results:
        results["beats_baseline"] = results["masked_loss"] < baseline["entropy_nats"]
        # The entropy of the evaluated held-out tokens' own frequencies: the best any context-free predictor
        # can do on them (for 6-mers biased low on small held-out sets; exact enough for nucleotides).
        held_out = unigram_of_ids((example["input_ids"] for example in trainer.eval_dataset), dataset.version)
        results["held_out_baseline"] = held_out
        results["beats_held_out_baseline"] = results["masked_loss"] < held_out["entropy_nats"]
    if config.plot:
        results["loss_curve"] = str(output_dir / "loss_curve.png")
        plot_loss_curve(
            trainer.state.log_history,
            baseline["entropy_nats"],
            output_dir / "loss_curve.png",
            baseline_name=results["baseline_name"],
            stages=results.get("length_curriculum", ()),
        )
    results["log_history"] = trainer.state.log_history
    results["config"] = _comparable(config)
    results_path.write_text(json.dumps(results, indent=2, default=str))
    return results
