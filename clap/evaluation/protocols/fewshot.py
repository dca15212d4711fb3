"""Few-shot linear probes: k shots per class per domain, logistic regression on L2-normalised features.

The regularisation is chosen on the training shots only (`clap.evaluation.protocols.probe.fit_probe`). By default
each probe is scored on the domain's images that were not used to fit it (`scoring="held-out"`); the
authors score on the whole domain, their own shots included (`scoring="whole-domain"`, the paper
protocol), which leaks the shots into the score.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from clap.data.fewshot import pick_per_class
from clap.errors import ClapError
from clap.evaluation.protocols.probe import fit_probe
from clap.evaluation.statistics.resample import OBSERVED, Sample, Series, images_of, per_domain
from clap.evaluation.statistics.stats import TaskMeasure, sample_std
from clap.model import per_model

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup

logger = logging.getLogger(__name__)
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


def domain_statistics(hits: dict[str, "np.ndarray | Series"], key: str, sample: Sample) -> dict[str, np.ndarray]:
    """{"<k>-shot": [rows]}: a domain's accuracy for k shots, the mean over probe seeds (shot draws) of each
    draw's accuracy on the images it scored (`hits` [seeds, N], NaN where a draw did not score the image), on a
    sample: images drawn within the domain and, as a level of its own, the domain's shot draws with replacement
    (the same picks for every model: paired)."""
    weights = sample.weights(key, images_of(hits))
    return {k: drawn_mean(sample, key, weights, h) for k, h in hits.items()}


def drawn_mean(sample: Sample, key: str, weights: np.ndarray, hits: "np.ndarray | Series") -> np.ndarray:
    """[rows] the mean over a sample of shot draws (level "shot-draws:<key>", the same picks for every model) of
    each draw's accuracy under the image `weights` (`hits` [draws, N], NaN where a draw did not score an image)."""
    hits = Series.of(hits)
    per_draw = hits.means(weights).T  # [draws, rows]
    picks = sample.picks(f"shot-draws:{key}", hits.rows)  # [rows, draws]
    return per_draw[picks, np.arange(len(picks))[:, None]].mean(axis=1)


def few_shot_statistic(records: dict[str, dict[str, np.ndarray]]):
    """The few-shot table's mean row as a function of a sample ({domain: per-image hits per shot count})."""
    return per_domain({d: {k: Series(h) for k, h in hits.items()} for d, hits in records.items()}, "images",
                      domain_statistics)


def few_shot_hits(model, raw_by_domain: dict, shots: Sequence[int] = DEFAULT_SHOTS, seeds: Sequence[int] = (0, 1, 2),
                  scoring: str = "held-out") -> dict[str, dict[str, np.ndarray]]:
    """The records {domain: {"<k>-shot": hits [seeds, N], NaN where unscored}} behind the few-shot rows."""
    records = {}
    for domain, data in raw_by_domain.items():
        feats = model.adapted(data.features)
        records[domain] = hits = {}
        for k in shots:
            hits[f"{k}-shot"] = np.full((len(seeds), len(data.labels)), np.nan)
            for i, s in enumerate(seeds):
                test, ok = few_shot_correct(feats, data.labels, k, s, domain, scoring)
                hits[f"{k}-shot"][i, test] = ok
    return records


def few_shot_rows(records: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, dict[str, float]]]:
    """{domain|mean: {"<k>": {"mean": acc, "std": acc}}} (mean and std, ddof 1, over probe seeds) from the records
    (the same shot counts in every domain)."""
    keys, rows = list(next(iter(records.values()))), {}
    for domain, hits in records.items():
        means = domain_statistics(hits, f"images:{domain}", OBSERVED)
        with np.errstate(invalid="ignore"):
            rows[domain] = {k.removesuffix("-shot"): {"mean": float(means[k][0]),
                                                      "std": sample_std(np.nanmean(hits[k], axis=1))} for k in keys}
    mean = few_shot_statistic(records)(OBSERVED)
    rows["mean"] = {k.removesuffix("-shot"): {"mean": float(mean[k][0]), "std": float(np.mean(
        [rows[d][k.removesuffix("-shot")]["std"] for d in records]))} for k in keys}
    return rows


def usable_shots(raw_by_domain: dict, shots: Sequence[int], scoring: str) -> list[int]:
    """The shot counts every class of every domain can supply (with one image left to score, held-out);
    the others are skipped with one warning; none usable is an error."""
    spare = 1 if scoring == "held-out" else 0
    smallest = {d: int(np.bincount(data.labels.numpy())[np.unique(data.labels.numpy())].min())
                for d, data in raw_by_domain.items()}
    domain, fewest = min(smallest.items(), key=lambda item: item[1])
    usable = [k for k in shots if k + spare <= fewest]
    if not usable:
        raise ClapError(f"few-shot: a class of domain '{domain}' has only {fewest} images, too few for any of "
                        f"`shots` {' '.join(map(str, shots))} ({scoring} scoring needs shots + {spare})")
    if len(usable) < len(shots):
        skipped = [k for k in shots if k not in usable]
        logger.warning("few-shot: skipping shots %s: a class of domain '%s' has only %d images (%s scoring needs "
                       "shots + %d)", ", ".join(map(str, skipped)), domain, fewest, scoring, spare)
    return usable


def few_shot_scoring(protocol: str) -> str:
    """The paper protocol scores probes on the whole domain (shots included); ours on the held-out images."""
    return "whole-domain" if protocol == "paper" else "held-out"


def few_shot_records(setup: EvalSetup, shots: Sequence[int], seeds: Sequence[int], protocol: str = "pixel"
                     ) -> dict[str, dict]:
    """{model: `few_shot_hits`} of every model (shot counts a class cannot supply are skipped, said once)."""
    scoring = few_shot_scoring(protocol)
    shots = usable_shots(setup.raw, shots, scoring)
    return per_model(setup.models, lambda model: few_shot_hits(model, setup.raw, shots, seeds, scoring))


def few_shot_results(records: dict[str, dict]) -> tuple[dict, TaskMeasure]:
    """Few-shot rows per model and the task's statistics for intervals, from {model: records} (the shot counts
    every domain has)."""
    kept = {name: common_shots(r) for name, r in records.items()}
    first = next(iter(kept.values()))
    images = sum(images_of(hits) for hits in first.values())
    draws = len(next(iter(next(iter(first.values())).values())))
    return ({name: few_shot_rows(r) for name, r in kept.items()},
            TaskMeasure({name: few_shot_statistic(r) for name, r in kept.items()}, images, {"shot draws": draws}))


def common_shots(records: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """The records of the shot counts every domain has (evaluated in shards, a domain may have kept more)."""
    keys = [k for k in next(iter(records.values())) if all(k in hits for hits in records.values())]
    dropped = sorted({k for hits in records.values() for k in hits} - set(keys))
    if dropped:
        logger.warning("few-shot: leaving out %s: not every domain could supply them", ", ".join(dropped))
    return {d: {k: hits[k] for k in keys} for d, hits in records.items()}


def run_fewshot(setup: EvalSetup, shots: Sequence[int], seeds: Sequence[int], protocol: str = "pixel"
                ) -> tuple[dict, TaskMeasure]:
    """Few-shot rows per model and the task's statistics for intervals (see `few_shot_records`)."""
    return few_shot_results(few_shot_records(setup, shots, seeds, protocol))
