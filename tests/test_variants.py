"""Zero-shot variant scoring: VCF alleles, REF checks, contig names, windows, LLR sign, resume, real chr20 runs."""

from __future__ import annotations

import csv
import gzip
import math
import random
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch

from benchmarks.cli import main
from benchmarks.variants import (
    ReferenceGenome,
    ScoringOptions,
    VariantAllele,
    VariantScorer,
    build_window,
    evaluate_scores,
    load_scoring_model,
    plot_evaluation,
    read_variant_alleles,
    reverse_complement,
    score_vcf,
)
from modeling_nt import NTConfig, NTForMaskedLM, tokenizer_for
from tokenization import token_index_of_position, token_starts

pytestmark = pytest.mark.filterwarnings("ignore:--model 'tiny' is a preset")

CONTIG_LENGTH = 3000
SNV_POS = 1501  # 1-based
WINDOW = 120


def _random_dna(length: int, seed: int) -> str:
    generator = random.Random(seed)
    return "".join(generator.choice("ACGT") for _ in range(length))


@pytest.fixture(scope="module")
def contigs() -> dict[str, str]:
    base = _random_dna(CONTIG_LENGTH, seed=1)
    other = "C" if base[SNV_POS - 1] != "C" else "G"
    return {
        "chr1": base,
        # chr2 equals chr1 but carries the other allele at SNV_POS: a variant and its reverse, same context.
        "chr2": base[: SNV_POS - 1] + other + base[SNV_POS:],
        "chrN": _random_dna(300, seed=2) + "N" * 1000 + _random_dna(300, seed=3),
        "short": _random_dna(80, seed=4),
    }


@pytest.fixture(scope="module")
def fasta(tmp_path_factory: pytest.TempPathFactory, contigs: dict[str, str]) -> Path:
    path = tmp_path_factory.mktemp("genome") / "genome.fa"
    with path.open("w") as handle:
        for name, sequence in contigs.items():
            lines = "\n".join(sequence[i : i + 60] for i in range(0, len(sequence), 60))
            handle.write(f">{name}\n{lines}\n")
    pysam.faidx(str(path))
    return path


@pytest.fixture(scope="module")
def genome(fasta: Path):
    reference = ReferenceGenome(fasta)
    yield reference
    reference.close()


def _write_vcf(path: Path, records: list[tuple[str, int, str, str]], contigs: tuple[str, ...] = ()) -> Path:
    header = ["##fileformat=VCFv4.2", *(f"##contig=<ID={name}>" for name in contigs)]
    header.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    lines = [f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t." for chrom, pos, ref, alt in records]
    path.write_text("\n".join([*header, *lines]) + "\n")
    return path


def _allele(chrom: str, pos: int, ref: str, alt: str) -> VariantAllele:
    return VariantAllele(record=0, chrom=chrom, pos=pos, id=".", ref=ref, alt=alt)


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def tiny_model() -> tuple[NTForMaskedLM, object]:
    torch.manual_seed(0)
    config = NTConfig.from_preset("tiny")
    return NTForMaskedLM(config).eval(), tokenizer_for(config)


# ----------------------------------------------------------------------------- reading and contig names


def test_vcf_alleles_are_split_and_symbolic_ones_skipped(tmp_path: Path) -> None:
    vcf = _write_vcf(
        tmp_path / "in.vcf",
        [
            ("chr1", 10, "A", "C,G"),
            ("chr1", 20, "A", "<DEL>"),
            ("chr1", 30, "A", "*"),
            ("chr1", 40, "a", "AT"),
        ],
        contigs=("chr1",),
    )
    alleles = list(read_variant_alleles(vcf))
    assert [(a.record, a.pos, a.ref, a.alt) for a in alleles] == [
        (0, 10, "A", "C"),
        (0, 10, "A", "G"),
        (1, 20, "A", "<DEL>"),
        (2, 30, "A", "*"),
        (3, 40, "A", "AT"),
    ]
    assert [a.skip_reason is None for a in alleles] == [True, True, False, False, True]
    assert "symbolic" in alleles[2].skip_reason

    broken = tmp_path / "broken.vcf"
    broken.write_text(vcf.read_text() + "chr1\tabc\t.\tA\n")
    with pytest.raises(ValueError, match=r"broken.vcf: cannot read the record after record chr1:40"):
        list(read_variant_alleles(broken))


def test_contig_names_are_reconciled(genome: ReferenceGenome) -> None:
    assert genome.contig_for("chr1") == "chr1"
    assert genome.contig_for("1") == "chr1"
    assert genome.contig_for("chrshort") == "short"
    assert genome.contig_for("chr7") is None


def test_contig_absent_everywhere_is_reported(tmp_path: Path, fasta: Path, capsys) -> None:
    vcf = _write_vcf(tmp_path / "in.vcf", [("chr9", 100, "A", "C")], contigs=("chr9",))
    out = tmp_path / "o.tsv"
    code = main(
        ["score-variants", "--model", "tiny", "--fasta", str(fasta), "--vcf", str(vcf), "--out", str(out)]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "none of its contigs ['chr9']" in error and "chr1" in error


# ----------------------------------------------------------------------------- windows


def test_snv_window_is_centred(genome: ReferenceGenome, contigs: dict[str, str]) -> None:
    ref = contigs["chr1"][SNV_POS - 1]
    window = build_window(genome, _allele("1", SNV_POS, ref, "T" if ref != "T" else "A"), WINDOW)
    start = SNV_POS - 1 - (WINDOW - 1) // 2
    assert window.start == window.alt_start == start
    assert window.ref_seq == contigs["chr1"][start : start + WINDOW]
    assert window.ref_span == window.alt_span == (SNV_POS - 1 - start, SNV_POS - start)
    differences = [i for i, (a, b) in enumerate(zip(window.ref_seq, window.alt_seq, strict=True)) if a != b]
    assert differences == [window.ref_span[0]]


def test_deletion_and_insertion_keep_the_window_length(
    genome: ReferenceGenome, contigs: dict[str, str]
) -> None:
    sequence = contigs["chr1"]
    p = SNV_POS - 1
    deletion = build_window(genome, _allele("chr1", SNV_POS, sequence[p : p + 5], sequence[p]), WINDOW)
    assert deletion.start == p - (WINDOW - 5) // 2
    assert len(deletion.alt_seq) == WINDOW
    assert (
        deletion.alt_seq
        == sequence[deletion.start : p + 1] + sequence[p + 5 : p + 5 + WINDOW - (p + 1 - deletion.start)]
    )
    assert deletion.alt_span == (p - deletion.start, p - deletion.start + 1)

    insertion = build_window(genome, _allele("chr1", SNV_POS, sequence[p], sequence[p] + "GGGG"), WINDOW)
    assert len(insertion.alt_seq) == WINDOW
    assert insertion.alt_seq[: insertion.ref_span[0]] == insertion.ref_seq[: insertion.ref_span[0]]
    assert insertion.alt_seq[slice(*insertion.alt_span)] == sequence[p] + "GGGG"
    assert (
        insertion.alt_seq[insertion.alt_span[1] :] == sequence[p + 1 : p + 1 + WINDOW - insertion.alt_span[1]]
    )


def test_windows_shift_at_contig_ends(genome: ReferenceGenome, contigs: dict[str, str]) -> None:
    sequence = contigs["chr1"]
    near_start = build_window(genome, _allele("chr1", 3, sequence[2], "N"), WINDOW)
    assert near_start.start == 0 and near_start.ref_span == (2, 3)

    # A 3 bp deletion ending 2 bp before the contig end: the alternative window takes its missing bases left.
    p = CONTIG_LENGTH - 6
    near_end = build_window(genome, _allele("chr1", p + 1, sequence[p : p + 4], sequence[p]), WINDOW)
    assert near_end.start == CONTIG_LENGTH - WINDOW
    assert near_end.ref_seq == sequence[-WINDOW:]
    assert near_end.alt_start == near_end.start - 3
    assert near_end.alt_seq == sequence[near_end.alt_start : p + 1] + sequence[p + 4 :]
    assert len(near_end.alt_seq) == WINDOW

    whole = build_window(genome, _allele("short", 40, contigs["short"][39], "N"), WINDOW)
    assert whole.start == 0 and whole.ref_seq == contigs["short"]


def test_window_shrinks_to_fit_the_context_near_n_runs(genome: ReferenceGenome) -> None:
    window = build_window(
        genome, _allele("chrN", 290, genome.fetch("chrN", 289, 290), "A"), 1200, max_tokens=200
    )
    tokens = len(token_starts(window.ref_seq)) + 1
    assert 150 < tokens <= 200
    assert len(window.ref_seq) < 1200
    assert window.ref_seq[slice(*window.ref_span)] == genome.fetch("chrN", 289, 290)


def test_reverse_complement_mirrors_spans(genome: ReferenceGenome, contigs: dict[str, str]) -> None:
    assert reverse_complement("AACGTN") == "NACGTT"
    sequence = contigs["chr1"]
    window = build_window(genome, _allele("chr1", SNV_POS, sequence[SNV_POS - 1 : SNV_POS + 2], "A"), WINDOW)
    flipped = window.reverse_complement()
    assert flipped.ref_seq[slice(*flipped.ref_span)] == reverse_complement(
        sequence[SNV_POS - 1 : SNV_POS + 2]
    )
    assert flipped.alt_seq[slice(*flipped.alt_span)] == "T"


def test_real_chr20_windows(shared_data: Path) -> None:
    reference = ReferenceGenome(shared_data / "genomes" / "chr20_GRCh37.fa.gz")
    fasta = pysam.FastaFile(str(shared_data / "genomes" / "chr20_GRCh37.fa.gz"))
    snv = VariantAllele(record=3, chrom="chr20", pos=61098, id="rs6078030", ref="C", alt="T")
    window = build_window(reference, snv, 600)
    assert window.contig == "20" and window.start == 61097 - 299
    assert window.ref_seq == fasta.fetch("20", window.start, window.start + 600)
    assert window.ref_seq[299] == "C" and window.alt_seq == window.ref_seq[:299] + "T" + window.ref_seq[300:]

    deletion = VariantAllele(record=3, chrom="20", pos=1600125, id=".", ref="GAA", alt="G")
    assert reference.check_ref(deletion) is None
    window = build_window(reference, deletion, 600)
    p = 1600124
    assert window.start == p - 298
    assert window.alt_seq == fasta.fetch("20", window.start, p + 1) + fasta.fetch(
        "20", p + 3, p + 3 + 600 - 299
    )

    # 60 kb of telomeric N precede the first SNV of GoNL: the full-context window must shrink to 2048 tokens.
    first = VariantAllele(record=0, chrom="20", pos=60309, id=".", ref="G", alt="T")
    window = build_window(reference, first, 12282, max_tokens=2048)
    assert len(token_starts(window.ref_seq)) + 1 <= 2048 and "N" in window.ref_seq
    assert window.ref_seq[slice(*window.ref_span)] == "G"

    telomere = VariantAllele(record=0, chrom="20", pos=100, id=".", ref="N", alt="A")
    assert build_window(reference, telomere, 600).start == 0
    reference.close()


def test_rows_note_shifted_and_short_windows(tiny_model, fasta: Path, contigs, tmp_path: Path) -> None:
    model, tokenizer = tiny_model
    records = [("chr1", 3, contigs["chr1"][2], "N"), ("short", 40, contigs["short"][39], "N")]
    vcf = _write_vcf(tmp_path / "in.vcf", records, ("chr1", "short"))
    scorer = VariantScorer(model, tokenizer, ScoringOptions(scores=("l2",)), device="cpu")
    score_vcf(scorer, fasta, vcf, tmp_path / "o.tsv", window_bp=WINDOW, progress=False)
    shifted, short = _read_rows(tmp_path / "o.tsv")
    assert (shifted["note"], shifted["window_start"], shifted["window_end"]) == (
        "window shifted at the contig end",
        "1",
        str(WINDOW),
    )
    assert short["note"] == "window 80 bp: the contig is shorter" and short["window_end"] == "80"


# ----------------------------------------------------------------------------- REF mismatches


def test_ref_mismatch_stops_the_run_with_the_record(
    tmp_path: Path, fasta: Path, contigs: dict[str, str], capsys
) -> None:
    found = contigs["chr1"][99]
    wrong = "A" if found != "A" else "C"
    vcf = _write_vcf(
        tmp_path / "in.vcf", [("chr1", 50, contigs["chr1"][49], "G"), ("chr1", 100, wrong, "T")], ("chr1",)
    )
    out = tmp_path / "o.tsv"
    args = ["score-variants", "--model", "tiny", "--fasta", str(fasta), "--vcf", str(vcf), "--out", str(out)]
    assert main([*args, "--window", "60"]) == 2
    error = capsys.readouterr().err
    assert f"chr1:100: VCF REF '{wrong}' but the FASTA has '{found}'" in error
    assert not out.exists()

    assert main([*args, "--window", "60", "--ref-mismatch", "skip", "--scores", "llr"]) == 0
    rows = _read_rows(out)
    assert [row["status"] for row in rows] == ["scored", "skipped"]
    assert rows[1]["note"] == f"REF mismatch: expected {wrong}, found {found}" and rows[1]["llr"] == ""


# ----------------------------------------------------------------------------- scores


def test_llr_sign_follows_the_allele_the_model_prefers(
    tiny_model, fasta: Path, contigs: dict[str, str], tmp_path: Path
) -> None:
    model, tokenizer = tiny_model
    base, other = contigs["chr1"][SNV_POS - 1], contigs["chr2"][SNV_POS - 1]
    vcf = _write_vcf(
        tmp_path / "in.vcf",
        [
            ("chr1", SNV_POS, base, other),
            ("chr2", SNV_POS, other, base),
            ("chr1", SNV_POS, base, base + "AC"),
        ],
        ("chr1", "chr2"),
    )
    genome = ReferenceGenome(fasta)
    window = build_window(genome, _allele("chr1", SNV_POS, base, other), WINDOW)
    token = token_index_of_position(window.alt_seq, window.alt_span[0])
    favoured = tokenizer(window.alt_seq)["input_ids"][token]
    masked = tokenizer(window.ref_seq)["input_ids"]
    ref_token, masked[token] = masked[token], tokenizer.mask_token_id
    with torch.no_grad():
        model.lm_head.bias[favoured] += 8.0
        log_probs = torch.log_softmax(model(input_ids=torch.tensor([masked])).logits[0, token], dim=-1)
    expected = float(log_probs[favoured] - log_probs[ref_token])
    try:
        scorer = VariantScorer(model, tokenizer, ScoringOptions(scores=("llr",)), device="cpu")
        score_vcf(scorer, fasta, vcf, tmp_path / "o.tsv", window_bp=WINDOW, progress=False)
    finally:
        with torch.no_grad():
            model.lm_head.bias[favoured] -= 8.0
    forward, backward, insertion = _read_rows(tmp_path / "o.tsv")
    assert float(forward["llr"]) == pytest.approx(expected, abs=1e-4)
    assert float(forward["llr"]) > 5.0
    assert float(backward["llr"]) == pytest.approx(-float(forward["llr"]), abs=1e-4)
    assert insertion["llr"] == "nan" and "substitutions only" in insertion["note"]


def test_embedding_scores_and_reverse_complement_average(
    tiny_model, genome: ReferenceGenome, contigs
) -> None:
    model, tokenizer = tiny_model
    sequence = contigs["chr1"]
    windows = [
        build_window(genome, _allele("chr1", SNV_POS, sequence[SNV_POS - 1], "N"), WINDOW),
        build_window(genome, _allele("chr1", 700, sequence[699:703], sequence[699]), WINDOW),
    ]
    options = {"scores": ("cosine", "l2", "llr"), "layers": "all", "batch_size": 3}
    forward = VariantScorer(model, tokenizer, ScoringOptions(**options), device="cpu")
    both = VariantScorer(model, tokenizer, ScoringOptions(**options, reverse_complement=True), device="cpu")
    plain = forward.score(windows)
    flipped = forward.score([window.reverse_complement() for window in windows])
    averaged = both.score(windows)
    assert forward.columns[:3] == ["cosine_mean_L0", "cosine_mean_L1", "cosine_mean_L2"]
    for (one, _), (two, _), (mean, note) in zip(plain, flipped, averaged, strict=True):
        for column in forward.columns:
            assert mean[column] == pytest.approx((one[column] + two[column]) / 2, abs=1e-5, nan_ok=True)
        assert all(-1.0 <= one[f"cosine_{r}_L{layer}"] < 1.0 for r in ("mean", "local") for layer in range(3))
        assert one["l2_local_L2"] > one["l2_mean_L2"] > 0  # the change is concentrated around the allele
        assert math.isnan(mean["llr"]) and "substitutions only" in note  # to N, and a deletion


# ----------------------------------------------------------------------------- resume


def test_resume_skips_finished_rows_and_never_rewrites_them(
    tiny_model, fasta: Path, contigs, tmp_path: Path
) -> None:
    model, tokenizer = tiny_model
    sequence = contigs["chr1"]
    records = [
        ("chr1", pos, sequence[pos - 1], "T" if sequence[pos - 1] != "T" else "G")
        for pos in range(200, 2800, 200)
    ]
    vcf = _write_vcf(tmp_path / "in.vcf", records, ("chr1",))
    out = tmp_path / "o.tsv"
    scorer = VariantScorer(model, tokenizer, ScoringOptions(scores=("cosine", "llr")), device="cpu")
    first = score_vcf(scorer, fasta, vcf, out, window_bp=WINDOW, progress=False)
    assert (first.scored, first.already_done) == (len(records), 0)
    lines = out.read_text().splitlines(keepends=True)

    # A crash after 4 rows, in the middle of the 5th: the restart keeps the 4 rows byte for byte.
    kept = "".join(lines[:5])
    out.write_text(kept + lines[5][:10])
    second = score_vcf(scorer, fasta, vcf, out, window_bp=WINDOW, progress=False)
    assert (second.scored, second.already_done) == (len(records) - 4, 4)
    text = out.read_text()
    assert text.startswith(kept)
    rows = _read_rows(out)
    assert [int(row["pos"]) for row in rows] == [pos for _, pos, _, _ in records]
    assert [float(row["llr"]) for row in rows] == pytest.approx(
        [float(line.split("\t")[-1]) for line in lines[1:]], abs=1e-4
    )

    third = score_vcf(scorer, fasta, vcf, out, window_bp=WINDOW, progress=False)
    assert (third.scored, third.already_done) == (0, len(records))
    assert out.read_text() == text
    with pytest.raises(ValueError, match=f"--window: was {WINDOW}, now {WINDOW * 2}"):
        score_vcf(scorer, fasta, vcf, out, window_bp=WINDOW * 2, progress=False)


# ----------------------------------------------------------------------------- real chr20 VCFs


def test_real_chr20_vcfs_with_the_tiny_model(shared_data: Path, tmp_path: Path, capsys) -> None:
    reference = shared_data / "genomes" / "chr20_GRCh37.fa.gz"
    variants = shared_data / "variants"
    common = ["--model", "tiny", "--fasta", str(reference), "--window", "600", "--batch-size", "32"]

    snv_out = tmp_path / "gonl.tsv"
    labels = tmp_path / "labels.tsv"
    with gzip.open(variants / "gonl.chr20.release4.gtc.vcf.gz", "rt") as handle:
        records = [line.split("\t") for line in handle if not line.startswith("#")]
    # Binary label: the allele is common (AC >= 20), the kind of grouping zero-shot scores are evaluated on.
    labels.write_text(
        "chrom\tpos\tref\talt\tlabel\n"
        + "".join(
            f"chr{r[0]}\t{r[1]}\t{r[3]}\t{r[4]}\t{int(int(r[7].split(';')[0][3:]) >= 20)}\n" for r in records
        )
    )
    args = [
        "score-variants",
        *common,
        "--vcf",
        str(variants / "gonl.chr20.release4.gtc.vcf.gz"),
        "--out",
        str(snv_out),
    ]
    vcf_out = tmp_path / "gonl.scored.vcf.gz"
    assert (
        main(
            [
                *args,
                "--layers",
                "all",
                "--reverse-complement",
                "--labels",
                str(labels),
                "--vcf-out",
                str(vcf_out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "7 alleles scored, 0 skipped" in printed
    rows = _read_rows(snv_out)
    assert all(row["status"] == "scored" and np.isfinite(float(row["llr"])) for row in rows)
    evaluation = evaluate_scores(snv_out, labels)
    assert set(evaluation["metric"]) == {"auroc"} and (evaluation["n"] == 7).all()
    assert evaluation["value"].between(0, 1).all() and len(evaluation) == 4 * 2 * 3 + 1
    assert (tmp_path / "gonl.eval.png").stat().st_size > 1000
    assert (tmp_path / "gonl.eval.tsv").is_file()
    counts = tmp_path / "counts.csv"
    counts.write_text("id,AC\n" + "".join(f"{r[2]},{r[7].split(';')[0][3:]}\n" for r in records))
    by_id = evaluate_scores(snv_out, counts, label_column="AC")  # only rs6078030 has an ID: too few for rho
    assert by_id["n"].eq(1).all() and by_id["value"].isna().all()
    continuous = labels.with_name("ac.tsv")
    continuous.write_text(
        "chrom\tpos\tref\talt\tAC\n"
        + "".join(f"{r[0]}\t{r[1]}\t{r[3]}\t{r[4]}\t{r[7].split(';')[0][3:]}\n" for r in records)
    )
    spearman = evaluate_scores(snv_out, continuous, label_column="AC")
    assert set(spearman["metric"]) == {"spearman"} and spearman["value"].between(-1, 1).all()
    assert plot_evaluation(spearman, tmp_path / "ac.png").stat().st_size > 1000
    with pysam.VariantFile(str(vcf_out)) as scored:
        llrs = [record.info["NT_LLR"][0] for record in scored]
    assert llrs == pytest.approx([float(row["llr"]) for row in rows], abs=1e-5)

    for name in ("vt_normalize_chr20_indels.in.vcf.gz", "vt_normalize_chr20_indels.out.vcf.gz"):
        out = tmp_path / f"{name}.tsv"
        scores = ["--scores", "cosine,l2,llr", "--vcf", str(variants / name), "--out", str(out)]
        assert main(["score-variants", *common, *scores, "--window", "300"]) == 0  # the last --window wins
        rows = _read_rows(out)
        assert len(rows) == 194 and all(row["status"] == "scored" for row in rows)
        assert all(row["llr"] == "nan" for row in rows)  # indels only
        assert all(float(row["l2_local_L2"]) > 0 for row in rows)
    assert "194 alleles scored" in capsys.readouterr().out


def test_model_from_directory_or_preset(tiny_model, tmp_path: Path, announces_random_weights) -> None:
    model, _ = tiny_model
    model.save_pretrained(tmp_path / "checkpoint")
    loaded, tokenizer = load_scoring_model(tmp_path / "checkpoint")
    assert (
        torch.equal(loaded.lm_head.decoder.weight, model.lm_head.decoder.weight)
        and tokenizer.model_max_length == 2048
    )
    with announces_random_weights():
        load_scoring_model("tiny")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_scoring_model("nope")
