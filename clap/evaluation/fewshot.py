"""Few-shot linear probes: k shots per class per domain, logistic regression on L2-normalised features.

The inverse regularisation strength C is chosen by stratified cross-validation on the training
shots only (never on the evaluation images); with one shot per class there is nothing to
cross-validate and a fixed C is used. Each probe is evaluated on the whole domain.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from clap.data.fewshot import pick_per_class

DEFAULT_SHOTS = (1, 4, 8, 16, 32)
C_GRID = (0.1, 1.0, 10.0, 100.0)
ONE_SHOT_C = 10.0


def fit_probe(x: np.ndarray, y: np.ndarray, seed: int = 0) -> LogisticRegression:
    """A logistic classifier with C chosen by CV on (x, y) when every class has at least 2 samples."""
    base = LogisticRegression(max_iter=1000, random_state=seed)
    min_count = int(np.bincount(y).min()) if len(y) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if min_count >= 2 and len(np.unique(y)) > 1:
            folds = StratifiedKFold(n_splits=min(5, min_count), shuffle=True, random_state=seed)
            search = GridSearchCV(base, {"C": list(C_GRID)}, cv=folds)
            return search.fit(x, y).best_estimator_
        return base.set_params(C=ONE_SHOT_C).fit(x, y)


def few_shot_accuracy(features: torch.Tensor, labels: torch.Tensor, shots: int, seed: int, domain: str = "") -> float:
    """Accuracy on the whole domain of a probe fit on `shots` images per class (the `clap splits` choice)."""
    x, y = features.numpy(), labels.numpy()
    idx = np.asarray(pick_per_class(y.tolist(), shots, seed, salt=domain))
    if len(np.unique(y[idx])) < 2:
        return float(np.mean(y == y[idx][0]))
    return float(fit_probe(x[idx], y[idx], seed).score(x, y))


def evaluate_few_shot(model, raw_by_domain: dict, shots: Sequence[int] = DEFAULT_SHOTS,
                      seeds: Sequence[int] = (0, 1, 2)) -> dict[str, dict[str, dict[str, float]]]:
    """{domain: {"<k>": {"mean": acc, "std": acc}}} plus the mean over domains."""
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for domain, data in raw_by_domain.items():
        feats = model.adapt(data.features, normalize=True).detach()
        rows[domain] = {}
        for k in shots:
            accs = [few_shot_accuracy(feats, data.labels, k, s, domain) for s in seeds]
            rows[domain][str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs))}
    rows["mean"] = {str(k): {"mean": float(np.mean([rows[d][str(k)]["mean"] for d in raw_by_domain])),
                             "std": float(np.mean([rows[d][str(k)]["std"] for d in raw_by_domain]))}
                    for k in shots}
    return rows
