"""Logistic-regression probes on L2-normalised features (scikit-learn).

The inverse regularisation strength C is chosen by stratified cross-validation on the training
samples only; with a single sample in some class there is nothing to cross-validate and a fixed C
is used. The cross-validation fits run in parallel on every core (`CV_JOBS`); the chosen C does not
depend on it (`benchmarks/bench_probe_cv.py`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from torch.nn import functional as F

C_GRID = (0.1, 1.0, 10.0, 100.0)
CV_JOBS = -1
ONE_SHOT_C = 10.0


def fit_probe(x: np.ndarray, y: np.ndarray, seed: int = 0) -> LogisticRegression:
    """A logistic classifier with C chosen by CV on (x, y) when every class has at least 2 samples."""
    base = LogisticRegression(max_iter=1000, random_state=seed)
    _, codes = np.unique(y, return_inverse=True)
    min_count = int(np.bincount(codes).min()) if len(codes) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # one shot of many classes is the point of a 1-shot probe, not a regression target
        warnings.filterwarnings("ignore", "The number of unique classes is greater than 50%", UserWarning)
        if min_count >= 2 and codes.max() > 0:
            folds = StratifiedKFold(n_splits=min(5, min_count), shuffle=True, random_state=seed)
            return GridSearchCV(base, {"C": list(C_GRID)}, cv=folds, n_jobs=CV_JOBS).fit(x, y).best_estimator_
        return base.set_params(C=ONE_SHOT_C).fit(x, y)


def _numpy(features: torch.Tensor) -> np.ndarray:
    return F.normalize(features.float(), dim=-1).cpu().numpy()


def probe_accuracy(train_x: torch.Tensor, train_y, test_x: torch.Tensor, test_y, seed: int = 0) -> float:
    """Held-out accuracy of a logistic probe fit on (train_x, train_y)."""
    clf = fit_probe(_numpy(train_x), np.asarray(train_y), seed)
    return float(clf.score(_numpy(test_x), np.asarray(test_y)))
