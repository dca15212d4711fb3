"""Several `clap train` runs side by side in worker processes, one CPU thread each.

A run on one thread gives the same adapter however many runs share the machine (`--jobs` changes the
time, not the result), and a small model gains little from a second thread, so runs side by side
finish sooner than one after another on all threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from typing import Iterable, Sequence

from tqdm import tqdm

Run = tuple[str, list[str]]  # a name and its `clap train` arguments


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_runs(runs: Sequence[Run], jobs: int, progress: bool = True) -> dict[str, float]:
    """Train every run, `jobs` at a time, in the order given (put the longest first); {name: seconds}.

    A failing run's error is raised here; Ctrl-C stops every worker.
    """
    seconds: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with context.Pool(max(1, min(jobs, len(runs))), initializer=_worker_setup) as pool:
        finished: Iterable = pool.imap_unordered(_train_one, runs)
        for name, spent in tqdm(finished, total=len(runs), desc="training runs", unit="run", disable=not progress):
            seconds[name] = spent
            _report_run(name, spent, progress)
    return seconds


def _report_run(name: str, seconds: float, progress: bool) -> None:
    (tqdm.write if progress else print)(f"   {name}: {seconds:.0f} s")


def _worker_setup() -> None:
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import: quiet them after)
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool on Ctrl-C ...
    signal.signal(signal.SIGTERM, _exit_now)  # ... by SIGTERM: Lightning's handler runs, then this one
    for name in ("lightning.pytorch", "lightning.fabric"):  # runs are shown by name, not by Lightning's lines
        logging.getLogger(name).setLevel(logging.WARNING)


def _exit_now(signum: int, frame: object) -> None:
    """Stop at once: no interrupted checkpoint, no traceback (the parent reports the interruption)."""
    os._exit(128 + signum)


def _train_one(run: Run) -> tuple[str, float]:
    from clap.training.cli import main as train

    start = time.monotonic()
    train(run[1])
    return run[0], time.monotonic() - start
