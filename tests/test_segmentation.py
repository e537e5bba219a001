"""SegmentNT data, stitching, tracks and training (``benchmarks.segmentation``, ``nt segment``)."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import segmentation as seg
from modeling_nt.pretraining.genome import parse_region

# A hand-made GTF on contig "c" (1-based, inclusive). t1 (+): exons 11-20, 31-40, 51-60; CDS 15-20, 31-40,
# 51-55; GENCODE-style UTR records 11-14 (before the CDS: 5') and 56-60 (after: 3'). t2 (-, lincRNA): exons
# 71-75 and 86-90, so in transcript orientation the first exon is 86-90.
HAND_GTF = """\
c\tsrc\tgene\t11\t60\t.\t+\t.\tgene_id "g1"; gene_type "protein_coding";
c\tsrc\ttranscript\t11\t60\t.\t+\t.\tgene_id "g1"; transcript_id "t1"; gene_type "protein_coding";
c\tsrc\texon\t11\t20\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
c\tsrc\texon\t31\t40\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
c\tsrc\texon\t51\t60\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
c\tsrc\tCDS\t15\t20\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
c\tsrc\tCDS\t31\t40\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
c\tsrc\tCDS\t51\t55\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
c\tsrc\tUTR\t11\t14\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
c\tsrc\tUTR\t56\t60\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
c\tsrc\tgene\t71\t90\t.\t-\t.\tgene_id "g2"; gene_type "lincRNA";
c\tsrc\texon\t71\t75\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
c\tsrc\texon\t86\t90\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
"""


def one_based(targets: np.ndarray, classes: tuple[str, ...], name: str) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(targets[:, classes.index(name)])]


def test_gtf_targets_match_hand_worked_positions(tmp_path):
    path = tmp_path / "hand.gtf"
    path.write_text(HAND_GTF)
    classes = seg.SEGMENT_NT_FEATURES
    targets = seg.read_annotation(path).targets("c", 0, 100, classes)
    span = lambda a, b: list(range(a, b + 1))  # noqa: E731
    assert one_based(targets, classes, "exon") == span(11, 20) + span(31, 40) + span(51, 60) + span(
        71, 75
    ) + span(86, 90)
    assert one_based(targets, classes, "intron") == span(21, 30) + span(41, 50) + span(76, 85)
    # donor = last exon base before the intron, acceptor = first exon base after it, in transcript orientation
    assert one_based(targets, classes, "splice_donor") == [20, 40, 86]
    assert one_based(targets, classes, "splice_acceptor") == [31, 51, 75]
    assert one_based(targets, classes, "5UTR") == span(11, 14)
    assert one_based(targets, classes, "3UTR") == span(56, 60)
    assert one_based(targets, classes, "protein_coding_gene") == span(11, 60)
    assert one_based(targets, classes, "lncRNA") == span(71, 90)
    assert not targets[:, classes.index("CTCF-bound")].any()
    # a window [30, 45) sees its own slice only
    window = seg.read_annotation(path).targets("c", 30, 45, ("exon", "intron"))
    assert window[:, 0].tolist() == [1] * 10 + [0] * 5 and window[:, 1].tolist() == [0] * 10 + [1] * 5


def test_gff3_utr_records_and_bed_alias(tmp_path):
    gff = tmp_path / "a.gff3"
    gff.write_text(
        "##gff-version 3\n"
        "c\tsrc\tmRNA\t5\t30\t.\t-\t.\tID=m1\n"
        "c\tsrc\tfive_prime_UTR\t26\t30\t.\t-\t.\tParent=m1\n"
        "c\tsrc\tthree_prime_UTR\t5\t8\t.\t-\t.\tParent=m1\n"
    )
    bed = tmp_path / "ctcf.bed.gz"
    with gzip.open(bed, "wt") as handle:
        handle.write("c\t40\t44\tCTCF Binding Site\t0\t.\nc\t50\t52\tpolyA_signal\n")
    classes = ("5UTR", "3UTR", "CTCF-bound", "polyA_signal")
    targets = seg.read_annotation([gff, bed]).targets("c", 0, 60, classes)
    assert one_based(targets, classes, "5UTR") == [26, 27, 28, 29, 30]
    assert one_based(targets, classes, "3UTR") == [5, 6, 7, 8]
    assert one_based(targets, classes, "CTCF-bound") == [41, 42, 43, 44]  # BED 0-based half-open
    assert one_based(targets, classes, "polyA_signal") == [51, 52]


def random_dna(length: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=length))


def test_windows_respect_held_out_regions_and_skip_n(tmp_path):
    sequence = list(random_dna(2000))
    for position in (100, 700, 1300):
        sequence[position] = "N"
    fasta = tmp_path / "g.fa"
    fasta.write_text(">20:1001-3000\n" + "".join(sequence) + "\n")
    genome = seg.read_genome(fasta, ["20"])
    record = genome["20:1001-3000"]
    assert (record.contig, record.offset, len(record)) == ("20", 1000, 2000)
    held = [parse_region("20:2001-2500")]  # contig coordinates: record positions [1000, 1500)
    train = seg.sample_windows(genome, 48, 60, held_out=held, seed=3)
    assert len(train) == 60
    for window in train:
        assert "N" not in window.sequence and len(window.sequence) == 48
        assert window.start + 48 <= 1000 or window.start >= 1500
    assert [w.start for w in seg.sample_windows(genome, 48, 60, held_out=held, seed=3)] == [
        w.start for w in train
    ]
    assert [w.start for w in seg.sample_windows(genome, 48, 60, held_out=held, seed=4)] != [
        w.start for w in train
    ]
    validation = seg.sample_windows(genome, 48, 100, held_out=held, split="validation")
    # tiles of [1000, 1500) every 48 nt, minus the one holding the N at 1300 (tile 1296-1344)
    expected = [start for start in range(1000, 1500 - 48 + 1, 48) if not start <= 1300 < start + 48]
    assert [w.start for w in validation] == expected


def test_tile_ownership_centre_wins():
    calls = []

    def predict(start, end):
        calls.append((start, end))
        return np.full((end - start, 1), len(calls) - 1, dtype=np.float32)  # value = window index

    owner = seg.stitch(predict, 100, 40, 20, 1)[:, 0]
    assert calls == [(0, 40), (20, 60), (40, 80), (60, 100)]  # centres 20, 40, 60, 80
    assert owner.tolist() == [0] * 30 + [1] * 20 + [2] * 20 + [3] * 30
    calls.clear()
    owner = seg.stitch(predict, 90, 40, 20, 1)[:, 0]
    assert calls == [(0, 40), (20, 60), (40, 80), (50, 90)]  # last window ends at the region end
    assert owner.tolist() == [0] * 30 + [1] * 20 + [2] * 15 + [3] * 25


class PositionModel(torch.nn.Module):
    """A stand-in whose logits depend only on each token (so overlapping windows agree): P(present) of every
    nucleotide of a token is sigmoid(token id / 1000)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(features=["a", "b"], num_downsamples=1, tokenizer_version="v2")
        self.windows: list[int] = []

    def forward(self, input_ids, attention_mask=None):
        self.windows.append(input_ids.shape[1] - 1)
        value = (input_ids[:, 1:].float() / 1000).repeat_interleave(6, dim=1)
        logits = torch.stack([torch.zeros_like(value), value], dim=-1)[:, :, None, :].expand(-1, -1, 2, -1)
        return SimpleNamespace(logits=logits)


def test_stitched_prediction_equals_whole_region_prediction():
    from tokenization.arrays import encode_batch

    region = random_dna(6 * 300, seed=5)
    record = seg.Contig("x", "x", 0, "AAAAAA" + region)
    model = PositionModel()
    probs = seg.predict_region(model, record, 6, 6 + len(region), window_tokens=40, overlap=60)
    ids = torch.as_tensor(encode_batch([region])["input_ids"][0, 1:]).float()
    expected = torch.sigmoid(ids / 1000).repeat_interleave(6).numpy()
    assert len(model.windows) > 5 and set(model.windows) == {40}  # one 240-nt window at a time
    np.testing.assert_allclose(probs[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(probs[:, 1], expected, rtol=1e-6)


def read_bedgraph(path, start, length):
    values = np.full(length, np.nan)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("track type=bedGraph")
    for line in lines[1:]:
        chrom, left, right, value = line.split("\t")
        assert chrom == "20"
        values[int(left) - start : int(right) - start] = float(value)
    return values


def test_predict_writes_tracks_that_read_back(tmp_path, run_nt):
    import pyBigWig

    fasta = tmp_path / "g.fa"
    fasta.write_text(">20:10001-13000\n" + random_dna(3000, seed=7) + "\n")
    argv = ["segment", "predict", "--model", "tiny", "--fasta", fasta, "--region", "20:10101-12500"]
    argv += ["--window-tokens", "64", "--overlap", "96", "--threshold", "0.5"]
    assert run_nt(*argv, "--out", tmp_path / "bg").code == 0
    assert run_nt(*argv, "--out", tmp_path / "bw", "--format", "bigwig").code == 0
    model = seg.load_segmentation_model("tiny")
    genome = seg.read_genome(fasta, ["20"])
    expected = seg.predict_region(model, genome["20:10001-13000"], 100, 2500, window_tokens=64, overlap=96)
    for column, name in enumerate(model.config.features):
        bedgraph = read_bedgraph(tmp_path / "bg" / f"{name}.bedGraph", 10100, 2400)
        np.testing.assert_allclose(bedgraph, np.round(expected[:, column].astype(np.float64), 4), atol=1e-9)
        with pyBigWig.open(str(tmp_path / "bw" / f"{name}.bw")) as bigwig:
            assert bigwig.chroms() == {"20": 13000}
            np.testing.assert_allclose(bigwig.values("20", 10100, 12500), bedgraph, atol=1e-6)
            assert np.isnan(bigwig.values("20", 10099, 10100)[0])  # nothing outside the region
        above = np.round(expected[:, column].astype(np.float64), 4) >= 0.5
        covered = np.zeros(2400, dtype=bool)
        for line in (tmp_path / "bg" / f"{name}.bed").read_text().splitlines():
            chrom, left, right, label, _score, strand = line.split("\t")
            assert (chrom, label, strand) == ("20", name, ".")
            covered[int(left) - 10100 : int(right) - 10100] = True
        assert (covered == above).all()
    assert (tmp_path / "bg" / "tracks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((tmp_path / "bg" / "run.json").read_text())
    assert run["region"] == "20:10101-12500" and run["classes"] == model.config.features
    assert run["fingerprint"]["--overlap"]["value"] == 96


HAND_GENOME_GTF = """\
c\tsrc\ttranscript\t{a}\t{d}\t.\t+\t.\tgene_id "g"; transcript_id "t{i}";
c\tsrc\texon\t{a}\t{b}\t.\t+\t.\tgene_id "g"; transcript_id "t{i}";
c\tsrc\texon\t{c}\t{d}\t.\t+\t.\tgene_id "g"; transcript_id "t{i}";
"""


def test_short_training_run_loss_falls_and_reports_prior(tmp_path):
    rng = np.random.default_rng(0)
    gtf = "".join(
        HAND_GENOME_GTF.format(i=i, a=start, b=start + 99, c=start + 400, d=start + 499)
        for i, start in enumerate(range(101, 12000, 1000))
    )
    (tmp_path / "a.gtf").write_text(gtf)
    genome = {"c": seg.Contig("c", "c", 0, "".join(rng.choice(list("ACGT"), size=12000)))}
    annotation = seg.read_annotation(tmp_path / "a.gtf")
    classes = ("exon", "intron")
    model = seg.load_segmentation_model("tiny", classes)
    results = seg.train_segmentation(
        model, genome, annotation, tmp_path / "run", classes=classes, window_tokens=32,
        held_out=[parse_region("c:9001-12000")], steps=12, batch_size=4, learning_rate=3e-3,
        train_windows=32, eval_windows=8,
    )  # fmt: skip
    losses = results["train_loss"]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    assert results == json.loads((tmp_path / "run" / "results.json").read_text())
    # held-out windows: c:9001-12000 tiled by 192 nt (15 windows, the first 8 kept)
    assert results["eval_windows"] == 8 and results["window_nt"] == 192
    metrics = results["metrics"]
    assert set(metrics) == {"exon", "intron"}
    assert metrics["exon"]["positives"] > 0 and metrics["exon"]["nucleotides"] == 8 * 192
    assert metrics["exon"]["prior_mcc"] == 0.0  # a constant score below the threshold
    assert 0 < results["prior"]["exon"] < 1
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_bundled_slice_annotation_splice_sites_are_gt_ag(bundled_data):
    annotation = seg.read_annotation(bundled_data / "chr20_GRCh37_slice_exons.gtf.gz")
    genome = seg.read_genome(bundled_data / "chr20_GRCh37_slice.fa.gz", annotation.contigs())
    record = genome["20:30000001-32000000"]
    donors = annotation.intervals["20"]["splice_donor"]
    acceptors = annotation.intervals["20"]["splice_acceptor"]
    assert len(donors) == len(acceptors) == len(annotation.intervals["20"]["intron"]) > 1000
    complement = str.maketrans("ACGT", "TGCA")
    canonical = 0
    for (
        start,
        _,
    ) in donors:  # + strand: GT after the donor base; - strand: AC (GT reverse-complemented) before
        local = start - record.offset
        plus = record.sequence[local + 1 : local + 3] == "GT"
        minus = record.sequence[local - 2 : local].translate(complement)[::-1] == "GT"
        canonical += plus or minus
    assert canonical / len(donors) > 0.95
    shifted = sum(record.sequence[s - record.offset + 2 : s - record.offset + 4] == "GT" for s, _ in donors)
    assert shifted / len(donors) < 0.3  # the check fails when positions are off


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_adapters_train_backbone_adapters_and_whole_head(method):
    model = seg.load_segmentation_model("tiny", ("exon", "intron"))
    head_count = len(list(model.head.parameters()))
    wrapped = seg.wrap_for_method(model, method)
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    head = {name for name in trainable if ".head." in name}  # peft prefixes base_model.model.
    adapters = trainable - head
    assert adapters and all(("lora_" if method == "lora" else "ia3_") in name for name in adapters)
    assert all(".nt." in name for name in adapters)
    assert len(head) == head_count  # every head parameter is trained
    merged = wrapped.merge_and_unload()
    assert type(merged).__name__ == "NTForSegmentation"


def test_gencode_v19_gtf_classes_match_its_readme_counts(shared_data):
    """The shared GENCODE v19 excerpt (README: 6 protein-coding genes, 1 lincRNA, 20 exons, UTRs 5 five-prime /
    6 three-prime by position relative to the CDS, 9 real introns + a 2-bp exon gap in ENST00000544961.1)."""
    annotation = seg.read_annotation(shared_data / "annotation" / "gencode.v19.annotation.chr20.250k.gtf.gz")
    intervals = annotation.intervals["20"]
    counts = {
        name: len(intervals[name]) for name in ("protein_coding_gene", "lncRNA", "exon", "5UTR", "3UTR")
    }
    assert counts == {"protein_coding_gene": 6, "lncRNA": 1, "exon": 20, "5UTR": 5, "3UTR": 6}
    assert (
        len(intervals["intron"]) == 10 and (172887, 172889) in intervals["intron"]
    )  # the 2-bp gap, 1-based 172,888-9


def test_new_head_on_an_nt_backbone_folder_keeps_its_weights(tmp_path):
    from modeling_nt.loading import load_model
    from modeling_nt.modeling_nt import NTModel

    backbone = load_model("tiny", NTModel, seed=1)
    backbone.save_pretrained(tmp_path / "backbone")
    model = seg.load_segmentation_model(tmp_path / "backbone", ("exon", "3UTR"), loss="focal")
    assert model.config.features == ["exon", "3UTR"] and model.config.loss == "focal"
    for name, value in backbone.state_dict().items():
        assert torch.equal(model.nt.state_dict()[name], value), name
    model.save_pretrained(tmp_path / "seg")
    assert seg.load_segmentation_model(tmp_path / "seg").config.features == ["exon", "3UTR"]
    with pytest.raises(ValueError, match="predicts exon, 3UTR"):
        seg.load_segmentation_model(tmp_path / "seg", ("exon", "intron"))
