"""Statistics of a comparison: adapters over training seeds, and paired differences to CLIP over images.

- Seeds: an adapter name given several times (`--adapter CLAP=run0 --adapter CLAP=run1 ...`) is one
  model trained with several seeds; its members are evaluated one by one and reported as mean and
  standard deviation over seeds.
- Paired differences: every model is scored on the same images as CLIP, so the difference of
  accuracies is a mean of per-image differences (a seed group's per-image correctness is averaged
  over its seeds first). Its 95% interval is a percentile bootstrap over images; an interval that
  contains 0 is reported as such.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from clap.evaluation.zeroshot import robustness

SEED_MEMBER = re.compile(r"^(?P<name>.+)#(?P<k>\d+)$")
N_BOOT = 2000
LEVEL = 0.95


def member_name(name: str, k: int) -> str:
    """The model name of the k-th seed of a repeated adapter name."""
    return f"{name}#{k}"


def seed_groups(models: Sequence[str]) -> dict[str, list[str]]:
    """{group: [member, ...]} for the names that are seeds of one adapter ('CLAP#1', 'CLAP#2', ...)."""
    groups: dict[str, list[str]] = {}
    for name in models:
        match = SEED_MEMBER.match(name)
        if match:
            groups.setdefault(match["name"], []).append(name)
    return groups


def paired_bootstrap(model: np.ndarray, base: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                     seed: int = 0) -> dict[str, float | int | bool]:
    """Mean of `model - base` over images (NaN pairs dropped) with a percentile bootstrap interval."""
    diff = np.asarray(model, dtype=float) - np.asarray(base, dtype=float)
    return bootstrap({"d": diff}, lambda cols: float(cols["d"].mean()), n_boot, level, seed)


def bootstrap(columns: dict[str, np.ndarray], statistic, n_boot: int = N_BOOT, level: float = LEVEL,
              seed: int = 0) -> dict[str, float | int | bool]:
    """`statistic` of per-image columns (rows with a NaN dropped) and its percentile bootstrap interval,
    resampling images (rows) with replacement."""
    table = np.column_stack([np.asarray(c, dtype=float) for c in columns.values()])
    table = table[~np.isnan(table).any(axis=1)]
    if len(table) == 0:
        raise ValueError("no images to compare")
    keys = list(columns)

    def stat(rows: np.ndarray) -> float:
        return statistic({k: rows[:, i] for i, k in enumerate(keys)})

    rng = np.random.default_rng(seed)
    draws = [stat(table[rng.integers(0, len(table), len(table))]) for _ in range(n_boot)]
    return _interval(stat(table), draws, len(table), level)


def _interval(point: float, draws: Sequence[float], n: int, level: float) -> dict[str, float | int | bool]:
    """A point estimate with the percentile interval of its bootstrap draws."""
    low, high = np.quantile(np.asarray(draws), [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"difference": point, "low": float(low), "high": float(high), "n": int(n),
            "contains_zero": bool(low <= 0.0 <= high)}


def _spread(cols: dict[str, np.ndarray], prefix: str, kind: str) -> float:
    return robustness({f: float(cols[f"{prefix}{f}"].mean()) for f in ("C", "PC", "CP", "NC")})[kind]


def robustness_differences(model: dict[str, np.ndarray], base: dict[str, np.ndarray], seed: int = 0) -> dict:
    """Paired bootstrap of the prompt-robustness statistics R, delta and Delta(NC): model minus base."""
    if not {"C", "PC", "CP", "NC"} <= set(model) & set(base):
        return {}
    columns = {f"m{k}": model[k] for k in ("C", "PC", "CP", "NC")} | {f"b{k}": base[k] for k in ("C", "PC", "CP", "NC")}
    return {kind: bootstrap(columns, lambda c, kind=kind: _spread(c, "m", kind) - _spread(c, "b", kind), seed=seed)
            for kind in ("R", "delta", "Delta_NC")}


def _per_image(by_model: dict, names: list[str]) -> dict[str, np.ndarray]:
    """Per-image correctness of a model or a seed group (members averaged per image)."""
    return {metric: np.mean([by_model[n][metric] for n in names], axis=0) for metric in by_model[names[0]]}


def compared_entries(models: Sequence[str], baseline: str) -> dict[str, list[str]]:
    """{model or seed group: member names}, baseline excluded, in order of appearance."""
    groups = seed_groups(models)
    members = {m for ms in groups.values() for m in ms}
    entries: dict[str, list[str]] = {}
    for name in models:
        match = SEED_MEMBER.match(name)
        if name == baseline:
            continue
        if name not in members:
            entries[name] = [name]
        elif match["name"] not in entries:
            entries[match["name"]] = groups[match["name"]]
    return entries


def differences_to(baseline: str, per_image: dict[str, dict[str, dict[str, np.ndarray]]],
                   seed: int = 0) -> dict[str, dict[str, dict[str, dict]]]:
    """{task: {model or seed group: {metric: paired bootstrap vs baseline}}}; zero-shot adds R, delta, Delta_NC."""
    return {task: _compare(by_model, compared_entries(list(by_model), baseline), [baseline], seed)
            for task, by_model in per_image.items() if baseline in by_model}


def pairwise_differences(baseline: str, per_image: dict, seed: int = 0) -> dict[str, dict]:
    """{'A - B': {task: {metric: paired bootstrap}}} for every pair of compared models or seed groups."""
    out: dict = {}
    for task, by_model in per_image.items():
        entries = compared_entries(list(by_model), baseline)
        names = list(entries)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                out.setdefault(f"{a} - {b}", {})[task] = _compare(by_model, {a: entries[a]}, entries[b], seed)[a]
    return out


def _compare(by_model: dict, entries: dict[str, list[str]], base_names: list[str], seed: int) -> dict:
    base = _per_image(by_model, base_names)
    out = {}
    for name, names in entries.items():
        model = _per_image(by_model, names)
        out[name] = {metric: paired_bootstrap(model[metric], base[metric], seed=seed) for metric in base}
        out[name].update(robustness_differences(model, base, seed))
    return out


def seed_summary(results: dict, groups: dict[str, list[str]]) -> dict:
    """{task: {group: {'mean': tree, 'std': tree}}}: leaf-wise mean and std over the seeds of each group."""
    out: dict = {}
    for task, by_model in results.items():
        if not isinstance(by_model, dict):
            continue
        for group, names in groups.items():
            trees = [by_model[n] for n in names if n in by_model]
            if len(trees) == len(names) and all(isinstance(t, dict) for t in trees):
                out.setdefault(task, {})[group] = {"mean": leafwise(trees, np.mean), "std": leafwise(trees, np.std)}
    return out


def leafwise(trees: list, reduce) -> dict | float | None:
    """`reduce` over the numeric leaves the nested dicts share (keys all of them have); other leaves None."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: leafwise([t[k] for t in trees], reduce) for k in first if all(k in t for t in trees)}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(reduce([float(t) for t in trees]))
    return None


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """AUROC (ID positive) from the Mann-Whitney rank sum, ties averaged: equal to scikit-learn's."""
    from scipy.stats import rankdata

    ranks = rankdata(np.r_[id_scores, ood_scores])
    n1, n0 = len(id_scores), len(ood_scores)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auroc_difference(members: list[dict[str, np.ndarray]], base: dict[str, np.ndarray], n_boot: int = N_BOOT,
                     level: float = LEVEL, seed: int = 0) -> dict[str, float | int | bool]:
    """Mean AUROC of `members` (the seeds of one adapter; {"id": scores, "ood": scores} on the same images)
    minus the baseline's, with a percentile bootstrap interval resampling ID and OOD images separately."""
    n1, n0 = len(base["id"]), len(base["ood"])

    def stat(i: np.ndarray, o: np.ndarray) -> float:
        mine = np.mean([auroc(m["id"][i], m["ood"][o]) for m in members])
        return float(mine - auroc(base["id"][i], base["ood"][o]))

    rng = np.random.default_rng(seed)
    draws = [stat(rng.integers(0, n1, n1), rng.integers(0, n0, n0)) for _ in range(n_boot)]
    return _interval(stat(np.arange(n1), np.arange(n0)), draws, n1 + n0, level)


def ood_differences(baseline: str, scores: dict[str, dict[str, dict[str, np.ndarray]]], seed: int = 0) -> dict:
    """{model or seed group: {"SCORE AUROC": bootstrap of the AUROC difference to the baseline's same score}};
    a model with scores of its own (CLIPN's CTW, ATD) is compared with the baseline's first score (MCM)."""
    out: dict = {}
    first = next(iter(scores[baseline]))
    for name, members in compared_entries(list(scores), baseline).items():
        out[name] = {}
        for score in scores[members[0]]:
            base = score if score in scores[baseline] else first
            label = f"{score} AUROC" if base == score else f"{score} AUROC (vs CLIP {base})"
            out[name][label] = auroc_difference([scores[m][score] for m in members], scores[baseline][base],
                                                seed=seed)
    return out


def resampled_differences(baseline: str, measures: dict[str, dict[str, dict]], n: int, level: float = LEVEL) -> dict:
    """{model or seed group: {measure: difference to the baseline with its percentile interval}} from measures
    already drawn on shared resamples ({model: {measure: {"point": value, "draws": [B]}}}); seeds averaged."""
    out: dict = {}
    for name, members in compared_entries(list(measures), baseline).items():
        out[name] = {}
        for key, base in measures[baseline].items():
            point = np.mean([measures[m][key]["point"] for m in members]) - base["point"]
            draws = np.mean([measures[m][key]["draws"] for m in members], axis=0) - base["draws"]
            out[name][key] = _interval(float(point), draws, n, level)
    return out
