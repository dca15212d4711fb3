"""Shared helpers for benchmark scripts: timing and result files."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn` in seconds after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def save_result(name: str, result: dict) -> Path:
    """Print the result and write it to benchmarks/results/<name>.json."""
    result = {**result, "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "cpu": platform.processor()}}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
