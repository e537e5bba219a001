"""`nt analyze`: element classes from GTF/GFF3/BED, and the elements / attention / reconstruction / scaling
analyses on a generated genome whose element classes differ in composition (tiny random models)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.analysis.annotation import (
    GENE_CLASSES,
    read_annotation,
    sample_element_windows,
    sample_mixed_windows,
    token_classes,
)
from benchmarks.analysis.attention import AttentionShares, attention_shares, enrichment_table
from benchmarks.analysis.elements import read_labelled_sequences
from benchmarks.analysis.generate import make_synthetic_genome
from benchmarks.analysis.reconstruction import MaskRequest, score_requests, window_requests
from benchmarks.cli import main
from benchmarks.results import BenchmarkResult, save_results
from benchmarks.variants.alleles import ReferenceGenome
from modeling_nt import NTConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_genome(tmp_path_factory.mktemp("genome"), n_genes=12, seed=0)


@pytest.fixture(scope="module")
def genome(synthetic):
    return ReferenceGenome(synthetic.fasta)


def _rows(path: Path, delimiter: str = ",") -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------- annotation


@pytest.fixture
def small_genome(tmp_path) -> ReferenceGenome:
    fasta = tmp_path / "small.fa"
    fasta.write_text(">chr1\n" + "ACGT" * 500 + "\n")
    return ReferenceGenome(fasta)


# A minus-strand transcript on chr1 (1-based GTF coordinates): exons 1001-1100 and 1201-1400, CDS 1051-1100 and
# 1201-1300. Transcription runs right to left: 1301-1400 is the 5'UTR, 1001-1050 the 3'UTR.
GTF = """#comment
chr1\tt\ttranscript\t1001\t1400\t.\t-\t.\tgene_id "g"; transcript_id "t";
chr1\tt\texon\t1001\t1100\t.\t-\t.\tgene_id "g"; transcript_id "t";
chr1\tt\texon\t1201\t1400\t.\t-\t.\tgene_id "g"; transcript_id "t";
chr1\tt\tCDS\t1051\t1100\t.\t-\t0\tgene_id "g"; transcript_id "t";
chr1\tt\tCDS\t1201\t1300\t.\t-\t0\tgene_id "g"; transcript_id "t";
"""
GFF3 = """##gff-version 3
chr1\tt\tmRNA\t1001\t1400\t.\t-\t.\tID=t;Parent=g
chr1\tt\texon\t1001\t1100\t.\t-\t.\tParent=t
chr1\tt\texon\t1201\t1400\t.\t-\t.\tParent=t
chr1\tt\tCDS\t1051\t1100\t.\t-\t0\tParent=t
chr1\tt\tCDS\t1201\t1300\t.\t-\t0\tParent=t
"""
# 0-based position -> expected class
EXPECTED_CLASSES = {
    999: "intergenic",
    1000: "3UTR",
    1049: "3UTR",
    1050: "exon",
    1099: "exon",
    1100: "intron",
    1199: "intron",
    1200: "exon",
    1299: "exon",
    1300: "5UTR",
    1399: "5UTR",
    1400: "promoter",
    1499: "promoter",
    1500: "intergenic",
}


@pytest.mark.parametrize("name, text", [("genes.gtf", GTF), ("genes.gff3", GFF3)])
def test_element_classes_of_a_minus_strand_transcript(tmp_path, small_genome, name, text):
    path = tmp_path / name
    path.write_text(text)
    labels = read_annotation(path, small_genome, promoter_bp=100)
    assert labels.classes == GENE_CLASSES
    base_labels = labels.labels("chr1")
    assert {pos: labels.classes[base_labels[pos]] for pos in EXPECTED_CLASSES} == EXPECTED_CLASSES
    assert labels.labels("chr1", 1040, 1060).tolist() == [labels.classes.index("3UTR")] * 10 + [3] * 10


def test_bed_regions_and_bad_input_name_the_line(tmp_path, small_genome):
    bed = tmp_path / "regions.bed"
    bed.write_text("track name=x\nchr1\t10\t20\tenhancer\n1\t15\t30\tsilencer\n")  # "1" finds "chr1"
    labels = read_annotation(bed, small_genome)
    assert labels.classes == ("other", "enhancer", "silencer")
    assert labels.element_classes == ("enhancer", "silencer")
    assert labels.labels("chr1", 8, 32).tolist() == [0, 0] + [1] * 5 + [2] * 15 + [0, 0]
    bed.write_text("chr1\t10\t20\tenhancer\nchr1\t30\t20\tx\n")
    with pytest.raises(ValueError, match=r"regions.bed:2: invalid interval"):
        read_annotation(bed, small_genome)
    gtf = tmp_path / "bad.gtf"
    gtf.write_text(
        GTF.replace('gene_id "g"; transcript_id "t";', "", 1).replace("\ttranscript\t", "\texon\t", 1)
    )
    with pytest.raises(ValueError, match=r"bad.gtf:2: exon/CDS line without a transcript_id"):
        read_annotation(gtf, small_genome)
    with pytest.raises(ValueError, match="unknown annotation format"):
        read_annotation(tmp_path / "genes.txt", small_genome)


def test_generated_genome_classes_differ_in_composition(synthetic, genome):
    labels = read_annotation(synthetic.gtf, genome)
    windows = sample_element_windows(labels, genome, n_per_class=10, window_bp=150, seed=1)
    assert Counter(window.label for window in windows) == {name: 10 for name in GENE_CLASSES}
    for window in windows:
        assert len(window.sequence) == 150 and set(window.base_labels) == {labels.classes.index(window.label)}
    gc = {
        name: np.mean([sum(map(w.sequence.count, "GC")) / 150 for w in windows if w.label == name])
        for name in GENE_CLASSES
    }
    assert gc["intergenic"] < 0.4 < 0.65 < gc["promoter"]
    mixed = sample_mixed_windows(labels, genome, n_windows=3, window_bp=600, seed=0)
    for window in mixed:
        tokens = token_classes(window.sequence, window.base_labels)
        assert len(tokens) == 100 and len(set(tokens)) >= 2


# ------------------------------------------------------------------------------------------------ elements


def test_elements_command_separates_classes_above_chance(synthetic, tmp_path, capsys):
    out = tmp_path / "elements"
    argv = [
        "analyze",
        "elements",
        "--model",
        "tiny",
        "--fasta",
        str(synthetic.fasta),
        "--annotation",
        str(synthetic.gtf),
        "--windows-per-class",
        "20",
        "--window-bp",
        "150",
        "--out",
        str(out),
    ]
    torch.manual_seed(0)
    assert main(argv) == 0
    for name in ("element_scores.png", "element_maps.png"):
        _assert_png(out / name)
    scores = {row["feature"]: row for row in _rows(out / "element_scores.csv")}
    assert list(scores) == ["layer 0", "layer 1", "layer 2", "6-mer counts"]
    chance = float(scores["layer 0"]["chance_accuracy"])
    assert chance == pytest.approx(1 / 6)
    assert float(scores["6-mer counts"]["cv_accuracy"]) > 0.9
    best = max(float(row["cv_accuracy"]) for name, row in scores.items() if name.startswith("layer"))
    assert best > chance + 0.2
    summary = json.loads((out / "element_scores.json").read_text())
    assert summary["class_counts"] == {name: 20 for name in GENE_CLASSES}
    assert summary["projection"] in ("umap", "tsne")
    assert len(_rows(out / "element_maps.csv")) == 4 * 120
    assert main(argv) == 2  # a finished analysis is not overwritten
    assert "--overwrite" in capsys.readouterr().err


def test_labelled_sequences_tsv(tmp_path):
    path = tmp_path / "seqs.tsv"
    path.write_text("name\tsequence\tkind\na\tACGTACGT\tx\nb\tTTTTTTTT\ty\nc\tGGGG\tx\n\tCCCC\ty\n")
    assert read_labelled_sequences(path, class_column="kind") == (
        ["a", "b", "c", "seq4"],
        ["ACGTACGT", "TTTTTTTT", "GGGG", "CCCC"],
        ["x", "y", "x", "y"],
    )
    with pytest.raises(ValueError, match=r"missing column\(s\) \['class'\]"):
        read_labelled_sequences(path)


# ----------------------------------------------------------------------------------------------- attention


def test_attention_shares_sum_to_one_per_head(synthetic, genome, tmp_path):
    labels = read_annotation(synthetic.gtf, genome)
    windows = sample_mixed_windows(labels, genome, n_windows=4, window_bp=600, seed=0)
    torch.manual_seed(0)
    shares = attention_shares("tiny", windows, labels.classes, progress=False)
    assert shares.observed.shape == (4, 2, 4, len(GENE_CLASSES))
    np.testing.assert_allclose(shares.observed.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(shares.expected.sum(axis=-1), 1.0, atol=1e-6)
    out = tmp_path / "attention"
    assert (
        main(
            [
                "analyze",
                "attention",
                "--model",
                "tiny",
                "--fasta",
                str(synthetic.fasta),
                "--annotation",
                str(synthetic.gtf),
                "--windows",
                "6",
                "--window-bp",
                "600",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    _assert_png(out / "attention_enrichment.png")
    rows = _rows(out / "attention_shares.csv")
    per_head = Counter()
    for row in rows:
        per_head[(row["layer"], row["head"])] += float(row["observed_share"])
    assert len(per_head) == 2 * 4 and all(
        total == pytest.approx(1.0, abs=1e-5) for total in per_head.values()
    )
    assert json.loads((out / "attention_summary.json").read_text())["n_tests"] == len(rows)


def test_enrichment_test_finds_the_one_specialised_head():
    rng = np.random.default_rng(0)
    expected = rng.dirichlet([5, 5, 5], size=12)
    observed = np.clip(expected[:, None, None, :] + rng.normal(0, 0.01, (12, 2, 2, 3)), 1e-3, None)
    observed[:, 1, 0, 0] += 0.2  # layer 2, head 0 attends more to class "a"
    observed /= observed.sum(axis=-1, keepdims=True)
    rows = enrichment_table(AttentionShares(observed, expected, ("a", "b", "c")))
    significant = [(row["layer"], row["head"], row["class"]) for row in rows if row["significant"]]
    assert (2, 0, "a") in significant
    assert all(layer == 2 and head == 0 for layer, head, _ in significant)
    assert len(rows) == 2 * 2 * 3
    enriched = next(row for row in rows if (row["layer"], row["head"], row["class"]) == (2, 0, "a"))
    assert enriched["enrichment"] > 1.2 and enriched["q_value"] < 0.01


# ------------------------------------------------------------------------------------------ reconstruction


def test_reconstruction_of_an_untrained_model_is_near_chance(synthetic, tmp_path, announces_random_weights):
    out = tmp_path / "reconstruction"
    torch.manual_seed(0)
    with announces_random_weights():
        code = main(
            [
                "analyze",
                "reconstruction",
                "--model",
                "tiny",
                "--fasta",
                str(synthetic.fasta),
                "--regions",
                str(synthetic.gtf),
                "--vcf",
                str(synthetic.vcf),
                "--windows",
                "8",
                "--window-bp",
                "600",
                "--out",
                str(out),
            ]
        )
    assert code == 0
    _assert_png(out / "reconstruction.png")
    summary = json.loads((out / "reconstruction.json").read_text())
    groups = {group["group"]: group for group in summary["groups"]}
    assert summary["chance_accuracy"] == 1 / 4096
    overall = groups["overall"]
    assert 0.08 < overall["n_masked"] / (8 * 100) < 0.22  # about 15% of the 100 tokens per window
    assert overall["accuracy"] < 0.01
    assert 0.8 * 4107 < overall["perplexity"] < 1.25 * 4107
    assert groups["variant sites"]["n_masked"] == 36  # one SNV per coding exon, 12 genes x 3
    assert set(groups) - {"overall", "variant sites"} <= set(GENE_CLASSES)
    tokens = _rows(out / "masked_tokens.csv")
    assert len(tokens) == sum(group["n_masked"] for name, group in groups.items() if name != "overall")


class _Oracle(torch.nn.Module):
    """A stand-in masked LM that knows the unmasked ids of the requests it is run on: always right."""

    def __init__(self, requests: list[MaskRequest]) -> None:
        super().__init__()
        self.config = NTConfig.from_preset("tiny")
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.pending = list(requests)

    def forward(self, input_ids, attention_mask):
        batch, self.pending = self.pending[: len(input_ids)], self.pending[len(input_ids) :]
        truth = torch.ones_like(input_ids)
        for row, request in enumerate(batch):
            truth[row, : len(request.ids)] = torch.from_numpy(request.ids)
        return SimpleNamespace(logits=20 * torch.nn.functional.one_hot(truth, self.config.vocab_size).float())


def test_every_token_masking_scores_each_token_once(synthetic, genome):
    labels = read_annotation(synthetic.gtf, genome)
    windows = sample_element_windows(labels, genome, n_per_class=1, window_bp=60, seed=0)[:2]
    config = NTConfig.from_preset("tiny")
    requests = window_requests(windows, labels.classes, config, mode="every")
    assert [len(request.positions) for request in requests] == [1] * 20  # 10 tokens per 60-bp window
    assert {request.records[0]["class"] for request in requests} == {windows[0].label, windows[1].label}
    records = score_requests(_Oracle(requests), requests, batch_size=4, progress=False)
    assert len(records) == 20 and all(record["correct"] for record in records)
    assert max(record["nll"] for record in records) < 1e-3
    assert [record["position"] for record in records[:10]] == list(range(windows[0].start, windows[0].end, 6))


# ------------------------------------------------------------------------------------------------- scaling


def test_scaling_command_one_line_per_task_group(tmp_path):
    tasks = {"H3": "histone", "H4": "histone", "promoter_all": "regulatory", "splice_sites_all": "splicing"}
    sizes = {"small": (10**6, 10**9), "medium": (10**7, 10**10), "large": (10**8, 10**11)}
    results = [
        BenchmarkResult(
            model=model,
            task=task,
            benchmark="original",
            method="probe",
            fold_scores=[0.3 + 0.1 * rank, 0.32 + 0.1 * rank],
            n_params=n_params if model != "small" else None,
            extra={"training_tokens": tokens},
        )
        for rank, (model, (n_params, tokens)) in enumerate(sizes.items())
        for task in tasks
    ]
    save_results(results, tmp_path / "results.json")
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"small": {"n_params": 10**6}}))
    out = tmp_path / "scaling"
    assert (
        main(
            [
                "analyze",
                "scaling",
                str(tmp_path / "results.json"),
                "--model-info",
                str(info),
                "--paper-reference",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    _assert_png(out / "scaling.png")
    rows = _rows(out / "scaling.csv")
    assert Counter(row["group"] for row in rows) == {
        "histone": 3,
        "regulatory": 3,
        "splicing": 3,
        "all tasks": 3,
    }
    all_tasks = sorted(
        (float(row["n_params"]), float(row["score"])) for row in rows if row["group"] == "all tasks"
    )
    assert [score for _, score in all_tasks] == pytest.approx([0.31, 0.41, 0.51])
    assert all(row["training_tokens"] for row in rows)
    save_results(
        [BenchmarkResult(model="m", task="H3", benchmark="original", method="probe", test_score=0.5)],
        tmp_path / "bare.json",
    )
    assert main(["analyze", "scaling", str(tmp_path / "bare.json"), "--out", str(tmp_path / "bare")]) == 2


def test_reconstruction_of_one_region_masks_every_token(synthetic, tmp_path, announces_random_weights):
    out = tmp_path / "region"
    argv = ["analyze", "reconstruction", "--model", "tiny", "--fasta", str(synthetic.fasta), "--region",
            "chr1:1-60", "--masking", "every", "--out", str(out)]  # fmt: skip
    with announces_random_weights():
        assert main(argv) == 0
    groups = json.loads((out / "reconstruction.json").read_text())["groups"]
    assert [(group["group"], group["n_masked"]) for group in groups] == [("overall", 10), ("all", 10)]
    assert [int(row["position"]) for row in _rows(out / "masked_tokens.csv")] == list(range(0, 60, 6))
    bad = [*argv[:7], "chrX:1-60", *argv[8:-1], str(tmp_path / "bad")]
    assert main(bad) == 2
