"""The pretraining YAML is validated completely before the first step (issue 12, section 4): types, ranges,
unknown keys, files, names, genome weights, held-out regions that exist and are non-empty, training records
left. Every problem is one line naming the config file, the field path and the problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from conftest import assert_bad_input

from modeling_nt.pretraining import PretrainingConfig, run_pretraining
from modeling_nt.pretraining.trainer import DEMO_CONFIG

EXAMPLE_CONFIG = Path(DEMO_CONFIG).with_name("example.yaml")


def _genome(folder: Path) -> Path:
    """A small plain FASTA: chrA 3,000 bp and chrB 2,400 bp (real-looking, no N)."""
    path = folder / "genome.fa"
    unit = "ACGTTGCAAGGCTTACCGATGGTACCATTGGCAAC"
    path.write_text(f">chrA test\n{(unit * 100)[:3000]}\n>chrB\n{(unit * 80)[:2400]}\n")
    return path


def _base(folder: Path) -> dict:
    return {
        "preset": "tiny",
        "train_genomes": [str(_genome(folder))],
        "held_out": ["chrB:1-1200"],
        "chunk_length": 500,
        "overlap": 10,
        "max_offset": 20,
        "min_length": 100,
        "max_tokens": 64,
        "max_steps": 2,
        "output_dir": str(folder / "run"),
    }


# (case id, settings changed in the base config or raw YAML text, words of the one error line)
CASES = [
    (
        "held-out-unknown-contig",
        {"held_out": ["chr99:1-100"]},
        ["cfg.yaml", "held_out[0]", "chr99", "no training genome", "chrA, chrB"],
    ),
    ("held-out-second-unknown", {"held_out": ["chrB", "chr20"]}, ["cfg.yaml", "held_out[1]", "'chr20'"]),
    (
        "held-out-past-contig-end",
        {"held_out": ["chrA:5001-6000"]},
        ["cfg.yaml", "held_out[0]", "chrA:5001-6000", "no record", "min_length=100"],
    ),
    (
        "held-out-shorter-than-min-length",
        {"held_out": ["chrA:1-50"]},
        ["held_out[0]", "no record", "min_length"],
    ),
    (
        "held-out-excluded-contig",
        {"held_out": ["chrA"], "exclude_contigs": ["chrA"]},
        ["held_out[0]", "exclude_contigs"],
    ),
    ("held-out-bad-syntax", {"held_out": ["chrA:500-100"]}, ["cfg.yaml", "held_out[0]", "START-END"]),
    (
        "everything-held-out",
        {"held_out": ["chrA", "chrB"]},
        ["cfg.yaml", "train_genomes[0]", "no training record", "held_out"],
    ),
    ("max-steps-word", {"max_steps": "ten"}, ["cfg.yaml", "max_steps", "integer", "'ten'"]),
    ("max-steps-negative", {"max_steps": -5}, ["cfg.yaml", "max_steps", "greater than or equal to 1", "-5"]),
    ("max-steps-fraction", {"max_steps": 10.5}, ["max_steps", "integer", "10.5"]),
    ("typo-key", {"max_stpes": 10}, ["cfg.yaml", "max_stpes", "unknown", "did you mean max_steps"]),
    (
        "weight-negative",
        {"train_genomes": [{"path": "{fa}", "weight": -1}]},
        ["cfg.yaml", "train_genomes[0].weight", "greater than 0", "-1"],
    ),
    (
        "weight-zero",
        {"train_genomes": [{"path": "{fa}", "weight": 0}]},
        ["train_genomes[0].weight", "greater than 0"],
    ),
    (
        "genome-missing",
        {"train_genomes": ["{fa}", "missing.fa.gz"]},
        ["cfg.yaml", "train_genomes[1].path", "no such file", "missing.fa.gz"],
    ),
    (
        "genome-unknown-key",
        {"train_genomes": [{"path": "{fa}", "wieght": 2}]},
        ["train_genomes[0].wieght", "unknown"],
    ),
    (
        "haplotypes-without-regions",
        {"train_genomes": [{"path": "{fa}", "vcf": "{fa}"}]},
        ["train_genomes[0]", "list the regions"],
    ),
    ("train-genomes-not-list", {"train_genomes": "{fa}"}, ["cfg.yaml", "train_genomes", "list"]),
    ("no-genomes", {"train_genomes": []}, ["cfg.yaml", "train_genomes", "no training genome"]),
    ("preset-unknown", {"preset": "nt-v2-50m"}, ["cfg.yaml", "preset", "unknown NT preset", "tiny"]),
    ("preset-typo", {"preset": "tiny_v1"}, ["preset", "did you mean tiny-v1"]),
    (
        "override-typo",
        {"model_overrides": {"num_hiden_layers": 2}},
        ["cfg.yaml", "model_overrides", "num_hiden_layers", "num_hidden_layers"],
    ),
    (
        "max-tokens-over-positions",
        {"preset": "tiny-v1", "max_tokens": 4000},
        ["max_tokens 4000", "1000 positions"],
    ),
    (
        "mask-probabilities-sum",
        {"mask_replace_prob": 0.95},
        ["mask_replace_prob + random_replace_prob", "at most 1"],
    ),
    ("mlm-probability-zero", {"mlm_probability": 0}, ["mlm_probability", "greater than 0"]),
    ("adam-beta-one", {"adam_beta2": 1.0}, ["adam_beta2", "less than 1"]),
    ("peak-lr-negative", {"peak_lr": -1e-4}, ["peak_lr", "greater than 0"]),
    ("chunk-length-zero", {"chunk_length": 0}, ["chunk_length", "greater than or equal to 1"]),
    ("precision-unknown", {"precision": "fp8"}, ["precision", "'fp8'"]),
    ("deepspeed-missing", {"deepspeed": "zero4"}, ["deepspeed", "zero4", "zero2"]),
    ("eval-without-held-out", {"held_out": [], "eval_steps": 10}, ["cfg.yaml", "eval_steps", "held_out"]),
    ("two-problems", {"max_steps": -5, "seed": -1}, ["max_steps", "(and 1 more)"]),
    (
        "broken-yaml",
        "preset: tiny\nheld_out: [chrB\nmax_steps: 2\n",
        ["cfg.yaml", "not valid YAML", "line 3", "column"],
    ),
    ("tab-indented-yaml", "preset: tiny\n\tmax_steps: 2\n", ["cfg.yaml", "not valid YAML", "line 2"]),
    (
        "duplicate-key",
        "max_steps: 2\npreset: tiny\nmax_steps: 3\n",
        ["cfg.yaml", "duplicate key 'max_steps'", "line 3"],
    ),
    ("top-level-list", "- preset: tiny\n", ["cfg.yaml", "mapping"]),
]


def _write_config(folder: Path, change: dict | str) -> Path:
    path = folder / "cfg.yaml"
    if isinstance(change, str):
        path.write_text(change)
        return path
    values = {**_base(folder), **change}
    text = yaml.safe_dump(values).replace("'{fa}'", str(folder / "genome.fa"))
    path.write_text(text.replace("{fa}", str(folder / "genome.fa")))
    return path


@pytest.mark.parametrize(("change", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_pretraining_config_is_one_line_before_any_work(run_nt, tmp_path, change, words) -> None:
    config = _write_config(tmp_path, change)
    result = run_nt("pretrain", "--config", config)
    assert_bad_input(result, *words)
    assert not (tmp_path / "run").exists()  # refused before the first step: nothing trained, nothing written


def test_case_table_size() -> None:
    assert len(CASES) >= 30


def test_the_base_config_of_these_cases_is_valid(tmp_path) -> None:
    config = PretrainingConfig.from_yaml(_write_config(tmp_path, {}))
    config.check_genomes()
    assert config.held_out == ["chrB:1-1200"] and config.max_steps == 2
    assert [(entry.path, entry.weight) for entry in config.train_genomes] == [
        (str(tmp_path / "genome.fa"), 1.0)
    ]


def test_command_line_settings_are_named_as_such(run_nt, tmp_path) -> None:
    genome = _genome(tmp_path)
    result = run_nt(
        "pretrain", "--train-genome", genome, "--held-out", "chr99:1-100", "--output-dir", tmp_path / "run"
    )
    assert_bad_input(result, "command line", "held_out[0]", "chr99", "no training genome")
    assert not (tmp_path / "run").exists()


def test_flags_override_the_file_and_are_validated_with_it(run_nt, tmp_path) -> None:
    config = _write_config(tmp_path, {})
    result = run_nt("pretrain", "--config", config, "--held-out", "chrC")
    assert_bad_input(result, "cfg.yaml", "held_out[0]", "'chrC'")


def test_unknown_held_out_contig_stops_run_pretraining_before_training(tmp_path) -> None:
    """Today's failure: every step trained, then a crash at the first evaluation with nothing saved."""
    values = {**_base(tmp_path), "held_out": ["chr99:1-100"], "eval_steps": 1}
    with pytest.raises(
        ValueError, match=r"^config: held_out\[0\]: contig 'chr99' of region chr99:1-100 is in no"
    ):
        run_pretraining(values)
    assert not (tmp_path / "run").exists()


def test_unwritable_output_dir_is_refused_before_training(tmp_path) -> None:
    (tmp_path / "file.txt").write_text("x")
    values = {**_base(tmp_path), "output_dir": str(tmp_path / "file.txt" / "run")}
    with pytest.raises(OSError):
        run_pretraining(values)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        PretrainingConfig(max_steps=-5)
    with pytest.raises(ValueError, match="max_stpes"):
        PretrainingConfig(max_stpes=5)


def test_example_config_is_valid_apart_from_its_placeholder_genomes(tmp_path) -> None:
    """example.yaml names genome files of a cluster; with those present it validates unchanged."""
    with pytest.raises(ValueError, match=r"example\.yaml: train_genomes\[0\]\.path: no such file .*GRCh38"):
        PretrainingConfig.from_yaml(EXAMPLE_CONFIG)
    values = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for entry in values["train_genomes"]:
        entry["path"] = str(_genome(tmp_path))
    config = PretrainingConfig.from_mapping(values, source=str(EXAMPLE_CONFIG))
    assert (config.preset, config.max_steps, config.chunk_length, config.gradient_checkpointing) == (
        "nt-v2-50m-multi-species",
        300000,
        12000,
        True,
    )
    assert [entry.weight for entry in config.train_genomes] == [1.0, 0.5]


def test_demo_config_validates_with_its_genome_checks(tmp_path) -> None:
    config = PretrainingConfig.from_yaml(DEMO_CONFIG, output_dir=str(tmp_path / "demo"))
    config.check_genomes()  # the held-out last 200 kb of the bundled slice holds records; training too
    assert config.held_out == ["20:30000001-32000000:1800001-2000000"]
    assert config.max_steps == 800 and config.per_device_batch_size == 16
    stored = dataclasses.asdict(config)  # what results.json records to compare reruns
    assert stored["train_genomes"][0]["path"].endswith("chr20_GRCh37_slice.fa.gz")
    assert stored["train_genomes"][0]["weight"] == 1.0


def test_yaml_floats_without_a_dot_are_numbers(tmp_path) -> None:
    """PyYAML reads ``5e-4`` as a string; the schema still takes it as the number it means."""
    config = _write_config(tmp_path, {})
    config.write_text(config.read_text() + "peak_lr: 5e-4\n")
    assert PretrainingConfig.from_yaml(config).peak_lr == 5e-4
