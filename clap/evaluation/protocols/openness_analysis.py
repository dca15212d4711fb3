"""Why openness fails, per model (Ren et al., "Delving into the Openness of CLIP").

- margin: an image's cosine to its class's text feature minus its largest cosine to another class's
  (the paper's median for CLIP: 0.005); reported as the median per domain, and plotted.
- alignment: the mean squared distance ||f - t_y||^2 of a normalised image feature to its class's text
  feature; uniformity: log of the mean of exp(-2 ||t_i - t_j||^2) over pairs of class text features
  (Wang & Isola 2020). Lower is better for both.
- the adversarial vocabulary, the stability lower bound: for each target vocabulary, `ADVERSARIAL_CLASSES`
  non-target classes chosen to hurt its images most, and the target images' accuracy among the target
  classes and those (beside their accuracy among the target classes alone). Rule "greedy" (the default,
  as docs/open_world.md states it): add one class at a time, each the one whose addition lowers the target
  images' accuracy most. Rule "ranked" (the authors' `adv_vocab_mining` in lancopku/clip-openness): score
  every candidate by the accuracy with it added alone and take the worst ones. Candidates are the
  dataset's other classes (the authors mine a WordNet noun list); the choice is made on the evaluated
  images, once, and held fixed when the intervals resample them.

Intervals resample images within each domain like every task; uniformity depends on no image, so its
difference has no image-level spread (a seed group's spread is its only uncertainty).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from clap.defaults import ADVERSARIAL_CLASSES, ADVERSARIAL_RULES
from clap.evaluation.statistics.resample import OBSERVED, Sample, as_row, per_domain, weighted_mean
from clap.evaluation.statistics.stats import TaskMeasure

STATISTICS = ("margin_median", "alignment", "uniformity", "target_acc", "adversarial_acc", "adversarial_drop")


def margins(scores: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """[N] cosine to the true class minus the largest cosine to another class, from cosines [N, C]."""
    true = scores.gather(1, labels[:, None]).squeeze(1)
    others = scores.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return (true - others).numpy()


def alignment_terms(image_features: torch.Tensor, class_features: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """[N] squared distance of each normalised image feature to its class's normalised text feature [C, D]."""
    return ((image_features - class_features[labels]) ** 2).sum(dim=1).numpy()


def uniformity(class_features: torch.Tensor) -> float:
    """log mean over pairs i < j of exp(-2 ||t_i - t_j||^2) of normalised class text features [C, D]."""
    distances = torch.pdist(class_features.double()) ** 2
    return float(torch.log(torch.exp(-2 * distances).mean()))


def vocabulary_hits(scores: torch.Tensor, labels: torch.Tensor, vocabulary: Sequence[int]) -> np.ndarray:
    """[N] whether each image's class wins among the classes of `vocabulary` (its class among them)."""
    columns = torch.as_tensor(list(vocabulary))
    winners = columns[scores[:, columns].argmax(dim=1)]
    return (winners == labels).numpy()


def adversarial_classes(scores: torch.Tensor, labels: torch.Tensor, target: Sequence[int], candidates: Sequence[int],
                        k: int = ADVERSARIAL_CLASSES, rule: str = "greedy") -> list[int]:
    """The k candidate classes that lower the accuracy of the target images (labels in `target`) among the
    target classes most, by `rule` ("greedy" or "ranked"; see the module docstring)."""
    if rule not in ADVERSARIAL_RULES:
        raise ValueError(f"unknown rule '{rule}'; use one of {', '.join(ADVERSARIAL_RULES)}")
    mine = torch.isin(labels, torch.as_tensor(list(target)))
    scores, labels = scores[mine], labels[mine]

    def accuracy(extra: list[int]) -> float:
        return float(vocabulary_hits(scores, labels, [*target, *extra]).mean())

    if rule == "ranked":
        return sorted(candidates, key=lambda c: (accuracy([c]), c))[:k]
    chosen: list[int] = []
    for _ in range(min(k, len(candidates))):
        left = [c for c in candidates if c not in chosen]
        chosen.append(min(left, key=lambda c: (accuracy([*chosen, c]), c)))
    return chosen


def domain_records(image_features: torch.Tensor, class_features: torch.Tensor, labels: torch.Tensor,
                   groups: Sequence[Sequence[int]], rule: str = "greedy") -> tuple[dict, dict]:
    """({"margin", "alignment", "target", "adversarial"}: per-image values (NaN for an image of no vocabulary),
    {target group index: the adversarial classes chosen for it}) for one domain; features normalised."""
    scores = image_features @ class_features.T
    everyone = range(len(class_features))
    target_hits, adversarial_hits = np.full(len(labels), np.nan), np.full(len(labels), np.nan)
    chosen: dict[int, list[int]] = {}
    for g, group in enumerate(groups):
        mine = torch.isin(labels, torch.as_tensor(list(group))).numpy()
        if not mine.any():
            continue
        chosen[g] = adversarial_classes(scores, labels, group, [c for c in everyone if c not in group], rule=rule)
        target_hits[mine] = vocabulary_hits(scores[mine], labels[mine], group)
        adversarial_hits[mine] = vocabulary_hits(scores[mine], labels[mine], [*group, *chosen[g]])
    return {"margin": margins(scores, labels), "alignment": alignment_terms(image_features, class_features, labels),
            "target": target_hits, "adversarial": adversarial_hits}, chosen


def weighted_median(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[rows] the (lower) median of `values` [n], each image counted as often as its weight [rows, n]."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[:, order], axis=1)
    half = cumulative[:, -1:] / 2
    return values[order][np.argmax(cumulative >= half, axis=1)]


def domain_statistics(record: dict, key: str, sample: Sample) -> dict[str, np.ndarray]:
    """A domain's analysis on a sample of its images: {statistic: [rows]}."""
    weights = sample.weights(key, len(record["margin"]))
    target, adversarial = weighted_mean(weights, record["target"]), weighted_mean(weights, record["adversarial"])
    return {"margin_median": weighted_median(weights, record["margin"]),
            "alignment": weighted_mean(weights, record["alignment"]),
            "uniformity": np.full(sample.rows, record["uniformity"]),
            "target_acc": target, "adversarial_acc": adversarial, "adversarial_drop": target - adversarial}


def analyse(features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], class_features: torch.Tensor,
            groups: Sequence[Sequence[int]], rule: str = "greedy") -> tuple[dict, dict, dict, object]:
    """({domain|mean: row}, {domain: per-image records}, {domain: {group: adversarial classes}}, the statistic of
    the mean row) of one model: `features` its normalised image features per domain, `class_features` [C, D]."""
    class_features = torch.nn.functional.normalize(class_features.float(), dim=-1)
    records, chosen = {}, {}
    spread = uniformity(class_features)
    for domain, feats in features.items():
        record, chosen[domain] = domain_records(feats, class_features, labels[domain], groups, rule)
        records[domain] = {**record, "uniformity": spread}
    rows = {d: as_row(domain_statistics(r, f"images:{d}", OBSERVED)) for d, r in records.items()}
    statistic = per_domain(records, "images", domain_statistics)
    rows["mean"] = as_row(statistic(OBSERVED))
    return rows, records, chosen, statistic


def run_analysis(setup, groups: Sequence[Sequence[int]], repe: dict | None = None,
                 pc_templates: Sequence[str] | None = None, rule: str = "greedy",
                 scored: dict | None = None) -> tuple[dict, TaskMeasure, dict]:
    """{"openness_analysis": {model: rows}, "openness_adversarial": {model: {domain: {target: [classes]}}}}
    (and "openness_analysis_repe" with REPE-enhanced class features given `repe`), the statistics of the
    plain run, and {model: {domain: margins}} for the plot. `scored` (`openness.scored_models`) saves computing
    the features and weights."""
    from clap.evaluation.protocols.openness import scored_models

    classes = setup.dataset.classes
    labels = {d: data.labels for d, data in setup.raw.items()}
    results: dict = {"openness_analysis": {}, "openness_adversarial": {}}
    statistics, margin_values = {}, {}
    scored = scored if scored is not None else scored_models(setup, repe, pc_templates)
    for name, (feats, weights) in scored.items():
        for run, w in weights.items():
            rows, records, chosen, statistic = analyse(feats, labels, w.T.cpu(), groups, rule)
            results.setdefault("openness_analysis" if run == "plain" else "openness_analysis_repe", {})[name] = rows
            if run == "plain":
                statistics[name] = statistic
                results["openness_adversarial"][name] = {
                    d: {", ".join(classes[c] for c in groups[g]): [classes[c] for c in picked]
                        for g, picked in per_group.items()} for d, per_group in chosen.items()}
                margin_values[name] = {d: r["margin"] for d, r in records.items()}
    images = sum(len(v) for v in labels.values())
    return results, TaskMeasure(statistics, images), margin_values
