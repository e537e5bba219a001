"""Bad input to the `nt` commands with an NTv3 model where NTv3 is not supported, or not that way: SegmentNT on
an NTv3 backbone, a post-trained (species-conditioned) NTv3 model where models run without a species, layers
past the NTv3 output, letters outside the single-base alphabet. Each case: exit 2 and one stderr line naming the
model or flag and the reason."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pysam
import pytest
from conftest import assert_bad_input

CONTIG = "".join(random.Random(7).choice("ACGT") for _ in range(300))
GTF = 'chr1\tt\texon\t101\t160\t.\t+\t.\tgene_id "g"; transcript_id "t";\n'
VCF = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    f"chr1\t150\t.\t{CONTIG[149]}\t{'A' if CONTIG[149] != 'A' else 'C'}\t.\tPASS\t.\n"
)
SEQUENCES = "sequence\tclass\n" + "".join(
    f"{''.join(random.Random(i).choices('ACGT', k=24))}\t{i % 2}\n" for i in range(6)
)
SEGMENT_WORDS = ("NTv3", "nt segment", "SegmentNT", "NT v2 backbone")
POST_WORDS = ("--model tiny-v3-post", "post-trained NTv3", "species", "pre-trained NTv3")


@dataclass
class Case:
    """argv (``{tmp}``: tmp_path, ``{v3}``: a saved tiny-v3 checkpoint folder), the files it reads (name ->
    text, under tmp_path) and the words the error line must hold."""

    id: str
    argv: list[str]
    words: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)


def segment_train(case_id: str, model: str) -> Case:
    argv = ["segment", "train", "--model", model, "--fasta", "{tmp}/g.fa", "--annotation", "{tmp}/a.gtf"]
    return Case(case_id, [*argv, "--held-out", "chr1:1-100", "--out", "{tmp}/out"], SEGMENT_WORDS)


def analyze(
    case_id: str, analysis: str, argv: list[str], words: tuple[str, ...], model: str = "tiny-v3"
) -> Case:
    return Case(case_id, ["analyze", analysis, "--model", model, *argv, "--out", "{tmp}/out"], words)


CASES = [
    segment_train("segment-train-on-a-v3-preset", "tiny-v3"),
    segment_train("segment-train-on-a-saved-v3-checkpoint", "{v3}"),
    segment_train("segment-train-on-a-post-trained-v3", "tiny-v3-post"),
    Case(
        "segment-predict-with-a-v3-checkpoint",
        ["segment", "predict", "--model", "{v3}", "--fasta", "{tmp}/g.fa", "--out", "{tmp}/out"],
        SEGMENT_WORDS,
    ),
    analyze(
        "reconstruction-with-a-post-trained-v3",
        "reconstruction",
        ["--fasta", "{tmp}/g.fa", "--region", "chr1:1-40"],
        POST_WORDS,
        model="tiny-v3-post",
    ),
    analyze(
        "elements-with-a-post-trained-v3",
        "elements",
        ["--sequences", "{tmp}/s.tsv", "--folds", "2"],
        POST_WORDS,
        model="tiny-v3-post",
    ),
    analyze(
        "attention-with-a-post-trained-v3",
        "attention",
        ["--fasta", "{tmp}/g.fa", "--annotation", "{tmp}/a.gtf", "--windows", "2", "--window-bp", "80"],
        POST_WORDS,
        model="tiny-v3-post",
    ),
    Case(
        "embed-with-a-post-trained-v3",
        ["embed", "--model", "tiny-v3-post", "--fasta", "{tmp}/in.fa", "--out", "{tmp}/e.parquet"],
        POST_WORDS,
        {"in.fa": ">a\nACGTACGTTT\n"},
    ),
    Case(
        "score-variants-with-a-post-trained-v3",
        [
            *("score-variants", "--model", "tiny-v3-post", "--fasta", "{tmp}/g.fa", "--vcf", "{tmp}/v.vcf"),
            *("--window", "64", "--out", "{tmp}/o.tsv"),
        ],
        POST_WORDS,
        {"v.vcf": VCF},
    ),
    Case(
        "probe-with-a-post-trained-v3",
        [
            *("probe", "--model", "tiny-v3-post", "--train", "{tmp}/t.tsv", "--test-fraction", "0"),
            *("--cv", "2", "--out", "{tmp}/p.json"),
        ],
        POST_WORDS,
        {"t.tsv": SEQUENCES.replace("class", "label", 1)},
    ),
    analyze(
        "elements-layer-past-the-base-resolution-output",
        "elements",
        ["--sequences", "{tmp}/s.tsv", "--layers", "4", "--folds", "2"],
        ("layer 4", "0..3"),
    ),
    analyze(
        "reconstruction-region-off-the-contig",
        "reconstruction",
        ["--fasta", "{tmp}/g.fa", "--region", "chr1:290-320"],
        ("chr1:290-320", "outside chr1"),
    ),
    Case(
        "tokenize-v3-letter-outside-the-alphabet",
        ["tokenize", "--sequence", "ACGTXA", "--version", "v3"],
        ("'X'", "position 4"),
    ),
    Case(
        "tokenize-v3-fasta-letter-outside-the-alphabet",
        ["tokenize", "{tmp}/in.fa", "--version", "v3"],
        ("record 'b'", "'*'"),
        {"in.fa": ">a\nACGT\n>b\nAC*T\n"},
    ),
    Case(
        "tokenize-unknown-generation",
        ["tokenize", "--sequence", "ACGT", "--version", "v4"],
        ("--version", "v4"),
    ),
]


@pytest.fixture(scope="module")
def v3_checkpoint(tmp_path_factory) -> Path:
    from modeling_nt import NTv3ForMaskedLM
    from modeling_nt.checkpoint import save_checkpoint
    from modeling_nt.loading import load_model

    return save_checkpoint(
        load_model("tiny-v3", NTv3ForMaskedLM, seed=0), tmp_path_factory.mktemp("v3") / "m"
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(run_nt, tmp_path: Path, v3_checkpoint: Path, case: Case) -> None:
    genome = tmp_path / "g.fa"
    genome.write_text(f">chr1\n{CONTIG}\n")
    pysam.faidx(str(genome))
    (tmp_path / "a.gtf").write_text(GTF)
    (tmp_path / "s.tsv").write_text(SEQUENCES)
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    argv = [part.replace("{tmp}", str(tmp_path)).replace("{v3}", str(v3_checkpoint)) for part in case.argv]
    assert_bad_input(run_nt(*argv), *case.words)
    written = (
        sorted(path.name for path in (tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    )
    assert [name for name in written if not name.startswith("fingerprint_")] == []  # no result files
    assert not any((tmp_path / name).exists() for name in ("e.parquet", "o.tsv", "p.json"))
