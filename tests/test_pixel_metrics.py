"""Pixel-wise anomaly metrics: scikit-learn's on the flattened pixels, void ignored, scene bootstrap from bins."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from clap.evaluation.pixel_metrics import SceneScores, pixel_metrics
from clap.evaluation.resample import OBSERVED, Resamples

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
    scores = [s + np.random.default_rng(2).normal(0, 1e-3, s.shape) for s in scores]  # few ties: bins must tie them
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
