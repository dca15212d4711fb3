"""Statistics of a comparison: adapters over training seeds, and differences to CLIP with intervals that
measure the number the table prints.

- Seeds: an adapter name given several times (`--adapter CLAP=run0 --adapter CLAP=run1 ...`) is one
  model trained with several seeds; its members are evaluated one by one and reported as mean and
  standard deviation (ddof 1) over seeds.
- Differences: each task hands over, per model, the function that computes its table's mean row from a
  `clap.evaluation.statistics.resample.Sample` (per-domain values, then the unweighted mean over domains). On every
  bootstrap resample (images within each domain and class, the same for every model; noise draws)
  each member's statistic is recomputed, a seed group averages the values of seeds drawn with
  replacement (two-level bootstrap, with the seed level's small-sample correction of `seed_scale`),
  and the difference to the baseline is taken. The point estimate is
  the difference of the printed values; the 95% interval is the percentile interval of the resampled
  differences, and the direction or verdict is read from the interval alone.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Callable, Sequence

import numpy as np
from scipy.stats import norm as normal
from scipy.stats import t as student_t
from threadpoolctl import threadpool_limits

from clap.evaluation.statistics.resample import OBSERVED, Resamples, Sample
from clap.runtime import compute_threads, release_freed_memory

SEED_MEMBER = re.compile(r"^(?P<name>.+)#(?P<k>\d+)$")
LEVEL = 0.95

Statistic = Callable[[Sample], dict[str, np.ndarray]]
"""A model's table values (mean row) as a function of a sample: {metric: [rows]}."""


@dataclass
class TaskMeasure:
    """What a task hands to the statistics: each model's `Statistic`, the images behind it (a shared OOD set
    counted once), the sizes of other resampled levels (e.g. noise draws) and, for metrics only some
    models have, the baseline metric each is compared with."""

    statistics: dict[str, Statistic]
    images: int
    levels: dict[str, int] = field(default_factory=dict)
    against: dict[str, str] = field(default_factory=dict)
    within: tuple[tuple[str, str], ...] = ()  # (metric, metric) pairs compared inside each model that has both
    treatment: str | None = None  # a suffix: each metric "K" + suffix is compared with "K" inside every model


REPE = " with REPE"


def with_treatment(plain: TaskMeasure, treated: TaskMeasure, suffix: str = REPE) -> TaskMeasure:
    """A treatment's effect inside each model (REPE on vs off): every model that has both runs gets the plain
    run's metrics and the treated run's as "K" + suffix, on the same resamples; its differences compare the two
    inside each model, the baseline included, and not models with each other (the plain task does that)."""
    def joined(a: Statistic, b: Statistic) -> Statistic:
        return lambda sample: {**a(sample), **{f"{k}{suffix}": v for k, v in b(sample).items()}}

    statistics = {name: joined(stat, treated.statistics[name]) for name, stat in plain.statistics.items()
                  if name in treated.statistics}
    return TaskMeasure(statistics, plain.images, plain.levels, treatment=suffix)


@dataclass(frozen=True)
class Draws:
    """A statistic's value on the data and on each resample."""

    point: float
    draws: np.ndarray


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


def compared_entries(models: Sequence[str], baseline: str | None) -> dict[str, list[str]]:
    """{model or seed group: member names}, the baseline (if any) excluded, in order of appearance."""
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


def measured_all(tasks: dict[str, TaskMeasure], resamples: Resamples, workers: int | None = None
                 ) -> dict[str, dict[str, dict[str, Draws]]]:
    """{task: {model: {metric: Draws}}}: every model's statistics on the data (the table's values) and on every
    resample, evaluated task by task, a chunk of resamples at a time for every model together (the chunk's weights of
    the task's strata are drawn once and dropped after it: one task's at a time). Within a chunk the models'
    statistics run on `workers` threads (default: `OMP_NUM_THREADS`, else the cores this process may use; numpy and
    scipy release the GIL in their array loops): each stratum's weights come from its own keyed generator, so the
    values do not depend on which thread, or which task, draws them first (a stratum two tasks share gets the same
    weights in both: paired). Each thread keeps to one BLAS thread; with one worker everything runs in this
    thread."""
    points = {task: {m: stat(OBSERVED) for m, stat in measure.statistics.items()} for task, measure in tasks.items()}
    parts: dict = {task: {m: [] for m in measure.statistics} for task, measure in tasks.items()}
    workers = max(1, min(max((len(m.statistics) for m in tasks.values()), default=1), workers or compute_threads()))
    with ThreadPoolExecutor(workers) as pool, threadpool_limits(1 if workers > 1 else None, user_api="blas"):
        run = pool.map if workers > 1 else map
        for task, measure in tasks.items():
            for chunk in resamples.chunks():  # each chunk's weights reuse the buffers the one before freed
                for m, value in zip(measure.statistics, run(_on, measure.statistics.values(), repeat(chunk))):
                    parts[task][m].append(value)
            release_freed_memory()  # the task's weights and temporaries, before the next task's
    return {task: {m: {k: Draws(float(np.asarray(v).reshape(-1)[0]),
                                np.concatenate([np.atleast_1d(np.asarray(p[k], dtype=float)) for p in parts[task][m]]))
                       for k, v in point.items()}
                   for m, point in by_model.items()}
            for task, by_model in points.items()}


def _on(statistic: Statistic, sample: Sample) -> dict[str, np.ndarray]:
    return statistic(sample)


def seed_scale(k: int, level: float = LEVEL) -> float:
    """How far a seed draw's deviation is stretched: a bootstrap of k values carries (k-1)/k of their
    variance (sqrt(k / (k-1))), and a spread estimated from k values calls for Student's t with k-1 degrees
    of freedom instead of the normal quantile (t/z: 2.19 for 3 seeds, 6.48 for 2)."""
    tail = 1 - (1 - level) / 2
    return float(np.sqrt(k / (k - 1)) * student_t.ppf(tail, k - 1) / normal.ppf(tail))


def seed_level(name: str, members: list[dict[str, Draws]], resamples: Resamples) -> dict[str, Draws]:
    """A seed group's statistics: the mean over its k seeds; on each resample, over seeds drawn with
    replacement, each draw's deviation from the mean of all seeds on that resample stretched by
    `seed_scale(k)` (without it 3 seeds with a 3-point spread covered the truth 87% of the time, with it
    96%: `benchmarks/bench_coverage.py`)."""
    k = len(members)
    if k == 1:
        return members[0]
    scale = seed_scale(k)
    picks = resamples.picks(f"seeds:{name}", k)  # [B, k]
    rows = np.arange(resamples.rows)[:, None]
    out = {}
    for key in members[0]:
        stacked = np.stack([m[key].draws for m in members])  # [k, B]
        everyone, drawn = stacked.mean(axis=0), stacked[picks, rows].mean(axis=1)
        out[key] = Draws(float(np.mean([m[key].point for m in members])),
                         everyone + scale * (drawn - everyone))
    return out


def interval(point: float, draws: np.ndarray, level: float = LEVEL, **sizes: float) -> dict:
    """A difference with the percentile interval of its resampled values, its bootstrap p-value, the sizes
    behind it and its direction read off the interval."""
    low, high = np.nanquantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"difference": point, "low": float(low), "high": float(high), "p": bootstrap_p(draws), **sizes,
            "contains_zero": bool(low <= 0.0 <= high), "direction": direction(float(low), float(high))}


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": twice the share of resampled differences on the less
    populated side of 0 (0 counted on both sides), at most 1; the percentile interval at level 1 - a excludes 0
    about when p < a. It feeds the family-wise (Holm) column of the claims; verdicts at 95% read the interval."""
    seen = np.asarray(draws, dtype=float)
    seen = seen[~np.isnan(seen)]
    if not len(seen):
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(seen <= 0), np.mean(seen >= 0))))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: the i-th smallest of m is multiplied by m - i + 1
    (i from 1), kept at least the previous adjusted value and at most 1."""
    order = np.argsort(pvalues, kind="stable")
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def direction(low: float, high: float) -> str:
    """'higher' when the whole interval is above 0, 'lower' when below, else 'interval contains 0'."""
    return "higher" if low > 0 else "lower" if high < 0 else "interval contains 0"


def differences(baseline: str, tasks: dict[str, TaskMeasure], resamples: Resamples) -> dict[str, dict]:
    """{"differences": {task: {entry: {metric: interval}}} (each model or seed group minus the baseline),
    "pairs": {"A - B": {task: {metric: interval}}} (every two compared entries)}."""
    out: dict = {"differences": {}, "pairs": {}}
    drawn = measured_all(tasks, resamples)
    for task, measure in tasks.items():
        if measure.treatment is not None:
            out["differences"][task] = treatment_effects(measure, drawn[task], resamples)
            continue
        if baseline not in measure.statistics:
            continue
        entries = compared_entries(list(measure.statistics), baseline)
        values = {name: seed_level(name, [drawn[task][m] for m in members], resamples)
                  for name, members in [(baseline, [baseline]), *entries.items()]}
        sizes = {"n": measure.images, **measure.levels}
        out["differences"][task] = {name: _compare(values[name], values[baseline], measure.against,
                                                   sizes | {"seeds": len(entries[name])})
                                    | _within(values[name], measure.within, sizes | {"seeds": len(entries[name])})
                                    for name in entries}
        names = list(entries)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                out["pairs"].setdefault(f"{a} - {b}", {})[task] = _compare(
                    values[a], values[b], {}, sizes | {"seeds": len(entries[a]), "base_seeds": len(entries[b])})
    return out


def treatment_effects(measure: TaskMeasure, drawn: dict[str, dict[str, Draws]], resamples: Resamples
                      ) -> dict[str, dict]:
    """{model or seed group: {"K + suffix (vs K, same model)": interval}} for a `with_treatment` measure (its
    models' `drawn` statistics)."""
    entries = compared_entries(list(measure.statistics), None)
    sizes = {"n": measure.images, **measure.levels}
    out = {}
    for name, members in entries.items():
        values = seed_level(name, [drawn[m] for m in members], resamples)
        pairs = tuple((f"{k}{measure.treatment}", k) for k in values if f"{k}{measure.treatment}" in values)
        out[name] = _within(values, pairs, sizes | {"seeds": len(members)})
    return out


def _compare(model: dict[str, Draws], base: dict[str, Draws], against: dict[str, str], sizes: dict) -> dict:
    """{metric: interval of model - base} for the metrics both have (or `against` maps to the base's)."""
    out = {}
    for key, mine in model.items():
        other = key if key in base else against.get(key)
        if other not in base:
            continue
        label = key if other == key else f"{key} (vs {other})"
        out[label] = interval(mine.point - base[other].point, mine.draws - base[other].draws, **sizes,
                              value=mine.point, base_value=base[other].point)
    return out


def _within(model: dict[str, Draws], pairs: tuple[tuple[str, str], ...], sizes: dict) -> dict:
    """{"A (vs B, same model)": interval of A - B} for the pairs of the model's own metrics it has."""
    return {f"{a} (vs {b}, same model)": interval(model[a].point - model[b].point, model[a].draws - model[b].draws,
                                                  **sizes, value=model[a].point, base_value=model[b].point)
            for a, b in pairs if a in model and b in model}


def seed_summary(results: dict, groups: dict[str, list[str]]) -> dict:
    """{task: {group: {'mean': tree, 'std': tree}}}: leaf-wise mean and std (ddof 1) over the seeds of each group."""
    out: dict = {}
    for task, by_model in results.items():
        if not isinstance(by_model, dict):
            continue
        for group, names in groups.items():
            trees = [by_model[n] for n in names if n in by_model]
            if len(trees) == len(names) and all(isinstance(t, dict) for t in trees):
                out.setdefault(task, {})[group] = {"mean": leafwise(trees, np.mean), "std": leafwise(trees, sample_std)}
    return out


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with ddof 1 (0 for a single value, which has no spread to estimate)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def leafwise(trees: list, reduce) -> dict | float | None:
    """`reduce` over the numeric leaves the nested dicts share (keys all of them have); other leaves None."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: leafwise([t[k] for t in trees], reduce) for k in first if all(k in t for t in trees)}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(reduce([float(t) for t in trees]))
    return None
