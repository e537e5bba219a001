"""Genome chunking (geometry, offsets, N rule, contig filters, held-out split), readers and the token stream."""

from __future__ import annotations

import gzip
import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pysam
import pytest

from modeling_nt.pretraining import (
    ChunkingConfig,
    GenomeMLMDataset,
    GenomeReader,
    GenomeSource,
    Region,
    normalize_genome_sequence,
    parse_region,
    token_unigram_baseline,
)
from modeling_nt.pretraining.genome import split_intervals
from tokenization import encode_batch

RNG = np.random.default_rng(0)
CONTIG_A = "".join(RNG.choice(list("ACGT"), size=1000))
CONTIG_B = (
    "".join(RNG.choice(list("ACGT"), size=130))
    + "N" * 200
    + "acgtRYKM" * 10
    + "".join(RNG.choice(list("ACGT"), size=290))
)
CHUNKING = ChunkingConfig(chunk_length=300, overlap=10, max_offset=20, min_length=50)


def _write_fasta(path: Path, records: dict[str, str], opener=open) -> Path:
    with opener(path, "wt") as handle:
        for name, sequence in records.items():
            handle.write(f">{name} description\n")
            handle.writelines(f"{sequence[i : i + 60]}\n" for i in range(0, len(sequence), 60))
    return path


@pytest.fixture(scope="module")
def genome_files(tmp_path_factory) -> dict[str, Path]:
    """The same genome as plain FASTA (unindexed), gzip (streamed), bgzip + index and plain + .fai."""
    folder = tmp_path_factory.mktemp("genome")
    records = {"chrA": CONTIG_A, "chrB": CONTIG_B, "chrM": CONTIG_A[:400]}
    plain = _write_fasta(folder / "plain.fa", records)
    indexed = _write_fasta(folder / "indexed.fa", records)
    pysam.faidx(str(indexed))
    bgzipped = folder / "bgzip.fa.gz"
    pysam.tabix_compress(str(plain), str(bgzipped))
    pysam.faidx(str(bgzipped))
    return {
        "plain": plain,
        "gzip": _write_fasta(folder / "plain.fa.gz", records, gzip.open),
        "bgzip": bgzipped,
        "indexed": indexed,
    }


def test_normalisation_uppercases_and_turns_non_acgt_into_n() -> None:
    assert normalize_genome_sequence("acgtNnRYKMswbdhv-.*X") == "ACGT" + "N" * 16


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("20", Region("20")),
        ("20:1-2000000", Region("20", 0, 2_000_000)),
        ("chr1:1,000,001-1,000,100", Region("chr1", 1_000_000, 1_000_100)),
        ("20:30000001-32000000:1800001-2000000", Region("20:30000001-32000000", 1_800_000, 2_000_000)),
    ],
)
def test_parse_region(text: str, region: Region) -> None:
    assert parse_region(text) == region


def test_parse_region_rejects_reversed_interval() -> None:
    with pytest.raises(ValueError, match="START-END"):
        parse_region("20:500-100")


def test_chunk_geometry_and_offset(genome_files) -> None:
    records = [
        r
        for r in GenomeReader(genome_files["indexed"], CHUNKING).records("train", offset=7)
        if r.contig == "chrA"
    ]
    # records of 300 + 2 * 10 bp every 300 bp after the offset; the 93 bp tail is kept (>= min_length 50)
    assert [(r.start, len(r.sequence)) for r in records] == [(7, 320), (307, 320), (607, 320), (907, 93)]
    assert all(r.sequence == CONTIG_A[r.start : r.start + len(r.sequence)] for r in records)
    assert records[0].name == "chrA:8-327"
    assert records[1].start - records[0].start == 300  # consecutive records share 2 * overlap = 20 bp
    short = GenomeReader(
        genome_files["indexed"], ChunkingConfig(chunk_length=300, overlap=10, min_length=100)
    )
    assert [r.start for r in short.records("train", offset=7) if r.contig == "chrA"] == [7, 307, 607]


def test_all_readers_give_the_same_records(genome_files) -> None:
    expected = list(GenomeReader(genome_files["indexed"], CHUNKING).records("train", offset=13))
    for kind in ("plain", "gzip", "bgzip"):
        assert list(GenomeReader(genome_files[kind], CHUNKING).records("train", offset=13)) == expected, kind


def test_n_rule_contig_filters_and_normalisation(genome_files) -> None:
    records = list(GenomeReader(genome_files["gzip"], CHUNKING).records("train"))
    assert {r.contig for r in records} == {"chrA", "chrB"}  # chrM is excluded by default
    chr_b = [r for r in records if r.contig == "chrB"]
    assert all(set(r.sequence) <= set("ACGTN") for r in chr_b)
    assert chr_b[1].start == 300
    assert chr_b[1].sequence[:38] == "N" * 30 + "ACGTNNNN"  # end of the N block, then acgtRYKM normalised
    filtered = ChunkingConfig(chunk_length=300, overlap=10, max_offset=0, min_length=50, max_n_fraction=0.5)
    kept = [r for r in GenomeReader(genome_files["gzip"], filtered).records("train") if r.contig == "chrB"]
    assert [r.start for r in kept] == [300, 600]  # the first record is 200/310 N: dropped
    only_m = ChunkingConfig(chunk_length=300, overlap=10, min_length=50, include=("chrM",), exclude=())
    assert {r.contig for r in GenomeReader(genome_files["plain"], only_m).records()} == {"chrM"}


def test_held_out_regions_split_train_and_validation(genome_files) -> None:
    held_out = (parse_region("chrA:401-700"), parse_region("chrB"))
    reader = GenomeReader(genome_files["gzip"], CHUNKING, held_out)
    train = list(reader.records("train", offset=0))
    validation = list(reader.records("validation"))
    assert [(r.contig, r.start, len(r.sequence)) for r in train] == [
        ("chrA", 0, 320),
        ("chrA", 300, 100),  # clipped at the held-out region
        ("chrA", 700, 300),
    ]
    assert [(r.contig, r.start, len(r.sequence)) for r in validation] == [
        ("chrA", 400, 300),
        ("chrB", 0, 320),
        ("chrB", 300, 320),
        ("chrB", 600, 100),
    ]
    assert split_intervals("c", None, [Region("c", 10, 20)], "train") == [(0, 10), (20, None)]


def test_stream_memory_does_not_grow_with_genome(bundled_data) -> None:
    """Streaming the 2 Mb plain-gzip slice holds about one record, never the whole contig."""
    reader = GenomeReader(bundled_data / "chr20_GRCh37_slice.fa.gz", ChunkingConfig(chunk_length=6000))
    tracemalloc.start()
    count = sum(1 for _ in reader.records("train", offset=150))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 334
    assert peak < 300_000, f"peak {peak} bytes while streaming a 2 Mb contig"


def test_dataset_tokens_offsets_and_determinism(genome_files) -> None:
    dataset = GenomeMLMDataset([GenomeSource(str(genome_files["gzip"]))], CHUNKING, max_tokens=40, seed=3)
    first = list(itertools.islice(dataset.records(), 24))
    again = list(itertools.islice(dataset.records(), 24))
    assert first == again
    per_pass = len([r for r in GenomeReader(genome_files["gzip"], CHUNKING).records("train", 0)])
    offsets = {first[0].start, first[per_pass].start, first[2 * per_pass].start}
    assert len(offsets) > 1 and all(0 <= offset < 20 for offset in offsets), "each pass draws a fresh offset"
    dataset.set_epoch(1)
    assert list(itertools.islice(dataset.records(), 24)) != first
    dataset.set_epoch(0)
    examples = list(itertools.islice(iter(dataset), 5))
    expected = encode_batch([r.sequence for r in first[:5]], "v2", max_length=40, truncation=True)
    for example, ids, mask in zip(examples, expected["input_ids"], expected["attention_mask"], strict=True):
        np.testing.assert_array_equal(example["input_ids"], ids[mask.astype(bool)])
    assert len({tuple(example["mask_seed"]) for example in examples}) == 5


def test_mixture_follows_sampling_weights(genome_files) -> None:
    sources = [
        GenomeSource(str(genome_files["gzip"]), weight=3.0),
        GenomeSource(str(genome_files["indexed"]), weight=1.0),
    ]
    dataset = GenomeMLMDataset(
        sources, ChunkingConfig(chunk_length=300, overlap=10, min_length=50, include=("chrA",))
    )
    draws = np.random.default_rng([dataset.seed, 0, 1]).choice(2, size=4000, p=dataset.weights)
    assert (draws == 0).mean() == pytest.approx(0.75, abs=0.03)
    assert len(list(itertools.islice(dataset.records(), 200))) == 200


def test_validation_stream_is_finite_and_shuffle_keeps_records(genome_files) -> None:
    validation = GenomeMLMDataset(
        [GenomeSource(str(genome_files["gzip"]))],
        CHUNKING,
        split="validation",
        held_out=["chrB"],
        max_tokens=80,
    )
    assert len(list(validation)) == 3
    shuffled = GenomeMLMDataset(
        [GenomeSource(str(genome_files["gzip"]))], CHUNKING, shuffle_buffer=8, max_tokens=80
    )
    plain = GenomeMLMDataset([GenomeSource(str(genome_files["gzip"]))], CHUNKING, max_tokens=80)
    take = [list(example["input_ids"]) for example in itertools.islice(iter(shuffled), 30)]
    ordered = [list(example["input_ids"]) for example in itertools.islice(iter(plain), 60)]
    assert take != ordered[:30]
    assert all(ids in ordered for ids in take)


def test_unigram_baseline_on_known_counts() -> None:
    records = [type("R", (), {"sequence": "AAAAAA" * 3 + "CCCCCC"})()]
    baseline = token_unigram_baseline(records, "v2", None)
    probabilities = np.array([0.75, 0.25])
    assert baseline["entropy_nats"] == pytest.approx(float(-(probabilities * np.log(probabilities)).sum()))
    assert baseline["accuracy"] == pytest.approx(0.75)
    assert baseline["tokens"] == 4


def test_real_chr20_indexed_reader_matches_pyfaidx(shared_data) -> None:
    import pyfaidx

    path = shared_data / "genomes" / "chr20_GRCh37.fa.gz"
    chunking = ChunkingConfig(max_n_fraction=0.0)
    records = itertools.islice(GenomeReader(path, chunking).records("train", offset=123), 3)
    fasta = pyfaidx.Fasta(str(path))
    for record in records:
        assert record.start >= 60_000  # the leading N block is dropped by the N rule
        assert record.sequence == str(fasta["20"][record.start : record.start + 6200]).upper()
