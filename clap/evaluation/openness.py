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
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clap.errors import ClapError
from clap.evaluation.zeroshot import class_scores

OPENNESS_ORDERS = 3  # the authors' scripts run 3 trials


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


def _accuracy(scores: torch.Tensor, labels: torch.Tensor, rows: np.ndarray, vocab: list[int]) -> float:
    """Micro accuracy of images `rows` when only the classes `vocab` can be predicted."""
    sub = scores[torch.from_numpy(rows)][:, vocab]
    predicted = torch.tensor(vocab)[sub.argmax(dim=1)]
    return float((predicted == labels[torch.from_numpy(rows)]).float().mean())


def _per_class_accuracy(scores, labels, rows_by_class: dict[int, np.ndarray], classes: list[int],
                        vocab: list[int]) -> float:
    return float(np.mean([_accuracy(scores, labels, rows_by_class[c], vocab) for c in classes]))


def openness(image_features: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor,
             groups: Sequence[Sequence[int]], orders: int = OPENNESS_ORDERS, seed: int = 0) -> dict:
    """Acc-C, Acc-E, Acc-S, the full-vocabulary accuracy, the E and S curves and their drops."""
    scores = class_scores(image_features, class_weights).cpu()
    labels = labels.cpu()
    present = {c for g in groups for c in g if (labels == c).any()}
    groups = [[c for c in g if c in present] for g in groups]
    groups = [g for g in groups if g]
    if len(groups) < 2:
        raise ClapError("openness needs at least two vocabularies with images")
    rows_by_class = {c: np.flatnonzero(labels.numpy() == c) for g in groups for c in g}
    rng = np.random.default_rng(seed)
    acc_c, acc_e, acc_s, e_curves, s_curves = [], [], [], [], []
    for t, target in enumerate(groups):
        target_rows = np.concatenate([rows_by_class[c] for c in target])
        closed = _accuracy(scores, labels, target_rows, target)
        acc_c.append(closed)
        others = [g for i, g in enumerate(groups) if i != t]
        for _ in range(orders):
            vocab, rows, e_curve = list(target), target_rows, [closed]
            s_curve = [_per_class_accuracy(scores, labels, rows_by_class, target, vocab)]
            for k in rng.permutation(len(others)):
                vocab = vocab + others[k]
                rows = np.concatenate([rows] + [rows_by_class[c] for c in others[k]])
                e_curve.append(_accuracy(scores, labels, rows, vocab))
                s_curve.append(_per_class_accuracy(scores, labels, rows_by_class, target, vocab))
            acc_e.append(np.mean(e_curve))
            acc_s.append(np.mean(s_curve[1:]))
            e_curves.append(e_curve)
            s_curves.append(s_curve)
    all_rows = np.concatenate(list(rows_by_class.values()))
    e_mean, s_mean = np.mean(e_curves, axis=0), np.mean(s_curves, axis=0)
    return {"Acc-C": float(np.mean(acc_c)), "Acc-E": float(np.mean(acc_e)), "Acc-S": float(np.mean(acc_s)),
            "full": _accuracy(scores, labels, all_rows, sorted(rows_by_class)),
            "E_drop": float(e_mean[0] - e_mean[-1]), "S_drop": float(s_mean[0] - s_mean[-1]),
            "E_curve": [float(v) for v in e_mean], "S_curve": [float(v) for v in s_mean]}


def run_openness(setup, groups: Sequence[Sequence[int]], orders: int = OPENNESS_ORDERS, seed: int = 0,
                 repe: dict | None = None) -> dict:
    """{"openness": {model: {domain|mean: row}}} for every model of an `EvalSetup` (zero-shot "a photo of a
    [class]" weights), plus "openness_repe" with REPE-enhanced weights given `repe`, {model: `Repe`}."""
    from clap.evaluation.zeroshot import classifiers

    results: dict = {"openness": {}}
    classes = setup.dataset.classes
    for name, model in setup.models.items():
        feats = {d: model.adapted(data.features) for d, data in setup.raw.items()}  # shared by both runs
        runs = {"openness": None}
        if repe is not None:
            runs["openness_repe"] = repe[name]
        for task, enhancer in runs.items():
            weights = classifiers(model, classes, ("PC",), enhancer)["PC"]
            rows = {d: openness(feats[d], data.labels, weights, groups, orders, seed) for d, data in setup.raw.items()}
            scalars = [k for k, v in next(iter(rows.values())).items() if not isinstance(v, list)]
            rows["mean"] = {k: float(np.mean([rows[d][k] for d in setup.raw])) for k in scalars}
            results.setdefault(task, {})[name] = rows
    return results
