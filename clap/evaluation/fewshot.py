"""Few-shot linear probes: k shots per class per domain, logistic regression on L2-normalised features.

The regularisation is chosen on the training shots only (`clap.evaluation.probe.fit_probe`), never
on the evaluation images; each probe is evaluated on the whole domain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from clap.data.fewshot import pick_per_class
from clap.evaluation.probe import fit_probe

DEFAULT_SHOTS = (1, 4, 8, 16, 32)


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
        feats = model.adapted(data.features)
        rows[domain] = {}
        for k in shots:
            accs = [few_shot_accuracy(feats, data.labels, k, s, domain) for s in seeds]
            rows[domain][str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs))}
    rows["mean"] = {str(k): {"mean": float(np.mean([rows[d][str(k)]["mean"] for d in raw_by_domain])),
                             "std": float(np.mean([rows[d][str(k)]["std"] for d in raw_by_domain]))}
                    for k in shots}
    return rows
