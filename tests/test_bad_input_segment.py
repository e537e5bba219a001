"""Bad input to ``nt segment train|predict``: one stderr line naming the problem, exit 2, before any work."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_bad_input

GOOD_GTF = (
    'chrT\tsrc\texon\t101\t200\t.\t+\t.\tgene_id "g"; transcript_id "t";\n'
    'chrT\tsrc\texon\t401\t500\t.\t+\t.\tgene_id "g"; transcript_id "t";\n'
)


def write_inputs(tmp_path, gtf: str = GOOD_GTF, gtf_name: str = "a.gtf"):
    sequence = list("".join(np.random.default_rng(0).choice(list("ACGT"), size=3000)))
    sequence[2000] = "N"
    (tmp_path / "g.fa").write_text(">chrT\n" + "".join(sequence) + "\n")
    (tmp_path / gtf_name).write_text(gtf)
    return tmp_path / "g.fa", tmp_path / gtf_name


def train(fasta, annotation, out, *extra):
    return ["segment", "train", "--model", "tiny", "--fasta", fasta, "--annotation", annotation, "--out", out,
            "--held-out", "chrT:2401-3000", "--steps", "1", "--window-tokens", "16", *extra]  # fmt: skip


def predict(fasta, out, *extra):
    return ["segment", "predict", "--model", "tiny", "--fasta", fasta, "--out", out, "--window-tokens", "16",
            "--overlap", "24", *extra]  # fmt: skip


# (id, GTF text, GTF file name, argv builder(fasta, gtf, out), expected words)
CASES = [
    ("missing annotation", GOOD_GTF, "a.gtf",
     lambda f, a, o: train(f, a.with_name("gencode.gtf"), o), ["annotation", "not found", "gencode.gtf"]),
    ("GTF line with 8 columns", GOOD_GTF + "chrT\tsrc\texon\t601\t700\t.\t+\tgene_id \"g\";\n", "a.gtf",
     lambda f, a, o: train(f, a, o), ["a.gtf line 3", "9 tab-separated columns", "got 8"]),
    ("GTF start not a number", GOOD_GTF.replace("\t101\t", "\t1O1\t"), "a.gtf",
     lambda f, a, o: train(f, a, o), ["a.gtf line 1", "'1O1'", "not integers"]),
    ("GTF end before start", GOOD_GTF.replace("\t401\t500\t", "\t500\t401\t"), "a.gtf",
     lambda f, a, o: train(f, a, o), ["line 2", "bad interval 500-401"]),
    ("GTF strand not +/-/.", GOOD_GTF.replace("\t+\t", "\tplus\t", 1), "a.gtf",
     lambda f, a, o: train(f, a, o), ["line 1", "strand 'plus'"]),
    ("annotation of unknown format", GOOD_GTF, "a.txt",
     lambda f, a, o: train(f, a, o), ["a.txt", "unknown annotation format", ".gtf"]),
    ("BED with unknown class", "chrT\t10\t20\tEnhancer\n", "a.bed",
     lambda f, a, o: train(f, a, o), ["a.bed line 1", "unknown class name 'Enhancer'"]),
    ("annotation on other contigs", GOOD_GTF.replace("chrT", "chr1"), "a.gtf",
     lambda f, a, o: train(f, a, o), ["no FASTA record", "a.gtf", "chr1", "chrT"]),
    ("unknown class name", GOOD_GTF, "a.gtf",
     lambda f, a, o: train(f, a, o, "--classes", "exon", "exons"), ["unknown class 'exons'", "splice_donor"]),
    ("class given twice", GOOD_GTF, "a.gtf",
     lambda f, a, o: train(f, a, o, "--classes", "exon", "Exon"), ["class 'Exon'", "twice"]),
    ("held-out contig not in FASTA", GOOD_GTF, "a.gtf",
     lambda f, a, o: train(f, a, o, "--held-out", "chr21"), ["--held-out chr21", "overlaps no FASTA record"]),
    ("train window tokens not divisible", GOOD_GTF, "a.gtf",
     lambda f, a, o: train(f, a, o, "--window-tokens", "30"), ["30 tokens", "2**num_downsamples = 4"]),
    ("predict window tokens not divisible", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--window-tokens", "18"), ["18 tokens", "multiple"]),
    ("region outside the contig", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--region", "chrT:2501-3500"), ["--region chrT:2501-3500", "outside", "3000 nt"]),
    ("region contig not in FASTA", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--region", "chr7:1-500"), ["chr7", "not in the FASTA", "chrT"]),
    ("region holds an N", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--region", "chrT:1501-2500"), ["N at chrT:2001", "without N"]),
    ("region shorter than one window", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--region", "chrT:1-20"), ["20 nt", "shorter than one window"]),
    ("overlap as long as the window", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--region", "chrT:1-960", "--overlap", "96"), ["--overlap 96", "window"]),
    ("threshold above 1", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--threshold", "1.5"), ["--threshold", "1.5"]),
    ("bad region text", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--region", "chrT:500-100"), ["--region", "START <= END"]),
    ("missing FASTA", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f.with_name("hg19.fa"), o), ["FASTA file not found", "hg19.fa"]),
    ("unknown device name", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, o, "--device", "gpu0"), ["--device 'gpu0'", "cuda:N"]),
    ("out is a file", GOOD_GTF, "a.gtf",
     lambda f, a, o: predict(f, a), ["--out", "is a file"]),
]  # fmt: skip


@pytest.mark.parametrize(("gtf", "name", "argv", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_segment_input(tmp_path, run_nt, gtf, name, argv, words):
    fasta, annotation = write_inputs(tmp_path, gtf, name)
    assert_bad_input(run_nt(*argv(fasta, annotation, tmp_path / "out")), *words)
    assert not (tmp_path / "out").exists()
