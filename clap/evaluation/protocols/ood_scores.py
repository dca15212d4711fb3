"""Zero-shot OOD scores of image features against class text features, and the detection metrics.

Definitions (`docs/open_world.md`; higher score = more in-distribution): cosines s_k = <f, t_k>;
MCM = max_k softmax_k(s_k / T') (Ming et al. 2022, T' = 1); MaxLogit = max_k s_k / T;
Energy = T * logsumexp_k(s_k / T) with T = 0.01 (CLIP's logit scale 100). The VL4AD max-logit
prompt ensemble scores class k by max over its prompts' cosines instead of the cosine to their mean
(arXiv 2409.17330, applied here at image level); class merging scores the classes of a group as one
class (max over the union of their prompts). Merging leaves the max-logit unchanged but not VL4AD's probability,
VL4AD = max_k softmax_k(ensemble / T) (its pixel score -max_k sum_i s_i c_ik with a single mask).
VL4AD's OOD prompts append Q outlier concepts to the K classes:
OODPrompts = max_{k <= K} softmax_k over all K + Q of s / T (only the ID channels count).
Metrics: AUROC, FPR95 (false-positive rate on OOD at the threshold accepting 95% of ID) and AUPR with
ID positive (AUPR-In) and OOD positive (AUPR-Out), computed as scikit-learn computes them (ties
averaged in AUROC; FPR95 at the largest threshold with TPR >= 0.95; average precision over distinct
thresholds) but with image weights, so a bootstrap resample is a row of weights (`weighted_metrics`). A resample's
metrics are computed on the ranked scores merged into at most `RESAMPLE_BINS` runs of adjacent ranks (`merged_bins`:
fine at the highest scores, where AP is decided), so their cost does not grow with the images; the values stay within
0.001 of the unmerged ones (tested) and the table's own values are never merged.
"""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

import numpy as np
import torch

CLIP_TEMPERATURE = 0.01
METRICS = ("AUROC", "FPR95", "AUPR_in", "AUPR_out")
MCM_TEMPERATURE = 1.0
ENSEMBLE_ROWS = 4096  # images whose prompt cosines are held at once (4096 x P x 4 bytes)
RESAMPLE_BINS = 4096  # a resample's metrics on merged bins: the value within 0.001 of the unmerged one


def mcm(cosines: torch.Tensor, temperature: float = MCM_TEMPERATURE) -> torch.Tensor:
    """Maximum concept matching: the largest softmax probability of cosine / T'."""
    return torch.softmax(cosines / temperature, dim=1).max(dim=1).values


def ood_prompt_score(cosines: torch.Tensor, extra: torch.Tensor, temperature: float = CLIP_TEMPERATURE
                     ) -> torch.Tensor:
    """VL4AD's OOD prompts: softmax over the K class cosines [N, K] and the Q outlier concepts' [N, Q], divided by
    T; the largest probability among the K classes (an outlier that resembles a concept loses ID mass)."""
    probs = torch.softmax(torch.cat([cosines, extra], dim=1) / temperature, dim=1)
    return probs[:, : cosines.shape[1]].max(dim=1).values


def vl4ad_probability(ensemble: torch.Tensor, temperature: float = CLIP_TEMPERATURE) -> torch.Tensor:
    """VL4AD's class-probability score with one mask per input: max_k softmax_k(ensemble cosines / T), the
    ensemble's classes merged or not. Unlike the max-logit, this changes when classes are merged (a merged group
    stops competing with itself)."""
    return torch.softmax(ensemble / temperature, dim=1).max(dim=1).values


def max_logit(cosines: torch.Tensor, temperature: float = CLIP_TEMPERATURE) -> torch.Tensor:
    return cosines.max(dim=1).values / temperature


def energy(cosines: torch.Tensor, temperature: float = CLIP_TEMPERATURE) -> torch.Tensor:
    """Negative free energy: T * logsumexp(cosine / T)."""
    return temperature * torch.logsumexp(cosines / temperature, dim=1)


def ensemble_cosines(image_features: torch.Tensor, prompt_features: torch.Tensor,
                     owner: Sequence[int], n_classes: int) -> torch.Tensor:
    """Per class, the max cosine over its prompts. `prompt_features` [P, D] (normalised), `owner[p]` = class of
    prompt p; returns [N, n_classes]. The [N, P] cosines are made `ENSEMBLE_ROWS` images at a time."""
    prompts = prompt_features.T.to(image_features.device)
    owner_t = torch.as_tensor(owner, dtype=torch.long, device=image_features.device)
    out = torch.full((len(image_features), n_classes), -torch.inf, dtype=image_features.dtype,
                     device=image_features.device)
    for start in range(0, len(image_features), ENSEMBLE_ROWS):
        cos = image_features[start:start + ENSEMBLE_ROWS] @ prompts
        out[start:start + ENSEMBLE_ROWS].scatter_reduce_(1, owner_t.expand(len(cos), -1), cos, reduce="amax")
    return out


def merged_owner(classes: Sequence[str], groups: Sequence[Sequence[str]] | None) -> tuple[list[int], int]:
    """Each class's merged index (classes of one group share it; the others keep their own) and the count."""
    group_of = {c: g for g, members in enumerate(groups or ()) for c in members}
    index, out = {}, []
    for c in classes:
        key = ("group", group_of[c]) if c in group_of else ("class", c)
        out.append(index.setdefault(key, len(index)))
    return out, len(index)


def ensemble_owners(classes: Sequence[str], groups: Sequence[Sequence[str]] | None, templates: int
                    ) -> tuple[list[int], int]:
    """The merged class of every prompt of a class-major prompt list (each class's `templates` prompts in a row)
    and the number of merged classes: `ensemble_cosines`'s owners."""
    owner, n_merged = merged_owner(classes, groups)
    return [owner[c] for c in range(len(classes)) for _ in range(templates)], n_merged


class RankedScores:
    """ID and OOD scores ranked once (their distinct values, one-hot per image; and the same merged into at most
    `RESAMPLE_BINS` bins), so that the detection metrics under any image weights are two sparse products, however
    many resamples ask."""

    def __init__(self, id_scores: np.ndarray, ood_scores: np.ndarray) -> None:
        from scipy import sparse

        values, bins, counts = np.unique(np.r_[id_scores, ood_scores], return_inverse=True, return_counts=True)
        n_id, last = len(id_scores), len(values) - 1

        def onehot(which: np.ndarray):  # [bins, images], bins from the highest score to the lowest
            return sparse.csr_matrix((np.ones(len(which)), (last - which, np.arange(len(which)))),
                                     (len(values), len(which)))

        self._id, self._ood = onehot(bins[:n_id]), onehot(bins[n_id:])
        self._counts = counts[::-1].astype(float)  # images per distinct score, from the highest down

    @cached_property
    def _merged(self) -> tuple:
        """The one-hots merged into at most `RESAMPLE_BINS` bins, built when a resample first asks; float32, so that
        a resample's float32 counts meet them in float32 (sums of counts: exact integers)."""
        merge = merged_bins(self._counts, RESAMPLE_BINS).T.tocsr()
        return tuple((merge @ onehot).astype(np.float32).tocsr() for onehot in (self._id, self._ood))

    def metrics(self, id_weights: np.ndarray, ood_weights: np.ndarray, tpr: float = 0.95, merged: bool = False
                ) -> dict[str, np.ndarray]:
        """{metric: [rows]} for rows of image weights (`id_weights` [rows, N_id], `ood_weights` [rows, N_ood]); on the
        merged bins with `merged` (a bootstrap resample's)."""
        on_id, on_ood = self._merged if merged else (self._id, self._ood)
        return binned_metrics(_binned(on_id, id_weights), _binned(on_ood, ood_weights), tpr)


def _binned(onehot, weights: np.ndarray) -> np.ndarray:
    """[rows, bins] the weighted counts per bin, float64: the sparse [bins, images] one-hot times the weights'
    transpose (resample weights are image-major, so their transpose is read in place), laid out row by row."""
    return np.ascontiguousarray(np.asarray(onehot @ weights.T).T, dtype=np.float64)


def merged_bins(pooled: np.ndarray, groups: int):
    """A sparse [bins, <= groups] matrix that sums runs of adjacent bins (ordered from the highest score down). A bin
    whose share of the pooled counts starts at b goes to run floor(groups * (sqrt(b) + b) / 2): the runs are finest
    at the top of the ranking, where AP's precision moves fastest, and hold a share of 4 / (3 groups) at most
    anywhere (FPR95's threshold lies deep in the ranking); up to 3 groups / 4 bins of equal counts are left as
    they are."""
    from scipy import sparse

    before = np.concatenate([[0.0], np.cumsum(pooled)[:-1]]) / max(pooled.sum(), 1.0)
    group = np.minimum(((np.sqrt(before) + before) / 2 * groups).astype(np.int64), groups - 1)
    group = np.unique(group, return_inverse=True)[1]
    return sparse.csr_matrix((np.ones(len(pooled)), (np.arange(len(pooled)), group)),
                             shape=(len(pooled), int(group.max(initial=-1)) + 1))


def weighted_metrics(id_scores: np.ndarray, ood_scores: np.ndarray, id_weights: np.ndarray,
                     ood_weights: np.ndarray, tpr: float = 0.95) -> dict[str, np.ndarray]:
    """AUROC, FPR95, AUPR-In and AUPR-Out (ID positive, higher score = more ID) for each row of image weights
    (`id_weights` [rows, N_id], `ood_weights` [rows, N_ood]; ones give scikit-learn's values): {metric: [rows]}."""
    return RankedScores(id_scores, ood_scores).metrics(id_weights, ood_weights, tpr)


def binned_metrics(pos: np.ndarray, neg: np.ndarray, tpr: float = 0.95) -> dict[str, np.ndarray]:
    """AUROC, FPR95, AUPR-In and AUPR-Out from positive and negative counts per score bin ([rows, bins], bins
    ordered from the highest score to the lowest; scores within a bin tie)."""
    tp, fp = pos.cumsum(axis=1), neg.cumsum(axis=1)
    p, n = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        below = n[:, None] - fp  # negatives scored under each bin
        auroc = (pos * (below + 0.5 * neg)).sum(axis=1) / (p * n)
        first = np.argmax(tp / p[:, None] >= tpr, axis=1)
        fpr95 = np.take_along_axis(fp, first[:, None], axis=1)[:, 0] / n
        aupr_in = _average_precision(pos, tp, fp) / p
        aupr_out = _average_precision(neg, below + neg, (p[:, None] - tp) + pos) / n  # thresholds from the bottom
    return {"AUROC": auroc, "FPR95": fpr95, "AUPR_in": aupr_in, "AUPR_out": aupr_out}


def _average_precision(gained: np.ndarray, hits: np.ndarray, misses: np.ndarray) -> np.ndarray:
    """Per row, the sum over thresholds of the positives each adds (`gained`) times the precision there (`hits`
    and `misses`: positives and negatives at or past it); divided by the positives, the average precision."""
    total = hits + misses
    return (gained * np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)).sum(axis=1)


def detection_metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """AUROC, FPR95, AUPR-In and AUPR-Out (ID = positive, higher score = more ID)."""
    id_scores, ood_scores = np.asarray(id_scores, float), np.asarray(ood_scores, float)
    metrics = weighted_metrics(id_scores, ood_scores, np.ones((1, len(id_scores))), np.ones((1, len(ood_scores))))
    return {k: float(v[0]) for k, v in metrics.items()}
