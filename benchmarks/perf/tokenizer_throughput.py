"""Tokenizer ``__call__`` against ``EsmTokenizer`` and against a plain ``tokenizers`` WordLevel + Split pipeline.

Random 6,000-nt uppercase sequences with N runs (300 quick, 1,000 with ``--full``), one batch call per side and
round (:mod:`benchmarks.perf.harness`: fixed equal threads, interleaved rounds, CPU and wall time). Ids are
compared in the same run: the difference is the number of sequences whose ids differ (``EsmTokenizer``
appends ``<eos>``, dropped for the comparison). The plain pipeline is what a user would write with
``tokenizers`` alone: ``Tokenizer(WordLevel(vocab))``, ``Split`` on the 6-mer regex, ``<cls>`` template, no
normaliser, ``encode_batch``, and the ids and attention masks as lists (what ``__call__`` returns). A third
row times the numpy batch path (:func:`tokenization.encode_batch`, padded arrays) against ``EsmTokenizer``.

    python -m benchmarks.perf.tokenizer_throughput [--full] [--threads 1] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.perf.common import add_common_arguments, random_dna, sizes
from benchmarks.perf.harness import Comparison, compare, pin_threads, print_rows, table_row, write_json

LENGTH_NT = 6000


def mismatches(ours: list[list[int]], reference: list[list[int]]) -> int:
    """Number of sequences whose ids differ."""
    return sum(a != b for a, b in zip(ours, reference, strict=True))


def plain_pipeline(version: str):
    """The ``tokenizers``-only pipeline a user would write: WordLevel + Split + ``<cls>`` template."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    from tokenization import vocabulary
    from tokenization.tokenizer import KMER_SPLIT_PATTERN

    vocab = vocabulary(version)
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(KMER_SPLIT_PATTERN), behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<cls> $A", special_tokens=[("<cls>", vocab["<cls>"])]
    )
    return tokenizer


def plain_ids_and_masks(tokenizer, sequences: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Ids and attention masks of the plain pipeline: the two lists that ``__call__`` returns."""
    encodings = tokenizer.encode_batch(sequences)
    return [e.ids for e in encodings], [e.attention_mask for e in encodings]


def run(args: argparse.Namespace) -> list[Comparison]:
    from transformers import EsmTokenizer

    from tokenization import LAYOUTS, build_tokenizer, encode_batch

    table = sizes(args)
    count = table["tokenizer_sequences"]
    sequences = random_dna(count, LENGTH_NT)
    ours = build_tokenizer("v2", model_max_length=LENGTH_NT + 1)
    with tempfile.TemporaryDirectory() as folder:
        vocab_file = Path(folder) / "vocab.txt"
        vocab_file.write_text("\n".join(LAYOUTS["v2"]) + "\n")
        esm = EsmTokenizer(str(vocab_file), model_max_length=LENGTH_NT + 2)
    plain = plain_pipeline("v2")
    work = count * LENGTH_NT / 1e6
    ours_side = ("NTTokenizer __call__", lambda: ours(sequences))
    common = {
        "rounds": table["rounds"],
        "work": work,
        "unit": "Mbp",
        "difference_name": "sequences differing",
    }
    return [
        compare(
            f"tokenizer vs EsmTokenizer, {count} x 6 kb",
            ours=ours_side,
            reference=("EsmTokenizer __call__", lambda: esm(sequences)),
            difference=lambda mine, theirs: mismatches(
                mine["input_ids"], [ids[:-1] for ids in theirs["input_ids"]]
            ),
            goal=4.0,
            **common,
        ),
        compare(
            f"tokenizer vs plain tokenizers pipeline, {count} x 6 kb",
            ours=ours_side,
            reference=("WordLevel+Split encode_batch", lambda: plain_ids_and_masks(plain, sequences)),
            difference=lambda mine, theirs: (
                mismatches(mine["input_ids"], theirs[0]) + mismatches(mine["attention_mask"], theirs[1])
            ),
            goal=1.0,
            **common,
        ),
        compare(
            f"numpy batch path vs EsmTokenizer, {count} x 6 kb",
            ours=(
                "tokenization.encode_batch",
                lambda: encode_batch(sequences, "v2", max_length=LENGTH_NT + 1),
            ),
            reference=("EsmTokenizer __call__", lambda: esm(sequences)),
            difference=lambda mine, theirs: mismatches(
                [
                    row[mask.astype(bool)].tolist()
                    for row, mask in zip(mine["input_ids"], mine["attention_mask"], strict=True)
                ],
                [ids[:-1] for ids in theirs["input_ids"]],
            ),
            goal=None,
            **common,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    args = parser.parse_args()
    pin_threads(args.threads)
    comparisons = run(args)
    print_rows([table_row(comparison) for comparison in comparisons])
    print(f"wrote {write_json('tokenizer_throughput', {'comparisons': comparisons})}")


if __name__ == "__main__":
    main()
