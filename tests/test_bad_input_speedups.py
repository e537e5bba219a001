"""Bad values of the speed settings of `nt pretrain` (the YAML ``compile`` field) are one line naming the config
file and the field, before any training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import assert_bad_input


def _config(folder: Path, **settings) -> Path:
    genome = folder / "genome.fa"
    genome.write_text(">chrA\n" + "ACGTTGCAAGGCTTACCGATGGTACCATTGGCAAC" * 60 + "\n")
    values = {"preset": "tiny", "train_genomes": [str(genome)], "output_dir": str(folder / "run"), **settings}
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


# (case id, settings of the YAML file, words of the one error line)
CASES = [
    (
        "compile-as-a-mode-name",
        {"compile": "max-autotune"},
        ["cfg.yaml", "compile", "boolean", "max-autotune"],
    ),
    ("compile-as-a-number", {"compile": 2}, ["cfg.yaml", "compile", "boolean", "2"]),
    ("compile-misspelt", {"torch_compile": True}, ["cfg.yaml", "torch_compile", "did you mean compile?"]),
]


@pytest.mark.parametrize(("settings", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_speed_setting_is_one_line(run_nt, tmp_path: Path, settings: dict, words: list[str]) -> None:
    result = run_nt("pretrain", "--config", _config(tmp_path, **settings))
    assert_bad_input(result, *words)
    assert not (tmp_path / "run").exists()
