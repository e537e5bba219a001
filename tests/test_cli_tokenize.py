"""`nt --help` and `nt tokenize` on a bundled real genome, with clear errors for bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd

from benchmarks.cli import main
from tokenization import build_tokenizer


def test_help_lists_commands(capsys):
    assert main([]) == 0
    assert "tokenize" in capsys.readouterr().out


def test_tokenize_bundled_phix(bundled_data, tmp_path, capsys):
    fasta = bundled_data / "phiX174_NC_001422_1.fna.gz"
    out = tmp_path / "tokens.parquet"
    assert main(["tokenize", str(fasta), "--chunk-bp", "1000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "records         1   chunks 6   bp 5,386" in printed
    frame = pd.read_parquet(out)
    assert frame["start"].tolist() == [0, 1000, 2000, 3000, 4000, 5000]
    with gzip.open(fasta, "rt") as handle:
        genome = "".join(line.strip() for line in handle if not line.startswith(">"))
    tokenizer = build_tokenizer("v2")
    last = genome[5000:]
    assert np.asarray(frame["input_ids"].iloc[-1]).tolist() == tokenizer(last)["input_ids"]


def test_tokenize_sequence_prints_tokens(capsys):
    assert main(["tokenize", "--sequence", "ACGTGTACNTG", "--version", "v1"]) == 0
    assert "tokens: <cls> ACGTGT A C N T G" in capsys.readouterr().out


def test_bad_fasta_names_record_and_position(tmp_path, capsys):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">ok\nACGT\n>broken\nACGTAC\nGT*A\n")
    assert main(["tokenize", str(fasta)]) == 2
    error = capsys.readouterr().err
    assert "record 'broken'" in error and "invalid character '*' at position 8" in error


def test_missing_file_is_one_line_error(tmp_path, capsys):
    assert main(["tokenize", str(tmp_path / "missing.fa")]) == 2
    assert "FASTA file not found" in capsys.readouterr().err
