"""Probe cross-validation: scikit-learn's grid search in one process vs on every core (`probe.CV_JOBS`).

    python -m benchmarks.bench_probe_cv

The demo's disentanglement and 4-shot probes each search C by cross-validation; the chosen C must not
depend on the number of jobs (checked), only the time.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from benchmarks.common import best_of, save_result
from clap.evaluation.protocols.probe import C_GRID, CV_JOBS


def search(x: np.ndarray, y: np.ndarray, jobs: int | None) -> float:
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    grid = GridSearchCV(LogisticRegression(max_iter=1000, random_state=0), {"C": list(C_GRID)}, cv=folds, n_jobs=jobs)
    return float(grid.fit(x, y).best_params_["C"])


def main() -> None:
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(32), 40)  # 32 classes, 1280 samples, 128-d: the world's probe size
    x = rng.normal(size=(32, 128))[labels] * 0.3 + rng.normal(size=(len(labels), 128))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    chosen = {jobs: search(x, labels, jobs) for jobs in (None, CV_JOBS)}
    one = best_of(lambda: search(x, labels, None), repeats=3)
    every = best_of(lambda: search(x, labels, CV_JOBS), repeats=3)
    save_result("probe_cv", {"cores": os.cpu_count(), "one_process_seconds": one, "every_core_seconds": every,
                             "speedup": one / every, "same_C": chosen[None] == chosen[CV_JOBS]})


if __name__ == "__main__":
    main()
