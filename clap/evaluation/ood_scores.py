"""Zero-shot OOD scores of image features against class text features, and the detection metrics.

Definitions (`OPEN_WORLD.md`; higher score = more in-distribution): cosines s_k = <f, t_k>;
MCM = max_k softmax_k(s_k / T') (Ming et al. 2022, T' = 1); MaxLogit = max_k s_k / T;
Energy = T * logsumexp_k(s_k / T) with T = 0.01 (CLIP's logit scale 100). The VL4AD max-logit
prompt ensemble scores class k by max over its prompts' cosines instead of the cosine to their mean
(arXiv 2409.17330, applied here at image level); class merging scores the classes of a group as one
class (max over the union of their prompts).
Metrics: AUROC, FPR95 (false-positive rate on OOD at the threshold accepting 95% of ID) and AUPR with
ID positive (AUPR-In) and OOD positive (AUPR-Out), from scikit-learn's curves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

CLIP_TEMPERATURE = 0.01
MCM_TEMPERATURE = 1.0


def mcm(cosines: torch.Tensor, temperature: float = MCM_TEMPERATURE) -> torch.Tensor:
    """Maximum concept matching: the largest softmax probability of cosine / T'."""
    return torch.softmax(cosines / temperature, dim=1).max(dim=1).values


def max_logit(cosines: torch.Tensor, temperature: float = CLIP_TEMPERATURE) -> torch.Tensor:
    return cosines.max(dim=1).values / temperature


def energy(cosines: torch.Tensor, temperature: float = CLIP_TEMPERATURE) -> torch.Tensor:
    """Negative free energy: T * logsumexp(cosine / T)."""
    return temperature * torch.logsumexp(cosines / temperature, dim=1)


def ensemble_cosines(image_features: torch.Tensor, prompt_features: torch.Tensor,
                     owner: Sequence[int], n_classes: int) -> torch.Tensor:
    """Per class, the max cosine over its prompts. `prompt_features` [P, D] (normalised), `owner[p]` = class of
    prompt p; returns [N, n_classes]."""
    cos = image_features @ prompt_features.T
    owner_t = torch.as_tensor(owner, dtype=torch.long, device=cos.device)
    out = torch.full((len(cos), n_classes), -torch.inf, dtype=cos.dtype, device=cos.device)
    return out.scatter_reduce(1, owner_t.expand(len(cos), -1), cos, reduce="amax")


def merged_owner(classes: Sequence[str], groups: Sequence[Sequence[str]] | None) -> tuple[list[int], int]:
    """Each class's merged index (classes of one group share it; the others keep their own) and the count."""
    group_of = {c: g for g, members in enumerate(groups or ()) for c in members}
    index, out = {}, []
    for c in classes:
        key = ("group", group_of[c]) if c in group_of else ("class", c)
        out.append(index.setdefault(key, len(index)))
    return out, len(index)


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    """Share of OOD images scored at or above the threshold that accepts `tpr` of the ID images.

    The threshold is the largest score with at least `tpr` of ID scores >= it (ties count as accepted),
    read off scikit-learn's ROC curve (all thresholds kept)."""
    from sklearn.metrics import roc_curve

    labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    fpr, tpr_curve, _ = roc_curve(labels, np.r_[id_scores, ood_scores], drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr_curve, tpr, side="left")])


def detection_metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """AUROC, FPR95, AUPR-In and AUPR-Out (ID = positive, higher score = more ID)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    id_scores, ood_scores = np.asarray(id_scores, float), np.asarray(ood_scores, float)
    labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    scores = np.r_[id_scores, ood_scores]
    return {"AUROC": float(roc_auc_score(labels, scores)), "FPR95": fpr_at_tpr(id_scores, ood_scores),
            "AUPR_in": float(average_precision_score(labels, scores)),
            "AUPR_out": float(average_precision_score(1 - labels, -scores))}
