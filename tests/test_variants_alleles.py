"""Variant scoring handles every allele it is given: skipped alleles in any batch, '-' alleles left-anchored,
label files with the usual column names and every label accounted for, progress lines in a log.

Coordinates: the bundled slice ``data/chr20_GRCh37_slice.fa.gz`` starts at GRCh37 20:30,000,001; its first
6,000 bp are written here as contig ``20s`` whose position 1 is GRCh37 20:30,000,001 (slice coordinates).
Its first bases: ``1 AAATAAGGCTTGGAAATTTT 20``.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pysam
import pytest
import torch

from benchmarks.variants import (
    LabelMatch,
    ReferenceGenome,
    ScoringOptions,
    VariantAllele,
    VariantScorer,
    evaluate_scores,
    left_anchor,
    read_labels,
    read_variant_alleles,
    score_vcf,
    write_scored_vcf,
)
from benchmarks.variants import runner as runner_module
from modeling_nt import NTConfig, NTForMaskedLM, tokenizer_for

SLICE_BP = 6000
SLICE_START = 30_000_001  # GRCh37 position of slice position 1
WINDOW = 60


def _write_vcf(path: Path, records: list[tuple], contig: str = "20s") -> Path:
    """Records ``(pos, ref, alt)`` or ``(pos, ref, alt, id)`` on ``contig``."""
    lines = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={contig}>",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for pos, ref, alt, *rest in records:
        lines.append(f"{contig}\t{pos}\t{rest[0] if rest else '.'}\t{ref}\t{alt}\t.\tPASS\t.")
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def slice_seq(bundled_data: Path) -> str:
    with gzip.open(bundled_data / "chr20_GRCh37_slice.fa.gz", "rt") as handle:
        assert next(handle).startswith(">20:30000001-32000000")
        bases: list[str] = []
        while sum(map(len, bases)) < SLICE_BP:
            bases.append(next(handle).strip())
    return "".join(bases)[:SLICE_BP]


@pytest.fixture(scope="module")
def fasta(tmp_path_factory: pytest.TempPathFactory, slice_seq: str) -> Path:
    path = tmp_path_factory.mktemp("slice") / "slice.fa"
    path.write_text(">20s\n" + "\n".join(slice_seq[i : i + 60] for i in range(0, SLICE_BP, 60)) + "\n")
    pysam.faidx(str(path))
    return path


@pytest.fixture(scope="module")
def genome(fasta: Path):
    reference = ReferenceGenome(fasta)
    yield reference
    reference.close()


@pytest.fixture(scope="module")
def scorer() -> VariantScorer:
    torch.manual_seed(0)
    config = NTConfig.from_preset("tiny")
    options = ScoringOptions(scores=("cosine", "l2", "llr"), layers="all", batch_size=2)
    return VariantScorer(NTForMaskedLM(config).eval(), tokenizer_for(config), options, device="cpu")


# ----------------------------------------------------------------------------- '-' alleles


# (input POS, REF, ALT) -> hand-made VCF form on the slice: 1 AAATAAGGCTTGG 13
ANCHORED = [
    ((9, "C", "-"), (8, "GC", "G")),  # deletion of the C at 9; the G at 8 anchors it
    ((13, "-", "T"), (12, "G", "GT")),  # T inserted between 12 and 13
    ((4, "TA", "-"), (3, "ATA", "A")),  # two-base deletion
    ((13, "-", "CAT"), (12, "G", "GCAT")),
    ((1, "A", "-"), (1, "AA", "A")),  # no base before POS 1: the base after the allele anchors it
    ((1, "-", "G"), (1, "A", "GA")),
]


@pytest.mark.parametrize(("given", "expected"), ANCHORED)
def test_left_anchor_matches_hand_made_vcf_form(
    genome: ReferenceGenome, slice_seq: str, given, expected
) -> None:
    assert slice_seq[:13] == "AAATAAGGCTTGG"  # what the expected forms were written from
    pos, ref, alt = given
    allele = left_anchor(VariantAllele(0, "20s", pos, ".", ref, alt, skip_reason="x"), genome)
    assert (allele.pos, allele.ref, allele.alt) == expected
    assert allele.anchored_from == f"{pos} {ref}/{alt}" and allele.skip_reason is None


def test_left_anchor_leaves_other_alleles_alone(genome: ReferenceGenome) -> None:
    for allele in [
        VariantAllele(0, "20s", 9, ".", "C", "T"),  # no '-'
        VariantAllele(0, "20s", 9, ".", "-", "-", skip_reason="both empty"),
        VariantAllele(0, "20s", SLICE_BP + 5, ".", "A", "-", skip_reason="not left-anchored"),  # past the end
        # contig not in the FASTA:
        VariantAllele(0, "chr7", 9, ".", "C", "-", skip_reason="not left-anchored"),
    ]:
        assert left_anchor(allele, genome) is allele


def test_an_anchored_alt_equal_to_another_alt_of_its_record_is_skipped(
    genome: ReferenceGenome, scorer: VariantScorer, tmp_path: Path
) -> None:
    """20s:9 C -> -,G: the deletion anchors to 8 GC/G, whose ALT G would name the SNV's row too."""
    vcf = _write_vcf(tmp_path / "in.vcf", [(9, "C", "-,G"), (9, "C", "-,T")])
    alleles = list(read_variant_alleles(vcf, genome))
    assert [(a.record, a.pos, a.ref, a.alt, a.skip_reason) for a in alleles] == [
        (0, 9, "C", "-", "left-anchored ALT 'G' is also another ALT of the record"),  # kept as given
        (0, 9, "C", "G", None),
        (1, 8, "GC", "G", None),
        (1, 9, "C", "T", None),
    ]
    out = tmp_path / "o.tsv"
    score_vcf(scorer, genome.path, vcf, out, window_bp=WINDOW, progress=False)
    rows = _rows(out)
    assert [row["status"] for row in rows] == ["skipped", "scored", "scored", "scored"]
    with pysam.VariantFile(str(write_scored_vcf(vcf, out, tmp_path / "o.vcf", genome.path))) as records:
        values = [record.info["NT_L2_LOCAL_L2"] for record in records]
    l2 = [float(row["l2_local_L2"]) if row["l2_local_L2"] else None for row in rows]
    assert values[0][0] is None and values[0][1] == pytest.approx(l2[1], rel=1e-5)  # not the SNV's score
    assert list(values[1]) == pytest.approx(l2[2:], rel=1e-5)


def test_real_grch37_positions_of_the_hand_made_alleles(shared_data: Path) -> None:
    """The slice coordinates above are GRCh37 20:30,000,000 + POS: the anchored REFs are on the real chr20."""
    reference = ReferenceGenome(shared_data / "genomes" / "chr20_GRCh37.fa.gz")
    try:
        for (pos, ref, alt), (anchored_pos, anchored_ref, anchored_alt) in ANCHORED[:4]:
            real = VariantAllele(0, "chr20", SLICE_START - 1 + pos, ".", ref, alt)
            allele = left_anchor(real, reference)
            assert (allele.pos, allele.ref, allele.alt) == (
                SLICE_START - 1 + anchored_pos,
                anchored_ref,
                anchored_alt,
            )
            assert reference.check_ref(allele) is None
    finally:
        reference.close()


def test_real_normalised_indels_round_trip_through_the_dash_form(shared_data: Path, tmp_path: Path) -> None:
    """The 194 left-aligned, anchored indels of vt's normalisation output, written as an export writes them
    (anchor base dropped, POS + 1, empty side '-'), are anchored back to exactly the vt records."""
    vt = shared_data / "variants" / "vt_normalize_chr20_indels.out.vcf.gz"
    reference = ReferenceGenome(shared_data / "genomes" / "chr20_GRCh37.fa.gz")
    try:
        expected = [(a.pos, a.ref, a.alt) for a in read_variant_alleles(vt)]
        dash = [(pos + 1, ref[1:] or "-", alt[1:] or "-") for pos, ref, alt in expected]
        dash_vcf = _write_vcf(tmp_path / "dash.vcf", dash, contig="20")
        anchored = list(read_variant_alleles(dash_vcf, reference))
    finally:
        reference.close()
    assert len(expected) == 194 and sum(ref == "-" for _, ref, _ in dash) == 89  # 89 insertions
    assert [(a.pos, a.ref, a.alt) for a in anchored] == expected
    assert all(a.skip_reason is None and a.anchored_from for a in anchored)


def test_dash_alleles_score_as_their_anchored_vcf_records(
    scorer: VariantScorer, fasta: Path, tmp_path: Path
) -> None:
    dash = _write_vcf(tmp_path / "dash.vcf", [given for given, _ in ANCHORED])
    anchored = _write_vcf(tmp_path / "anchored.vcf", [expected for _, expected in ANCHORED])
    dash_out, anchored_out = tmp_path / "dash.tsv", tmp_path / "anchored.tsv"
    score_vcf(scorer, fasta, dash, dash_out, window_bp=WINDOW, progress=False)
    score_vcf(scorer, fasta, anchored, anchored_out, window_bp=WINDOW, progress=False)
    dash_rows, anchored_rows = _rows(dash_out), _rows(anchored_out)
    assert [(r["pos"], r["ref"], r["alt"]) for r in dash_rows] == [
        (str(p), ref, alt) for _, (p, ref, alt) in ANCHORED
    ]
    assert dash_rows[0]["note"].startswith("left-anchored from 20s:9 C/-")
    score_columns = [c for c in dash_rows[0] if c not in runner_module.BASE_COLUMNS]
    assert len(score_columns) == 2 * 2 * 3 + 1  # cosine, l2 x mean, local x layers 0..2, llr
    for ours, theirs in zip(dash_rows, anchored_rows, strict=True):
        assert ours["status"] == theirs["status"] == "scored"
        assert [ours[c] for c in score_columns] == [theirs[c] for c in score_columns]
        assert ours["llr"] == "nan" and float(ours["l2_local_L2"]) > 0  # indels: no LLR, a real distance

    scored_vcf = write_scored_vcf(dash, dash_out, tmp_path / "dash.scored.vcf", fasta)
    with pysam.VariantFile(str(scored_vcf)) as records:
        values = [record.info["NT_L2_LOCAL_L2"][0] for record in records]
    assert values == pytest.approx([float(row["l2_local_L2"]) for row in dash_rows], rel=1e-5)


# ----------------------------------------------------------------------------- skipped alleles in any batch


def _mismatch(slice_seq: str, pos: int) -> str:
    return "A" if slice_seq[pos - 1] != "A" else "C"


SKIPPED = [  # (REF, ALT, words of the reason); REF None: a base that differs from the slice
    ("T", "<DEL>", "symbolic or breakend ALT '<DEL>'"),
    ("T", "*", "spanning-deletion ALT '*'"),
    (None, "G", "REF mismatch: expected"),
    ("-", "-", "both empty"),
]


@pytest.mark.parametrize(("ref", "alt", "reason"), SKIPPED)
def test_a_vcf_of_one_skipped_record_gives_its_row(
    run_nt, fasta: Path, slice_seq: str, tmp_path: Path, ref, alt, reason
) -> None:
    pos = 100
    ref = ref if ref is not None else _mismatch(slice_seq, pos)
    if ref == "T":
        assert slice_seq[pos - 1] == "T"
    vcf = _write_vcf(tmp_path / "one.vcf", [(pos, ref, alt)])
    out = tmp_path / "one.tsv"
    result = run_nt(
        "score-variants", "--model", "tiny", "--fasta", fasta, "--vcf", vcf, "--out", out,
        "--window", WINDOW, "--ref-mismatch", "skip", "--scores", "l2",
    )  # fmt: skip
    assert result.code == 0 and "Traceback" not in result.err, result.err
    assert "0 alleles scored, 1 skipped" in result.out
    (row,) = _rows(out)
    assert (row["pos"], row["ref"], row["alt"], row["status"]) == (str(pos), ref, alt, "skipped")
    assert reason in row["note"] and row["l2_local_L2"] == ""


def test_pos_beyond_the_contig_end_is_a_skipped_row_under_skip(run_nt, fasta: Path, tmp_path: Path) -> None:
    vcf = _write_vcf(tmp_path / "end.vcf", [(SLICE_BP + 1, "A", "C")])
    out = tmp_path / "end.tsv"
    result = run_nt(
        "score-variants", "--model", "tiny", "--fasta", fasta, "--vcf", vcf, "--out", out,
        "--window", WINDOW, "--ref-mismatch", "skip",
    )  # fmt: skip
    assert result.code == 0, result.err
    (row,) = _rows(out)
    assert row["status"] == "skipped" and row["note"] == f"POS beyond the end of the contig ({SLICE_BP} bp)"


def test_all_skipped_batches_keep_every_row_in_order(
    run_nt, fasta: Path, slice_seq: str, tmp_path: Path, monkeypatch
) -> None:
    """Chunks of 4 alleles (--batch-size 1): all skipped first, mixed, all skipped, then scored only."""
    monkeypatch.setattr(runner_module, "CHUNK_ALLELES", 4)
    kinds = "SSSS" + "oSoS" + "SSSS" + "oo"
    records = []
    for index, kind in enumerate(kinds):
        pos = 200 + 10 * index
        base = slice_seq[pos - 1]
        other = "C" if base != "C" else "G"
        records.append((pos, base, other if kind == "o" else ["<DEL>", "*"][index % 2]))
    vcf = _write_vcf(tmp_path / "batches.vcf", records)
    out = tmp_path / "batches.tsv"
    argv = ["score-variants", "--model", "tiny", "--fasta", fasta, "--vcf", vcf, "--out", out]
    result = run_nt(*argv, "--window", WINDOW, "--batch-size", 1, "--scores", "llr")
    assert result.code == 0, result.err
    assert f"{kinds.count('o')} alleles scored, {kinds.count('S')} skipped, 0 already done" in result.out
    rows = _rows(out)
    assert [(int(r["record"]), int(r["pos"]), r["alt"]) for r in rows] == [
        (index, pos, alt) for index, (pos, _, alt) in enumerate(records)
    ]
    assert "".join("o" if r["status"] == "scored" else "S" for r in rows) == kinds
    assert all(r["llr"] not in ("", "nan") for r in rows if r["status"] == "scored")
    text = out.read_text()
    again = run_nt(*argv, "--window", WINDOW, "--batch-size", 1, "--scores", "llr")
    assert again.code == 0 and f"0 alleles scored, 0 skipped, {len(kinds)} already done" in again.out
    assert out.read_text() == text


def test_scorer_given_no_windows_returns_no_scores(scorer: VariantScorer) -> None:
    assert scorer.score([]) == []


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "header",
    [
        "chrom,pos,ref,alt,label",
        "Chrom,Pos,Ref,Alt,label",
        "CHROM,POS,REF,ALT,Label",
        "#CHROM\tPOS\tREF\tALT\tlabel",
        "chromosome,position,reference,alternate,label",
        "Chromosome,PositionVCF,ReferenceAlleleVCF,AlternateAlleleVCF,label",
    ],
)
def test_labels_accept_the_usual_column_names(tmp_path: Path, header: str) -> None:
    sep = "\t" if "\t" in header else ","
    path = tmp_path / "labels.txt"
    path.write_text(header + "\n" + sep.join(["chr20", "30000009", "c", "t", "1"]) + "\n")
    labels = read_labels(path)
    assert labels.to_dict("records") == [{"chrom": "20", "pos": 30000009, "ref": "C", "alt": "T", "label": 1}]


def test_clinvar_vcf_columns_win_over_its_hgvs_style_ones(tmp_path: Path) -> None:
    path = tmp_path / "clinvar.tsv"
    path.write_text(
        "Chromosome\tStart\tReferenceAllele\tAlternateAllele\tPositionVCF\tReferenceAlleleVCF\t"
        "AlternateAlleleVCF\tlabel\n20\t30000009\tC\t-\t30000008\tGC\tG\t1\n"
    )
    assert read_labels(path)[["pos", "ref", "alt"]].to_dict("records") == [
        {"pos": 30000008, "ref": "GC", "alt": "G"}
    ]


def test_every_label_is_accounted_for(run_nt, fasta: Path, slice_seq: str, tmp_path: Path) -> None:
    snvs = [(pos, slice_seq[pos - 1], "C" if slice_seq[pos - 1] != "C" else "G") for pos in (300, 400, 500)]
    vcf = _write_vcf(tmp_path / "in.vcf", [*snvs, (600, slice_seq[599], "<INS>"), (9, "C", "-")])
    labels = tmp_path / "mpra.csv"
    labels.write_text(
        "Chrom,Pos,Ref,Alt,Value\n"
        + "".join(f"chr20s,{pos},{ref},{alt},{0.5 * i}\n" for i, (pos, ref, alt) in enumerate(snvs))
        + f"20s,600,{slice_seq[599]},<INS>,2.0\n"  # a skipped allele
        + "20s,9,C,-,3.0\n"  # matches the anchored deletion 8 GC/G
        + "20s,700,A,G,4.0\n20s,701,A,-,5.0\n"  # not in the VCF
    )
    out = tmp_path / "o.tsv"
    argv = ["score-variants", "--model", "tiny", "--fasta", fasta, "--vcf", vcf, "--out", out]
    result = run_nt(
        *argv, "--window", WINDOW, "--scores", "l2", "--labels", labels, "--label-column", "value"
    )
    assert result.code == 0, result.err
    before = slice_seq[699]  # the base at 700 anchors the deletion 701 A/-
    expected = (
        f"{labels}: 7 labelled variants: 4 matched a scored allele, 1 a skipped allele, "
        f"2 no allele of the VCF (e.g. 20s:700 A>G, 20s:700 {before}A>{before})"
    )
    assert f"labels {expected}" in result.out, result.out
    saved = json.loads(out.with_name("o.eval.json").read_text())
    assert (saved["labels"], saved["scored"], saved["skipped"], saved["unmatched"]) == (7, 4, 1, 2)
    evaluation = evaluate_scores(out, labels, "Value", fasta)
    assert (evaluation["n"] == 4).all() and set(evaluation["metric"]) == {"spearman"}
    match = evaluation.attrs["label_match"]
    assert isinstance(match, LabelMatch) and str(match) == expected


def test_labels_without_the_reference_do_not_match_dash_alleles(fasta: Path, tmp_path: Path) -> None:
    vcf = _write_vcf(tmp_path / "in.vcf", [(9, "C", "-"), (13, "-", "T")])
    alleles = list(read_variant_alleles(vcf))
    assert all("not left-anchored" in allele.skip_reason for allele in alleles)  # no FASTA: said, not hidden


# ----------------------------------------------------------------------------- progress


def test_progress_lines_go_to_a_redirected_stderr(
    run_nt, fasta: Path, slice_seq: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("NT_PROGRESS_INTERVAL", "0")
    snvs = [(pos, slice_seq[pos - 1], "N") for pos in (300, 400, 500)]
    vcf = _write_vcf(tmp_path / "in.vcf", snvs)
    out = tmp_path / "o.tsv"
    result = run_nt(
        "score-variants", "--model", "tiny", "--fasta", fasta, "--vcf", vcf, "--out", out,
        "--window", WINDOW, "--scores", "l2",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "score-variants: 3/3 alleles (100%)" in result.err
