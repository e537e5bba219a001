"""A synthetic genome with a matching GTF (and a small VCF) in which the element classes differ in composition,
so that raw 6-mer counts, and the embeddings of even a tiny model, separate them. For tests and demos.

Each gene, on a random strand, is laid out in transcript orientation as
``promoter | 5UTR + CDS | intron | CDS | intron | CDS + 3UTR`` (three exons), between intergenic stretches; a
minus-strand gene is written reverse-complemented. Each non-coding class is a random concatenation of a few
class-specific "words" (4-8 bp) with 10% of the bases redrawn, at a class GC content (intergenic 30%, 3'UTR
38%, intron 45%, 5'UTR 65%, promoter 75%); coding exons are drawn as codons from a small codon set. The classes
thus differ in their k-mer vocabulary as well as in their GC content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.variants.alleles import reverse_complement

from .annotation import DEFAULT_PROMOTER_BP

_GC = {"intergenic": 0.30, "3UTR": 0.38, "intron": 0.45, "5UTR": 0.65, "promoter": 0.75}
_CODONS = ("GCC", "GAG", "AAG", "CTG", "GTG", "ATC", "ACC", "GGC", "CGC", "TTC", "AAC", "CAG")


@dataclass
class SyntheticGenome:
    """Paths of the generated files."""

    fasta: Path
    gtf: Path
    vcf: Path


@dataclass
class GeneLayout:
    """Lengths (bp) of the parts of each synthetic gene; ``promoter`` should equal the ``promoter_bp`` the
    annotation is read with (both default to :data:`~benchmarks.analysis.annotation.DEFAULT_PROMOTER_BP`)."""

    intergenic: int = 800
    promoter: int = DEFAULT_PROMOTER_BP
    utr5: int = 200
    cds_exon: int = 240
    intron: int = 400
    utr3: int = 300


def _composition(rng: np.random.Generator, length: int, gc: float) -> str:
    probabilities = [(1 - gc) / 2, (1 - gc) / 2, gc / 2, gc / 2]
    return "".join(rng.choice(list("ATCG"), size=length, p=probabilities))


def _words(rng: np.random.Generator, length: int, words: list[str], gc: float, mutation_rate: float) -> str:
    """Random concatenation of ``words`` with a share ``mutation_rate`` of bases redrawn at GC content ``gc``."""
    text = np.array(list("".join(rng.choice(words, size=length // 4 + 1))[:length]))
    mutated = rng.random(length) < mutation_rate
    text[mutated] = list(_composition(rng, int(mutated.sum()), gc))
    return "".join(text)


def _codons(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(_CODONS, size=-(-length // 3)))[:length]


class _ClassSequences:
    """Draws sequence of each class from its own word vocabulary."""

    def __init__(self, rng: np.random.Generator, n_words: int = 6, mutation_rate: float = 0.1) -> None:
        self.rng, self.mutation_rate = rng, mutation_rate
        self.words = {
            name: [_composition(rng, int(rng.integers(4, 9)), gc) for _ in range(n_words)]
            for name, gc in _GC.items()
        }

    def __call__(self, name: str, length: int) -> str:
        if name == "CDS":
            return _codons(self.rng, length)
        return _words(self.rng, length, self.words[name], _GC[name], self.mutation_rate)


def _gene(draw: _ClassSequences, layout: GeneLayout) -> tuple[str, list[tuple[str, int, int]]]:
    """Sequence (transcript orientation, promoter first) and its parts ``(kind, start, end)``."""
    parts = [
        ("promoter", draw("promoter", layout.promoter)),
        ("5UTR", draw("5UTR", layout.utr5)),
        ("CDS", draw("CDS", layout.cds_exon)),
        ("intron", draw("intron", layout.intron)),
        ("CDS", draw("CDS", layout.cds_exon)),
        ("intron", draw("intron", layout.intron)),
        ("CDS", draw("CDS", layout.cds_exon)),
        ("3UTR", draw("3UTR", layout.utr3)),
    ]
    spans, position = [], 0
    for kind, sequence in parts:
        spans.append((kind, position, position + len(sequence)))
        position += len(sequence)
    return "".join(sequence for _, sequence in parts), spans


def _exons(spans: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """Exon intervals: maximal runs of non-intron transcript parts."""
    exons: list[list[int]] = []
    for kind, start, end in spans:
        if kind == "intron":
            continue
        if exons and exons[-1][1] == start:
            exons[-1][1] = end
        else:
            exons.append([start, end])
    return [(start, end) for start, end in exons]


def _gtf_lines(chrom: str, gene: int, strand: str, offset: int, length: int, spans: list) -> list[str]:
    """GTF lines of one gene whose sequence (``length`` bp) starts at ``offset`` on the chromosome."""

    def genomic(start: int, end: int) -> tuple[int, int]:
        lo, hi = (start, end) if strand == "+" else (length - end, length - start)
        return offset + lo + 1, offset + hi

    attributes = f'gene_id "g{gene}"; transcript_id "t{gene}";'
    exons = _exons(spans)
    lines = [(*genomic(exons[0][0], exons[-1][1]), "transcript")]
    lines += [(*genomic(start, end), "exon") for start, end in exons]
    lines += [(*genomic(start, end), "CDS") for kind, start, end in spans if kind == "CDS"]
    return [
        f"{chrom}\tsynthetic\t{feature}\t{lo}\t{hi}\t.\t{strand}\t.\t{attributes}"
        for lo, hi, feature in lines
    ]


def make_synthetic_genome(
    out_dir: str | Path,
    n_genes: int = 12,
    n_chromosomes: int = 2,
    seed: int = 0,
    layout: GeneLayout | None = None,
) -> SyntheticGenome:
    """Write ``genome.fa`` (+ ``.fai``), ``genes.gtf`` and ``variants.vcf`` (one SNV in every coding exon)
    into ``out_dir``; genes are spread over ``n_chromosomes`` contigs ``chr1``, ``chr2``, ..."""
    import pysam

    layout = layout or GeneLayout()
    rng = np.random.default_rng(seed)
    draw = _ClassSequences(rng)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, gtf, variants = [], [], []
    for chrom_index in range(n_chromosomes):
        chrom, pieces, offset = f"chr{chrom_index + 1}", [], 0
        for gene in range(chrom_index, n_genes, n_chromosomes):
            intergenic = draw("intergenic", layout.intergenic)
            sequence, spans = _gene(draw, layout)
            strand = "+" if rng.random() < 0.5 else "-"
            if strand == "-":
                sequence = reverse_complement(sequence)
            start = offset + len(intergenic) + (layout.promoter if strand == "+" else 0)
            transcript_spans = [(kind, s - layout.promoter, e - layout.promoter) for kind, s, e in spans[1:]]
            transcript_length = len(sequence) - layout.promoter
            gtf += _gtf_lines(chrom, gene, strand, start, transcript_length, transcript_spans)
            pieces += [intergenic, sequence]
            offset += len(intergenic) + len(sequence)
        pieces.append(draw("intergenic", layout.intergenic))
        chromosome = "".join(pieces)
        records.append((chrom, chromosome))
        variants += _snvs(rng, chrom, chromosome, [line for line in gtf if line.startswith(f"{chrom}\t")])
    paths = SyntheticGenome(out_dir / "genome.fa", out_dir / "genes.gtf", out_dir / "variants.vcf")
    paths.fasta.write_text("".join(f">{name}\n{_wrapped(sequence)}" for name, sequence in records))
    pysam.faidx(str(paths.fasta))
    paths.gtf.write_text("\n".join(gtf) + "\n")
    contigs = "".join(f"##contig=<ID={name},length={len(sequence)}>\n" for name, sequence in records)
    header = "##fileformat=VCFv4.2\n" + contigs + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    paths.vcf.write_text(header + "".join(variants))
    return paths


def _snvs(rng: np.random.Generator, chrom: str, sequence: str, gtf_lines: list[str]) -> list[str]:
    """One SNV (VCF line) in the middle of every CDS part."""
    lines = []
    for line in gtf_lines:
        columns = line.split("\t")
        if columns[2] != "CDS":
            continue
        position = (int(columns[3]) + int(columns[4])) // 2
        ref = sequence[position - 1]
        alt = rng.choice([base for base in "ACGT" if base != ref])
        lines.append((position, f"{chrom}\t{position}\t.\t{ref}\t{alt}\t.\tPASS\t.\n"))
    return [text for _, text in sorted(lines)]


def _wrapped(sequence: str, width: int = 60) -> str:
    return "".join(sequence[i : i + width] + "\n" for i in range(0, len(sequence), width))
