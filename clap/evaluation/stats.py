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
    diff = diff[~np.isnan(diff)]
    if len(diff) == 0:
        raise ValueError("no images to compare")
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n_boot)])
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"difference": float(diff.mean()), "low": float(low), "high": float(high), "n": int(len(diff)),
            "contains_zero": bool(low <= 0.0 <= high)}


def differences_to(baseline: str, per_image: dict[str, dict[str, dict[str, np.ndarray]]],
                   seed: int = 0) -> dict[str, dict[str, dict[str, dict]]]:
    """{task: {model or seed group: {metric: paired_bootstrap vs baseline}}}."""
    out: dict = {}
    for task, by_model in per_image.items():
        if baseline not in by_model:
            continue
        groups = seed_groups(by_model)
        members = {m for ms in groups.values() for m in ms}
        compared = {name: [name] for name in by_model if name != baseline and name not in members} | groups
        out[task] = {}
        for name, names in compared.items():
            out[task][name] = {metric: paired_bootstrap(np.mean([by_model[n][metric] for n in names], axis=0), base,
                                                        seed=seed)
                               for metric, base in by_model[baseline].items()}
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
                out.setdefault(task, {})[group] = {"mean": _leafwise(trees, np.mean), "std": _leafwise(trees, np.std)}
    return out


def _leafwise(trees: list, reduce) -> dict | float | None:
    first = trees[0]
    if isinstance(first, dict):
        return {k: _leafwise([t[k] for t in trees], reduce) for k in first if all(k in t for t in trees)}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(reduce([float(t) for t in trees]))
    return None
