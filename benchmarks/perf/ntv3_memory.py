"""NTv3 long-context peak memory on CPU: one forward at 32 kb, 131 kb and 1 Mb with the 8M preset.

Each case runs in a fresh Python process of its own (:func:`benchmarks.perf.harness.run_worker`): a
random-weight NTv3 model of a preset (default ``ntv3-8m-pre``: width 256 at every level, 2 core layers, 7
downsamples, so 1 Mb = 2**20 bp gives 8,192 core positions), fp32, sdpa attention, ``--threads`` threads
(default 2), is built, then one forward runs under ``torch.inference_mode`` on batch 1 of uniform random
A/C/G/T tokens. ``model`` is ``embed`` (:class:`~modeling_nt.modeling_ntv3.NTv3Model`, the base-resolution
states [1, L, 256] that ``nt embed`` reads) or ``mlm`` (:class:`~modeling_nt.modeling_ntv3.NTv3ForMaskedLM`,
logits [1, L, 11]). ``mode`` is ``streamed`` (the default inference path: the towers run over the length in
windows of ``NTv3PreTrainedModel.stream_window`` positions) or ``whole`` (``stream_window = None``: every
layer runs over the whole length at once, as under autograd). Reported, in MB (MiB):

- ``base_rss_mb``: VmRSS after the imports, before the model is built (the interpreter, torch, transformers);
- ``built_rss_mb``: VmRSS once the model is built (after ``gc.collect()``);
- ``peak_rss_mb``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the forward (the process high-water
  mark);
- ``floor_mb``: what must coexist at some point whatever the schedule: the weights, the input ids, the U-Net
  skips of every level (the inputs of the down blocks, ``sum_i B * L / 2**i * width_i * 4`` bytes; all alive
  when the up tower starts), and the outputs that cannot reuse skip 0's memory (the MLM logits). The
  base-resolution output can: the up tower adds its result into skip 0 in place. ``activation_mb`` is one
  full-length [B, L, conv_init_embed_dim] fp32 tensor, the unit in which a whole-length schedule exceeds the
  floor;
- ``ratio``: ``(peak_rss_mb - base_rss_mb) / floor_mb``: 1.0 is the floor, plus the allocator's slack.

CPU seconds (``time.process_time()``, all threads) and wall seconds of the forward are recorded too.
``ru_maxrss`` cannot be reset within a process, hence one process per case; the launching process imports no
torch before the workers finish.

    python -m benchmarks.perf.ntv3_memory [--threads 2] [--lengths 32768 131072 1048576]
        [--models embed mlm] [--modes streamed whole] [--preset ntv3-8m-pre]

Table to stdout, JSON to ``benchmarks/perf/results/ntv3_memory.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import Any

from benchmarks.perf.segment_memory import max_rss_mb

LENGTHS = (32_768, 131_072, 1_048_576)
MODELS = ("embed", "mlm")
MODES = ("streamed", "whole")
MB = 2**20


def floor_mb(config: Any, parameters_bytes: int, length: int, model: str, batch: int = 1) -> dict[str, float]:
    """The floor of the module docstring for ``batch`` rows of ``length`` bp: ``floor_mb`` (weights + int64
    input ids + fp32 skips of every level + fp32 logits for ``mlm``) and ``activation_mb`` (one fp32
    [batch, length, conv_init_embed_dim] tensor), in MB."""
    widths = config.tower_widths
    skips = sum(batch * (length >> level) * widths[level] * 4 for level in range(config.num_downsamples))
    logits = batch * length * config.vocab_size * 4 if model == "mlm" else 0
    total = parameters_bytes + batch * length * 8 + skips + logits
    return {"floor_mb": total / MB, "activation_mb": batch * length * config.conv_init_embed_dim * 4 / MB}


def measure(preset: str, length: int, model: str, mode: str, seed: int = 0) -> dict[str, Any]:
    """Build ``preset`` (random weights, fp32, sdpa) as ``model`` and run one forward of ``length`` random
    bases in ``mode``; return the figures of the module docstring.

    Meaningful only in a fresh process (``ru_maxrss`` is the high-water mark of the whole process life):
    :func:`main` runs it through :func:`benchmarks.perf.harness.run_worker`. Raises ValueError for an unknown
    model or mode, or a length that is not a multiple of ``2 ** num_downsamples``.
    """
    if model not in MODELS or mode not in MODES:
        raise ValueError(f"model must be one of {MODELS} and mode one of {MODES}, got {model!r}, {mode!r}")
    import torch

    from benchmarks.perf.harness import rss_mb
    from modeling_nt.configuration_ntv3 import NTV3_VOCAB
    from modeling_nt.loading import NTForMaskedLM, NTModel, load_model

    gc.collect()
    base_rss = rss_mb("VmRSS")
    started = time.perf_counter()
    network = load_model(preset, NTForMaskedLM if model == "mlm" else NTModel, seed=seed)
    network = network.float()
    build_s = time.perf_counter() - started
    backbone = network.ntv3 if model == "mlm" else network
    if mode == "whole":
        backbone.stream_window = None
    config = network.config
    generator = torch.Generator().manual_seed(seed)
    bases = torch.tensor([NTV3_VOCAB.index(base) for base in "ACGT"])
    input_ids = bases[torch.randint(0, 4, (1, length), generator=generator)]
    parameters_bytes = sum(p.numel() * p.element_size() for p in network.parameters())
    gc.collect()
    built_rss = rss_mb("VmRSS")
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        outputs = network(input_ids)
    cpu_s, wall_s = time.process_time() - started_cpu, time.perf_counter() - started_wall
    peak = max_rss_mb()
    output = outputs.logits if model == "mlm" else outputs.last_hidden_state
    floor = floor_mb(config, parameters_bytes, length, model)
    return {
        "preset": preset,
        "model": model,
        "mode": mode,
        "stream_window": backbone.stream_window,
        "length": length,
        "core_positions": length // config.length_multiple,
        "parameters": sum(p.numel() for p in network.parameters()),
        "dtype": str(next(network.parameters()).dtype).removeprefix("torch."),
        "attn_implementation": config._attn_implementation,
        "threads": torch.get_num_threads(),
        "output_shape": list(output.shape),
        "base_rss_mb": base_rss,
        "built_rss_mb": built_rss,
        "peak_rss_mb": peak,
        **floor,
        "ratio": (peak - base_rss) / floor["floor_mb"],
        "build_s": build_s,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
    }


def table(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Printed rows, one per case."""
    return [
        {
            "model": f"{r['preset']} {r['model']}",
            "mode": r["mode"],
            "length bp": f"{r['length']:,}",
            "core pos": f"{r['core_positions']:,}",
            "peak RSS MB": f"{r['peak_rss_mb']:,.0f}",
            "peak - base MB": f"{r['peak_rss_mb'] - r['base_rss_mb']:,.0f}",
            "floor MB": f"{r['floor_mb']:,.0f}",
            "ratio": f"{r['ratio']:.2f}",
            "1 activation MB": f"{r['activation_mb']:,.0f}",
            "CPU s": f"{r['cpu_s']:.1f}",
            "wall s": f"{r['wall_s']:.1f}",
        }
        for r in results
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.perf.harness import RESULTS_DIR, print_rows, run_worker, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads of every pool (default 2)")
    parser.add_argument("--preset", default="ntv3-8m-pre", help="NTv3 preset (default ntv3-8m-pre)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS), help="bp per case")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--worker", nargs=4, metavar=("PRESET", "LENGTH", "MODEL", "MODE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        from benchmarks.perf.harness import pin_threads

        pin_threads(args.threads)
        preset, length, model, mode = args.worker
        print(json.dumps(measure(preset, int(length), model, mode)))
        return {}
    results = []
    for length in args.lengths:
        for model in args.models:
            for mode in args.modes:
                print(
                    f"measuring {args.preset} {model}, {length:,} bp, {mode} ...", file=sys.stderr, flush=True
                )
                results.append(
                    run_worker(
                        "benchmarks.perf.ntv3_memory",
                        ["--threads", str(args.threads), "--worker", args.preset, str(length), model, mode],
                    )
                )
    print_rows(table(results))
    payload = {"results": results, "threads": args.threads}
    path = write_json("ntv3_memory", payload, folder=RESULTS_DIR)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
