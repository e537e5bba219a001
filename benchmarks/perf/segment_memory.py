"""SegmentNT peak memory on CPU: one 30 kb window with the 500M-shaped model, and tiling that holds one window.

Each configuration runs in a fresh Python process of its own (:func:`benchmarks.perf.harness.run_worker`): a
random-weight ``NTForSegmentation`` of a preset (``segment_nt``: the NT v2 500M backbone and the released
U-Net head; ``tiny``: the test preset), fp32, sdpa attention, ``--threads`` threads (default 2), is built,
then :func:`benchmarks.segmentation.predict_region` (what ``nt segment predict`` runs, under
``torch.inference_mode``) scores a random A/C/G/T region of ``windows`` windows of ``window_tokens`` 6-mer
tokens (neighbours overlapping by ``overlap`` nt, 10% of the window by default). Reported, in MB:

- ``built_rss_mb``: current RSS (``VmRSS``) once the model is built (after ``gc.collect()``);
- ``built_peak_mb``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at that moment (the start-up and build
  high-water mark);
- ``peak_rss_mb``: ``ru_maxrss`` after the prediction, the high-water mark of the whole process;
- ``extra_mb = peak_rss_mb - built_rss_mb``: what the prediction added on top of the model.

(The kernel syncs the per-thread RSS counters behind ``ru_maxrss`` lazily, so it can read a fraction of a MB
below ``VmRSS``.)

Configurations (default): ``segment_nt`` at 5,000 tokens (30,000 nt, the SegmentNT training window; 5,000 is
divisible by ``2 ** num_downsamples = 4``) over one window, then ``segment_nt`` and ``tiny`` at 1,000 tokens
(6,000 nt) over one window and over a region of three windows: the tiling claim is that three windows peak
as high as one (the region's stitched output, ``[region, classes]`` float32, is the only thing that grows).
``ru_maxrss`` cannot be reset within a process, hence one process per configuration; the launching process
imports no torch before the workers finish, so that no inherited high-water mark exceeds a worker's.

    python -m benchmarks.perf.segment_memory [--threads 2] [--window-tokens 5000] [--small-window-tokens 1000]

Table to stdout, JSON to ``benchmarks/perf/results/segment_memory.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from typing import Any

#: (preset, window tokens or None for --window-tokens / "small" for --small-window-tokens, windows)
CONFIGURATIONS = (
    ("segment_nt", "large", 1),
    ("segment_nt", "small", 1),
    ("segment_nt", "small", 3),
    ("tiny", "small", 1),
    ("tiny", "small", 3),
)
NUCLEOTIDES_PER_TOKEN = 6


def max_rss_mb() -> float:
    """``ru_maxrss`` of this process (Linux: KiB) in MB (MiB, as :func:`benchmarks.perf.harness.rss_mb`)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def region_length(window_nt: int, windows: int, overlap: int) -> int:
    """Nucleotides of a region that :func:`benchmarks.segmentation.tile_starts` covers with exactly
    ``windows`` windows of ``window_nt`` nt overlapping by ``overlap`` nt."""
    if windows < 1 or not 0 <= overlap < window_nt:
        raise ValueError(f"need windows >= 1 and 0 <= overlap < {window_nt}, got {windows}, {overlap}")
    return windows * window_nt - (windows - 1) * overlap


def measure(
    preset: str, window_tokens: int, windows: int, overlap: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Build ``preset`` (random weights, fp32, sdpa) and predict a random region of ``windows`` windows of
    ``window_tokens`` tokens with :func:`benchmarks.segmentation.predict_region`; return the RSS figures of
    the module docstring (MB), the sizes and the wall seconds of the build and of the prediction.

    Meaningful only in a fresh process (``ru_maxrss`` is the high-water mark of the whole process life):
    :func:`main` runs it through :func:`benchmarks.perf.harness.run_worker`. Raises ValueError for a window
    whose token count is not divisible by ``2 ** num_downsamples`` or an overlap outside ``[0, window)``.
    """
    import torch

    from benchmarks.perf.common import random_dna
    from benchmarks.perf.harness import rss_mb
    from benchmarks.segmentation import Contig, load_segmentation_model, predict_region, window_length

    started = time.perf_counter()
    model = load_segmentation_model(preset, seed=seed, attn_implementation="sdpa").float()
    build_s = time.perf_counter() - started
    window_nt = window_length(window_tokens, model.config.num_downsamples)
    overlap = window_nt // 10 if overlap is None else overlap
    length = region_length(window_nt, windows, overlap)
    record = Contig("region", "region", 0, random_dna(1, length, seed=seed, n_runs=False)[0])
    gc.collect()
    built_rss, built_peak = rss_mb("VmRSS"), max_rss_mb()
    started = time.perf_counter()
    with torch.no_grad():
        scores = predict_region(model, record, 0, length, window_tokens=window_tokens, overlap=overlap)
    predict_s = time.perf_counter() - started
    peak = max_rss_mb()
    return {
        "preset": preset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "window_tokens": window_tokens,
        "window_nt": window_nt,
        "windows": windows,
        "overlap_nt": overlap,
        "region_nt": length,
        "output_shape": list(scores.shape),
        "built_rss_mb": built_rss,
        "built_peak_mb": built_peak,
        "peak_rss_mb": peak,
        "extra_mb": peak - built_rss,
        "build_s": build_s,
        "predict_s": predict_s,
    }


def tiling_checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each preset and window measured over one window and over several: the ratio of their peaks
    (``ru_maxrss``) and of their extras over the built model."""
    checks = []
    for many in results:
        if many["windows"] == 1:
            continue
        for one in results:
            if (one["preset"], one["window_tokens"], one["windows"]) == (
                many["preset"],
                many["window_tokens"],
                1,
            ):
                checks.append(
                    {
                        "preset": many["preset"],
                        "window_nt": many["window_nt"],
                        "windows": many["windows"],
                        "peak_ratio": many["peak_rss_mb"] / one["peak_rss_mb"],
                        "extra_mb_one_window": one["extra_mb"],
                        "extra_mb_many_windows": many["extra_mb"],
                    }
                )
    return checks


def table(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Printed rows, one per configuration."""
    return [
        {
            "preset": r["preset"],
            "params": f"{r['parameters'] / 1e6:,.1f}M",
            "window": f"{r['window_tokens']:,} tok / {r['window_nt']:,} nt",
            "windows": str(r["windows"]),
            "region nt": f"{r['region_nt']:,}",
            "built RSS MB": f"{r['built_rss_mb']:,.0f}",
            "peak RSS MB": f"{r['peak_rss_mb']:,.0f}",
            "peak - built MB": f"{r['extra_mb']:,.0f}",
            "predict s": f"{r['predict_s']:.1f}",
        }
        for r in results
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.perf.harness import RESULTS_DIR, print_rows, run_worker, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads of every pool (default 2)")
    parser.add_argument(
        "--window-tokens", type=int, default=5000, help="the one-window measurement (default 5000: 30 kb)"
    )
    parser.add_argument(
        "--small-window-tokens", type=int, default=1000, help="the tiling measurement (default 1000: 6 kb)"
    )
    parser.add_argument("--worker", nargs=3, metavar=("PRESET", "TOKENS", "WINDOWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from benchmarks.perf.harness import pin_threads

        pin_threads(args.threads)
        preset, tokens, windows = args.worker
        print(json.dumps(measure(preset, int(tokens), int(windows))))
        return {}
    tokens = {"large": args.window_tokens, "small": args.small_window_tokens}
    results = []
    for preset, size, windows in CONFIGURATIONS:
        print(
            f"measuring {preset}, {tokens[size]} tokens x {windows} window(s) ...",
            file=sys.stderr,
            flush=True,
        )
        results.append(
            run_worker(
                "benchmarks.perf.segment_memory",
                ["--threads", str(args.threads), "--worker", preset, str(tokens[size]), str(windows)],
            )
        )
    checks = tiling_checks(results)
    print_rows(table(results))
    for check in checks:
        print(
            f"tiling, {check['preset']} at {check['window_nt']:,} nt: {check['windows']} windows peak at "
            f"{check['peak_ratio']:.3f}x one window's"
        )
    payload = {"results": results, "tiling": checks, "threads": args.threads}
    path = write_json("segment_memory", payload, folder=RESULTS_DIR)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
