"""Statistics: paired bootstrap intervals, seed groups, mean ± std over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from clap.evaluation import stats


def test_bootstrap_interval_covers_a_known_difference():
    """Over many synthetic test sets with a true +5 point difference, the 95% interval covers it ~95% of times."""
    rng = np.random.default_rng(0)
    covered, trials = 0, 200
    for t in range(trials):
        base = rng.random(400) < 0.70
        model = rng.random(400) < 0.75
        d = stats.paired_bootstrap(model, base, n_boot=400, seed=t)
        assert d["low"] <= d["difference"] <= d["high"] and d["n"] == 400
        covered += d["low"] <= 0.05 <= d["high"]
    assert 0.88 <= covered / trials <= 0.99


def test_identical_models_are_printed_as_containing_zero():
    hits = np.random.default_rng(1).random(300) < 0.6
    d = stats.paired_bootstrap(hits, hits)
    assert d["difference"] == 0 and d["contains_zero"]
    better = stats.paired_bootstrap(np.ones(300), hits)
    assert not better["contains_zero"] and better["low"] > 0


def test_nan_pairs_are_dropped():
    d = stats.paired_bootstrap(np.array([1.0, np.nan, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, np.nan]))
    assert d["n"] == 2 and d["difference"] == pytest.approx(0.5)


def test_seed_groups_average_per_image_before_comparing():
    per_image = {"zeroshot": {"CLIP": {"C": np.array([1, 0, 0, 0.0])},
                              "CLAP#1": {"C": np.array([1, 1, 0, 0.0])}, "CLAP#2": {"C": np.array([1, 1, 1, 0.0])},
                              "Im.Aug": {"C": np.array([0, 0, 0, 0.0])}}}
    diffs = stats.differences_to("CLIP", per_image)["zeroshot"]
    assert set(diffs) == {"CLAP", "Im.Aug"}
    assert diffs["CLAP"]["C"]["difference"] == pytest.approx((0 + 1 + 0.5 + 0) / 4)
    assert diffs["Im.Aug"]["C"]["difference"] == pytest.approx(-0.25)


def test_seed_summary_is_leafwise_mean_and_std():
    results = {"zeroshot": {"CLIP": {"mean": {"C": 0.5}}, "CLAP#1": {"mean": {"C": 0.6}},
                            "CLAP#2": {"mean": {"C": 0.8}}}, "tsne": {"CLIP": "a.png"}}
    summary = stats.seed_summary(results, stats.seed_groups(["CLIP", "CLAP#1", "CLAP#2"]))
    assert summary["zeroshot"]["CLAP"]["mean"]["mean"]["C"] == pytest.approx(0.7)
    assert summary["zeroshot"]["CLAP"]["std"]["mean"]["C"] == pytest.approx(0.1)
    assert "tsne" not in summary


def test_robustness_statistics_are_bootstrapped_as_differences():
    rng = np.random.default_rng(2)
    n = 500
    base = {"C": rng.random(n) < 0.8, "PC": rng.random(n) < 0.6, "CP": rng.random(n) < 0.7, "NC": rng.random(n) < 0.5}
    flat = {k: rng.random(n) < 0.7 for k in ("C", "PC", "CP", "NC")}
    d = stats.robustness_differences(flat, base)
    r_base = max(base[f].mean() for f in ("C", "PC", "CP")) - min(base[f].mean() for f in ("C", "PC", "CP"))
    r_flat = max(flat[f].mean() for f in ("C", "PC", "CP")) - min(flat[f].mean() for f in ("C", "PC", "CP"))
    assert d["R"]["difference"] == pytest.approx(r_flat - r_base)
    assert d["R"]["high"] < 0 and d["Delta_NC"]["high"] < 0  # a flat model's spread is smaller, clearly


def test_pairwise_differences_compare_seed_groups():
    per_image = {"fewshot": {"CLIP": {"1-shot": np.zeros(4)}, "A#1": {"1-shot": np.ones(4)},
                             "A#2": {"1-shot": np.ones(4)}, "B": {"1-shot": np.array([1, 0, 0, 0.0])}}}
    pairs = stats.pairwise_differences("CLIP", per_image)
    assert list(pairs) == ["A - B"]
    assert pairs["A - B"]["fewshot"]["1-shot"]["difference"] == pytest.approx(0.75)
