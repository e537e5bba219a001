"""Embedding-extraction throughput: our NT models against ``transformers.EsmForMaskedLM`` with the same weights.

CPU, fp32, sdpa attention for all. Two workloads of random token ids: (a) ``uniform``, every sequence 1,000
tokens; (b) ``mixed``, lengths uniform in 100-1,000 tokens, in random order. The embedding of a sequence is the
last hidden state (after the final LayerNorm) of its real tokens. Variants, all with the same batch size:

- ``esm-mlm``: ``EsmForMaskedLM(..., output_hidden_states=True).hidden_states[-1]``, batches in arrival order
  (how the Hub model cards extract embeddings);
- ``ours-mlm``: ``NTForMaskedLM`` used the same way (same work: compares the model code only);
- ``ours-base``: ``NTModel`` (no LM head), arrival order;
- ``ours-base-sorted``: ``NTModel`` with length-sorted batches (less padding): our embedding path.

The v1-style model (6 layers x 512, learned positions, GELU) is a random ``EsmForMaskedLM`` converted with
``nt convert --from esm``; the v2-50M preset runs ours only (random weights). Timing: best of ``--repeats``
passes, the variants interleaved in each round; wall time gives tokens/s and the process CPU time (all threads,
user + system) gives the speed-up, which other processes on a shared machine disturb much less. Peak
memory: one pass in a fresh process per variant (``VmHWM``, and its increase over the loaded model). The
embeddings of every variant are compared with those of ``esm-mlm`` (v1) or ``ours-mlm`` (v2).

    python -m benchmarks.perf.model_throughput [--uniform 4] [--mixed 12] [--batch-size 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.perf.common import print_table, write_json

V1_BENCH_SIZES = {
    "hidden_size": 512,
    "num_hidden_layers": 6,
    "num_attention_heads": 8,
    "intermediate_size": 2048,
}
VARIANTS = ("esm-mlm", "ours-mlm", "ours-base", "ours-base-sorted")
TOLERANCE = 1e-4


def workload(name: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """Random ``<cls>``-first token ids (valid in both id layouts): 1,000 tokens each, or 100-1,000 tokens."""
    rng = np.random.default_rng(seed)
    lengths = np.full(count, 1000) if name == "uniform" else rng.integers(100, 1001, count)
    sequences = []
    for length in lengths:
        ids = rng.integers(6, 4100, int(length))
        ids[0] = 3
        sequences.append(ids)
    return sequences


def batches(lengths: list[int], batch_size: int, sort: bool) -> Iterator[list[int]]:
    """Indices of each batch: in arrival order, or longest first so that batch-mates have similar lengths."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else list(range(len(lengths)))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad(sequences: list[np.ndarray], pad_id: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids and attention mask."""
    input_ids = np.full((len(sequences), max(len(ids) for ids in sequences)), pad_id, dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
    return input_ids, (input_ids != pad_id).astype(np.int64)


def load_variant(variant: str, checkpoint: Path):
    """The model a variant runs, in eval mode with sdpa attention."""
    from transformers import EsmForMaskedLM

    from modeling_nt import NTForMaskedLM, NTModel

    model_class = {"esm-mlm": EsmForMaskedLM, "ours-mlm": NTForMaskedLM}.get(variant, NTModel)
    return model_class.from_pretrained(checkpoint, attn_implementation="sdpa").eval()


def embed(model, variant: str, sequences: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Last hidden state of the real tokens of each sequence, in input order."""
    import torch

    lengths = [len(ids) for ids in sequences]
    embeddings: list[np.ndarray] = [np.empty(0)] * len(sequences)
    for indices in batches(lengths, batch_size, sort=variant.endswith("sorted")):
        input_ids, attention_mask = (torch.from_numpy(a) for a in pad([sequences[i] for i in indices]))
        with torch.inference_mode():
            if variant.endswith("mlm"):
                states = model(
                    input_ids, attention_mask=attention_mask, output_hidden_states=True
                ).hidden_states[-1]
            else:
                states = model(input_ids, attention_mask=attention_mask).last_hidden_state
        for row, index in enumerate(indices):
            embeddings[index] = states[row, : lengths[index]].numpy()
    return embeddings


def _memory_status_mb(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process from ``/proc/self/status`` (Linux), in MB.

    ``VmHWM`` belongs to this process image; ``ru_maxrss`` would carry over the parent's peak across fork/exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def memory_worker(args: argparse.Namespace) -> None:
    """In a fresh process: one pass of a variant over a workload; print the peak RSS increase in MB."""
    model = load_variant(args.variant, args.checkpoint)
    sequences = workload(args.workload, args.count)
    embed(model, args.variant, sequences[:1], args.batch_size)
    baseline = _memory_status_mb("VmRSS")
    embed(model, args.variant, sequences, args.batch_size)
    peak = _memory_status_mb("VmHWM")
    print(json.dumps({"peak_extra_mb": max(peak - baseline, 0.0), "peak_rss_mb": peak}))


def peak_memory(variant: str, checkpoint: Path, name: str, count: int, batch_size: int) -> dict[str, float]:
    """Peak memory of one pass, measured in a fresh process so that no other model or pass interferes."""
    command = [sys.executable, "-m", "benchmarks.perf.model_throughput", "--memory-worker", variant]
    command += ["--checkpoint", str(checkpoint), "--workload", name, "--count", str(count)]
    command += ["--batch-size", str(batch_size)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def build_checkpoints(folder: Path) -> dict[str, Path]:
    """The v1-style ``EsmForMaskedLM`` (random weights), its conversion, and a random v2-50M checkpoint."""
    import torch
    from transformers import EsmConfig, EsmForMaskedLM

    from modeling_nt import NTConfig, NTForMaskedLM
    from modeling_nt.convert import convert_checkpoint

    torch.manual_seed(0)
    esm_config = EsmConfig(
        vocab_size=4105,
        max_position_embeddings=1002,
        position_embedding_type="absolute",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=2,
        pad_token_id=1,
        layer_norm_eps=1e-12,
        tie_word_embeddings=False,
        **V1_BENCH_SIZES,
    )
    EsmForMaskedLM(esm_config).save_pretrained(folder / "esm-v1")
    convert_checkpoint("esm", folder / "esm-v1", folder / "ours-v1")
    NTForMaskedLM(NTConfig.from_preset("nt-v2-50m-multi-species")).save_pretrained(folder / "ours-v2-50m")
    return {"esm": folder / "esm-v1", "v1": folder / "ours-v1", "v2": folder / "ours-v2-50m"}


def max_difference(embeddings: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return max(float(np.abs(mine - theirs).max()) for mine, theirs in zip(embeddings, reference, strict=True))


def time_variants(
    plans: list[tuple[str, str, object]], sequences: list[np.ndarray], batch_size: int, repeats: int
) -> tuple[list[float], list[float], list[list[np.ndarray]]]:
    """Best-of-``repeats`` wall and CPU seconds of each plan, and its embeddings; rounds interleave the plans so
    that load from other processes hits them alike."""
    best_wall, best_cpu = [float("inf")] * len(plans), [float("inf")] * len(plans)
    outputs: list[list[np.ndarray]] = [[] for _ in plans]
    for index, (_, variant, model) in enumerate(plans):
        outputs[index] = embed(model, variant, sequences[:1], batch_size)  # warm-up
    for _ in range(repeats):
        for index, (_, variant, model) in enumerate(plans):
            started, started_cpu = time.perf_counter(), time.process_time()
            outputs[index] = embed(model, variant, sequences, batch_size)
            best_wall[index] = min(best_wall[index], time.perf_counter() - started)
            best_cpu[index] = min(best_cpu[index], time.process_time() - started_cpu)
    return best_wall, best_cpu, outputs


def benchmark(args: argparse.Namespace) -> None:
    import torch

    counts = {"uniform": args.uniform, "mixed": args.mixed}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = build_checkpoints(Path(tmp))
        plan_specs = [("v1 6x512", v, checkpoints["esm" if v == "esm-mlm" else "v1"]) for v in VARIANTS]
        plan_specs += [("v2-50m", v, checkpoints["v2"]) for v in ("ours-mlm", "ours-base-sorted")]
        plans = [
            (model_name, variant, load_variant(variant, path)) for model_name, variant, path in plan_specs
        ]
        for name, count in counts.items():
            sequences = workload(name, count)
            tokens = sum(len(ids) for ids in sequences)
            print(f"timing {len(plans)} variants on the {name} workload ({count} sequences) ...", flush=True)
            seconds, cpu_seconds, outputs = time_variants(plans, sequences, args.batch_size, args.repeats)
            for index, (model_name, variant, checkpoint) in enumerate(plan_specs):
                reference = next(i for i, spec in enumerate(plan_specs) if spec[0] == model_name)
                memory = peak_memory(variant, checkpoint, name, count, args.batch_size)
                rows.append(
                    {
                        "model": model_name,
                        "workload": name,
                        "variant": variant,
                        "tokens": tokens,
                        "seconds": seconds[index],
                        "cpu_seconds": cpu_seconds[index],
                        "tokens/s": tokens / seconds[index],
                        "tokens/cpu-s": tokens / cpu_seconds[index],
                        "speed-up": cpu_seconds[reference] / cpu_seconds[index],
                        "peak extra MB": memory["peak_extra_mb"],
                        "peak RSS MB": memory["peak_rss_mb"],
                        "max |diff|": max_difference(outputs[index], outputs[reference]),
                    }
                )
    columns = [
        "model",
        "workload",
        "variant",
        "tokens/s",
        "tokens/cpu-s",
        "speed-up",
        "peak extra MB",
        "peak RSS MB",
        "max |diff|",
    ]
    print(
        f"CPU fp32, sdpa, {torch.get_num_threads()} threads, batch size {args.batch_size}, best of {args.repeats}; "
        "speed-up (CPU time) and max |diff| of the embeddings are against the first row of each model/workload"
    )
    print_table([row | {"max |diff|": f"{row['max |diff|']:.1e}"} for row in rows], columns)
    payload = {"batch_size": args.batch_size, "repeats": args.repeats, "sequences": counts, "rows": rows}
    path = write_json("model_throughput", payload | {"v1_sizes": V1_BENCH_SIZES, "tolerance": TOLERANCE})
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uniform", type=int, default=4, help="sequences of 1,000 tokens in workload (a)")
    parser.add_argument("--mixed", type=int, default=12, help="sequences of 100-1,000 tokens in workload (b)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per variant (best kept)")
    parser.add_argument("--memory-worker", dest="variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=["uniform", "mixed"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        memory_worker(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
