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
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from tqdm import tqdm

from clap.errors import ClapError

Run = tuple[str, dict]  # a name and its `clap.train_adapter` keywords


def train_runs(runs: Sequence[Run], jobs: int, progress: bool = True,
               work: Callable[[Run], tuple[str, float]] | None = None) -> dict[str, float]:
    """Train every run, `jobs` at a time, in the order given (put the longest first); {name: seconds}.

    A failing run's error is raised here, and a worker that cannot start ends the call with one ClapError
    (spawned workers import the calling script again: call this from a file, under `if __name__ == "__main__":`).
    Ctrl-C stops every worker. `work` (a module-level function, for the worker processes to import) replaces
    `clap.train_adapter` for each run.
    """
    seconds: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    executor = ProcessPoolExecutor(max(1, min(jobs, len(runs))), mp_context=context, initializer=_worker_setup)
    try:
        futures = [executor.submit(work or _train_one, run) for run in runs]
        workers = list(executor._processes.values())  # all started by the first submit (spawn context)
        for future in tqdm(as_completed(futures), total=len(runs), desc="training runs", unit="run",
                           disable=not progress):
            name, spent = future.result()
            seconds[name] = spent
            _report_run(name, spent, progress)
    except BrokenProcessPool:
        _stop(executor)
        raise ClapError(WORKER_FAILED) from None
    except BaseException:
        _stop(executor)  # Ctrl-C or a run's error: stop the others now
        raise
    _shut_down(executor, workers)  # the normal end sends no signal: idle workers exit on the executor's sentinel
    return seconds


WORKER_FAILED = ("a training worker process stopped before its run ended (a worker imports the calling script "
                 "again: run it from a file, with the call under `if __name__ == \"__main__\":`; not from standard "
                 "input or a notebook cell)")
JOIN_SECONDS = 60.0


def _stop(executor: ProcessPoolExecutor) -> None:
    """Stop every worker now (SIGTERM: each exits at once, see `_exit_now`) and cancel the runs not started."""
    for process in list((executor._processes or {}).values()):
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def _shut_down(executor: ProcessPoolExecutor, workers: list) -> None:
    """Shut the executor down, waiting for its workers; one that does not exit within JOIN_SECONDS is killed and
    reported (the executor's own thread reaps them: this one only waits for it)."""
    closing = threading.Thread(target=executor.shutdown, daemon=True)
    closing.start()
    closing.join(JOIN_SECONDS)
    if closing.is_alive():
        stuck = [p for p in workers if p.exitcode is None]
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
