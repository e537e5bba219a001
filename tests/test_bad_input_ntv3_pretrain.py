"""Bad NT v3 pretraining settings (`nt pretrain --config`): the length curriculum and the preset, refused in one
line naming the config file, the setting and the rule, before any training and before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import assert_bad_input


def _genome(folder: Path) -> Path:
    """A small plain FASTA: chrA 3,000 bp and chrB 1,500 bp."""
    path = folder / "genome.fa"
    unit = "ACGTTGCAAGGCTTACCGATGGTACCATTGGCAAC"
    path.write_text(f">chrA\n{(unit * 100)[:3000]}\n>chrB\n{(unit * 80)[:1500]}\n")
    return path


def _base(folder: Path) -> dict:
    """Valid for tiny-v3 (lengths multiples of 2**3 = 8): 520 bp records, 256 then 512 bp stages."""
    return {
        "preset": "tiny-v3",
        "train_genomes": [str(_genome(folder))],
        "held_out": ["chrB:1-1200"],
        "chunk_length": 500,
        "overlap": 10,
        "max_offset": 20,
        "min_length": 100,
        "length_curriculum": [[0, 256], [4, 512]],
        "max_steps": 8,
        "tokens_per_update": None,
        "gradient_accumulation_steps": 1,
        "output_dir": str(folder / "run"),
    }


# (case id, settings changed in the base config, words of the one error line); a "flags" entry holds command-line
# flags given after `--config cfg.yaml` instead.
CASES = [
    (
        "length-not-multiple-of-8",
        {"length_curriculum": [[0, 256], [4, 500]]},
        ["cfg.yaml", "length_curriculum[1]", "500 bp", "multiple of 8", "496 or 504"],
    ),
    (
        "length-not-multiple-of-128-for-8m",
        {"preset": "ntv3-8m-pre", "chunk_length": 2000, "length_curriculum": [[0, 1000]]},
        ["length_curriculum[0]", "1000 bp", "multiple of 128", "896 or 1024"],
    ),
    (
        "length-shorter-than-one-block",
        {"length_curriculum": [[0, 4]]},
        ["length_curriculum[0]", "4 bp", "multiple of 8", "nearest valid: 8"],
    ),
    (
        "steps-not-increasing",
        {"length_curriculum": [[0, 128], [6, 256], [3, 512]]},
        ["cfg.yaml", "length_curriculum[2]", "steps must increase", "step 3 after step 6"],
    ),
    (
        "two-stages-same-step",
        {"length_curriculum": [[0, 128], [4, 256], [4, 512]]},
        ["length_curriculum[2]", "steps must increase"],
    ),
    (
        "first-stage-not-at-step-0",
        {"length_curriculum": [[100, 256]]},
        ["length_curriculum[0]", "first stage must start at step 0", "100"],
    ),
    (
        "stage-after-max-steps",
        {"length_curriculum": [[0, 256], [8, 512]]},
        ["length_curriculum[1]", "step 8", "max_steps=8", "never run"],
    ),
    (
        "length-longer-than-records",
        {"length_curriculum": [[0, 256], [4, 1024]]},
        ["length_curriculum[1]", "1024 bp", "520 bp genome records", "chunk_length"],
    ),
    (
        "stage-not-a-pair",
        {"length_curriculum": [[0, 256, 512]]},
        ["length_curriculum[0]", "pair [step, length_bp]"],
    ),
    (
        "length-with-unit",
        {"length_curriculum": [[0, "1kb"]]},
        ["cfg.yaml", "length_curriculum[0][1]", "integer", "'1kb'"],
    ),
    ("empty-curriculum", {"length_curriculum": []}, ["length_curriculum", "at least one stage"]),
    (
        "curriculum-on-a-6-mer-preset",
        {"preset": "tiny", "length_curriculum": [[0, 256]]},
        ["length_curriculum", "NT v3 presets", "'tiny' is NT v2", "max_tokens"],
    ),
    (
        "curriculum-and-max-tokens",
        {"max_tokens": 512},
        ["max_tokens and length_curriculum both set"],
    ),
    (
        "max-tokens-not-multiple",
        {"length_curriculum": None, "max_tokens": 300},
        ["cfg.yaml", "max_tokens", "300 bp", "multiple of 8", "296 or 304"],
    ),
    (
        "max-tokens-longer-than-records",
        {"length_curriculum": None, "max_tokens": 1024},
        ["max_tokens", "1024 bp", "520 bp genome records"],
    ),
    (
        "post-trained-preset",
        {"preset": "tiny-v3-post"},
        ["cfg.yaml", "preset", "tiny-v3-post", "post-trained", "tiny-v3"],
    ),
    (
        "held-out-shorter-than-last-stage",
        {"held_out": ["chrB:1-400"]},
        ["cfg.yaml", "held_out[0]", "no record of at least 512 bp", "last length_curriculum stage"],
    ),
    (
        "training-records-shorter-than-a-later-stage",
        {"held_out": ["chrA:1-2800", "chrB:1-1200"], "length_curriculum": [[0, 128], [4, 512], [6, 256]]},
        ["train_genomes[0]", "no training record of at least 512 bp", "longest length_curriculum stage"],
    ),
    (
        "override-not-an-ntv3-field",
        {"model_overrides": {"num_downsample": 2}},
        ["model_overrides", "num_downsample", "NTv3Config", "num_downsamples"],
    ),
    (
        "flag-stage-with-a-dash",
        {"flags": ["--length-curriculum", "0-256"]},
        ["--length-curriculum", "STEP:LENGTH_BP", "'0-256'"],
    ),
    (
        "flag-length-with-unit",
        {"flags": ["--length-curriculum", "0:256,4:1kb"]},
        ["--length-curriculum", "STEP:LENGTH_BP", "'4:1kb'"],
    ),
    (
        "flag-overrides-and-is-checked",
        {"flags": ["--length-curriculum", "0:256,4:500"]},
        ["cfg.yaml", "length_curriculum[1]", "500 bp", "496 or 504"],
    ),
]


def _write_config(folder: Path, change: dict) -> Path:
    path = folder / "cfg.yaml"
    values = {key: value for key, value in {**_base(folder), **change}.items() if value is not None}
    values.pop("flags", None)
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize(("change", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_ntv3_pretraining_setting_is_one_line_before_any_work(run_nt, tmp_path, change, words) -> None:
    result = run_nt("pretrain", "--config", _write_config(tmp_path, change), *change.get("flags", []))
    assert_bad_input(result, *words)
    assert not (tmp_path / "run").exists()  # refused before the first step: nothing written


def test_the_base_config_of_these_cases_is_valid(tmp_path) -> None:
    from modeling_nt.pretraining import PretrainingConfig

    config = PretrainingConfig.from_yaml(_write_config(tmp_path, {}))
    config.check_genomes()
    assert config.generation == "v3" and config.length_stages() == [(0, 256), (4, 512)]
