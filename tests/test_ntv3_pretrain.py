"""NT v3 masked-LM pretraining: single-base masking, the record-length curriculum (stages by step, the stream
that applies it, the run that switches at the given steps and resumes mid-curriculum as if never stopped)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from modeling_nt.pretraining import GenomeMLMDataset, GenomeSource, NTMaskingCollator, PretrainingConfig
from modeling_nt.pretraining.curriculum import LengthCurriculum
from modeling_nt.pretraining.data import unigram_of_ids
from modeling_nt.pretraining.genome import ChunkingConfig
from modeling_nt.pretraining.trainer import DEMO_V3_CONFIG, build_trainer, run_pretraining

REPO_ROOT = Path(__file__).resolve().parents[1]
SLICE = REPO_ROOT / "data" / "chr20_GRCh37_slice.fa.gz"
# The official NT v3 ids, written out: <unk>=0 <pad>=1 <mask>=2 <cls>=3 <eos>=4 <bos>=5 A=6 T=7 C=8 G=9 N=10.
PAD, MASK = 1, 2
NUCLEOTIDE_IDS = {"A": 6, "T": 7, "C": 8, "G": 9, "N": 10}
SPECIAL_IDS = [0, 1, 2, 3, 4, 5]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ids(sequence: str) -> list[int]:
    return [NUCLEOTIDE_IDS[base] for base in sequence]


# --- masking ---------------------------------------------------------------------------------------------


def test_collator_masks_15_percent_of_single_bases_80_10_10() -> None:
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(96):
        bases = rng.choice(list("ACGT"), size=int(rng.integers(700, 800)))
        bases[100:160] = "N"  # an N run in every row: N is a nucleotide token like the others (v1/v2 too)
        examples.append({"input_ids": _ids("".join(bases))})
    collator = NTMaskingCollator(version="v3", seed=1)
    assert (collator.pad_id, collator.mask_id) == (PAD, MASK)
    assert collator.standard_ids.tolist() == [6, 7, 8, 9, 10]
    batch = collator(examples)
    original = collator.pad([example["input_ids"] for example in examples])
    masked, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
    assert masked.shape == (96, max(len(example["input_ids"]) for example in examples))
    selected = labels != -100
    eligible = original != PAD
    assert not (selected & ~eligible).any()  # padding never a target
    np.testing.assert_array_equal(labels[selected], original[selected])
    np.testing.assert_array_equal(masked[~selected], original[~selected])
    np.testing.assert_array_equal(batch["attention_mask"].numpy(), eligible.astype(np.int64))
    to_mask = selected & (masked == MASK)
    unchanged = selected & (masked == original)
    to_random = selected & ~to_mask & ~unchanged
    assert set(np.unique(masked[to_random]).tolist()) <= {
        6,
        7,
        8,
        9,
        10,
    }  # a random nucleotide, never special
    # ~72k eligible bases, ~10.8k selected: the margins are 4-5 standard errors.
    assert selected.sum() / eligible.sum() == pytest.approx(0.15, abs=0.006)
    assert to_mask.sum() / selected.sum() == pytest.approx(0.80, abs=0.02)
    # a random draw equal to the original base (1 in 5) counts as unchanged: 10% * 4/5 and 10% + 10% * 1/5
    assert to_random.sum() / selected.sum() == pytest.approx(0.08, abs=0.012)
    assert unchanged.sum() / selected.sum() == pytest.approx(0.12, abs=0.015)
    n_positions = original == NUCLEOTIDE_IDS["N"]
    assert (selected & n_positions).sum() / n_positions.sum() == pytest.approx(0.15, abs=0.02)


def test_nucleotide_unigram_baseline_on_known_counts() -> None:
    # A A T C <pad> <mask> <cls>: the special tokens are not counted; A 2, T 1, C 1.
    baseline = unigram_of_ids([[6, 6, 7, 8, 1, 2], [3]], "v3")
    assert baseline["tokens"] == 4
    assert baseline["accuracy"] == 0.5
    assert baseline["entropy_nats"] == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))


# --- the curriculum and the stream ---------------------------------------------------------------------


def test_curriculum_gives_each_example_the_length_of_its_step() -> None:
    # 2 examples per micro-batch, 2 micro-batches per optimizer step: step = example // 4
    curriculum = LengthCurriculum(((0, 256), (3, 512), (5, 1024)), batch_size=2, batches_per_step=2)
    assert [curriculum.length_at_step(step) for step in range(7)] == [256] * 3 + [512] * 2 + [1024] * 2
    assert [curriculum.length_of_example(index) for index in range(24)] == (
        [256] * 12 + [512] * 8 + [1024] * 4
    )
    # Two DataLoader workers take turns by micro-batch: worker 1's 4th micro-batch (its examples 6, 7) is the
    # run's micro-batch 7, of step 3.
    assert [curriculum.length_of_example(index, 1, 2) for index in range(8)] == [256] * 6 + [512] * 2
    assert [curriculum.length_of_example(index, 0, 2) for index in range(8)] == [256] * 6 + [512] * 2
    # worker 0's examples 8, 9 and 10, 11: the run's micro-batches 8 (step 4) and 10 (step 5)
    assert [curriculum.length_of_example(index, 0, 2) for index in (8, 9, 10, 11)] == [512, 512, 1024, 1024]
    assert curriculum.final_length == 1024


def test_stream_cuts_records_into_consecutive_pieces_of_the_stage_length(tmp_path) -> None:
    rng = np.random.default_rng(3)
    genome = "".join(rng.choice(list("ACGT"), size=3000))
    fasta = tmp_path / "genome.fa"
    fasta.write_text(f">chrA\n{genome}\n")
    # 1000 bp records at 0, 1000, 2000; examples 0-3 (steps 0-1) 256 bp, then 512 bp.
    curriculum = LengthCurriculum(((0, 256), (2, 512)), batch_size=2, batches_per_step=1)
    chunking = ChunkingConfig(chunk_length=1000, overlap=0, max_offset=0, min_length=100)
    dataset = GenomeMLMDataset([GenomeSource(str(fasta))], chunking, version="v3", curriculum=curriculum)
    examples = [example for _, example in zip(range(8), dataset, strict=False)]
    # record 0: 0-256, 256-512, 512-768 (768-1024 would cross its end); record 1: 1000-1256, then 512 bp pieces
    # 1256-1768; record 2: 2000-2512; the second pass: 0-512, 1000-1512.
    spans = [
        (0, 256),
        (256, 512),
        (512, 768),
        (1000, 1256),
        (1256, 1768),
        (2000, 2512),
        (0, 512),
        (1000, 1512),
    ]
    for example, (start, end) in zip(examples, spans, strict=True):
        assert list(example["input_ids"]) == _ids(genome[start:end])
    assert len({tuple(example["mask_seed"]) for example in examples}) == 8


def test_v3_requires_a_curriculum_and_defaults_to_one_stage_within_the_records(tmp_path) -> None:
    with pytest.raises(ValueError, match="length curriculum"):
        GenomeMLMDataset([GenomeSource(str(SLICE))], version="v3")
    common = {"train_genomes": [str(SLICE)], "chunk_length": 1000, "overlap": 12}
    assert PretrainingConfig(preset="tiny-v3", **common).length_stages() == [(0, 1024)]  # 1024 bp records
    assert PretrainingConfig(preset="tiny-v3", max_tokens=512, **common).length_stages() == [(0, 512)]
    assert [PretrainingConfig(preset=name).generation for name in ("tiny-v1", "tiny", "tiny-v3")] == [
        "v1",
        "v2",
        "v3",
    ]


# --- runs on the bundled chr20 slice --------------------------------------------------------------------


def _config(output_dir: Path, **overrides) -> dict:
    """A tiny-v3 run on 128-512 bp records of the bundled slice, its last 20 kb held out."""
    values = {
        "preset": "tiny-v3",
        "train_genomes": [str(SLICE)],
        "held_out": ["20:30000001-32000000:1980001-2000000"],
        "chunk_length": 1000,
        "overlap": 12,
        "max_offset": 40,
        "min_length": 64,
        "length_curriculum": [[0, 128], [5, 256]],
        "shuffle_buffer": 64,
        "per_device_batch_size": 4,
        "tokens_per_update": None,
        "gradient_accumulation_steps": 1,
        "init_lr": 5e-4,
        "peak_lr": 3e-3,
        "warmup_steps": 4,
        "max_steps": 8,
        "logging_steps": 1,
        "save_steps": 4,
        "max_eval_records": 8,
        "baseline_max_records": 50,
        "report_to": "none",
        "plot": False,
        "output_dir": str(output_dir),
        "seed": 5,
    }
    return {**values, **overrides}


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_switch_length_at_the_given_steps_with_accumulation(tmp_path, workers) -> None:
    """With 2 DataLoader workers too (they take turns by micro-batch, each cutting its own share of records)."""
    config = PretrainingConfig.from_mapping(
        _config(
            tmp_path / "run",
            length_curriculum=[[0, 128], [3, 256], [5, 512]],
            gradient_accumulation_steps=2,
            dataloader_num_workers=workers,
        )
    )
    trainer = build_trainer(config)
    assert type(trainer.model).__name__ == "NTv3ForMaskedLM"
    assert trainer.model.config.trained_max_length == 512
    widths = [
        batch["input_ids"].shape for _, batch in zip(range(14), trainer.get_train_dataloader(), strict=False)
    ]
    # 2 micro-batches per step: steps 0-2 at 128 bp, 3-4 at 256 bp, 5-6 at 512 bp
    assert widths == [(4, 128)] * 6 + [(4, 256)] * 4 + [(4, 512)] * 4


class _Crash(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated crash at step {self.step}")


def _logged(results: dict, key: str) -> dict[int, float]:
    return {entry["step"]: entry[key] for entry in results["log_history"] if "loss" in entry}


@pytest.mark.slow
def test_resume_mid_curriculum_equals_the_uninterrupted_run(tmp_path) -> None:
    """Checkpoint at step 4 (first stage), crash at step 6 (second stage), resume: the same batches, losses,
    stage switch and final weights as the run that never stopped."""
    straight = run_pretraining(_config(tmp_path / "straight"))
    assert _logged(straight, "sequence_length") == {step: 128 if step <= 5 else 256 for step in range(1, 9)}
    assert straight["length_curriculum"] == [[0, 128], [5, 256]]
    crashed = _config(tmp_path / "crashed")
    with pytest.raises(KeyboardInterrupt):
        run_pretraining(crashed, callbacks=[_Crash(6)])
    with pytest.raises(ValueError, match="length_curriculum"):  # the fingerprint holds the curriculum
        run_pretraining({**crashed, "resume": True, "length_curriculum": [[0, 128], [6, 256]]})
    resumed = run_pretraining({**crashed, "resume": True})
    assert resumed["global_step"] == 8
    assert _logged(resumed, "sequence_length") == {step: 128 if step <= 5 else 256 for step in range(1, 9)}
    straight_losses, resumed_losses = _logged(straight, "loss"), _logged(resumed, "loss")
    assert [resumed_losses[step] for step in range(5, 9)] == pytest.approx(
        [straight_losses[step] for step in range(5, 9)], abs=1e-4
    )
    assert resumed["masked_loss"] == pytest.approx(straight["masked_loss"], abs=1e-4)
    final = [load_file(tmp_path / name / "final" / "model.safetensors") for name in ("straight", "crashed")]
    for key, tensor in final[0].items():
        torch.testing.assert_close(final[1][key], tensor, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_small_v3_model_beats_the_held_out_nucleotide_unigram(tmp_path) -> None:
    """The demo's architecture (configs/demo_v3.yaml), 180 steps of 16 records of 256 then 512 bp (about 45 s on
    one core): the held-out masked loss ends clearly below the entropy of the held-out nucleotides' own
    frequencies, the best loss of any predictor that ignores context. Measured with seeds 0, 1, 2, 3: 1.289,
    1.298, 1.294, 1.299 nats against 1.385 (26 s of training); a model that learned no context stays at ~1.38."""
    demo = yaml.safe_load(DEMO_V3_CONFIG.read_text())
    config = _config(
        tmp_path / "run",
        model_overrides=demo["model_overrides"],
        held_out=demo["held_out"],
        length_curriculum=[[0, 256], [90, 512]],
        per_device_batch_size=16,
        init_lr=1e-3,
        peak_lr=1e-2,
        warmup_steps=18,
        max_steps=180,
        logging_steps=20,
        save_steps=1000,
        max_eval_records=64,
        eval_on_start=True,
        eval_steps=180,
        seed=0,
    )
    results = run_pretraining(config)
    held_out = results["held_out_baseline"]
    assert held_out["tokens"] == 64 * 512
    assert 1.30 < held_out["entropy_nats"] < math.log(5)  # near-uniform A/C/G/T (GC ~40%), a few N at most
    assert 1.30 < results["baseline"]["entropy_nats"] < math.log(5)
    evaluations = [
        entry["eval_masked_loss"] for entry in results["log_history"] if "eval_masked_loss" in entry
    ]
    assert evaluations[0] > held_out["entropy_nats"]  # the untrained model is no better than the unigram
    assert results["masked_loss"] == evaluations[-1]
    assert results["masked_loss"] < held_out["entropy_nats"] - 0.04, (results["masked_loss"], held_out)
    assert results["beats_held_out_baseline"] and results["beats_baseline"]
    assert results["masked_accuracy"] > held_out["accuracy"] + 0.03


# --- the demo -------------------------------------------------------------------------------------------


def test_demo_v3_config_is_valid_and_its_summary_names_the_figures(tmp_path) -> None:
    from benchmarks.cli.demo import PLANS, pretraining_summary

    config = PretrainingConfig.from_yaml(
        DEMO_V3_CONFIG.with_name(PLANS["v3"].config), output_dir=str(tmp_path / "demo")
    )
    config.check_genomes()
    assert config.generation == "v3" and config.length_stages() == [(0, 512), (250, 1024)]
    result = {
        "masked_loss": 1.263,
        "masked_accuracy": 0.3886,
        "beats_baseline": True,
        "baseline": {"entropy_nats": 1.386, "accuracy": 0.2647, "tokens": 1_000_000},
        "baseline_name": "nucleotide unigram",
        "held_out_baseline": {"entropy_nats": 1.385, "accuracy": 0.27, "tokens": 131072},
        "global_step": 500,
        "length_curriculum": [[0, 512], [250, 1024]],
        "log_history": [{"train_runtime": 145.2, "step": 500}],
    }
    assert pretraining_summary(result).splitlines() == [
        "   held-out masked-token loss 1.263 nats (nucleotide unigram baseline of the training split 1.386); "
        "masked accuracy 0.3886 (unigram 0.2647); beats the baseline",
        "   entropy of the held-out nucleotide frequencies 1.385 nats (131072 bases): the model is 0.122 nats per "
        "masked base below it",
        "   500 optimizer steps, records 512 bp (step 0) -> 1024 bp (step 250), 145 s of training",
    ]


@pytest.mark.slow
def test_two_processes_switch_at_the_same_steps_as_one(tmp_path) -> None:
    """torchrun --nproc_per_node 2 (gloo), 2 records per process: the stages follow the global steps (a step
    takes micro-batches from both processes), with the losses of one process at the same global batch."""
    stages = {"length_curriculum": [[0, 128], [3, 256]], "max_steps": 5, "save_steps": 5}
    config = _config(tmp_path / "two", per_device_batch_size=2, **stages)
    config_file = tmp_path / "two.yaml"
    config_file.write_text(yaml.safe_dump(config))
    torchrun, nt = (Path(sys.executable).with_name(name) for name in ("torchrun", "nt"))
    completed = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", str(nt), "pretrain", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    one = run_pretraining(_config(tmp_path / "one", per_device_batch_size=4, **stages))
    assert two["world_size"] == 2 and one["world_size"] == 1
    expected = {step: 128 if step <= 3 else 256 for step in range(1, 6)}
    assert _logged(two, "sequence_length") == _logged(one, "sequence_length") == expected
    assert list(_logged(two, "loss").values()) == pytest.approx(list(_logged(one, "loss").values()), abs=0.03)
