"""GPU check of issue 14 (run by ``benchmarks/perf/gpu_check.sh``): parity, attention kernels, packing, MFU, embed.

On one CUDA device, in this order (each part records ``ok`` / ``skipped`` with the reason / ``failed``):

1. **Parity** of the last hidden state, CUDA against CPU fp32 (same random v2 model, mixed-length padded
   batch, real positions only): fp32 within :data:`FP32_TOLERANCE`, bf16 within :data:`BF16_TOLERANCE`
   (max absolute difference; hidden states are LayerNorm outputs of order 1).
2. **Attention implementations** ``sdpa``, ``flex_attention``, ``flash_attention_2`` (bf16), each against the
   CPU fp32 reference; one that cannot load (e.g. ``flash-attn`` not installed) is skipped with the reason.
3. **Padding-free batches**: :func:`benchmarks.embeddings.embed_sequences` with ``packing=True`` against
   ``packing=False`` on mixed lengths (skipped if the installed version has no ``packing``).
4. **Pretraining throughput** of the v2-50M preset at 2,048 tokens per sequence, bf16 autocast, AdamW: tokens/s
   and model FLOPs utilisation, ``3 x forward FLOPs`` (:func:`benchmarks.perf.common.forward_flops`, plus the
   LM head at the 15% masked positions only) over the device's dense bf16 peak (``--peak-tflops``, default
   989: H100/H200 SXM). Goal >= 40%.
5. **nt embed vs the user loop** (:mod:`benchmarks.perf.embed_throughput`, both on the device): tokens/s.

``--cpu-dry-run`` runs every part on the CPU at tiny sizes (to check the script, not to measure). Prints a
table; writes ``gpu_check.json`` to ``$OUT`` when set, else to ``benchmarks/perf/results/``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.perf.common import EMBED_LENGTHS_NT, build_v1_pair, forward_flops, random_dna
from benchmarks.perf.harness import RESULTS_DIR, print_rows, write_json

FP32_TOLERANCE = 1e-4
BF16_TOLERANCE = 5e-2
ATTENTION = ("sdpa", "flex_attention", "flash_attention_2")


def _part(name: str, function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"status": "ok", **function()}
    except _Skip as reason:
        result = {"status": "skipped", "reason": str(reason)}
    except Exception as error:  # one failing part must not hide the others
        result = {
            "status": "failed",
            "reason": f"{type(error).__name__}: {error}",
            "trace": traceback.format_exc(),
        }
    result["seconds"] = round(time.perf_counter() - started, 2)
    print(f"{name}: {result['status']} {result.get('reason', '')}", flush=True)
    return {"part": name, **result}


class _Skip(Exception):
    """A part that cannot run here, with the reason."""


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _v2_model(layers: int, hidden: int, ffn: int, heads: int, attention: str = "sdpa"):
    import torch

    from modeling_nt import NTConfig, NTModel

    torch.manual_seed(0)
    config = NTConfig.from_preset(
        "nt-v2-50m-multi-species",
        num_hidden_layers=layers,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_attention_heads=heads,
    )
    config._attn_implementation = attention
    return NTModel(config).eval()


def _batch(lengths: list[int]) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(0)
    ids = np.ones((len(lengths), max(lengths)), dtype=np.int64)  # <pad> = 1
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(6, 4102, length)
        ids[row, 0] = 3
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy((ids != 1).astype(np.int64)),
    }


def _states(model, batch: dict[str, Any], device: str, dtype) -> np.ndarray:
    import torch

    model = model.to(device=device, dtype=dtype)
    with torch.inference_mode():
        states = model(**{k: v.to(device) for k, v in batch.items()}).last_hidden_state
    return states[batch["attention_mask"].bool().to(device)].float().cpu().numpy()


def parity(args: argparse.Namespace) -> dict[str, Any]:
    import copy

    import torch

    model = _v2_model(*args.parity_model)
    batch = _batch(args.parity_lengths)
    reference = _states(copy.deepcopy(model), batch, "cpu", torch.float32)
    fp32 = float(np.abs(_states(copy.deepcopy(model), batch, args.device, torch.float32) - reference).max())
    bf16 = float(np.abs(_states(copy.deepcopy(model), batch, args.device, torch.bfloat16) - reference).max())
    return {
        "fp32_max_abs_diff": fp32,
        "fp32_tolerance": FP32_TOLERANCE,
        "bf16_max_abs_diff": bf16,
        "bf16_tolerance": BF16_TOLERANCE,
        "met": fp32 <= FP32_TOLERANCE and bf16 <= BF16_TOLERANCE,
    }


def attention(args: argparse.Namespace, implementation: str) -> dict[str, Any]:
    import torch

    if implementation == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError as error:
            raise _Skip(f"flash-attn is not installed ({error})") from None
        if not args.device.startswith("cuda"):
            raise _Skip("flash_attention_2 needs CUDA")
    reference = _states(_v2_model(*args.parity_model), _batch(args.parity_lengths), "cpu", torch.float32)
    dtype = torch.bfloat16 if implementation == "flash_attention_2" else torch.float32
    model = _v2_model(*args.parity_model, attention=implementation)
    diff = float(np.abs(_states(model, _batch(args.parity_lengths), args.device, dtype) - reference).max())
    tolerance = BF16_TOLERANCE if dtype == torch.bfloat16 else FP32_TOLERANCE
    return {"dtype": str(dtype), "max_abs_diff": diff, "tolerance": tolerance, "met": diff <= tolerance}


def packing(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.embeddings import embed_sequences

    if "packing" not in inspect.signature(embed_sequences).parameters:
        raise _Skip("embed_sequences has no packing option in this version")
    model = _v2_model(*args.parity_model).to(args.device)
    records = random_dna(args.embed_records, EMBED_LENGTHS_NT, n_runs=False)
    timings, outputs = {}, {}
    for packed in (False, True):
        embed_sequences(model, records[:2], progress=False, packing=packed)
        _sync(args.device)
        started = time.perf_counter()
        outputs[packed] = next(iter(embed_sequences(model, records, progress=False, packing=packed).values()))
        _sync(args.device)
        timings[packed] = time.perf_counter() - started
    diff = float(np.abs(outputs[True] - outputs[False]).max())
    return {
        "max_abs_diff": diff,
        "tolerance": FP32_TOLERANCE,
        "met": diff <= FP32_TOLERANCE,
        "padded_s": timings[False],
        "packed_s": timings[True],
        "speed_up": timings[False] / timings[True],
    }


def pretraining(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from modeling_nt import NTConfig, NTForMaskedLM
    from modeling_nt.pretraining import NTMaskingCollator

    overrides = (
        {} if not args.cpu_dry_run else {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128}
    )
    config = NTConfig.from_preset("nt-v2-50m-multi-species", **overrides)
    model = NTForMaskedLM(config).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=args.device.startswith("cuda"))
    batch_size, tokens = args.train_batch, args.train_tokens
    rng = np.random.default_rng(0)
    examples = [{"input_ids": [3, *rng.integers(6, 4102, tokens - 1).tolist()]} for _ in range(batch_size)]
    collator = NTMaskingCollator(version="v2", seed=0)
    autocast = torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16)

    def step() -> float:
        batch = {k: v.to(args.device, non_blocking=True) for k, v in collator(examples).items()}
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.train_warmup):
        step()
    _sync(args.device)
    started = time.perf_counter()
    for _ in range(args.train_steps):
        loss = step()
    _sync(args.device)
    seconds = time.perf_counter() - started
    # model FLOPs: encoder on every token, LM head only where the loss needs it (the 15% masked positions)
    head = 0.15 * batch_size * tokens * 2 * config.hidden_size * config.vocab_size
    step_flops = 3 * (forward_flops(config, [tokens] * batch_size) + head)
    achieved = step_flops * args.train_steps / seconds
    mfu = achieved / (args.peak_tflops * 1e12)
    return {
        "tokens_per_s": args.train_steps * batch_size * tokens / seconds,
        "batch": [batch_size, tokens],
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": args.peak_tflops,
        "mfu": mfu,
        "goal": 0.4,
        "met": mfu >= 0.4 if not args.cpu_dry_run else None,
        "last_loss": float(loss),
    }


def embed(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.perf import embed_throughput
    from benchmarks.perf.common import max_abs_difference

    records = random_dna(args.embed_records, EMBED_LENGTHS_NT, n_runs=False)
    tokens = sum(len(s) // 6 + len(s) % 6 + 1 for s in records)
    with tempfile.TemporaryDirectory() as folder:
        pair = build_v1_pair(Path(folder), args.embed_model)
        embedders = {
            "ours": embed_throughput.ours_embedder(pair["ours"]),
            "reference": embed_throughput.user_embedder(pair["esm"], device=args.device),
        }
        seconds, outputs = {}, {}
        for side, function in embedders.items():
            function(records[:2])
            _sync(args.device)
            started = time.perf_counter()
            outputs[side] = function(records)
            _sync(args.device)
            seconds[side] = time.perf_counter() - started
    return {
        "ours_tokens_per_s": tokens / seconds["ours"],
        "reference_tokens_per_s": tokens / seconds["reference"],
        "speed_up": seconds["reference"] / seconds["ours"],
        "max_abs_diff": max_abs_difference(outputs["ours"], outputs["reference"]),
    }


def _summary(part: dict[str, Any]) -> str:
    keys = (
        "fp32_max_abs_diff",
        "bf16_max_abs_diff",
        "max_abs_diff",
        "speed_up",
        "tokens_per_s",
        "mfu",
        "met",
    )
    return ", ".join(
        f"{k}={part[k]:.3g}" if isinstance(part[k], float) else f"{k}={part[k]}" for k in keys if k in part
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="every part on CPU at tiny sizes")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device")
    args = parser.parse_args(argv)
    import torch

    if args.cpu_dry_run:
        args.device = "cpu"
        args.parity_model, args.parity_lengths = (2, 64, 128, 4), [37, 20, 5]
        args.embed_records, args.embed_model = 4, {
            "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
        }  # fmt: skip
        args.train_batch, args.train_tokens, args.train_steps, args.train_warmup = 2, 64, 2, 1
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run with --cpu-dry-run to check the script on CPU")
        args.device = "cuda"
        args.parity_model, args.parity_lengths = (4, 512, 2048, 16), [2048, 1500, 700, 64]
        args.embed_records, args.embed_model = (
            256,
            {
                "hidden_size": 1280,
                "num_hidden_layers": 24,
                "num_attention_heads": 20,
                "intermediate_size": 5120,
            },
        )  # fmt: skip  (v1-500M sizes)
        args.train_batch, args.train_tokens, args.train_steps, args.train_warmup = 16, 2048, 20, 5
    parts = [_part("parity CUDA vs CPU (fp32, bf16)", lambda: parity(args))]
    parts += [_part(f"attention {name}", lambda name=name: attention(args, name)) for name in ATTENTION]
    parts.append(_part("padding-free (packing) vs padded embed", lambda: packing(args)))
    parts.append(_part("pretraining v2-50M, 2,048 tokens, bf16", lambda: pretraining(args)))
    parts.append(_part("nt embed vs AutoModel loop", lambda: embed(args)))
    device = "cpu (dry run)" if args.cpu_dry_run else torch.cuda.get_device_name(0)
    print(f"\ngpu_check on {device}")
    print_rows(
        [
            {"part": p["part"], "status": p["status"], "result": _summary(p) or p.get("reason", "")}
            for p in parts
        ]
    )
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS_DIR
    print(f"wrote {write_json('gpu_check', {'device': device, 'parts': parts}, folder=folder)}")


if __name__ == "__main__":
    main()
