"""Pixel-wise anomaly metrics as Fishyscapes and SegmentMeIfYouCan report them: anomaly pixels are positive, a
higher score is more anomalous, void pixels are ignored; AUROC, AP (average precision) and FPR at 95% TPR.

Scenes stream in: each scene's pixels are counted into score bins as it arrives and only the counts are kept
(`SceneScores`), so memory does not grow with the pixel count (at most `BINS` counts per scene and class, however
large the scene). The bins are fine and fixed once the first scene has come: equal steps of asinh((s - c) / w), c
and w the first scene's median and interquartile range, so a score is resolved to about 0.03% of w near c and to
about 0.03% of its own distance from c far from it (scores beyond 1000 w share the end bins). Scores within one bin
tie; the metrics stay within 0.001 of scikit-learn's on the flattened pixels (tested), and equal them where every
distinct score has a bin of its own. A bootstrap draws scenes with replacement (within each image type): a resample
is a product of its scene weights with the per-scene counts, merged into at most `RESAMPLE_BINS` bins (finest at the
highest scores, where AP is decided; within 0.001 again, tested), and no pixel is sorted again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clap.evaluation.protocols.ood_scores import RESAMPLE_BINS, binned_metrics, detection_metrics, merged_bins
from clap.evaluation.statistics.resample import OBSERVED, Sample

PIXEL_METRICS = ("AUROC", "AP", "FPR95")
BINS = 1 << 16
REACH = 1e3  # in units of w: the asinh grid spans c +- REACH * w


def _renamed(metrics: dict) -> dict:
    return {"AUROC": metrics["AUROC"], "AP": metrics["AUPR_in"], "FPR95": metrics["FPR95"]}


def pixel_metrics(scores: np.ndarray, labels: np.ndarray, anomaly: int, void: int) -> dict[str, float]:
    """AUROC, AP and FPR95 of per-pixel anomaly scores against label maps of the same shape (exact)."""
    keep = labels != void
    return _renamed(detection_metrics(scores[keep & (labels == anomaly)], scores[keep & (labels != anomaly)]))


@dataclass
class SceneScores:
    """One model's anomaly scores on a set of scenes, streamed: per scene, the counts of its anomaly pixels and of
    its other pixels (void left out) per score bin, kept sparse (bin indices, counts)."""

    bins: int = BINS
    positives: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    negatives: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    grid: tuple[float, float] | None = None  # (c, w), fixed by the first scene with pixels
    _matrices: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def collect(cls, scores: list[np.ndarray], labels: list[np.ndarray], anomaly: int, void: int,
                bins: int = BINS) -> "SceneScores":
        collected = cls(bins)
        for s, lab in zip(scores, labels):
            collected.add(s, lab, anomaly, void)
        return collected

    def add(self, scores: np.ndarray, labels: np.ndarray, anomaly: int, void: int) -> None:
        """One more scene: its score map and label map of the same shape, counted into the bins."""
        if scores.shape != labels.shape:
            raise ValueError(f"a score map of shape {scores.shape} for a label map of shape {labels.shape}")
        keep = labels != void
        positive, negative = scores[keep & (labels == anomaly)], scores[keep & (labels != anomaly)]
        if self.grid is None and keep.any():
            self.grid = _grid(np.concatenate([positive, negative]).astype(float))
        self.positives.append(self._counts(positive))
        self.negatives.append(self._counts(negative))
        self._matrices = None

    def _counts(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bins, counts) of some scores, bin 0 holding the highest."""
        if not len(values):
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        centre, width = self.grid
        reach = np.arcsinh(REACH)
        t = np.clip(np.arcsinh((values.astype(float) - centre) / width), -reach, reach)
        index = np.minimum(((reach - t) / (2 * reach) * self.bins).astype(np.int64), self.bins - 1)
        found, counts = np.unique(index, return_counts=True)
        return found.astype(np.int32), counts.astype(np.float32)

    def __len__(self) -> int:
        return len(self.positives)

    def _per_scene(self):
        """Sparse [used bins, scenes] counts of anomaly and other pixels (bins no scene uses left out), fine and merged
        (at most `RESAMPLE_BINS`)."""
        if self._matrices is None:
            from scipy import sparse

            used = np.unique(np.concatenate([b for b, _ in self.positives + self.negatives] + [np.zeros(0, np.int32)]))

            def matrix(parts: list[tuple[np.ndarray, np.ndarray]]):
                rows = np.repeat(np.arange(len(parts)), [len(b) for b, _ in parts])
                columns = np.searchsorted(used, np.concatenate([b for b, _ in parts] + [np.zeros(0, np.int32)]))
                counts = np.concatenate([c for _, c in parts] + [np.zeros(0, np.float32)]).astype(float)
                return sparse.csr_matrix((counts, (rows, columns)), shape=(len(parts), len(used)))

            pos, neg = matrix(self.positives), matrix(self.negatives)
            merge = merged_bins(np.asarray(pos.sum(axis=0) + neg.sum(axis=0)).ravel(), RESAMPLE_BINS)
            # kept as [bins, scenes] (csr), the orientation every resample multiplies
            self._matrices = (pos.T.tocsr(), neg.T.tocsr()), ((pos @ merge).T.tocsr(), (neg @ merge).T.tocsr())
        return self._matrices

    def statistic(self, key: str, sample: Sample) -> dict[str, np.ndarray]:
        """{metric: [rows]} on the sample's scene weights for stratum `key` (`OBSERVED`: every scene once, on the
        fine bins; a resample on at most `RESAMPLE_BINS` merged ones)."""
        fine, merged = self._per_scene()
        pos, neg = fine if sample is OBSERVED else merged
        weights = np.ones((1, len(self))) if sample is OBSERVED else sample.weights(key, len(self))
        return _renamed(binned_metrics(np.asarray(pos @ weights.T).T, np.asarray(neg @ weights.T).T))

    def metrics(self) -> dict[str, float]:
        """The values on the data: every scene once."""
        return {k: float(v[0]) for k, v in self.statistic("", OBSERVED).items()}


def _grid(values: np.ndarray) -> tuple[float, float]:
    """(c, w) of the bins: the scores' median and interquartile range (their range, or 1, where that is 0)."""
    low, centre, high = np.quantile(values, [0.25, 0.5, 0.75])
    return float(centre), float(high - low) or float(np.ptp(values)) or 1.0
