"""Mask2Former's set loss in miniature, for the segmentation route's mask decoder.

Per scene, the ground-truth segments are its labels' masks (one per in-distribution label present, the background
included; void pixels belong to none and count nowhere). Queries are matched one to one to segments by the
Hungarian algorithm (scipy) on Mask2Former's cost: -p_i(class) * 2 + mask BCE * 5 + dice * 5; then every query's
class cross-entropy (unmatched queries towards no-object, weighted 0.1) and the matched masks' BCE and dice.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

NO_OBJECT_WEIGHT = 0.1
WEIGHTS = {"class": 2.0, "bce": 5.0, "dice": 5.0}


def segments(labels: torch.Tensor, void: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The labels present (< n_classes) and their masks [G, S, S] (float) in a label map [S, S]."""
    present = [int(c) for c in torch.unique(labels) if int(c) != void and int(c) < n_classes]
    classes = torch.tensor(present, dtype=torch.long, device=labels.device)
    return classes, (labels[None] == classes[:, None, None]).float()


def _pair_costs(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and dice between every query's mask logits [N, P] and every target mask [G, P] on valid pixels [P]."""
    n = valid.sum().clamp(min=1)
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none") * valid
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * valid
    bce = (pos @ masks.T + neg @ (1 - masks).T) / n
    probs = logits.sigmoid() * valid
    dice = 1 - (2 * probs @ masks.T + 1) / (probs.sum(1)[:, None] + masks.sum(1)[None] + 1)
    return bce, dice


def set_loss(mask_logits: torch.Tensor, class_logits: torch.Tensor, labels: torch.Tensor, void: int
             ) -> dict[str, torch.Tensor]:
    """Loss terms of one scene: mask logits [N, S, S], class logits [N, K + 1] (last: no-object), labels [S, S]."""
    n_classes = class_logits.shape[1] - 1
    classes, masks = segments(labels, void, n_classes)
    valid = (labels != void).float().flatten()
    logits, targets = mask_logits.flatten(1), masks.flatten(1) * valid
    bce, dice = _pair_costs(logits, targets, valid)
    with torch.no_grad():
        cost = -WEIGHTS["class"] * class_logits.softmax(-1)[:, classes] + WEIGHTS["bce"] * bce + WEIGHTS["dice"] * dice
        queries, matched = linear_sum_assignment(cost.cpu().numpy())
    device = class_logits.device
    queries, matched = (torch.as_tensor(i, dtype=torch.long, device=device) for i in (queries, matched))
    wanted = torch.full((len(class_logits),), n_classes, dtype=torch.long, device=device)
    wanted[queries] = classes[matched]
    weight = torch.ones(n_classes + 1, dtype=class_logits.dtype, device=device)
    weight[n_classes] = NO_OBJECT_WEIGHT
    terms = {"class": F.cross_entropy(class_logits, wanted, weight=weight),
             "bce": bce[queries, matched].mean(), "dice": dice[queries, matched].mean()}
    terms["loss"] = sum(WEIGHTS[k] * terms[k] for k in WEIGHTS)
    return terms
