"""Mistakes a first-time NTv3 user makes (preset tiny-v3 / tiny-v3-post: inputs are multiples of 8 bases): each
bad input is exit 2 and one stderr line naming the problem, with nothing left behind; and a reconstruction over
a region with an assembly gap never masks (and scores) the N bases."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam
import pytest
from conftest import assert_bad_input

CONTIG = "".join(random.Random(3).choice("ACGT") for _ in range(200))
GAP = "N" * 120  # an assembly gap at the contig start, as the telomeres of chr20
TRAIN = "sequence\tlabel\n" + "".join(
    f"{''.join(random.Random(i).choices('ACGT', k=24))}\t{i % 2}\n" for i in range(12)
)


def _checkpoint(tmp: Path, preset: str, edit: Callable[[dict], None] | None = None) -> Path:
    """A saved NTv3 checkpoint of ``preset`` (random weights), its ``config.json`` then edited by ``edit``."""
    from modeling_nt import NTv3Config, NTv3ForMaskedLM, NTv3ForTracksPrediction, tokenizer_for
    from modeling_nt.checkpoint import save_checkpoint

    config = NTv3Config.from_preset(preset)
    model_class = NTv3ForTracksPrediction if config.condition_vocab_sizes else NTv3ForMaskedLM
    folder = save_checkpoint(model_class(config), tmp / f"ck_{preset}", tokenizer_for(config))
    if edit is not None:
        path = folder / "config.json"
        values = json.loads(path.read_text())
        edit(values)
        path.write_text(json.dumps(values))
    return folder


def _set(**fields) -> Callable[[dict], None]:
    return lambda values: values.update(fields)


@dataclass
class Case:
    """``model(tmp)`` gives ``--model``; ``argv`` the rest (``{tmp}`` = tmp_path); ``words`` must be in the error
    line and ``absent`` must not; ``left`` are outputs that must not exist afterwards."""

    id: str
    command: list[str]
    model: Callable[[Path], str | Path]
    argv: list[str]
    words: tuple[str, ...]
    absent: tuple[str, ...] = ()
    left: tuple[str, ...] = field(default_factory=tuple)


FINETUNE = [
    "--train",
    "{tmp}/t.tsv",
    "--test-fraction",
    "0.25",
    "--cv",
    "2",
    "--steps",
    "2",
    "--out",
    "{tmp}/f.json",
]
EMBED = ["--fasta", "{tmp}/g.fa", "--out", "{tmp}/e.parquet", "--no-progress"]

CASES = [
    # a post-trained (species-conditioned) model where no species is given: refused before any fold starts
    Case(
        "finetune-post-trained-preset",
        ["finetune"],
        lambda tmp: "tiny-v3-post",
        FINETUNE,
        ("--model tiny-v3-post", "post-trained", "species", "human", "pre-trained"),
        left=("f.json", "f_work"),
    ),
    Case(
        "finetune-post-trained-checkpoint",
        ["finetune"],
        lambda tmp: _checkpoint(tmp, "tiny-v3-post"),
        FINETUNE,
        ("ck_tiny-v3-post", "post-trained", "species", "pre-trained"),
        left=("f.json", "f_work"),
    ),
    # our own NTv3 checkpoint with config.json edited: the weights do not fit, and the line must not call the
    # folder an official checkpoint to convert (it is ours)
    Case(
        "embed-num-downsamples-edited",
        ["embed"],
        lambda tmp: _checkpoint(tmp, "tiny-v3", _set(num_downsamples=5)),
        EMBED,
        ("ck_tiny-v3", "weights do not fit config.json", "mis-shaped"),
        absent=("official", "nt convert"),
        left=("e.parquet",),
    ),
    Case(
        "embed-vocab-size-edited",
        ["embed"],
        lambda tmp: _checkpoint(tmp, "tiny-v3", _set(vocab_size=4107)),
        EMBED,
        ("ck_tiny-v3", "embed_tokens.weight", "[11, 8] vs [4107, 8]"),
        absent=("official",),
        left=("e.parquet",),
    ),
    # a region that is all assembly gap: no base to reconstruct (N tokens are never masked)
    Case(
        "reconstruction-region-all-gap",
        ["analyze", "reconstruction"],
        lambda tmp: "tiny-v3",
        ["--fasta", "{tmp}/g.fa", "--region", "chr1:1-100", "--out", "{tmp}/rec"],
        ("no token was masked", "N"),
        left=("rec",),  # nothing: not even the run fingerprint or the folder
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(run_nt, tmp_path: Path, case: Case) -> None:
    genome = tmp_path / "g.fa"
    genome.write_text(f">chr1\n{GAP}{CONTIG}\n")
    pysam.faidx(str(genome))
    (tmp_path / "t.tsv").write_text(TRAIN)
    argv = [part.replace("{tmp}", str(tmp_path)) for part in case.argv]
    result = run_nt(*case.command, "--model", case.model(tmp_path), *argv)
    assert_bad_input(result, *case.words)
    for word in case.absent:
        assert word.lower() not in result.err.lower(), result.err
    for name in case.left:
        assert not (tmp_path / name).exists(), name


@pytest.mark.parametrize("preset", ["tiny", "tiny-v3"])
@pytest.mark.parametrize("mode", ["every", "random"])
def test_reconstruction_never_masks_the_n_of_a_gap(preset: str, mode: str) -> None:
    """An exact region over a gap edge (48 N, then 48 bases; IUPAC R at base 60 reads as N): only the A/C/G/T
    tokens are masked. 6-mers: every N is a token of its own, so the tokens at 48, 54, then 61, ..., 85 and the
    5 single bases 91..95; NTv3: the 47 bases 48..95 but 60."""
    from benchmarks.analysis.annotation import LabelledWindow
    from benchmarks.analysis.reconstruction import window_requests
    from modeling_nt.loading import preset_config

    bases = list(CONTIG[:48])
    bases[12] = "R"
    sequence = "N" * 48 + "".join(bases)
    window = LabelledWindow("chr1", 1000, 1096, "all", sequence, np.zeros(96, dtype=np.int64))
    requests = window_requests([window], ["all"], preset_config(preset), mode=mode, mask_rate=1.0)
    positions = sorted(record["position"] - 1000 for request in requests for record in request.records)
    six_mers = [48, 54, 61, 67, 73, 79, 85, 91, 92, 93, 94, 95]  # the N at 60 splits the run; 5 bases left
    expected = six_mers if preset == "tiny" else [base for base in range(48, 96) if base != 60]
    assert positions == expected


def test_tracks_class_on_a_pre_trained_checkpoint_says_so(tmp_path: Path) -> None:
    """A pre-trained checkpoint loaded as NTv3ForTracksPrediction: one line saying it is pre-trained (not the
    reader's 'is the file complete?', the file is fine)."""
    from modeling_nt import NTv3ForTracksPrediction
    from modeling_nt.loading import load_model

    folder = _checkpoint(tmp_path, "tiny-v3")
    with pytest.raises(ValueError, match="pre-trained NTv3 checkpoint") as caught:
        load_model(folder, NTv3ForTracksPrediction)
    message = str(caught.value)
    assert "\n" not in message and "post-trained" in message and "complete" not in message
