"""Several `clap.train_adapter` runs side by side in worker processes, one CPU thread each.

A run on one thread gives the same adapter however many runs share the machine (`--jobs` changes the
time, not the result), and a small model gains little from a second thread, so runs side by side
finish sooner than one after another on all threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Callable, Iterable, Sequence

from tqdm import tqdm

from clap.errors import ClapError

Run = tuple[str, dict]  # a name and its `clap.train_adapter` keywords


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_runs(runs: Sequence[Run], jobs: int, progress: bool = True,
               work: Callable[[Run], tuple[str, float]] | None = None) -> dict[str, float]:
    """Train every run, `jobs` at a time, in the order given (put the longest first); {name: seconds}.

    A failing run's error is raised here; Ctrl-C stops every worker. `work` (a module-level function, for
    the worker processes to import) replaces `clap.train_adapter` for each run.
    """
    seconds: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    pool = context.Pool(max(1, min(jobs, len(runs))), initializer=_worker_setup)
    try:
        finished: Iterable = pool.imap_unordered(work or _train_one, runs)
        for name, spent in tqdm(finished, total=len(runs), desc="training runs", unit="run", disable=not progress):
            seconds[name] = spent
            _report_run(name, spent, progress)
    except BaseException:
        pool.terminate()  # Ctrl-C or a run's error: stop the others now
        raise
    pool.close()  # the normal end sends no signal: idle workers exit on the pool's sentinel
    _join(pool)
    return seconds


JOIN_SECONDS = 60.0


def _join(pool) -> None:
    """Wait for the pool's workers to exit; one that does not within JOIN_SECONDS is killed and reported."""
    joiner = threading.Thread(target=pool.join, daemon=True)
    joiner.start()
    joiner.join(JOIN_SECONDS)
    if joiner.is_alive():
        stuck = [p for p in pool._pool if p.is_alive()]  # the pool's own workers (not, e.g., joblib's)
        for process in stuck:
            process.kill()
        raise ClapError(f"every training run finished, but {len(stuck)} worker process(es) did not exit within "
                        f"{JOIN_SECONDS:.0f} s and were killed (every adapter was written before)")


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
    from clap.training.run import train_adapter

    start = time.monotonic()
    train_adapter(**run[1])
    return run[0], time.monotonic() - start
