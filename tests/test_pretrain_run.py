"""Short real pretraining runs on the bundled chr20 slice: loss falls, resume equivalence, 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_outputs_say_what_ran import assert_final_says_what_ran
from transformers import TrainerCallback

from modeling_nt.pretraining import PretrainingConfig, run_pretraining

REPO_ROOT = Path(__file__).resolve().parents[1]
SLICE = REPO_ROOT / "data" / "chr20_GRCh37_slice.fa.gz"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine two spinning threads per process slow tiny runs 4x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(output_dir: Path, **overrides) -> dict:
    """A tiny, fast run: 64-token records from the bundled slice, its last 20 kb held out."""
    values = {
        "preset": "tiny",
        "train_genomes": [str(SLICE)],
        "held_out": ["20:30000001-32000000:1980001-2000000"],
        "chunk_length": 360,
        "overlap": 10,
        "max_offset": 20,
        "min_length": 60,
        "max_tokens": 64,
        "shuffle_buffer": 64,
        "per_device_batch_size": 8,
        "tokens_per_update": None,
        "gradient_accumulation_steps": 1,
        "init_lr": 5e-4,
        "peak_lr": 3e-3,
        "warmup_steps": 4,
        "max_steps": 8,
        "logging_steps": 1,
        "save_steps": 4,
        "max_eval_records": 16,
        "baseline_max_records": 200,
        "report_to": "none",
        "output_dir": str(output_dir),
        "seed": 11,
    }
    return {**values, **overrides}


def _losses(results: dict) -> list[float]:
    return [entry["loss"] for entry in results["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_short_run_loss_falls_and_results_are_kept(tmp_path) -> None:
    config = _config(
        tmp_path / "run",
        **{"max_steps": 40, "eval_steps": 40, "eval_on_start": True, "logging_steps": 5, "save_steps": 40},
        **{
            "per_device_batch_size": 16,
            "max_tokens": 128,
            "chunk_length": 740,
            "init_lr": 1e-3,
            "peak_lr": 2e-3,
        },
    )
    results = run_pretraining(config)
    held_out = [entry["eval_masked_loss"] for entry in results["log_history"] if "eval_masked_loss" in entry]
    assert len(held_out) == 2  # at the start and at the end: same records, same masks
    assert held_out[1] < held_out[0] - 0.1, held_out
    losses = _losses(results)
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert results["world_size"] == 1 and results["global_step"] == 40
    assert results["masked_loss"] == held_out[1]
    assert 0 <= results["masked_accuracy"] <= 1 and results["perplexity"] > 1
    assert 7.0 < results["baseline"]["entropy_nats"] < 8.4  # human 6-mers: close to log(4096) = 8.32
    assert Path(results["loss_curve"]).stat().st_size > 10_000
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    assert_final_says_what_ran(tmp_path / "run" / "final", trained_max_tokens=128, run_name="run")
    again = run_pretraining(config)  # a finished run is returned, never overwritten
    assert again["reused"] and again["masked_loss"] == results["masked_loss"]
    with pytest.raises(ValueError, match="max_steps: was 40, now 41"):
        run_pretraining({**config, "max_steps": 41})


class _Crash(TrainerCallback):
    """Simulates a crash (a killed job) after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated crash at step {self.step}")


@pytest.mark.slow
def test_resumed_run_matches_uninterrupted_run(tmp_path) -> None:
    straight = run_pretraining(_config(tmp_path / "straight"))
    crashed = _config(tmp_path / "crashed")
    with pytest.raises(KeyboardInterrupt):
        run_pretraining(crashed, callbacks=[_Crash(6)])  # checkpoint-4 was written, steps 5-6 are lost
    with pytest.raises(ValueError, match="resume"):
        run_pretraining(crashed)
    resumed = run_pretraining({**crashed, "resume": True})
    assert resumed["global_step"] == straight["global_step"] == 8
    assert _losses(resumed)[4:] == pytest.approx(_losses(straight)[4:], abs=1e-4)
    assert resumed["masked_loss"] == pytest.approx(straight["masked_loss"], abs=1e-4)
    final = [load_file(tmp_path / name / "final" / "model.safetensors") for name in ("straight", "crashed")]
    for key, tensor in final[0].items():
        torch.testing.assert_close(final[1][key], tensor, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_two_processes_with_torchrun_match_one_process(tmp_path) -> None:
    """torchrun --nproc_per_node 2 (gloo): world size 2 and the loss of one process at the same global batch."""
    config = _config(tmp_path / "two", per_device_batch_size=4, max_steps=4, save_steps=4)
    config_file = tmp_path / "two.yaml"
    config_file.write_text(yaml.safe_dump(config))
    torchrun = Path(sys.executable).with_name("torchrun")
    nt = Path(sys.executable).with_name("nt")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", str(nt), "pretrain", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    one = run_pretraining(_config(tmp_path / "one", per_device_batch_size=8, max_steps=4, save_steps=4))
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert _losses(two)[0] < 9.0  # not multiplied by the world size (log 4107 = 8.32)
    assert _losses(two) == pytest.approx(_losses(one), abs=0.03)
    assert PretrainingConfig.from_yaml(config_file).per_device_batch_size == 4
