"""Few-shot linear probes: k shots per class per domain, logistic regression on L2-normalised features.

The regularisation is chosen on the training shots only (`clap.evaluation.probe.fit_probe`). By default
each probe is scored on the domain's images that were not used to fit it (`scoring="held-out"`); the
authors score on the whole domain, their own shots included (`scoring="whole-domain"`, the paper
protocol), which leaks the shots into the score.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from clap.data.fewshot import pick_per_class
from clap.errors import ClapError
from clap.evaluation.probe import fit_probe

DEFAULT_SHOTS = (1, 4, 8, 16, 32)
SCORINGS = ("held-out", "whole-domain")


def scored_positions(n: int, fitted: Sequence[int], scoring: str) -> np.ndarray:
    """Which of n images score a probe fit on `fitted`: the others (held-out) or all (whole-domain)."""
    if scoring not in SCORINGS:
        raise ClapError(f"unknown few-shot scoring '{scoring}'; use {' or '.join(SCORINGS)}")
    if scoring == "whole-domain":
        return np.arange(n)
    keep = np.ones(n, bool)
    keep[np.asarray(fitted, dtype=np.int64)] = False
    return np.flatnonzero(keep)


def few_shot_accuracy(features: torch.Tensor, labels: torch.Tensor, shots: int, seed: int, domain: str = "",
                      scoring: str = "held-out") -> float:
    """Accuracy of a probe fit on `shots` images per class (the `clap splits` choice); NaN if none is left."""
    x, y = features.numpy(), labels.numpy()
    idx = np.asarray(pick_per_class(y.tolist(), shots, seed, salt=domain))
    test = scored_positions(len(y), idx, scoring)
    if len(test) == 0:
        return float("nan")
    if len(np.unique(y[idx])) < 2:
        return float(np.mean(y[test] == y[idx][0]))
    return float(fit_probe(x[idx], y[idx], seed).score(x[test], y[test]))


def evaluate_few_shot(model, raw_by_domain: dict, shots: Sequence[int] = DEFAULT_SHOTS,
                      seeds: Sequence[int] = (0, 1, 2), scoring: str = "held-out"
                      ) -> dict[str, dict[str, dict[str, float]]]:
    """{domain: {"<k>": {"mean": acc, "std": acc}}} plus the mean over domains."""
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for domain, data in raw_by_domain.items():
        feats = model.adapted(data.features)
        rows[domain] = {}
        for k in shots:
            accs = [few_shot_accuracy(feats, data.labels, k, s, domain, scoring) for s in seeds]
            rows[domain][str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs))}
    rows["mean"] = {str(k): {"mean": float(np.mean([rows[d][str(k)]["mean"] for d in raw_by_domain])),
                             "std": float(np.mean([rows[d][str(k)]["std"] for d in raw_by_domain]))}
                    for k in shots}
    return rows
