"""Pixel-wise anomaly metrics: scikit-learn's on the flattened pixels, void ignored, scene bootstrap from bins."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from clap.evaluation.protocols.pixel_metrics import BINS, RESAMPLE_BINS, SceneScores, pixel_metrics
from clap.evaluation.statistics.resample import OBSERVED, Resamples

ANOMALY, VOID = 254, 255


def _scenes(n: int = 12, size: int = 24, seed: int = 0):
    """Label maps with background 3, classes 0-2, a square anomaly in every other scene and a void rim; scores
    higher on the anomaly, ties included (rounded)."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for i in range(n):
        lab = rng.integers(0, 4, (size, size)).astype(np.uint8)
        if i % 2 == 0:
            lab[4:10, 4:10] = ANOMALY
            lab[3, 3:11] = VOID
        s = np.round(rng.normal(0, 1, lab.shape) + 1.5 * (lab == ANOMALY), 1)
        scores.append(s)
        labels.append(lab)
    return scores, labels


def _sklearn(scores, labels):
    s, lab = np.concatenate([x.ravel() for x in scores]), np.concatenate([x.ravel() for x in labels])
    keep = lab != VOID
    y, s = lab[keep] == ANOMALY, s[keep]
    fpr, tpr, _ = roc_curve(y, s)
    return {"AUROC": roc_auc_score(y, s), "AP": average_precision_score(y, s), "FPR95": fpr[np.argmax(tpr >= 0.95)]}


def test_metrics_equal_scikit_learns_on_the_flattened_pixels_with_void_ignored():
    scores, labels = _scenes()
    expected = _sklearn(scores, labels)
    collected = SceneScores.collect(scores, labels, ANOMALY, VOID)
    for got in (collected.metrics(), pixel_metrics(np.stack(scores), np.stack(labels), ANOMALY, VOID),
                {k: v[0] for k, v in collected.statistic("s", OBSERVED).items()}):
        assert got.keys() == expected.keys()
        for k in expected:
            assert abs(got[k] - expected[k]) < 1e-12, k
    moved = [np.where(lab == VOID, 99.0, s) for s, lab in zip(scores, labels)]  # void pixels' scores do not count
    assert SceneScores.collect(moved, labels, ANOMALY, VOID).metrics() == collected.metrics()


def test_binned_resamples_match_the_exact_values_and_pair_models():
    """All scenes once (weights of ones) through the bins gives the exact values to < 0.001; a resample is the
    metric of the drawn scenes' pixels; two models see the same scene draws."""
    scores, labels = _scenes(seed=1)
    scores = [s + np.random.default_rng(2).normal(0, 0.05, s.shape) for s in scores]  # continuous, no ties
    collected = SceneScores.collect(scores, labels, ANOMALY, VOID)
    ones = type("Ones", (), {"rows": 1, "weights": lambda self, key, n, classes=None: np.ones((1, n))})()
    binned, exact = collected.statistic("s", ones), collected.metrics()
    for k in exact:
        assert abs(binned[k][0] - exact[k]) < 1e-3, k
    resamples = Resamples(n_boot=5, seed=0)
    draws = collected.statistic("s", resamples)
    weights = resamples.weights("s", len(collected))
    chosen = np.repeat(np.arange(len(collected)), weights[0].astype(int))
    direct = _sklearn([scores[i] for i in chosen], [labels[i] for i in chosen])
    assert abs(draws["AUROC"][0] - direct["AUROC"]) < 1e-3 and abs(draws["AP"][0] - direct["AP"]) < 1e-3
    assert np.array_equal(collected.statistic("s", resamples)["AUROC"], draws["AUROC"])


def _continuous(regime: str, n: int = 10, shape=(32, 32), seed: int = 3):
    """Scenes of continuous scores whose distribution moves from scene to scene: the bins are fixed by the first."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for i in range(n):
        lab = rng.integers(0, 4, shape).astype(np.uint8)
        lab[: shape[0] // 4, : shape[1] // 4] = ANOMALY if i % 3 else 1
        shift, spread = (0.3 * i, 0.1 * (1 + i)) if regime == "drifting" else (0.0, 1.0)
        if regime == "heavy":
            noise = rng.standard_t(2, shape)
        else:
            noise = rng.normal(0, 1, shape)
        s = shift + spread * (noise + 1.2 * (lab == ANOMALY))
        scores.append(s - 40.0 if regime == "energy" else s)
        labels.append(lab)
    return scores, labels


@pytest.mark.parametrize("regime", ["drifting", "heavy", "energy"])
def test_streamed_bins_stay_within_a_thousandth_of_scikit_learn(regime):
    """Scenes whose scores drift in centre and spread (tenfold), heavy-tailed scores, Energy-like magnitudes: the
    streamed metrics stay within 0.001 of scikit-learn's on the flattened pixels."""
    scores, labels = _continuous(regime)
    collected, expected = SceneScores.collect(scores, labels, ANOMALY, VOID), _sklearn(scores, labels)
    ones = type("Ones", (), {"rows": 1, "weights": lambda self, key, n, classes=None: np.ones((1, n))})()
    merged = {k: v[0] for k, v in collected.statistic("s", ones).items()}  # a resample's merged bins
    for got in (collected.metrics(), merged):
        assert all(abs(got[k] - expected[k]) < 1e-3 for k in expected), (got, expected)
    assert collected._per_scene()[1][0].shape[0] <= RESAMPLE_BINS < collected._per_scene()[0][0].shape[0]


def test_memory_is_bounded_by_the_bins_not_the_pixels():
    """A scene of 512 x 1024 pixels keeps at most `bins` counts per class; a coarser grid keeps fewer."""
    scores, labels = _continuous("drifting", n=2, shape=(512, 1024))
    fine, coarse = (SceneScores.collect(scores, labels, ANOMALY, VOID, bins) for bins in (BINS, 1024))
    kept = [len(b) for part in (fine.positives, fine.negatives) for b, _ in part]
    assert max(kept) <= BINS and sum(kept) < sum(lab.size for lab in labels) / 4
    assert max(len(b) for b, _ in coarse.negatives) <= 1024
    assert sum(c.sum() for _, c in fine.negatives + fine.positives) == sum(lab.size for lab in labels)
