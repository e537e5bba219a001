"""A first-time SegmentNT user's mistakes with ``nt segment train|predict``: one stderr line naming the problem,
exit 2, no traceback, and nothing of an earlier run overwritten or mixed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bad_input

SEQUENCE = "".join(np.random.default_rng(1).choice(list("ACGT"), size=600))
SLICE = ">20:30000001-30000600\n" + SEQUENCE + "\n"
WITH_N = ">20:30000001-30000600\n" + SEQUENCE[:300] + "N" * 12 + SEQUENCE[312:] + "\n"
GTF = "".join(
    f'20\tsrc\texon\t{start}\t{end}\t.\t+\t.\tgene_id "g"; transcript_id "t";\n'
    for start, end in ((30000101, 30000200), (30000401, 30000500))
)
CTCF_BED = "20\t30000010\t30000050\tCTCF Binding Site\n"


def train(*extra: str) -> list[str]:
    return ["segment", "train", "--model", "tiny", "--fasta", "{tmp}/g.fa", "--annotation", "{tmp}/a.gtf",
            "--held-out", "20:30000401-30000600", "--steps", "1", "--window-tokens", "8", "--out", "{tmp}/out",
            *extra]  # fmt: skip


def predict(*extra: str) -> list[str]:
    return ["segment", "predict", "--model", "tiny", "--fasta", "{tmp}/g.fa", "--window-tokens", "8",
            "--overlap", "24", "--out", "{tmp}/out", *extra]  # fmt: skip


@dataclass
class Case:
    """Files to write under tmp (relative name -> text), argv with ``{tmp}``, the words of the error line; the
    files under ``kept`` must be left as they were."""

    id: str
    files: dict[str, str]
    argv: list[str]
    words: tuple[str, ...]
    kept: tuple[str, ...] = field(default_factory=tuple)


CASES = [
    # exon + lncRNA on a GTF without biotypes: lncRNA was trained on all-zero targets, exit 0
    Case("train-class-missing-from-annotation", {"g.fa": SLICE, "a.gtf": GTF},
         train("--classes", "exon", "lncRNA"), ("--classes", "lncRNA", "a.gtf", "every target would be 0", "exon")),
    # the default 14 classes on an exon-only GTF: 10 all-zero classes trained silently
    Case("train-default-classes-on-exon-only-gtf", {"g.fa": SLICE, "a.gtf": GTF},
         train(), ("CTCF-bound", "5UTR", "a.gtf", "it has: exon, intron")),
    # CTCF-bound + exon from a CTCF BED only (the GTF forgotten)
    Case("train-exon-from-a-ctcf-bed", {"g.fa": SLICE, "a.bed": CTCF_BED},
         [a.replace("a.gtf", "a.bed") for a in train("--classes", "CTCF-bound", "exon")],
         ("exon", "a.bed", "it has: CTCF-bound")),
    # exons of the same contig but 20 Mb away from the slice: every target 0, exit 0
    Case("train-annotation-outside-the-slice", {"g.fa": SLICE, "a.gtf": GTF.replace("\t3000", "\t5000")},
         train("--classes", "exon"), ("--classes", "exon", "a.gtf", "within the FASTA's records")),
    # a GTF of transcript lines only: was "no FASTA record is on a contig of a.gtf (annotation contigs: none"
    Case("train-gtf-without-exon-lines", {"g.fa": SLICE, "a.gtf": GTF.replace("\texon\t", "\ttranscript\t")},
         train("--classes", "exon"), ("a.gtf", "no target interval", "no exon")),
    # a second train into a finished run's folder replaced its model and results.json
    Case("train-into-a-finished-run", {"g.fa": SLICE, "a.gtf": GTF, "out/results.json": "{}\n",
                                       "out/model/config.json": "{}\n"},
         train("--classes", "exon", "intron"), ("--out", "already holds", "model, results.json"),
         ("out/results.json", "out/model/config.json")),
    # a predict into an earlier prediction's folder mixed old .bw with new .bedGraph files
    Case("predict-into-an-earlier-prediction", {"g.fa": SLICE, "out/exon.bw": "old", "out/run.json": "{}\n"},
         predict(), ("--out", "already holds", "exon.bw", "run.json"), ("out/exon.bw", "out/run.json")),
    # no --region on a record with N: was the tokenizer's "240 tokens long ... pass truncation=True"
    Case("predict-default-region-with-n", {"g.fa": WITH_N}, predict(),
         ("default region", "N at 20:30000301", "without N")),
    # a truncated model.safetensors: was safetensors' traceback, exit 1
    Case("predict-truncated-weights", {"g.fa": SLICE, "m/config.json": '{"model_type": "segment_nt"}',
                                       "m/model.safetensors": "\x08\x00\x00"},
         [a.replace("tiny", "{tmp}/m") for a in predict()], ("model.safetensors", "cannot read the weights")),
    # a BED written with a column-header line: was only "start/end 'start'/'end' are not integers"
    Case("train-bed-with-a-header-line", {"g.fa": SLICE, "a.bed": "chrom\tstart\tend\tname\n" + CTCF_BED},
         [a.replace("a.gtf", "a.bed") for a in train("--classes", "CTCF-bound")],
         ("a.bed line 1", "'start'/'end'", "column-header line", "#")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, run_nt) -> None:
    for name, content in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    result = run_nt(*[arg.replace("{tmp}", str(tmp_path)) for arg in case.argv])
    assert_bad_input(result, *case.words)
    for name in case.kept:
        assert (tmp_path / name).read_text() == case.files[name]
    written = {name for name in case.files if name.startswith("out/")}
    left = {str(path.relative_to(tmp_path)) for path in tmp_path.glob("out/**/*") if path.is_file()}
    assert left == written  # nothing added, nothing removed


# region spellings that name the same nucleotides of a slice record: (FASTA text, --region) -> region written
REGIONS = [
    ("whole-contig-name-on-a-slice", SLICE, "20", "20:30000001-30000600"),  # was "outside record"
    ("chr-prefixed-contig", SLICE, "chr20:30000101-30000300", "chr20:30000101-30000300"),
    ("plain-region-on-a-chr-record", ">chr20\n" + SEQUENCE + "\n", "20:101-300", "20:101-300"),  # was refused
    ("slice-starting-at-1", ">20:1-600\n" + SEQUENCE + "\n", "20:101-300", "20:101-300"),  # was refused
]  # fmt: skip


@pytest.mark.parametrize(
    ("fasta", "region", "written"), [r[1:] for r in REGIONS], ids=[r[0] for r in REGIONS]
)
def test_region_spellings(tmp_path: Path, run_nt, fasta: str, region: str, written: str) -> None:
    import json

    (tmp_path / "g.fa").write_text(fasta)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in predict("--region", region)]
    result = run_nt(*argv)
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "out" / "run.json").read_text())["region"] == written
    contig, span = written.rsplit(":", 1)
    start, end = (int(x) for x in span.split("-"))
    lines = (tmp_path / "out" / "exon.bedGraph").read_text().splitlines()[1:]
    first, last = lines[0].split("\t"), lines[-1].split("\t")
    assert (first[0], int(first[1]), int(last[2])) == (contig, start - 1, end)


def test_segment_nt_preset_is_fingerprinted_by_name() -> None:
    """``nt segment predict --model segment_nt`` (a SegmentNT preset, no NT preset) predicted, then stopped with
    "unknown model 'segment_nt': not a folder and not a preset" while fingerprinting the run; ``tiny`` (in both
    preset tables) keeps its entry."""
    from benchmarks.cli.segment import _fingerprint_run

    for name in ("segment_nt", "segment_nt_multi_species", "tiny"):
        assert _fingerprint_run(name, settings={"--overlap": 24})["--model"] == {
            "kind": "preset",
            "name": name,
        }
