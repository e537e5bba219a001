"""Score every allele of a VCF into a resumable TSV (one row per allele), and optionally a scored VCF.

The TSV is appended chunk by chunk and flushed: after a crash, the same command skips the rows already
written (matched on the record index and ALT) and never rewrites them. The run's fingerprint (model, input
files, value-changing settings: :func:`scoring_run_fingerprint`) is kept beside it in ``OUT.fingerprint.json``;
a restart that differs in any of them is refused, naming the difference, instead of mixing scores.

Alleles that cannot be scored are written too, with ``status=skipped`` and the reason in ``note``: symbolic
or structural ALTs, contigs absent from the FASTA, and (with ``on_ref_mismatch="skip"``) REF alleles that do
not match the FASTA or run past the contig end. With the default ``on_ref_mismatch="error"`` any mismatch
stops the run before scoring, listing chrom, pos, expected and found. A chunk whose alleles are all skipped
is written like any other. Alleles written with ``-`` are scored in their left-anchored VCF form
(:func:`~benchmarks.variants.alleles.left_anchor`): the row holds that form and says so in ``note``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pysam

from benchmarks.progress import progress as progress_of
from modeling_nt.fingerprint import RunFingerprint, check_fingerprint, fingerprint_run, record_fingerprint

from ..generation import token_rules
from .alleles import (
    ALLELE_PATTERN,
    ReferenceGenome,
    RefMismatch,
    VariantAllele,
    VariantWindow,
    build_window,
    left_anchor,
    open_vcf,
    read_variant_alleles,
)
from .scoring import VariantScorer

BASE_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "record", "status", "note", "window_start", "window_end"]
#: Alleles scored between two writes of the TSV (at least; 4 batches with large batches). Windows are sorted
#: by token count within a chunk, and a crash loses at most one chunk.
CHUNK_ALLELES = 64
_SHOWN_MISMATCHES = 5


@dataclass
class RunSummary:
    """What a :func:`score_vcf` call did."""

    scored: int = 0
    skipped: int = 0
    already_done: int = 0
    mismatches: list[RefMismatch] = field(default_factory=list)


def default_window_bp(tokens: int) -> int:
    """Bases of a window of ``tokens`` tokens (``<cls>`` included) of full 6-mers: ``(tokens - 1) * 6``
    (12,282 bp for v2's 2048 tokens, 5,994 bp for v1's 1000, 1,194 bp for a model trained at 200 tokens).
    :func:`score_vcf` defaults to the window of the model's trained context,
    :attr:`~benchmarks.variants.scoring.VariantScorer.default_window_tokens`."""
    return token_rules("v2").window_bp(tokens)


def window_token_budget(scorer: VariantScorer, window_bp: int) -> int | None:
    """Most tokens (``<cls>`` included) a window of ``window_bp`` bases may take before it is shrunk (``N``
    runs cost one token per base): the model's trained context, or more where ``--window`` asks for longer
    windows than that, never more than the model takes. None for single-base tokens (NTv3): a window's token
    count is its length, checked by :func:`score_vcf`."""
    if scorer.rules.nucleotides_per_token == 1:
        return None
    tokens_of_acgt = window_bp // 6 + window_bp % 6 + 1
    return min(scorer.max_tokens, max(scorer.default_window_tokens, tokens_of_acgt))


def score_vcf(
    scorer: VariantScorer,
    fasta: str | Path,
    vcf: str | Path,
    out: str | Path,
    *,
    window_bp: int | None = None,
    on_ref_mismatch: str = "error",
    settings: dict[str, Any] | None = None,
    progress: bool | None = None,
    model: Any = None,
) -> RunSummary:
    """Score all alleles of ``vcf`` against ``fasta`` into the TSV ``out`` (resuming it if present).

    Args:
        scorer: the model and scoring options.
        window_bp: window length in bases (default: the context the model was trained at,
            ``default_window_bp(scorer.default_window_tokens)``; at most the model's full context). NTv3: 1 bp
            to 1 Mb, by default 32,768 bp (or ``trained_max_length`` where shorter; ``TokenRules.
            default_variant_window_bp``); each window is padded on the right with
            ``N`` to a multiple of ``2 ** num_downsamples``, the padding left out of the scores.
        on_ref_mismatch: ``"error"`` (stop before scoring, listing the mismatches) or ``"skip"`` (write them
            as skipped rows).
        settings: extra ``{flag: value}`` recorded in the run fingerprint (:func:`scoring_run_fingerprint`).
        model: the checkpoint folder / preset / Hub id the scorer's model came from, for the run fingerprint
            (default: the loaded model's weights).
        progress: report progress (:func:`benchmarks.progress.progress`: a bar on a terminal, timestamped
            lines on a redirected stderr); None or True: report, False: silent.
    """
    if on_ref_mismatch not in ("error", "skip"):
        raise ValueError(f"on_ref_mismatch must be 'error' or 'skip', got {on_ref_mismatch!r}")
    rules = scorer.rules
    longest = rules.window_bp(scorer.max_tokens)
    window_bp = rules.default_variant_window_bp if window_bp is None else window_bp
    if not rules.min_window_bp <= window_bp <= longest:
        token = "one 6-mer token" if rules.nucleotides_per_token == 6 else "one token"
        raise ValueError(
            f"--window {window_bp}: the model takes windows of {rules.min_window_bp} bp ({token}) to "
            f"{longest} bp ({scorer.max_tokens} tokens)"
        )
    out = Path(out)
    genome = ReferenceGenome(fasta)
    try:
        alleles = list(read_variant_alleles(vcf, genome))  # '-' alleles left-anchored against the FASTA
        if not alleles:
            raise ValueError(f"{vcf}: no variant records (only a header): nothing to score")
        reasons, mismatches = _screen(genome, alleles, vcf)
        if mismatches and on_ref_mismatch == "error":
            raise ValueError(_mismatch_message(vcf, fasta, mismatches))
        columns = BASE_COLUMNS + scorer.columns
        fingerprint = scoring_run_fingerprint(scorer, fasta, vcf, window_bp, model, settings)
        done = _prepare_output(out, columns, fingerprint)
        summary = RunSummary(mismatches=mismatches, already_done=sum(a.key in done for a in alleles))
        todo = [allele for allele in alleles if allele.key not in done]
        with (
            out.open("a", newline="") as handle,
            progress_of(
                total=len(todo), desc="score-variants", unit="alleles", enabled=progress is not False
            ) as bar,
        ):
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t", lineterminator="\n")
            chunk_alleles = max(CHUNK_ALLELES, 4 * scorer.options.batch_size)
            for offset in range(0, len(todo), chunk_alleles):
                chunk = todo[offset : offset + chunk_alleles]
                rows = _score_chunk(scorer, genome, chunk, reasons, window_bp)
                writer.writerows(rows)
                handle.flush()
                os.fsync(handle.fileno())
                summary.scored += sum(row["status"] == "scored" for row in rows)
                summary.skipped += sum(row["status"] == "skipped" for row in rows)
                bar.update(len(chunk))
    finally:
        genome.close()
    return summary


def _screen(
    genome: ReferenceGenome, alleles: Sequence[VariantAllele], vcf: str | Path
) -> tuple[dict[tuple[int, str], str], list[RefMismatch]]:
    """Skip reason per allele key (symbolic ALT, unknown contig, REF mismatch), and the REF mismatches."""
    reasons: dict[tuple[int, str], str] = {}
    checked: dict[int, RefMismatch | None] = {}
    for allele in alleles:
        if genome.contig_for(allele.chrom) is None:
            reasons[allele.key] = f"contig {allele.chrom!r} not in the FASTA"
            continue
        if allele.record not in checked:  # a REF such as '-' (not anchored) is no sequence to check
            checked[allele.record] = (
                genome.check_ref(allele) if ALLELE_PATTERN.fullmatch(allele.ref) else None
            )
        mismatch = checked[allele.record]
        if mismatch:
            reasons[allele.key] = mismatch.reason
        elif allele.skip_reason:
            reasons[allele.key] = allele.skip_reason
    if alleles and all(genome.contig_for(allele.chrom) is None for allele in alleles):
        vcf_contigs = sorted({allele.chrom for allele in alleles})
        raise ValueError(
            f"{vcf}: none of its contigs {vcf_contigs[:5]} is in the FASTA {genome.path} "
            f"(contigs: {list(genome.lengths)[:5]}); is it the right reference?"
        )
    return reasons, [mismatch for mismatch in checked.values() if mismatch]


def _mismatch_message(vcf: str | Path, fasta: str | Path, mismatches: Sequence[RefMismatch]) -> str:
    shown = "; ".join(str(mismatch) for mismatch in mismatches[:_SHOWN_MISMATCHES])
    more = f" (and {len(mismatches) - _SHOWN_MISMATCHES} more)" if len(mismatches) > _SHOWN_MISMATCHES else ""
    return (
        f"{vcf}: {len(mismatches)} record(s) whose REF does not match {fasta}: {shown}{more}. "
        "Check the reference assembly, or pass --ref-mismatch skip to write them as skipped rows"
    )


def scoring_run_fingerprint(
    scorer: VariantScorer,
    fasta: str | Path,
    vcf: str | Path,
    window_bp: int,
    model: Any = None,
    settings: dict[str, Any] | None = None,
) -> RunFingerprint:
    """What determines the rows of a scoring run: the model, ``--fasta`` and ``--vcf`` (size and sha256),
    ``--window`` (resolved, bp), ``--scores``, ``--layers``, ``--flank-tokens``, ``--reverse-complement`` and
    ``settings``. Not recorded: ``--batch-size`` and ``--device`` (padding is masked: same values up to float
    rounding), ``--ref-mismatch`` (it decides whether a run starts, not the values of its rows)."""
    options = scorer.options
    values = {
        "--window": window_bp,
        "--scores": list(options.scores),
        "--layers": options.layers,
        "--flank-tokens": options.flank_tokens,
        "--reverse-complement": options.reverse_complement,
        **(settings or {}),
    }
    return fingerprint_run(
        model=scorer.model if model is None else model,
        inputs={"--fasta": fasta, "--vcf": vcf},
        settings=values,
    )


def _prepare_output(out: Path, columns: list[str], fingerprint: RunFingerprint) -> set[tuple[int, str]]:
    """Create the TSV (header) and record its run fingerprint, or check them and return the keys already
    written."""
    record = fingerprint_path_of(out)
    if not out.exists() or out.stat().st_size == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        record_fingerprint(record, fingerprint)
        with out.open("w", newline="") as handle:
            handle.write("\t".join(columns) + "\n")
        return set()
    check_fingerprint(record, fingerprint, partial=out, started=True)
    _drop_partial_line(out)
    with out.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames != columns:
            raise ValueError(
                f"{out} exists with other columns; choose another --out, or delete it to start again"
            )
        return {(int(row["record"]), row["alt"]) for row in reader}


def fingerprint_path_of(out: str | Path) -> Path:
    """Where the run fingerprint of the TSV ``out`` is kept (``OUT.fingerprint.json``)."""
    out = Path(out)
    return out.with_name(out.name + ".fingerprint.json")


def _drop_partial_line(path: Path) -> None:
    """Cut an unfinished last line left by a crash (complete rows are never touched)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _score_chunk(
    scorer: VariantScorer,
    genome: ReferenceGenome,
    alleles: Sequence[VariantAllele],
    reasons: dict[tuple[int, str], str],
    window_bp: int,
) -> list[dict[str, Any]]:
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    windows: list[tuple[VariantAllele, VariantWindow]] = []
    for allele in alleles:
        reason = reasons.get(allele.key)
        if reason is None:
            try:
                budget = window_token_budget(scorer, window_bp)
                windows.append((allele, build_window(genome, allele, window_bp, budget)))
                continue
            except ValueError as error:
                reason = str(error)
        rows[allele.key] = _row(allele, "skipped", reason)
    for (allele, window), (scores, note) in zip(windows, scorer.score([w for _, w in windows]), strict=True):
        notes = [*_window_notes(genome, allele, window, window_bp), note]
        rows[allele.key] = _row(allele, "scored", "; ".join(n for n in notes if n), window, scores)
    return [rows[allele.key] for allele in alleles]


def _window_notes(
    genome: ReferenceGenome, allele: VariantAllele, window: VariantWindow, window_bp: int
) -> Iterable[str]:
    length = len(window.ref_seq)
    if length < window_bp:
        shorter = genome.lengths[window.contig] < window_bp
        yield f"window {length} bp: " + (
            "the contig is shorter" if shorter else "shrunk to fit the context (N runs)"
        )
    if window.start != allele.pos - 1 - (length - len(allele.ref)) // 2:
        yield "window shifted at the contig end"


def _row(
    allele: VariantAllele,
    status: str,
    note: str,
    window: VariantWindow | None = None,
    scores: dict[str, float] | None = None,
) -> dict[str, Any]:
    if allele.anchored_from:
        note = "; ".join(filter(None, [f"left-anchored from {allele.chrom}:{allele.anchored_from}", note]))
    row = {
        "chrom": allele.chrom,
        "pos": allele.pos,
        "id": allele.id,
        "ref": allele.ref,
        "alt": allele.alt,
        "record": allele.record,
        "status": status,
        "note": note,
        "window_start": window.start + 1 if window else "",
        "window_end": window.start + len(window.ref_seq) if window else "",
    }
    return row | {column: _format(value) for column, value in (scores or {}).items()}


def _format(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.7g}"


def info_id(column: str) -> str:
    """The VCF INFO key of a score column: ``cosine_mean_L12`` -> ``NT_COSINE_MEAN_L12``."""
    return f"NT_{column.upper()}"


def write_scored_vcf(
    vcf: str | Path, scores_tsv: str | Path, out: str | Path, fasta: str | Path | None = None
) -> Path:
    """Copy ``vcf`` to ``out`` with one ``Number=A`` Float INFO field per score column of ``scores_tsv``.

    Alleles without a score (skipped) get ``.``. ``out`` is written to a temporary name and renamed when
    complete; an existing ``out`` is never overwritten. A ``.gz`` name gives a BGZF-compressed VCF.
    ``fasta`` (the reference of the scores) finds the rows of alleles written with ``-``, which were scored
    left-anchored; without it they get ``.``.
    """
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} already exists; choose another --vcf-out or delete it")
    with Path(scores_tsv).open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        columns = [column for column in reader.fieldnames or [] if column not in BASE_COLUMNS]
        rows = {(int(row["record"]), row["alt"]): row for row in reader if row["status"] == "scored"}
    partial = out.with_name(out.name + ".partial")
    genome = ReferenceGenome(fasta) if fasta is not None else None
    with open_vcf(vcf) as source:
        header = source.header.copy()
        for column in columns:
            header.add_meta(
                "INFO",
                items=[
                    ("ID", info_id(column)),
                    ("Number", "A"),
                    ("Type", "Float"),
                    ("Description", f"Nucleotide Transformer zero-shot score {column} (nt score-variants)"),
                ],
            )
        mode = "wz" if out.suffix == ".gz" else "w"
        with pysam.VariantFile(str(partial), mode, header=header) as sink:
            for record_index, record in enumerate(source):
                record.translate(header)
                alleles = [(alt or ".").upper() for alt in record.alts or (None,)]
                if genome is not None:
                    alleles = [_anchored_alt(genome, record, alt, alleles) for alt in alleles]
                for column in columns:
                    values = [_parse(rows.get((record_index, alt), {}).get(column)) for alt in alleles]
                    if any(value is not None for value in values):
                        record.info[info_id(column)] = tuple(values)
                sink.write(record)
    if genome is not None:
        genome.close()
    partial.rename(out)
    return out


def _anchored_alt(genome: ReferenceGenome, record: pysam.VariantRecord, alt: str, alts: list[str]) -> str:
    """The ALT of the TSV row of one VCF allele: itself, or its left-anchored form when written with '-'
    (unless that form is another of the record's ``alts``: such an allele was skipped, see
    :func:`~benchmarks.variants.alleles.read_variant_alleles`)."""
    allele = VariantAllele(
        record=0, chrom=record.chrom, pos=record.pos, id=".", ref=record.ref.upper(), alt=alt
    )
    anchored = left_anchor(allele, genome).alt
    return alt if anchored != alt and anchored in alts else anchored


def _parse(text: str | None) -> float | None:
    if text in (None, "", "nan"):
        return None
    return float(text)
