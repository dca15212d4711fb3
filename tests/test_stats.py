"""Statistics: the two-level bootstrap recomputes the table's own statistic; seed groups; mean ± std over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from clap.evaluation.statistics import stats
from clap.evaluation.output.claims import verdict
from clap.evaluation.statistics.resample import OBSERVED, Resamples, weighted_mean
from clap.evaluation.protocols.zeroshot import squared_gap, zero_shot_statistic


def test_tasks_evaluated_one_after_another_share_the_resamples_of_a_common_stratum():
    """Tasks take their turns chunk by chunk (one task's weights held at a time); a stratum two tasks share gets the
    same weights in both: each task's draws equal those it gets alone, and two tasks on the same records agree."""
    rng = np.random.default_rng(6)
    records = {m: {d: _forms(rng, 200, {"C": 0.6, "PC": 0.7, "CP": 0.5}) for d in "ab"} for m in ("CLIP", "A")}
    measure = stats.TaskMeasure({m: zero_shot_statistic(r) for m, r in records.items()}, 400)
    both = stats.measured_all({"first": measure, "second": measure}, Resamples(120, seed=3), workers=1)
    alone = stats.measured_all({"second": measure}, Resamples(120, seed=3), workers=1)
    for m in records:
        for k, drawn in alone["second"][m].items():
            assert np.array_equal(drawn.draws, both["first"][m][k].draws)
            assert np.array_equal(drawn.draws, both["second"][m][k].draws)


def _forms(rng, n: int, rates: dict[str, float]) -> dict[str, np.ndarray]:
    """Per-image hits with exactly the given rate for each form (shuffled)."""
    return {f: rng.permutation(np.arange(n) < round(r * n)).astype(float) for f, r in rates.items()}


def _record(rng, n: int, rates: dict[str, float]):
    return _forms(rng, n, rates)


def test_range_is_recomputed_per_domain_not_pooled():
    """Each domain's R is 0.10 while the pooled accuracies have R 0: the interval is around +0.10, and the
    claim "R shrinks" does not reproduce (the pooled surrogate read +0.000 and "reproduces")."""
    rng = np.random.default_rng(0)
    model = {"d1": _record(rng, 2000, {"C": 0.6, "PC": 0.5, "CP": 0.5}),
             "d2": _record(rng, 2000, {"C": 0.5, "PC": 0.6, "CP": 0.6})}
    same = _forms(rng, 2000, {"C": 0.55})["C"]  # the baseline's forms agree on every image: R is 0 everywhere
    base = {d: {"C": same, "PC": same, "CP": same} for d in model}
    measure = stats.TaskMeasure({"CLIP": zero_shot_statistic(base), "M": zero_shot_statistic(model)}, 4000)
    d = stats.differences("CLIP", {"zeroshot": measure}, Resamples(500, seed=0))["differences"]["zeroshot"]["M"]["R"]
    assert d["difference"] == pytest.approx(0.10)
    assert 0.05 < d["low"] < 0.10 < d["high"] < 0.15
    assert verdict(d, -1) == "does not reproduce" and d["direction"] == "higher"


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(1)
    record = {"d": _record(rng, 300, {"C": 0.6, "PC": 0.7, "CP": 0.5})}
    measure = stats.TaskMeasure({"CLIP": zero_shot_statistic(record), "SAME": zero_shot_statistic(record)}, 300)
    out = stats.differences("CLIP", {"zeroshot": measure}, Resamples(200))["differences"]["zeroshot"]["SAME"]
    assert all(d["difference"] == d["low"] == d["high"] == 0.0 and d["contains_zero"] for d in out.values())


def test_domains_are_weighted_equally_as_the_table_does():
    """A domain of 100 images and one of 900: the statistic is the mean of the two accuracies, not the pooled one."""
    rng = np.random.default_rng(2)
    record = {"small": _record(rng, 100, {"C": 1.0, "PC": 1.0, "CP": 1.0}),
              "large": _record(rng, 900, {"C": 0.0, "PC": 0.0, "CP": 0.0})}
    assert zero_shot_statistic(record)(OBSERVED)["C"][0] == pytest.approx(0.5)


def _constant(value: float):
    return lambda sample: {"acc": np.full(sample.rows, value)}


def test_seed_level_draws_seeds_with_replacement():
    """Two seeds at 0.5 and 0.9 against 0.5: the point is their mean (+0.2), and the interval spans the seed
    spread (a resample drawing seed 1 twice reads 0.5, seed 2 twice 0.9, each moved away from the mean by
    the small-sample correction, sqrt(2) * t(0.975, 1) / z(0.975)); one seed gives no spread."""
    measure = stats.TaskMeasure({"CLIP": _constant(0.5), "A#1": _constant(0.5), "A#2": _constant(0.9),
                                 "B": _constant(0.7)}, 10)
    out = stats.differences("CLIP", {"t": measure}, Resamples(400))
    a, b = out["differences"]["t"]["A"]["acc"], out["differences"]["t"]["B"]["acc"]
    spread = 0.2 * np.sqrt(2) * 12.7062 / 1.95996
    assert stats.seed_scale(2) == pytest.approx(np.sqrt(2) * 12.7062 / 1.95996, rel=1e-5)
    assert a["difference"] == pytest.approx(0.2)
    assert a["low"] == pytest.approx(0.2 - spread, rel=1e-5) and a["high"] == pytest.approx(0.2 + spread, rel=1e-5)
    assert a["seeds"] == 2 and a["contains_zero"]
    assert b["difference"] == b["low"] == b["high"] == pytest.approx(0.2) and b["seeds"] == 1
    pair = out["pairs"]["A - B"]["t"]["acc"]
    assert pair["difference"] == pytest.approx(0.0) and pair["seeds"] == 2 and pair["base_seeds"] == 1


def test_metrics_only_a_model_has_are_compared_with_the_named_baseline_metric():
    measure = stats.TaskMeasure({"CLIP": lambda s: {"MCM AUROC": np.full(s.rows, 0.7)},
                                 "N": lambda s: {"CTW AUROC": np.full(s.rows, 0.6)}}, 10,
                                against={"CTW AUROC": "MCM AUROC"})
    out = stats.differences("CLIP", {"ood": measure}, Resamples(50))["differences"]["ood"]["N"]
    assert list(out) == ["CTW AUROC (vs MCM AUROC)"]
    assert out["CTW AUROC (vs MCM AUROC)"]["difference"] == pytest.approx(-0.1)


def test_resamples_are_the_same_for_a_key_and_keep_class_sizes():
    r = Resamples(50, seed=3)
    classes = np.array([0, 0, 0, 1, 1, 2])
    w = r.weights("classes:d", 6, classes)
    assert np.array_equal(w, Resamples(50, seed=3).weights("classes:d", 6, classes))
    assert np.array_equal(w[:, :3].sum(axis=1), np.full(50, 3.0)) and np.all(w[:, 5] == 1)
    assert not np.array_equal(r.weights("images:d", 6), r.weights("images:e", 6))
    chunk = next(r.chunks())
    chunk.weights("classes:d", 6, classes)
    with pytest.raises(ValueError):
        chunk.weights("classes:d", 6, np.zeros(6))
    assert r.picks("seeds:A", 3).shape == (50, 3)


def test_resample_weights_are_the_same_wherever_they_are_computed():
    """Chunk i of a stratum comes from (seed, stratum, i): the chunks together are the all-rows weights, a smaller
    n_boot gives the first rows of a larger one, and no chunk holds more than CHUNK_ROWS rows."""
    from clap.evaluation.statistics.resample import CHUNK_ROWS

    big, small = Resamples(3 * CHUNK_ROWS + 7, seed=5), Resamples(CHUNK_ROWS + 3, seed=5)
    chunks = list(big.chunks())
    assert [c.rows for c in chunks] == [CHUNK_ROWS] * 3 + [7]
    together = np.concatenate([c.weights("images:d", 40) for c in chunks])
    assert np.array_equal(together, big.weights("images:d", 40))
    assert np.array_equal(small.weights("images:d", 40), together[:CHUNK_ROWS + 3])
    assert np.array_equal(small.picks("seeds:A", 3), big.picks("seeds:A", 3)[:CHUNK_ROWS + 3])
    assert np.all(together.sum(axis=1) == 40)


def test_seed_summary_is_leafwise_mean_and_std_with_ddof_1():
    results = {"zeroshot": {"CLIP": {"mean": {"C": 0.5}}, "CLAP#1": {"mean": {"C": 0.6}},
                            "CLAP#2": {"mean": {"C": 0.8}}}, "tsne": {"CLIP": "a.png"}}
    summary = stats.seed_summary(results, stats.seed_groups(["CLIP", "CLAP#1", "CLAP#2"]))
    assert summary["zeroshot"]["CLAP"]["mean"]["mean"]["C"] == pytest.approx(0.7)
    assert summary["zeroshot"]["CLAP"]["std"]["mean"]["C"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert "tsne" not in summary and stats.sample_std([0.3]) == 0.0


def test_intervals_cover_a_known_difference_with_seed_spread():
    """The coverage benchmark at a small scale (seeded, so it is the same every run): simulated results with
    known per-domain rates and a known seed spread; the 95% intervals of the accuracy gain and of the
    noise-corrected squared gap cover the truth, also where the adapter's forms are tied (there R's cannot)."""
    from benchmarks.bench_coverage import SCENARIOS, coverage

    spread = coverage(datasets=60, n_boot=300, scenario=SCENARIOS["seed spread 3 points"])
    assert 0.88 <= spread["coverage_C"] <= 1.0 and 0.88 <= spread["coverage_gap2"] <= 1.0
    tied_forms = SCENARIOS["the adapter's forms tied (R 0), seed spread 0.5 points"]
    tied = coverage(datasets=60, n_boot=300, scenario=tied_forms)
    assert 0.88 <= tied["coverage_gap2"] <= 1.0 and tied["coverage_R"] < 0.6


def test_squared_gap_is_the_unbiased_pairwise_estimate():
    """By hand: forms right on 3 of 4 images and on none give (sum x)^2 - sum x^2 over n(n-1) = (9-3)/12 = 0.5
    for that pair; forms that agree on every image give 0. Forms with equal rates, right or wrong
    independently: gap2 averages 0 over many datasets while R reads well above 0."""
    one = np.ones((1, 4))
    assert squared_gap([np.array([1, 1, 1, 0]), np.zeros(4)], one)[0] == pytest.approx(0.5)
    assert squared_gap([np.array([1, 0, 1, 0])] * 3, one)[0] == 0.0
    hits = np.random.default_rng(0).random((4000, 3, 100)) < 0.6  # [datasets, forms, images]
    gaps = np.array([squared_gap(list(h.astype(float)), np.ones((1, 100)))[0] for h in hits])
    ranges = np.ptp(hits.mean(axis=2), axis=1)
    assert abs(gaps.mean()) < 3 * gaps.std() / np.sqrt(len(gaps)) and ranges.mean() > 0.05


def _shot_records(rng, disagree: bool) -> dict:
    """Per-image hits of 3 shot draws over 2 domains of 200 images: the same hits for every draw, or draws whose
    accuracies differ by 30 points."""
    records = {}
    for domain in ("a", "b"):
        base = (rng.random(200) < 0.6).astype(float)
        rows = [base.copy() for _ in range(3)]
        if disagree:
            rows[0] = (rng.random(200) < 0.3).astype(float)
            rows[2] = (rng.random(200) < 0.9).astype(float)
        records[domain] = {"1-shot": np.stack(rows)}
    return records


def _image_level_only(records: dict, sample) -> np.ndarray:
    """The statistic as it was before shot draws were a level: images resampled, draws averaged as they are."""
    from clap.evaluation.statistics.resample import weighted_mean

    return np.mean([np.mean([weighted_mean(sample.weights(f"images:{d}", 200), row) for row in r["1-shot"]], axis=0)
                    for d, r in records.items()], axis=0)


def test_few_shot_interval_widens_when_shot_draws_disagree_and_not_otherwise():
    from clap.evaluation.protocols.fewshot import few_shot_statistic
    from clap.evaluation.statistics.resample import OBSERVED, Resamples

    rng = np.random.default_rng(0)
    for disagree in (False, True):
        records = _shot_records(rng, disagree)
        statistic = few_shot_statistic(records)
        resamples = Resamples(1000, seed=3)
        drawn, before = statistic(resamples)["1-shot"], _image_level_only(records, resamples)
        assert statistic(OBSERVED)["1-shot"][0] == pytest.approx(_image_level_only(records, OBSERVED)[0])
        width, old_width = (np.subtract(*np.quantile(x, [0.975, 0.025])) for x in (drawn, before))
        if disagree:
            assert width > 1.5 * old_width
        else:
            assert np.array_equal(drawn, before)  # draws that agree: exactly today's resamples


def test_weighted_means_of_hit_series_in_one_product_equal_each_alone():
    """Several series of hits (noise draws, shot draws; NaN where unscored) in one product give bit for bit the
    means each gives alone: the weights are counts and the hits 0/1, so every sum is exact in any order."""
    rng = np.random.default_rng(0)
    hits = rng.integers(0, 2, (32, 5000)).astype(float)
    hits[rng.random(hits.shape) < 0.1] = np.nan
    weights = next(Resamples(100, seed=3).chunks()).weights("images:a", 5000)
    together = weighted_mean(weights, hits)
    assert together.shape == (50, 32)
    assert np.array_equal(together, np.stack([weighted_mean(weights, row) for row in hits], axis=1))


def test_resample_counts_are_a_multinomial_draw_within_each_class():
    """A resample draws as many images as there are, uniformly with replacement within each class: each count has
    mean 1 and variance 1 - 1/m in a class of m images, and two images of a class covary by -1/m (the multinomial
    the bootstrap calls for); counts are exact float32, image-major so sparse products read them in place."""
    labels = np.repeat(np.arange(3), [4, 10, 40])
    w = Resamples(40000, seed=1).weights("classes:d", len(labels), labels)
    m = np.bincount(labels)[labels]
    assert w.dtype == np.float32 and np.all(w == np.rint(w))
    assert next(Resamples(50, seed=1).chunks()).weights("images:d", 9).flags.f_contiguous
    for c in range(3):
        assert np.all(w[:, labels == c].sum(axis=1) == (labels == c).sum())
    assert np.allclose(w.mean(axis=0), 1, atol=0.03)
    assert np.allclose(w.var(axis=0), 1 - 1 / m, atol=0.04)
    assert np.cov(w[:, 0], w[:, 1])[0, 1] == pytest.approx(-1 / 4, abs=0.02)
    assert abs(np.cov(w[:, 0], w[:, 4])[0, 1]) < 0.02  # other classes: independent


def test_float32_counts_give_the_float64_means_bit_for_bit():
    """Hits (0/1, NaN where unscored) and differences of hits meet float32 counts in float32, where every sum is an
    exact integer: the same means as in float64 (hits kept as int8, larger integers as float32). Values that are not
    integers meet them in float64."""
    from clap.evaluation.statistics.resample import Series

    rng = np.random.default_rng(4)
    weights = next(Resamples(60, seed=2).chunks()).weights("images:d", 3000)
    hits = rng.integers(-1, 2, (6, 3000)).astype(float)
    hits[rng.random(hits.shape) < 0.05] = np.nan
    margins, counts = rng.normal(size=(3, 3000)), rng.integers(0, 1000, (2, 3000)).astype(float)
    for values in (hits, hits[0], margins, counts):
        assert np.array_equal(weighted_mean(weights, values), weighted_mean(weights.astype(np.float64), values))
    stored = {Series(v)._stacked.dtype for v in (hits, counts, margins)}
    assert stored == {np.dtype(np.int8), np.dtype(np.float32), np.dtype(np.float64)}  # a byte a hit
    seen = ~np.isnan(hits[0])
    assert weighted_mean(np.ones((1, 3000)), hits[0])[0] == np.mean(hits[0][seen])


def test_statistics_on_threads_equal_one_thread():
    """The (task, model) statistics of a chunk run on several threads and give what one thread gives, bit for bit
    (each stratum's weights come from its own keyed generator, whichever thread draws them first)."""
    rng = np.random.default_rng(5)
    records = {m: {d: _forms(rng, 300, {"C": 0.6, "PC": 0.7, "CP": 0.5}) for d in "ab"} for m in ("CLIP", "A", "B")}
    tasks = {"zeroshot": stats.TaskMeasure({m: zero_shot_statistic(r) for m, r in records.items()}, 600)}
    one, four = (stats.measured_all(tasks, Resamples(230, seed=1), workers=w) for w in (1, 4))
    for m in records:
        for k, drawn in one["zeroshot"][m].items():
            assert np.array_equal(drawn.draws, four["zeroshot"][m][k].draws)
