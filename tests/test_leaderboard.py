"""Leaderboard tables and heatmap, paper reference numbers, Hub model card, `nt leaderboard`."""

from __future__ import annotations

import csv

import pytest
import yaml

from benchmarks.cli import main as nt
from benchmarks.leaderboard import (
    REFERENCE_MCC,
    REFERENCE_MEAN_MCC,
    card_size,
    card_sizes,
    reference_scores,
    render_model_card,
    write_leaderboard,
)
from benchmarks.results import BenchmarkResult, save_results
from benchmarks.tasks import TASKS

MODEL = "nt-v2-50m-hf"


def sample_results() -> list[BenchmarkResult]:
    results = []
    for task in ("promoter_all", "H3"):
        for layer, base in ((4, 0.60), (8, 0.80)):
            folds = [base + 0.01 * fold for fold in range(10)]
            results.append(
                BenchmarkResult(
                    MODEL, task, "original", "probe", fold_scores=folds, test_score=base, layer=layer
                )
            )
        results.append(
            BenchmarkResult(MODEL, task, "original", "ia3", fold_scores=[0.9, 0.92], test_score=0.91)
        )
    results.append(
        BenchmarkResult("bpnet", "H3", "original", "bpnet", fold_scores=[0.7, 0.74], trainable_params=121_000)
    )
    results.append(BenchmarkResult(MODEL, "prom_300_tata", "gue", "probe", test_score=0.77, layer=8))
    return results


def test_reference_numbers_match_the_paper_means():
    assert set(REFERENCE_MCC) == set(TASKS["original"])
    for model, scores in reference_scores().items():
        assert sum(scores.values()) / 18 == pytest.approx(REFERENCE_MEAN_MCC[model], abs=0.0025), model
    assert reference_scores(["H3"])["Enformer"] == {"H3": 0.72}


def test_leaderboard_files_keep_the_best_layer_and_add_reference_rows(tmp_path):
    paths = write_leaderboard(sample_results(), tmp_path)
    markdown = paths["md"].read_text()
    assert "| nt-v2-50m-hf (probe) | 0.845 ± 0.061 (L8) | 0.845 ± 0.061 (L8) | 0.845 |" in markdown
    assert "| paper: NT-MS 2.5B | 0.950 | 0.790 | 0.870 |" in markdown
    assert "| bpnet (bpnet) |  | 0.720 ± 0.057 | 0.720 |" in markdown
    assert "## gue benchmark (mcc)" in markdown and "| nt-v2-50m-hf (probe) | 0.770 † | 0.770 † |" in markdown
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    probe_h3 = next(row for row in rows if row["task"] == "H3" and row["method"] == "probe")
    assert (probe_h3["layer"], probe_h3["group"], probe_h3["n_folds"]) == ("8", "histone", "10")
    import matplotlib.image

    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200


def test_model_card_renders_and_loads_back(tmp_path):
    from huggingface_hub import ModelCard, parse_eval_result_entries

    card_path = render_model_card(sample_results(), MODEL, tmp_path, repo_id="me/nt-v2-50m-hf")
    card = ModelCard.load(card_path)
    assert card.data.base_model == "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species"
    assert card.data.model_name == MODEL
    values = {(r.task_name, r.dataset_split, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert values[("H3", "train", "probe, layer 8")] == pytest.approx(0.845)
    assert values[("H3", "test", "ia3")] == pytest.approx(0.91)
    assert values[("prom_300_tata", "test", "probe, layer 8")] == pytest.approx(0.77)
    assert len(values) == 9
    assert "| hidden size | 512 |" in card.text and "rotary" in card.text
    assert 'from_pretrained("me/nt-v2-50m-hf"' in card.text and "bpnet" not in card.text
    entries = parse_eval_result_entries(
        yaml.safe_load((tmp_path / ".eval_results" / "original.yaml").read_text())
    )
    assert {(entry.task_id, entry.value) for entry in entries} == {
        ("promoter_all", 0.845),
        ("H3", 0.845),
        ("promoter_all", 0.91),
        ("H3", 0.91),
    }
    assert not (tmp_path / ".eval_results" / "gue.yaml").exists()


def test_card_size_is_guessed_from_the_model_name(tmp_path):
    sizes = card_sizes()
    assert card_size("nt-v2-50m-hf", sizes) == "v2-50m"
    assert card_size("InstaDeepAI/nucleotide-transformer-500m-1000g", sizes) == "v1-500m-1000g"
    assert card_size("nucleotide-transformer-v2-500m-multi-species", sizes) == "v2-500m"
    with pytest.raises(ValueError, match="cannot tell the model size"):
        card_size("my-model", sizes)
    with pytest.raises(FileNotFoundError, match=r"sizes\.yaml is missing"):
        render_model_card(sample_results(), MODEL, tmp_path / "card", templates_dir=tmp_path)
    with pytest.raises(ValueError, match="no results for model 'other'"):
        render_model_card(sample_results(), "other", tmp_path / "card", size="v2-50m")


def test_cli_leaderboard_writes_tables_and_card(tmp_path, capsys):
    save_results(sample_results(), tmp_path / "results" / "run.json")
    out = tmp_path / "board"
    assert nt(["leaderboard", str(tmp_path / "results"), "--out", str(out), "--card-model", MODEL]) == 0
    assert {path.name for path in out.iterdir()} == {
        "leaderboard.md",
        "leaderboard.csv",
        "leaderboard.png",
        "model_card",
    }
    assert (out / "model_card" / "README.md").is_file()
    assert "wrote model card" in capsys.readouterr().out
    assert nt(["leaderboard", str(tmp_path / "none.json"), "--out", str(out)]) == 2
    assert "results file or folder not found" in capsys.readouterr().err
