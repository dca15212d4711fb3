"""Memory and time of the intervals as the images grow: resamples held whole against drawn a chunk at a time.

    python -m benchmarks.bench_stats_memory [--images 24000 120000] [--n-boot 1000]

Synthetic per-image zero-shot hits (6 domains, 2 models: CLIP and an adapter, 3 prompt forms) go through
`clap.evaluation.statistics.stats.differences` as a report does ("chunked": today's resamples, CHUNK_ROWS rows
at a time), and the same statistics are evaluated on every resample at once with each stratum's weights held whole
("whole": [n_boot, images] float64, how the intervals were computed before). Peak memory is traced
(tracemalloc: numpy's allocations), beside the per-image records' own size; ratios in one run.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from benchmarks.common import save_result
from clap.evaluation.statistics.resample import OBSERVED, Resamples
from clap.evaluation.statistics.stats import TaskMeasure, differences
from clap.evaluation.protocols.zeroshot import zero_shot_statistic

DOMAINS = 6


def records(images: int, shift: float, seed: int) -> dict:
    """{domain: {form: hits [N]}} of one model: 3 forms, per-domain accuracies near 0.6 (+ shift)."""
    rng = np.random.default_rng(seed)
    n = images // DOMAINS
    return {f"d{d}": {form: (rng.random(n) < 0.6 + shift + 0.02 * k).astype(float) for k, form in
                      enumerate(("C", "PC", "CP"))} for d in range(DOMAINS)}


def measure(images: int) -> TaskMeasure:
    clip, adapter = records(images, 0.0, 1), records(images, 0.03, 2)
    return TaskMeasure({"CLIP": zero_shot_statistic(clip), "A": zero_shot_statistic(adapter)}, images)


def whole(task: TaskMeasure, n_boot: int) -> None:
    """Every statistic on all resamples at once: each stratum's [n_boot, n] weights held for the whole report."""
    resamples = Resamples(n_boot)
    held = {}

    class Whole:
        rows = n_boot

        def weights(self, key, n, classes=None):
            if key not in held:
                held[key] = resamples.weights(key, n, classes)
            return held[key]

        def picks(self, key, n):
            return resamples.picks(key, n)

    for statistic in task.statistics.values():
        statistic(OBSERVED), statistic(Whole())


def traced(run, *args) -> tuple[float, float]:
    """(seconds, peak traced MB) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    run(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[24000, 120000])
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    for images in args.images:
        task = measure(images)
        records_mb = 2 * 3 * images * 8 / 2**20
        chunked = traced(differences, "CLIP", {"zeroshot": task}, Resamples(args.n_boot))
        held = traced(whole, task, args.n_boot)
        rows.append({"images": images, "records_MB": round(records_mb, 1),
                     "chunked": {"seconds": round(chunked[0], 2), "peak_MB": round(chunked[1], 1)},
                     "whole": {"seconds": round(held[0], 2), "peak_MB": round(held[1], 1)},
                     "peak_ratio_whole_to_chunked": round(held[1] / chunked[1], 1)})
        print(rows[-1])
    growth = rows[-1]["chunked"]["peak_MB"] / rows[0]["chunked"]["peak_MB"] if len(rows) > 1 else None
    save_result("stats_memory", {"n_boot": args.n_boot, "domains": DOMAINS, "rows": rows,
                                 "chunked_peak_growth": round(growth, 2) if growth else None,
                                 "images_growth": args.images[-1] / args.images[0]})


if __name__ == "__main__":
    main()
