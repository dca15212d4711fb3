"""Shared helpers for benchmark scripts: timing and result files."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from clap.backbones.base import Backbone
from clap.backbones.loading import load_backbone
from clap.fileio import write_text_atomic

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


def cpu_name() -> str:
    """The CPU model as the OS reports it (platform.processor() is empty on many Linux systems)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def save_result(name: str, result: dict) -> Path:
    """Print the result and write it to benchmarks/results/<name>.json."""
    result = {**result, "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "cpu": cpu_name()}}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


def add_backbone_options(parser: argparse.ArgumentParser, model: str) -> None:
    """--model ('embedded': the tiny CLIP, or an open_clip name), --pretrained and --threads."""
    parser.add_argument("--model", default=model, help="'embedded' (the tiny CLIP) or an open_clip model name")
    parser.add_argument("--pretrained", default="random", help="the open_clip model's weights")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())


def bench_backbone(args: argparse.Namespace) -> Backbone:
    """The options' backbone, with torch on --threads and library logging quiet."""
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    model = None if args.model == "embedded" else args.model
    return load_backbone(model, None if model is None else args.pretrained)
