"""Vocabulary openness (Ren et al., "Delving into the Openness of CLIP", ACL Findings 2023).

Classes come in vocabularies (groups). Following the authors' `incremental_evaluation`
(lancopku/clip-openness, `main.py`): each vocabulary in turn is the target; Acc-C is the accuracy on the
target's images among the target's classes alone. In each of several random orders the other
vocabularies are added one at a time; after each addition, extensibility measures the accuracy on all
images seen so far among all classes so far (Acc-E averages it over the steps, the target-only step
included) and stability measures the target images' per-class accuracy among the grown vocabulary
(Acc-S averages it over the additions). Both are averaged over orders and targets. The curves give the
mean accuracy against the number of vocabularies; `full` is the accuracy of every image among every
class, and the drops are curve start minus curve end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clap.defaults import OPENNESS_ORDERS
from clap.errors import ClapError
from clap.evaluation.statistics.resample import OBSERVED, Sample, as_row, domain_mean
from clap.evaluation.statistics.stats import TaskMeasure, with_treatment
from clap.evaluation.protocols.zeroshot import class_scores



def read_groups(path: str | Path) -> list[list[str]]:
    """Vocabularies from a JSON object {name: [class, ...]} or a list of class lists."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ClapError(f"cannot read groups {path}: {e}") from None
    groups = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(groups, list) or not all(isinstance(g, list) and all(isinstance(c, str) for c in g)
                                               for g in groups):
        raise ClapError(f"{path}: give a JSON object {{\"group\": [\"class\", ...]}} or a list of class lists")
    return groups


def check_groups(groups: Sequence[Sequence[str]], classes: Sequence[str], option: str = "--groups",
                 cover: bool = True) -> list[list[int]]:
    """Class indices of each group; every class in exactly one group (`cover`), none unknown."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for g in groups for c in g if c not in index})
    if unknown:
        raise ClapError(f"{option}: {unknown[:5]} are not classes of the dataset")
    if any(not g for g in groups):
        raise ClapError(f"{option}: a group is empty")
    listed = [c for g in groups for c in g]
    twice = sorted({c for c in listed if listed.count(c) > 1})
    if twice:
        raise ClapError(f"{option}: {twice[:5]} are in more than one group")
    missing = [c for c in classes if c not in set(listed)]
    if cover and missing:
        raise ClapError(f"{option}: the groups miss {missing[:5]} ({len(missing)} classes); put each class in a group")
    return [[index[c] for c in g] for g in groups]


def random_groups(n_classes: int, size: int, seed: int) -> list[list[int]]:
    """Classes in random groups of `size` (the last may be smaller)."""
    order = np.random.default_rng(seed).permutation(n_classes).tolist()
    return [order[i:i + size] for i in range(0, n_classes, size)]


@dataclass(frozen=True)
class Term:
    """One accuracy of the protocol: the images of the classes `scored` when only `vocab` can be predicted,
    entering measure row `measure` (rows as in `Protocol`) with coefficient `weight`."""

    vocab: tuple[int, ...]
    scored: tuple[int, ...]
    measure: int
    weight: float


@dataclass(frozen=True)
class Protocol:
    """The incremental evaluation as terms, fixed by labels, groups, orders and seed alone, so every model
    is measured on the same terms. Measure rows: 0 Acc-C, 1 full vocabulary, then the E curve and the S
    curve (one row per vocabulary count). Each measure is a weighted sum of per-image correctness, so a
    bootstrap that redraws images within each class (class sizes kept) only reweights the images."""

    terms: tuple[Term, ...]
    steps: int

    @classmethod
    def build(cls, labels: torch.Tensor, groups: Sequence[Sequence[int]], orders: int = OPENNESS_ORDERS,
              seed: int = 0) -> "Protocol":
        present = set(labels.tolist())
        groups = [tuple(g) for g in ([c for c in g if c in present] for g in groups) if g]
        if len(groups) < 2:
            raise ClapError("openness needs at least two vocabularies with images")
        steps, runs = len(groups), len(groups) * orders
        rng, terms = np.random.default_rng(seed), []
        for t, target in enumerate(groups):
            terms.append(Term(target, target, 0, 1 / len(groups)))
            others = [g for i, g in enumerate(groups) if i != t]
            for _ in range(orders):
                vocab = target
                for step, k in enumerate([None, *rng.permutation(len(others))]):
                    vocab = vocab if k is None else vocab + others[k]
                    terms.append(Term(vocab, vocab, 2 + step, 1 / runs))
                    terms += [Term(vocab, (c,), 2 + steps + step, 1 / (runs * len(target))) for c in target]
        everything = tuple(sorted(c for g in groups for c in g))
        terms.append(Term(everything, everything, 1, 1.0))
        return cls(tuple(terms), steps)

    def contributions(self, scores: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """[measures, N]: each image's share of each measure (1 / term size for each term it is right in)."""
        labels = labels.cpu()
        classes = labels.numpy()
        out = np.zeros((2 + 2 * self.steps, len(labels)))
        for term in self.terms:
            rows = np.flatnonzero(np.isin(classes, term.scored))
            predicted = torch.tensor(term.vocab)[scores[rows][:, list(term.vocab)].argmax(dim=1)]
            out[term.measure, rows] += term.weight * (predicted == labels[rows]).numpy() / len(rows)
        return out

    def measures(self, contributions: np.ndarray, image_weights: np.ndarray) -> dict[str, np.ndarray]:
        """Acc-C, Acc-E, Acc-S, full, drops and curves for each row of `image_weights` [B, N] (ones: as observed)."""
        v = image_weights.astype(np.float64, copy=False) @ contributions.T  # counts (float32) exactly, BLAS's float64
        e, s = v[:, 2:2 + self.steps], v[:, 2 + self.steps:]
        return {"Acc-C": v[:, 0], "Acc-E": e.mean(axis=1), "Acc-S": s[:, 1:].mean(axis=1), "full": v[:, 1],
                "E_drop": e[:, 0] - e[:, -1], "S_drop": s[:, 0] - s[:, -1], "E_curve": e, "S_curve": s}


def openness(image_features: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor,
             groups: Sequence[Sequence[int]], orders: int = OPENNESS_ORDERS, seed: int = 0) -> dict:
    """Acc-C, Acc-E, Acc-S, the full-vocabulary accuracy, the E and S curves and their drops."""
    protocol = Protocol.build(labels, groups, orders, seed)
    share = protocol.contributions(class_scores(image_features, class_weights).cpu(), labels)
    return _as_row(protocol.measures(share, np.ones((1, len(labels)))))


SCALARS = ("Acc-C", "Acc-E", "Acc-S", "full", "E_drop", "S_drop")


def openness_statistic(protocols: dict[str, Protocol], shares: dict[str, tuple[np.ndarray, np.ndarray]]):
    """The openness table's mean row as a function of a sample ({domain: (labels, contributions)} of one
    model): each domain's scalar measures on a sample of its images (drawn within each class, so class
    sizes are kept, as the protocol's terms need), averaged over domains."""
    def statistic(sample: Sample) -> dict[str, np.ndarray]:
        per_domain = []
        for d, (labels, share) in shares.items():
            measures = protocols[d].measures(share, sample.weights(f"classes:{d}", len(labels), labels))
            per_domain.append({k: measures[k] for k in SCALARS})
        return domain_mean(per_domain)
    return statistic


ScoredModel = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]  # ({domain: features}, {run: weights})


def scored_models(setup, repe: dict | None = None, pc_templates: Sequence[str] | None = None
                  ) -> dict[str, ScoredModel]:
    """{model: ({domain: adapted image features}, {"plain" and, given `repe` ({model: `Repe`}), "repe": the "a photo
    of a [class]" class weights})}: what the openness protocol and its analysis both score, computed once."""
    from clap.evaluation.protocols.zeroshot import classifiers

    out = {}
    for name, model in setup.models.items():
        runs = {"plain": None} | ({"repe": repe[name]} if repe is not None else {})
        out[name] = ({d: model.adapted(data.features) for d, data in setup.raw.items()},
                     {run: classifiers(model, setup.dataset.classes, ("PC",), enhancer, pc_templates=pc_templates)["PC"]
                      for run, enhancer in runs.items()})
    return out


def run_openness(setup, groups: Sequence[Sequence[int]], orders: int = OPENNESS_ORDERS, seed: int = 0,
                 repe: dict | None = None, pc_templates: Sequence[str] | None = None,
                 scored: dict[str, ScoredModel] | None = None) -> tuple[dict, dict[str, TaskMeasure]]:
    """{"openness": {model: {domain|mean: row}}} for every model of an `EvalSetup` (zero-shot "a photo of a
    [class]" weights), plus "openness_repe" with REPE-enhanced weights given `repe`, {model: `Repe`}; and the
    statistics for intervals ({"openness": ..., and "openness_repe": REPE's effect inside each model}).
    `scored` (`scored_models`) saves computing the features and weights."""
    results: dict = {"openness": {}}
    statistics: dict[str, dict] = {}
    protocols = {d: Protocol.build(data.labels, groups, orders, seed) for d, data in setup.raw.items()}
    scored = scored if scored is not None else scored_models(setup, repe, pc_templates)
    for name, (feats, weights) in scored.items():
        for run, w in weights.items():
            shares = {d: (data.labels.numpy(), protocols[d].contributions(class_scores(feats[d], w).cpu(),
                                                                          data.labels))
                      for d, data in setup.raw.items()}
            rows = {d: _as_row(protocols[d].measures(share, np.ones((1, len(labels)))))
                    for d, (labels, share) in shares.items()}
            rows["mean"] = as_row(openness_statistic(protocols, shares)(OBSERVED))
            results.setdefault("openness" if run == "plain" else "openness_repe", {})[name] = rows
            statistics.setdefault(run, {})[name] = openness_statistic(protocols, shares)
    images = sum(len(data.labels) for data in setup.raw.values())
    measures = {"openness": TaskMeasure(statistics["plain"], images)}
    if "repe" in statistics:
        measures["openness_repe"] = with_treatment(measures["openness"], TaskMeasure(statistics["repe"], images))
    return results, measures


def _as_row(measures: dict[str, np.ndarray]) -> dict:
    return {k: [float(x) for x in v[0]] if v.ndim == 2 else float(v[0]) for k, v in measures.items()}
