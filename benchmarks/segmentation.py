"""SegmentNT data, training, evaluation and prediction: per-nucleotide genomic-element targets from an annotation,
genome windows with held-out regions, fine-tuning on ``Trainer``, nucleotide-level MCC / AUPRC, and tiled
prediction of long regions written as bedGraph / bigWig / BED tracks and a PNG.

Targets (multi-label, one 0/1 column per class, 0-based half-open intervals internally):

- GTF / GFF3 (parsed line by line with ``gffutils``): ``exon`` records; ``intron`` = every gap between
  consecutive exons of one transcript (transcript span minus its exons); ``5UTR`` / ``3UTR`` from
  ``five_prime_utr`` / ``three_prime_utr`` (``5UTR`` / ``3UTR``) records, or from GENCODE's ``UTR`` records
  by position relative to the transcript's CDS (before the first coding base in transcript orientation: 5');
  ``splice_donor`` / ``splice_acceptor``: the exon boundary nucleotides at each intron (SpliceAI convention:
  donor = last exon nucleotide before the intron, acceptor = first exon nucleotide after it, in transcript
  orientation; one nucleotide each); ``protein_coding_gene`` / ``lncRNA``: gene spans (``gene`` records, or
  the union of the gene's transcripts) whose ``gene_type`` / ``gene_biotype`` is ``protein_coding`` /
  ``lncRNA`` or ``lincRNA``; ``polyA_signal``: ``polyA_signal`` / ``polyA_signal_sequence`` records.
- BED (``chrom start end name``): the interval is a target of class ``name`` (a class name, or the Ensembl
  Regulatory Build name ``CTCF Binding Site`` for ``CTCF-bound``).

A FASTA record named ``CONTIG:START-END`` (a ``samtools faidx`` slice, like ``data/chr20_GRCh37_slice.fa.gz``)
is placed at those coordinates of ``CONTIG`` when the annotation names ``CONTIG`` (and tracks are written in
``CONTIG`` coordinates).

Windows hold ``6 * tokens`` nucleotides with ``tokens`` divisible by ``2 ** num_downsamples`` and no N
(upstream SegmentNT rejects N); training windows are drawn (seeded) outside the held-out regions, evaluation
windows tile the held-out regions.

Stitching (prediction of a region longer than a window): windows of ``W`` nt start every ``W - overlap`` nt
(the last one ends at the region end); each nucleotide takes the probability of the window whose centre is
nearest to it ("centre wins"), so no nucleotide is scored within ``overlap / 2`` nt of a window edge except at
the region ends. Only one window's activations exist at a time.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.analysis.annotation import table_lines
from benchmarks.generation import refuse_ntv3
from modeling_nt.configuration_segment_nt import SEGMENT_NT_FEATURES
from modeling_nt.pretraining.genome import Region, normalize_genome_sequence, parse_region, split_intervals

#: Nucleotides per 6-mer token.
KMER = 6
#: BED names (lowercase) of public sources that mean a class.
BED_ALIASES = {"ctcf binding site": "CTCF-bound", "ctcf_binding_site": "CTCF-bound"}
GTF_SUFFIXES = (".gtf", ".gff", ".gff3", ".gtf.gz", ".gff.gz", ".gff3.gz")
BED_SUFFIXES = (".bed", ".bed.gz")
_LNC = {"lncRNA", "lincRNA"}


def check_classes(classes: Iterable[str] | None) -> tuple[str, ...]:
    """``classes`` (default: the 14 SegmentNT classes), each matched case-insensitively to a known name.

    Raises:
        ValueError: an unknown or repeated class name (the known names listed).
    """
    if classes is None:
        return SEGMENT_NT_FEATURES
    known = {name.lower(): name for name in SEGMENT_NT_FEATURES}
    chosen: list[str] = []
    for name in classes:
        if name.lower() not in known:
            raise ValueError(f"unknown class {name!r} (known classes: {', '.join(SEGMENT_NT_FEATURES)})")
        if known[name.lower()] in chosen:
            raise ValueError(f"class {name!r} is given twice")
        chosen.append(known[name.lower()])
    if not chosen:
        raise ValueError("no class given")
    return tuple(chosen)


# --------------------------------------------------------------------------------------------- annotation


@dataclass
class Annotation:
    """Target intervals: ``intervals[contig][class]`` = list of 0-based half-open ``(start, end)``."""

    intervals: dict[str, dict[str, list[tuple[int, int]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def add(self, contig: str, name: str, start: int, end: int) -> None:
        if end > start:
            self.intervals[contig][name].append((start, end))

    def contigs(self) -> list[str]:
        return sorted(self.intervals)

    def targets(self, contig: str, start: int, end: int, classes: Sequence[str]) -> np.ndarray:
        """uint8 ``[end - start, len(classes)]``: 1 where a nucleotide of ``contig[start:end]`` is in a class."""
        out = np.zeros((end - start, len(classes)), dtype=np.uint8)
        by_class = self.intervals.get(contig, {})
        for column, name in enumerate(classes):
            for left, right in by_class.get(name, ()):
                if left < end and right > start:
                    out[max(left, start) - start : min(right, end) - start, column] = 1
        return out


def read_annotation(paths: str | Path | Sequence[str | Path]) -> Annotation:
    """Read GTF / GFF3 / BED files (plain or gzip; format from the suffix) into an :class:`Annotation`.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: an unknown suffix, or a malformed line (file, line number and problem named).
    """
    from tokenization import require_file

    annotation = Annotation()
    for path in [paths] if isinstance(paths, str | Path) else paths:
        path = require_file(path, "annotation")
        name = path.name.lower()
        if name.endswith(GTF_SUFFIXES):
            _read_gtf(path, annotation)
        elif name.endswith(BED_SUFFIXES):
            _read_bed(path, annotation)
        else:
            raise ValueError(
                f"{path}: unknown annotation format (expected a .gtf, .gff3 or .bed file, or .gz)"
            )
    return annotation


def _read_bed(path: Path, annotation: Annotation) -> None:
    known = {name.lower(): name for name in SEGMENT_NT_FEATURES} | BED_ALIASES
    for number, fields in table_lines(path):
        where = f"{path} line {number}"
        if len(fields) < 4:
            raise ValueError(
                f"{where}: a BED line needs chrom, start, end and a class name (got {len(fields)} columns)"
            )
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            header = (
                " (a column-header line? BED has none: delete it or start it with #)" if number == 1 else ""
            )
            raise ValueError(
                f"{where}: start/end {fields[1]!r}/{fields[2]!r} are not integers{header}"
            ) from None
        if start < 0 or end < start:
            raise ValueError(f"{where}: bad interval {start}-{end} (0-based, start <= end)")
        name = known.get(fields[3].strip().lower())
        if name is None:
            raise ValueError(
                f"{where}: unknown class name {fields[3]!r} (known: {', '.join(SEGMENT_NT_FEATURES)})"
            )
        annotation.add(fields[0], name, start, end)


@dataclass
class _Transcript:
    contig: str
    strand: str
    gene: str | None
    exons: list[tuple[int, int]] = field(default_factory=list)
    cds: list[tuple[int, int]] = field(default_factory=list)
    utrs: list[tuple[int, int]] = field(default_factory=list)
    span: tuple[int, int] | None = None


def _first(attributes: Any, *keys: str) -> str | None:
    for key in keys:
        values = attributes.get(key)
        if values:
            return values[0]
    return None


def _read_gtf(path: Path, annotation: Annotation) -> None:
    from gffutils.feature import feature_from_line

    transcripts: dict[str, _Transcript] = {}
    genes: dict[str, tuple[str, int, int, str | None]] = {}
    gene_spans: dict[str, list] = {}
    for number, fields in table_lines(path):
        where = f"{path} line {number}"
        if len(fields) != 9:
            raise ValueError(f"{where}: a GTF/GFF line has 9 tab-separated columns, got {len(fields)}")
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            raise ValueError(f"{where}: start/end {fields[3]!r}/{fields[4]!r} are not integers") from None
        if start < 1 or end < start:
            raise ValueError(f"{where}: bad interval {start}-{end} (1-based, inclusive, start <= end)")
        if fields[6] not in ("+", "-", "."):
            raise ValueError(f"{where}: strand {fields[6]!r} is not +, - or .")
        try:
            feature = feature_from_line("\t".join(fields))
        except Exception as error:  # gffutils raises several types for a bad attribute column
            raise ValueError(f"{where}: unreadable attributes ({error})") from None
        attrs, kind, contig = feature.attributes, fields[2], fields[0]
        left, right = start - 1, end
        gene_id = _first(attrs, "gene_id", "gene")
        biotype = _first(attrs, "gene_type", "gene_biotype", "biotype")
        parent = _first(attrs, "transcript_id", "Parent")
        if kind == "gene":
            genes[_first(attrs, "gene_id", "ID") or f"line{number}"] = (contig, left, right, biotype)
            continue
        if kind in ("polyA_signal", "polyA_signal_sequence"):
            annotation.add(contig, "polyA_signal", left, right)
            continue
        if kind in ("transcript", "mRNA", "lnc_RNA", "lncRNA", "ncRNA"):
            key = _first(attrs, "transcript_id", "ID") or f"line{number}"
            record = transcripts.setdefault(
                key, _Transcript(contig, fields[6], gene_id or _first(attrs, "Parent"))
            )
            record.span = (left, right)
            gene_spans.setdefault(record.gene or key, []).append((contig, left, right, biotype))
            continue
        if parent is None or kind not in (
            "exon", "CDS", "UTR", "five_prime_utr", "three_prime_utr", "five_prime_UTR", "three_prime_UTR"
        ):  # fmt: skip
            continue
        record = transcripts.setdefault(parent, _Transcript(contig, fields[6], gene_id))
        if kind == "exon":
            record.exons.append((left, right))
        elif kind == "CDS":
            record.cds.append((left, right))
        elif kind.lower() == "five_prime_utr":
            annotation.add(contig, "5UTR", left, right)
        elif kind.lower() == "three_prime_utr":
            annotation.add(contig, "3UTR", left, right)
        else:
            record.utrs.append((left, right))
    for contig, left, right, biotype in genes.values():
        _add_gene(annotation, contig, left, right, biotype)
    for key, spans in gene_spans.items():
        if key not in genes and spans[0][3] is not None:
            contig = spans[0][0]
            _add_gene(annotation, contig, min(s[1] for s in spans), max(s[2] for s in spans), spans[0][3])
    for record in transcripts.values():
        _add_transcript(annotation, record)


def _add_gene(annotation: Annotation, contig: str, left: int, right: int, biotype: str | None) -> None:
    if biotype == "protein_coding":
        annotation.add(contig, "protein_coding_gene", left, right)
    elif biotype in _LNC:
        annotation.add(contig, "lncRNA", left, right)


def _add_transcript(annotation: Annotation, record: _Transcript) -> None:
    contig, plus = record.contig, record.strand != "-"
    exons = sorted(record.exons)
    for left, right in exons:
        annotation.add(contig, "exon", left, right)
    for (_, end_a), (start_b, _) in itertools.pairwise(exons):
        if start_b <= end_a:
            continue
        annotation.add(contig, "intron", end_a, start_b)
        # exon boundary nucleotides: end_a - 1 is the last exon base before the intron (genomic left side)
        left_site, right_site = (
            ("splice_donor", "splice_acceptor") if plus else ("splice_acceptor", "splice_donor")
        )
        annotation.add(contig, left_site, end_a - 1, end_a)
        annotation.add(contig, right_site, start_b, start_b + 1)
    if record.utrs and record.cds:
        cds_start, cds_end = min(s for s, _ in record.cds), max(e for _, e in record.cds)
        for left, right in record.utrs:
            before = right <= cds_start
            if before or left >= cds_end:
                annotation.add(contig, "5UTR" if before == plus else "3UTR", left, right)


# ------------------------------------------------------------------------------------------------ genome


@dataclass(frozen=True)
class Contig:
    """A FASTA record placed on an annotation contig: record ``name`` holds ``contig[offset:offset+len]``."""

    name: str
    contig: str
    offset: int
    sequence: str

    def __len__(self) -> int:
        return len(self.sequence)


def read_genome(fasta: str | Path, annotation_contigs: Iterable[str] | None = ()) -> dict[str, Contig]:
    """Every record of ``fasta`` (uppercased, non-ACGT -> N; ``benchmarks.embeddings.iter_fasta``), keyed by
    record name. A record named ``CONTIG:START-END`` whose CONTIG (not the record name) is an annotation contig
    is placed at ``START - 1`` of CONTIG (``annotation_contigs=None``: every such record is placed).

    Holds every record in memory (1 byte per nucleotide: the bundled 2 Mb slice 2 MB, a human genome ~3 GB);
    for a whole genome, cut the chromosomes you train on with ``samtools faidx`` first."""
    from benchmarks.embeddings import iter_fasta
    from modeling_nt.pretraining.genome import match_contig

    known = None if annotation_contigs is None else list(annotation_contigs)
    genome: dict[str, Contig] = {}
    for name, sequence in iter_fasta(fasta):
        contig, offset = name, 0
        if known is None or match_contig(name, known) is None:
            try:
                region = parse_region(name)
            except ValueError:
                region = Region(name)
            if region.end is not None:
                placed = region.contig if known is None else match_contig(region.contig, known)
                if placed is not None:
                    contig, offset = placed, region.start
        else:
            contig = match_contig(name, known)
        genome[name] = Contig(name, contig, offset, normalize_genome_sequence(sequence))
    return genome


def check_annotation_matches(
    genome: dict[str, Contig],
    annotation: Annotation,
    sources: str = "the annotation",
    classes: Sequence[str] | None = None,
) -> None:
    """ValueError when no FASTA record lies on an annotation contig, or (``classes`` given) when none of
    ``classes`` has an interval on those contigs (every target would be 0)."""
    placed = {record.contig for record in genome.values()}
    if not annotation.contigs():  # e.g. a GTF of gene/transcript lines only
        raise ValueError(
            f"{sources}: no target interval of any class (no exon, UTR, polyA_signal or gene-with-biotype "
            "record, no BED line)"
        )
    if not placed & set(annotation.contigs()):
        from modeling_nt.pretraining.genome import contig_list

        raise ValueError(
            f"no FASTA record is on a contig of {sources} (annotation contigs: "
            f"{contig_list(annotation.contigs(), 5)}; FASTA records: {contig_list(list(genome), 5)})"
        )
    found = sorted({name for contig in placed for name in annotation.intervals.get(contig, {})})
    if classes is not None and not set(classes) & set(found):
        raise ValueError(
            f"--classes {' '.join(classes)}: none is in {sources} on the FASTA's contigs (it has: "
            f"{', '.join(found) or 'nothing'}); every target would be 0"
        )


def check_every_class_annotated(
    genome: dict[str, Contig], annotation: Annotation, sources: str, classes: Sequence[str]
) -> None:
    """ValueError naming the classes of ``classes`` without any interval of ``sources`` overlapping a FASTA
    record (on its contig, within its span): their targets would all be 0, and the model would learn that they
    never occur."""
    found = {
        name
        for record in genome.values()
        for name, spans in annotation.intervals.get(record.contig, {}).items()
        if any(left < record.offset + len(record) and right > record.offset for left, right in spans)
    }
    missing = [name for name in classes if name not in found]
    if missing:
        raise ValueError(
            f"--classes: {', '.join(missing)} not in {sources} within the FASTA's records (every target would be 0; "
            f"it has: {', '.join(name for name in SEGMENT_NT_FEATURES if name in found) or 'nothing'}); "
            "give --classes among those, or add an annotation with them"
        )


def window_length(tokens: int, num_downsamples: int) -> int:
    """Nucleotides of a window of ``tokens`` 6-mer tokens; ValueError unless divisible by ``2 ** num_downsamples``."""
    factor = 2**num_downsamples
    if tokens < 1 or tokens % factor:
        raise ValueError(
            f"window of {tokens} tokens: the token count must be a positive multiple of 2**num_downsamples = "
            f"{factor} (e.g. {max(factor, tokens // factor * factor)})"
        )
    return KMER * tokens


@dataclass(frozen=True)
class Window:
    """``length`` nucleotides of FASTA record ``record`` from ``start`` (0-based, record coordinates)."""

    record: str
    start: int
    sequence: str


def _held_for(record: Contig, held_out: Sequence[Region]) -> list[Region]:
    """The held-out regions in record coordinates (a region names the record, or its annotation contig)."""
    mine = []
    for region in held_out:
        if region.contig == record.name:
            mine.append(Region(record.name, region.start, region.end))
        elif region.contig.removeprefix("chr") == record.contig.removeprefix("chr"):
            end = len(record) if region.end is None else region.end - record.offset
            start = max(region.start - record.offset, 0)
            if end > 0 and start < len(record):
                mine.append(Region(record.name, start, min(end, len(record))))
    return mine


def check_held_out(genome: dict[str, Contig], held_out: Sequence[Region]) -> None:
    """ValueError when a held-out region overlaps no FASTA record."""
    for region in held_out:
        if not any(_held_for(record, [region]) for record in genome.values()):
            raise ValueError(
                f"--held-out {region}: overlaps no FASTA record (records: {', '.join(list(genome)[:5])})"
            )


def sample_windows(
    genome: dict[str, Contig],
    length: int,
    count: int,
    *,
    held_out: Sequence[Region] = (),
    split: str = "train",
    seed: int = 0,
) -> list[Window]:
    """``count`` windows of ``length`` nt without N: seeded random starts outside ``held_out`` for
    ``split="train"``; for ``"validation"``, consecutive windows tiling the held-out regions (first ``count``).

    Raises:
        ValueError: no interval of the split can hold one N-free window.
    """
    spans: list[tuple[str, int, int]] = []
    for record in genome.values():
        regions = _held_for(record, held_out)
        for start, end in split_intervals(record.name, len(record), regions, split):
            end = len(record) if end is None else end
            if end - start >= length:
                spans.append((record.name, start, end))
    windows: list[Window] = []
    if split == "validation":
        for name, start, end in spans:
            for left in range(start, end - length + 1, length):
                text = genome[name].sequence[left : left + length]
                if "N" not in text and len(windows) < count:
                    windows.append(Window(name, left, text))
    else:
        rng = np.random.default_rng(seed)
        weights = np.array([end - start - length + 1 for _, start, end in spans], dtype=float)
        for _ in range(count * 20 if spans else 0):
            name, start, end = spans[rng.choice(len(spans), p=weights / weights.sum())]
            left = int(rng.integers(start, end - length + 1))
            text = genome[name].sequence[left : left + length]
            if "N" not in text:
                windows.append(Window(name, left, text))
            if len(windows) == count:
                break
    if not windows:
        raise ValueError(
            f"no {split} window of {length} nt without N fits the FASTA records"
            + (" outside the held-out regions" if split == "train" else " in the held-out regions")
        )
    return windows


def window_targets(window: Window, genome: dict[str, Contig], annotation: Annotation, classes: Sequence[str]):
    """uint8 ``[length, len(classes)]`` targets of ``window``."""
    record = genome[window.record]
    start = record.offset + window.start
    return annotation.targets(record.contig, start, start + len(window.sequence), classes)


def tokenize(sequences: Sequence[str], version: str = "v2") -> dict[str, np.ndarray]:
    """``input_ids`` / ``attention_mask`` int64 ``[B, 1 + len / 6]`` (``<cls>`` first) of N-free windows."""
    from tokenization.arrays import encode_batch

    return encode_batch(list(sequences), version, max_length=max(len(s) for s in sequences) // KMER + 1)


# ---------------------------------------------------------------------------------------------- metrics


def probabilities(model: Any, sequences: Sequence[str], version: str = "v2") -> np.ndarray:
    """float32 ``[B, L, C]``: P(class present) per nucleotide (softmax over the last logit axis)."""
    import torch

    parameter = next(model.parameters(), None)  # the Trainer may have moved the model to a GPU
    device = parameter.device if parameter is not None else None
    batch = {
        key: torch.as_tensor(value, device=device) for key, value in tokenize(sequences, version).items()
    }
    with torch.inference_mode():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.softmax(logits.float(), dim=-1)[..., 1].cpu().numpy()


def nucleotide_metrics(
    targets: np.ndarray, scores: np.ndarray, classes: Sequence[str], prior: np.ndarray, threshold: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Per class: MCC at ``threshold`` and AUPRC of ``scores`` ``[N, C]`` vs ``targets`` ``[N, C]``, and of the
    prior baseline (a constant score = the class's training frequency: its AUPRC is the held-out positive
    rate, and its MCC is 0, a constant prediction having no correlation). Classes without a positive or without a negative nucleotide get ``None`` metrics."""
    from sklearn.metrics import average_precision_score, matthews_corrcoef

    out: dict[str, dict[str, Any]] = {}
    for column, name in enumerate(classes):
        truth, score = targets[:, column], scores[:, column]
        positives = int(truth.sum())
        entry: dict[str, Any] = {"positives": positives, "nucleotides": int(truth.size)}
        if 0 < positives < truth.size:
            constant = np.full(truth.shape, prior[column])
            entry |= {
                "mcc": float(matthews_corrcoef(truth, score >= threshold)),
                "auprc": float(average_precision_score(truth, score)),
                "prior_mcc": float(matthews_corrcoef(truth, constant >= threshold)),
                "prior_auprc": float(average_precision_score(truth, constant)),
            }
        else:
            entry |= {"mcc": None, "auprc": None, "prior_mcc": None, "prior_auprc": None,
                      "note": "no positive (or no negative) nucleotide in the held-out windows"}  # fmt: skip
        out[name] = entry
    return out


# ------------------------------------------------------------------------------------------------ train


def segmentation_dataset(
    windows: Sequence[Window], genome: dict[str, Contig], annotation: Annotation, classes: Sequence[str],
    version: str = "v2",
) -> list[dict[str, Any]]:  # fmt: skip
    """Examples ``{"input_ids", "attention_mask", "labels" [L, C] int64}`` for ``Trainer``."""
    encoded = tokenize([w.sequence for w in windows], version)
    return [
        {
            "input_ids": encoded["input_ids"][i],
            "attention_mask": encoded["attention_mask"][i],
            "labels": window_targets(window, genome, annotation, classes).astype(np.int64),
        }
        for i, window in enumerate(windows)
    ]


def wrap_for_method(model: Any, method: str, lora_rank: int = 8) -> Any:
    """``model`` for ``method``: itself (full), or a ``peft`` model with IA3 / LoRA on the backbone's attention
    and feed-forward layers and every non-backbone (head) parameter trained. Changes ``model`` in place (peft
    injects its layers); ``merge_and_unload()`` gives back a plain ``NTForSegmentation``."""
    from benchmarks.finetune import IA3_FEEDFORWARD_MODULES, IA3_TARGET_MODULES, LORA_TARGET_MODULES

    if method == "full":
        return model
    from peft import IA3Config, LoraConfig, get_peft_model

    if method == "ia3":
        config = IA3Config(
            target_modules=list(IA3_TARGET_MODULES), feedforward_modules=list(IA3_FEEDFORWARD_MODULES)
        )
    elif method == "lora":
        config = LoraConfig(target_modules=list(LORA_TARGET_MODULES), r=lora_rank, lora_alpha=2 * lora_rank)
    else:
        raise ValueError(f"--method must be full, lora or ia3, got {method!r}")
    wrapped = get_peft_model(model, config)
    # the head is trained in place (not through peft's modules_to_save copy, whose IA3 merge fails on a
    # weightless module): every parameter outside the backbone ``nt`` trains
    for name, parameter in model.named_parameters():
        if not name.startswith("nt.") and "ia3_" not in name and "lora_" not in name:
            parameter.requires_grad_(True)
    return wrapped


def train_segmentation(
    model: Any,
    genome: dict[str, Contig],
    annotation: Annotation,
    out: str | Path,
    *,
    classes: Sequence[str],
    window_tokens: int,
    held_out: Sequence[Region],
    method: str = "full",
    steps: int = 100,
    batch_size: int = 4,
    learning_rate: float = 1e-3,
    train_windows: int = 256,
    eval_windows: int = 32,
    seed: int = 0,
    threshold: float = 0.5,
    warmup_steps: int = 0,
    fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` (an ``NTForSegmentation``-like module: ``forward(input_ids, attention_mask, labels)``
    -> ``.loss``, ``.logits [B, L, C, 2]``) on windows sampled outside ``held_out``; evaluate per-class MCC /
    AUPRC on windows tiling ``held_out`` against the per-class prior; write ``OUT/results.json`` and the
    model (``OUT/model``). Returns the results. The learning rate rises linearly over ``warmup_steps`` (default
    0) and then decays linearly to 0."""
    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from benchmarks.progress import trainer_progress_callback

    num_downsamples = int(getattr(model.config, "num_downsamples", 0))
    length = window_length(window_tokens, num_downsamples)
    version = getattr(model.config, "tokenizer_version", "v2")
    train = sample_windows(genome, length, train_windows, held_out=held_out, split="train", seed=seed)
    evaluation = sample_windows(genome, length, eval_windows, held_out=held_out, split="validation")
    train_set = segmentation_dataset(train, genome, annotation, classes, version)
    labels = np.concatenate([example["labels"] for example in train_set])
    prior = labels.mean(axis=0)
    out = Path(out)
    torch.manual_seed(seed)
    wrapped = wrap_for_method(model, method)
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        seed=seed,
        report_to=[],
        save_strategy="no",
        logging_steps=max(1, steps // 10),
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
    )
    trainer = Trainer(model=wrapped, args=args, train_dataset=train_set)
    trainer.remove_callback(PrinterCallback)  # the loss lines go to the results instead
    trainer.add_callback(trainer_progress_callback("segment train"))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    wrapped.eval()
    scores = np.concatenate(
        [probabilities(wrapped, [w.sequence for w in evaluation[i : i + batch_size]], version).reshape(-1, len(classes))
         for i in range(0, len(evaluation), batch_size)]
    )  # fmt: skip
    targets = np.concatenate([window_targets(w, genome, annotation, classes) for w in evaluation])
    results = {
        "classes": list(classes),
        "method": method,
        "steps": steps,
        "warmup_steps": args.warmup_steps,
        "window_nt": length,
        "train_windows": len(train),
        "eval_windows": len(evaluation),
        "held_out": [str(region) for region in held_out],
        "train_loss": losses,
        "threshold": threshold,
        "prior": {name: float(p) for name, p in zip(classes, prior, strict=True)},
        "metrics": nucleotide_metrics(targets, scores, classes, prior, threshold),
        "fingerprint": fingerprint or {},
    }
    out.mkdir(parents=True, exist_ok=True)
    # adapters merged into the backbone: OUT/model loads as a plain NTForSegmentation (no peft needed)
    final = wrapped if method == "full" else wrapped.merge_and_unload()
    final.save_pretrained(out / "model")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


# ---------------------------------------------------------------------------------------------- predict


def tile_starts(length: int, window: int, overlap: int) -> list[int]:
    """Window starts covering ``[0, length)`` with windows of ``window`` nt overlapping by >= ``overlap`` nt
    (the last window ends at ``length``)."""
    if length < window:
        raise ValueError(f"region of {length} nt is shorter than one window ({window} nt)")
    if not 0 <= overlap < window:
        raise ValueError(f"--overlap {overlap} must be in [0, window length {window})")
    stride = window - overlap
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def stitch(
    predict: Callable[[int, int], np.ndarray], length: int, window: int, overlap: int, num_classes: int
) -> np.ndarray:
    """float32 ``[length, num_classes]``: ``predict(start, end)`` (``[end - start, C]``) called once per tile
    of :func:`tile_starts`, one at a time; each nucleotide keeps the value of the tile whose centre is nearest
    (module docstring)."""
    starts = tile_starts(length, window, overlap)
    centres = [start + window / 2 for start in starts]
    out = np.zeros((length, num_classes), dtype=np.float32)
    for k, start in enumerate(starts):
        own_start = 0 if k == 0 else int(np.ceil((centres[k - 1] + centres[k]) / 2))
        own_end = length if k == len(starts) - 1 else int(np.ceil((centres[k] + centres[k + 1]) / 2))
        values = predict(start, start + window)
        out[own_start:own_end] = values[own_start - start : own_end - start]
    return out


def resolve_predict_region(genome: dict[str, Contig], region: Region | None) -> tuple[Contig, int, int]:
    """The record and the record-coordinate interval ``region`` names (record name or annotation contig
    coordinates); default: the whole first record.

    Raises:
        ValueError: the contig is not in the FASTA, or the region lies outside it.
    """
    if region is None:
        record = next(iter(genome.values()))
        return record, *_check_no_n(record, 0, len(record), f"record {record.name} (the default region)")
    near = None  # a slice of the region's contig that does not hold the region
    for record in genome.values():
        if region.contig == record.name:
            start, end = region.start, len(record) if region.end is None else region.end
            break
        if region.contig.removeprefix("chr") == record.contig.removeprefix("chr"):
            # a slice or a renamed contig; a bare contig name means the whole record
            start = 0 if region.end is None else region.start - record.offset
            end = len(record) if region.end is None else region.end - record.offset
            if start >= 0 and end <= len(record):
                break
            near = record
    else:
        if near is not None:
            raise ValueError(
                f"--region {region}: outside record {near.name} ({len(near)} nt; covers {near.contig}:"
                f"{near.offset + 1}-{near.offset + len(near)})"
            )
        raise ValueError(
            f"--region {region}: contig {region.contig!r} is not in the FASTA (records: {', '.join(genome)})"
        )
    if start < 0 or end > len(record) or start >= end:
        raise ValueError(
            f"--region {region}: outside record {record.name} ({len(record)} nt; covers {record.contig}:"
            f"{record.offset + 1}-{record.offset + len(record)})"
        )
    return record, *_check_no_n(record, start, end, f"--region {region}")


def _check_no_n(record: Contig, start: int, end: int, what: str) -> tuple[int, int]:
    """``(start, end)``; ValueError naming ``what`` and the first N's position when ``record[start:end]`` has one."""
    n_at = record.sequence.find("N", start, end)
    if n_at >= 0:
        raise ValueError(
            f"{what}: N at {record.contig}:{record.offset + n_at + 1} (SegmentNT needs sequences without N)"
        )
    return start, end


def predict_region(
    model: Any, record: Contig, start: int, end: int, *, window_tokens: int, overlap: int, version: str = "v2"
) -> np.ndarray:
    """float32 ``[end - start, C]`` stitched probabilities of ``record.sequence[start:end]`` (:func:`stitch`).

    A region shorter than the window is scored with the longest window that fits (a multiple of
    ``6 * 2 ** num_downsamples`` nt) plus, when it leaves a tail, one more aligned at the region end.

    Raises:
        ValueError: ``overlap`` not below the window length; a region shorter than ``6 * 2 ** num_downsamples``.
    """
    num_downsamples = int(getattr(model.config, "num_downsamples", 0))
    window = window_length(window_tokens, num_downsamples)
    if not 0 <= overlap < window:
        raise ValueError(f"--overlap {overlap} must be in [0, window length {window} nt)")
    step = KMER * 2**num_downsamples
    if end - start < step:
        raise ValueError(
            f"region of {end - start} nt is shorter than one window: the shortest this model takes is {step} nt "
            f"(6-mers x 2**{num_downsamples} downsamplings)"
        )
    if end - start < window:
        window, overlap = (end - start) // step * step, 0
    num_classes = len(model.config.features)

    def predict(left: int, right: int) -> np.ndarray:
        return probabilities(model, [record.sequence[start + left : start + right]], version)[0]

    return stitch(predict, end - start, window, overlap, num_classes)


def rescale_rotary_for_window(model: Any, window_tokens: int) -> float:
    """Apply the official SegmentNT rule for windows longer than the model was trained on, and return the
    rotary rescaling factor in use: when ``window_tokens + 1`` (``<cls>`` included) exceeds
    ``config.trained_max_tokens`` (5,001 for the released checkpoints: 30 kb) the factor becomes
    ``(window_tokens + 1) / 2048`` (:func:`modeling_nt.configuration_segment_nt.rescaling_factor_for`; e.g.
    49,992 nt = 8,332 tokens + ``<cls>`` -> 4.0688) and the rotary frequencies are recomputed. A model without
    ``trained_max_tokens`` (a preset, a new head) or a window within it keeps its factor."""
    from modeling_nt.configuration_segment_nt import rescaling_factor_for

    config = model.config
    trained = getattr(config, "trained_max_tokens", None)
    if trained and window_tokens + 1 > trained and config.position_embedding_type == "rotary":
        config.rotary_rescaling_factor = rescaling_factor_for(window_tokens + 1)
        rotary = model.nt.rotary_emb
        rotary.inv_freq = rotary.compute_inv_freq(config).to(rotary.inv_freq.device)
    return float(config.rotary_rescaling_factor)


def _runs(values: np.ndarray) -> Iterator[tuple[int, int, float]]:
    change = np.flatnonzero(np.diff(values)) + 1
    bounds = np.concatenate([[0], change, [len(values)]])
    for left, right in itertools.pairwise(bounds):
        yield int(left), int(right), float(values[left])


def write_tracks(
    probs: np.ndarray, record: Contig, start: int, classes: Sequence[str], out: str | Path,
    *, fmt: str = "bedgraph", threshold: float = 0.5,
) -> list[Path]:  # fmt: skip
    """Per class: ``OUT/CLASS.bedGraph`` (or ``.bw``; values rounded to 4 decimals, equal neighbours merged) and
    ``OUT/CLASS.bed`` (intervals with probability >= ``threshold``; score = 1000 x max probability), in the
    annotation contig's coordinates; returns the files written. A bigWig's header gives the contig length as
    the end of the FASTA record (``offset + record length``), the largest coordinate the FASTA proves."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chrom, base = record.contig, record.offset + start
    written: list[Path] = []
    for column, name in enumerate(classes):
        values = np.round(probs[:, column].astype(np.float64), 4)
        runs = list(_runs(values))
        if fmt == "bigwig":
            import pyBigWig

            path = out / f"{name}.bw"
            handle = pyBigWig.open(str(path), "w")
            handle.addHeader([(chrom, record.offset + len(record))])
            handle.addEntries(
                [chrom] * len(runs), [base + s for s, _, _ in runs], ends=[base + e for _, e, _ in runs],
                values=[v for _, _, v in runs],
            )  # fmt: skip
            handle.close()
        else:
            path = out / f"{name}.bedGraph"
            with open(path, "w") as handle:
                handle.write(f'track type=bedGraph name="{name}" description="SegmentNT P({name})"\n')
                handle.writelines(f"{chrom}\t{base + s}\t{base + e}\t{v:g}\n" for s, e, v in runs)
        written.append(path)
        bed = out / f"{name}.bed"
        with open(bed, "w") as handle:
            for s, e, above in _runs(values >= threshold):
                if above:
                    score = int(np.round(1000 * values[s:e].max()))
                    handle.write(f"{chrom}\t{base + s}\t{base + e}\t{name}\t{score}\t.\n")
        written.append(bed)
    return written


def plot_tracks(
    probs: np.ndarray, record: Contig, start: int, classes: Sequence[str], path: str | Path
) -> Path:
    """A PNG with one probability track per class over the region (x: position on the annotation contig)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = record.offset + start + np.arange(len(probs)) + 1
    figure, axes = plt.subplots(
        len(classes), 1, figsize=(10, 0.6 * len(classes) + 1), sharex=True, squeeze=False
    )
    for axis, column in zip(axes[:, 0], range(len(classes)), strict=True):
        axis.fill_between(x, probs[:, column], step="mid", linewidth=0)
        axis.set_ylim(0, 1)
        axis.set_yticks([])
        axis.set_ylabel(classes[column], rotation=0, ha="right", va="center", fontsize=7)
    axes[-1, 0].set_xlabel(f"{record.contig} position (1-based)")
    axes[-1, 0].ticklabel_format(axis="x", style="plain", useOffset=False)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


# ------------------------------------------------------------------------------------------------ model


def planned_num_downsamples(spec: str | Path) -> int:
    """``num_downsamples`` of the model ``spec`` names, read before loading it (a SegmentNT preset or checkpoint
    folder's config; 2, the SegmentNT value, for a new head on an NT backbone)."""
    from modeling_nt.configuration_segment_nt import PRESETS

    refuse_ntv3(spec, "nt segment")  # before the window check, which would misread an NTv3 config
    if isinstance(spec, str) and spec in PRESETS and not Path(spec).is_dir():
        return int(PRESETS[spec].get("num_downsamples", 2))
    config_file = Path(spec).expanduser() / "config.json"
    if config_file.is_file():
        try:
            return int(json.loads(config_file.read_text()).get("num_downsamples", 2))
        except (ValueError, UnicodeDecodeError):
            return 2  # an unreadable config is reported by the loader
    return 2


def load_segmentation_model(
    spec: str | Path, classes: Sequence[str] | None = None, *, seed: int = 0, **config_overrides: Any
) -> Any:
    """The ``NTForSegmentation`` that ``spec`` names: a SegmentNT preset (random weights, announced), a
    SegmentNT checkpoint folder, or any NT backbone (folder, preset, Hub id; ``modeling_nt.loading``) with a
    new head for ``classes``. ``classes`` must match a SegmentNT checkpoint's features when given.

    Raises:
        ValueError, FileNotFoundError: one line naming the model and the problem.
    """
    import torch

    from modeling_nt.configuration_segment_nt import PRESETS, SegmentNTConfig
    from modeling_nt.loading import announce_random_weights, load_model, resolve_spec
    from modeling_nt.modeling_nt import NTModel
    from modeling_nt.modeling_segment_nt import NTForSegmentation

    overrides = dict(config_overrides) | ({"features": list(classes)} if classes else {})
    if isinstance(spec, str) and spec in PRESETS and not Path(spec).is_dir():
        announce_random_weights(spec)
        torch.manual_seed(seed)
        return NTForSegmentation(SegmentNTConfig.from_preset(spec, **overrides)).eval()
    target = resolve_spec(spec)
    config_file = target / "config.json" if isinstance(target, Path) else None
    if (
        config_file is not None
        and config_file.is_file()
        and (json.loads(config_file.read_text()).get("model_type") == SegmentNTConfig.model_type)
    ):
        if (target / "model.safetensors").is_file():  # a truncated file: one line, not safetensors' traceback
            from modeling_nt.loading import check_safetensors_header

            check_safetensors_header(target / "model.safetensors")
        model = NTForSegmentation.from_pretrained(target, **config_overrides).eval()
        if classes and list(classes) != list(model.config.features):
            raise ValueError(
                f"--classes {' '.join(classes)}: the checkpoint {target} predicts "
                f"{', '.join(model.config.features)}"
            )
        return model
    backbone = load_model(spec, NTModel, seed=seed)
    refuse_ntv3(backbone, "nt segment", name=spec)
    values = {
        k: v
        for k, v in backbone.config.to_dict().items()
        if k not in ("model_type", "auto_map", "architectures")
    }
    torch.manual_seed(seed)
    model = NTForSegmentation(SegmentNTConfig(**(values | overrides)))
    model.nt.load_state_dict(backbone.state_dict())
    return model.eval()
