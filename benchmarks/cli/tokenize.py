"""`nt tokenize`: tokenize a sequence or a FASTA file (plain, gzip or bgzip) and summarise the tokens."""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Iterator
from pathlib import Path

from ._args import check_not_an_input, check_writable_file, positive_int

KMER_LENGTH = 6


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize",
        help="tokenize DNA (a FASTA file or one sequence) with the NT 6-mer or the NTv3 single-base tokenizer",
        description="Tokenize a FASTA file in model-sized chunks and print a summary, or show the tokens of "
        "one sequence. Lowercase, U and IUPAC letters are normalised unless --strict. --version v3: the NTv3 "
        "single-base tokenizer (one token per base, nothing added; models take lengths that are a multiple "
        "of 2**num_downsamples, which nt embed and the other commands pad with N).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("fasta", nargs="?", type=Path, help="FASTA file (.fa, .fa.gz, bgzip)")
    source.add_argument("--sequence", help="tokenize this one sequence and print its tokens and ids")
    parser.add_argument(
        "--version",
        choices=["v1", "v2", "v3"],
        default="v2",
        help="id layout: v1 / v2 6-mers, v3 NTv3 single bases (default v2)",
    )
    parser.add_argument("--strict", action="store_true", help="accept only uppercase A/C/G/T/N")
    parser.add_argument(
        "--chunk-bp",
        type=positive_int,
        default=None,
        help="cut records into chunks of this many bp (default: the context)",
    )
    parser.add_argument("--out", type=Path, help="write chunks and their ids to this parquet file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.sequence is not None:
        ignored = [flag for flag, value in (("--out", args.out), ("--chunk-bp", args.chunk_bp)) if value]
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: only for a FASTA file, not with --sequence")
        if not args.sequence.strip():
            raise ValueError("--sequence is empty: give the DNA to tokenize, e.g. --sequence ACGTAC")
        return _show_sequence(args.sequence, args.version, args.strict)
    return _summarise_fasta(args)


def _show_sequence(sequence: str, version: str, strict: bool) -> int:
    from tokenization import build_ntv3_tokenizer, build_tokenizer

    tokenizer = (
        build_ntv3_tokenizer(strict=strict) if version == "v3" else build_tokenizer(version, strict=strict)
    )
    ids = tokenizer(sequence, truncation=False)["input_ids"]
    print("tokens:", " ".join(tokenizer.convert_ids_to_tokens(ids)))
    print("ids:   ", " ".join(map(str, ids)))
    return 0


def default_chunk_bp(version: str) -> int:
    """Longest sequence of full 6-mers that fits the context with ``<cls>`` (5,994 bp v1; 12,282 bp v2); v3:
    the longest NTv3 input, :data:`tokenization.ntv3.NTV3_MAX_LENGTH` (1,048,576 bp)."""
    from tokenization import DEFAULT_MODEL_MAX_LENGTH
    from tokenization.ntv3 import NTV3_MAX_LENGTH

    if version == "v3":
        return NTV3_MAX_LENGTH
    return (DEFAULT_MODEL_MAX_LENGTH[version] - 1) * KMER_LENGTH


def _encode(sequences: list[str], version: str, strict: bool) -> dict:
    """Input ids and attention masks of chunks (``<cls>`` first for v1 / v2; v3 one id per base, no padding
    to a multiple)."""
    from tokenization import encode_batch, encode_ntv3_batch

    if version == "v3":
        return encode_ntv3_batch(sequences, strict=strict, truncation=True, pad_to_multiple_of=None)
    return encode_batch(sequences, version, strict=strict, truncation=True)


def iter_chunks(path: Path, chunk_bp: int) -> Iterator[tuple[str, int, str]]:
    """(record name, 0-based start, sequence) of consecutive chunks of every FASTA record."""
    from benchmarks.checks import require_at_least
    from benchmarks.embeddings import iter_fasta

    require_at_least(1, chunk_bp=chunk_bp)

    for name, sequence in iter_fasta(path):
        for start in range(0, max(len(sequence), 1), chunk_bp):
            yield name, start, sequence[start : start + chunk_bp]


def _summarise_fasta(args: argparse.Namespace) -> int:
    if args.out:
        check_not_an_input(args.out, fasta=args.fasta)
        check_writable_file(args.out)
        if args.out.exists():
            raise FileExistsError(f"--out {args.out} exists; remove it or choose another --out")
    import numpy as np

    from benchmarks.progress import progress as report_progress
    from tokenization import ntv3_vocabulary, validate_sequence, vocabulary

    chunk_bp = args.chunk_bp or default_chunk_bp(args.version)
    vocab = ntv3_vocabulary() if args.version == "v3" else vocabulary(args.version)
    first = 0 if args.version == "v3" else 1  # the <cls> of v1 / v2 is not counted
    token_counts: collections.Counter[int] = collections.Counter()
    records: set[str] = set()
    total_bp = chunks = 0
    rows: list[dict] = []
    started = time.perf_counter()
    batch: list[tuple[str, int, str]] = []

    def flush() -> None:
        nonlocal chunks
        try:
            encoded = _encode([seq for _, _, seq in batch], args.version, args.strict)
        except ValueError:
            for name, start, sequence in batch:
                try:
                    validate_sequence(sequence, strict=args.strict)
                except ValueError as error:
                    raise ValueError(
                        f"{args.fasta}: record {name!r}, chunk starting at {start}: {error}"
                    ) from None
            raise
        for (name, start, sequence), ids, mask in zip(
            batch, encoded["input_ids"], encoded["attention_mask"], strict=True
        ):
            real = ids[mask.astype(bool)]
            token_counts.update(real[first:].tolist())
            if args.out:
                rows.append({"record": name, "start": start, "end": start + len(sequence), "input_ids": real})
        chunks += len(batch)
        batch.clear()

    with report_progress(desc="tokenize", unit="bp", unit_scale=True) as progress:
        for name, start, sequence in iter_chunks(args.fasta, chunk_bp):
            records.add(name)
            total_bp += len(sequence)
            batch.append((name, start, sequence))
            progress.update(len(sequence))
            if len(batch) == 256:
                flush()
        if batch:
            flush()
    elapsed = time.perf_counter() - started

    total_tokens = sum(token_counts.values())
    print(f"file            {args.fasta}")
    if args.version == "v3":
        print(f"layout          v3, single bases (chunks of {chunk_bp:,} bp)")
        print(f"records         {len(records):,}   chunks {chunks:,}   bp {total_bp:,}")
        print(f"tokens          {total_tokens:,} (one per base, nothing added)")
        print(
            f"bases           {', '.join(f'{letter} {token_counts[vocab[letter]]:,}' for letter in 'ACGTN')}"
        )
    else:
        _print_kmer_summary(args, chunk_bp, vocab, token_counts, records, chunks, total_bp)
    print(f"time            {elapsed:.2f} s ({total_bp / max(elapsed, 1e-9) / 1e6:.1f} Mbp/s)")
    if args.out:
        import pandas as pd

        frame = pd.DataFrame(rows)
        frame["input_ids"] = frame["input_ids"].map(lambda ids: np.asarray(ids, dtype=np.int32))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(args.out, index=False)
        print(f"wrote           {args.out} ({len(frame):,} chunks)")
    return 0


def _print_kmer_summary(
    args: argparse.Namespace,
    chunk_bp: int,
    vocab: dict[str, int],
    token_counts: collections.Counter[int],
    records: set[str],
    chunks: int,
    total_bp: int,
) -> None:
    """The 6-mer part of the summary: layout, counts, tokens per bp, 6-mer share and the top 6-mers."""
    total_tokens = sum(token_counts.values())
    id_to_token = {index: token for token, index in vocab.items()}
    first_kmer = vocab["AAAAAA"]
    kmer_counts = {i: c for i, c in token_counts.items() if first_kmer <= i < first_kmer + 4**KMER_LENGTH}
    kmer_tokens = sum(kmer_counts.values())
    top_kmers = sorted(kmer_counts.items(), key=lambda item: -item[1])[:5]
    print(f"layout          {args.version} (chunks of {chunk_bp:,} bp)")
    print(f"records         {len(records):,}   chunks {chunks:,}   bp {total_bp:,}")
    print(
        f"tokens          {total_tokens:,} (+{chunks:,} <cls>), {total_bp / max(total_tokens, 1):.2f} bp per token"
    )
    print(
        f"6-mer tokens    {kmer_tokens:,} ({kmer_tokens / max(total_tokens, 1):.2%}), "
        f"distinct 6-mers {len(kmer_counts):,} of {4**KMER_LENGTH:,}"
    )
    print(
        f"single A/C/G/T  {sum(token_counts[vocab[letter]] for letter in 'ACGT'):,}   "
        f"N tokens {token_counts[vocab['N']]:,}"
    )
    print(f"top 6-mers      {', '.join(f'{id_to_token[i]} {c:,}' for i, c in top_kmers)}")
