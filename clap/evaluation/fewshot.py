"""Few-shot linear probes: k shots per class per domain, logistic regression on L2-normalised features.

The regularisation is chosen on the training shots only (`clap.evaluation.probe.fit_probe`). By default
each probe is scored on the domain's images that were not used to fit it (`scoring="held-out"`); the
authors score on the whole domain, their own shots included (`scoring="whole-domain"`, the paper
protocol), which leaks the shots into the score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from clap.data.fewshot import pick_per_class
from clap.errors import ClapError
from clap.evaluation.probe import fit_probe
from clap.model import per_model

if TYPE_CHECKING:
    from clap.evaluation.runner import EvalSetup

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


def few_shot_correct(features: torch.Tensor, labels: torch.Tensor, shots: int, seed: int, domain: str = "",
                     scoring: str = "held-out") -> tuple[np.ndarray, np.ndarray]:
    """(scored positions, whether each is classified right) for a probe fit on `shots` images per class."""
    x, y = features.numpy(), labels.numpy()
    idx = np.asarray(pick_per_class(y.tolist(), shots, seed, salt=domain))
    test = scored_positions(len(y), idx, scoring)
    if len(test) == 0 or len(np.unique(y[idx])) < 2:
        return test, y[test] == y[idx][0]
    return test, fit_probe(x[idx], y[idx], seed).predict(x[test]) == y[test]


def few_shot_accuracy(features: torch.Tensor, labels: torch.Tensor, shots: int, seed: int, domain: str = "",
                      scoring: str = "held-out") -> float:
    """Accuracy of a probe fit on `shots` images per class (the `clap splits` choice); NaN if none is left."""
    _, hits = few_shot_correct(features, labels, shots, seed, domain, scoring)
    return float(hits.mean()) if len(hits) else float("nan")


def evaluate_few_shot(model, raw_by_domain: dict, shots: Sequence[int] = DEFAULT_SHOTS,
                      seeds: Sequence[int] = (0, 1, 2), scoring: str = "held-out",
                      per_image: dict[str, list[np.ndarray]] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{domain: {"<k>": {"mean": acc, "std": acc}}} plus the mean over domains (mean and std over probe seeds).

    `per_image`, when given, receives per k each image's correctness averaged over the probe seeds that
    scored it (NaN for an image no seed scored), domain after domain.
    """
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for domain, data in raw_by_domain.items():
        feats = model.adapted(data.features)
        rows[domain] = {}
        for k in shots:
            hits, total = np.zeros(len(data.labels)), np.zeros(len(data.labels))
            accs = []
            for s in seeds:
                test, ok = few_shot_correct(feats, data.labels, k, s, domain, scoring)
                hits[test] += ok
                total[test] += 1
                accs.append(float(ok.mean()) if len(ok) else float("nan"))
            if per_image is not None:
                with np.errstate(invalid="ignore"):
                    per_image.setdefault(str(k), []).append(hits / total)
            rows[domain][str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs))}
    rows["mean"] = {str(k): {"mean": float(np.mean([rows[d][str(k)]["mean"] for d in raw_by_domain])),
                             "std": float(np.mean([rows[d][str(k)]["std"] for d in raw_by_domain]))}
                    for k in shots}
    return rows


def few_shot_scoring(protocol: str) -> str:
    """The paper protocol scores probes on the whole domain (shots included); ours on the held-out images."""
    return "whole-domain" if protocol == "paper" else "held-out"


def run_fewshot(setup: EvalSetup, shots: Sequence[int], seeds: Sequence[int], protocol: str = "pixel") -> dict:
    """Few-shot rows per model; per-image results (averaged over probe seeds) go to `setup.per_image["fewshot"]`."""
    scoring = few_shot_scoring(protocol)

    def one(model) -> tuple[dict, dict]:
        parts: dict[str, list[np.ndarray]] = {}
        rows = evaluate_few_shot(model, setup.raw, shots, seeds, scoring, parts)
        return rows, {f"{k}-shot": np.concatenate(v) for k, v in parts.items()}

    results = per_model(setup.models, one)
    setup.per_image["fewshot"] = {name: hits for name, (_, hits) in results.items()}
    return {name: rows for name, (rows, _) in results.items()}
