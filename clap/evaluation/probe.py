"""Logistic-regression probes on L2-normalised features (scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch.nn import functional as F


def _numpy(features: torch.Tensor) -> np.ndarray:
    return F.normalize(features.float(), dim=-1).cpu().numpy()


def probe_accuracy(train_x: torch.Tensor, train_y, test_x: torch.Tensor, test_y, c: float = 1.0,
                   seed: int = 0) -> float:
    """Held-out accuracy of a logistic classifier fit on (train_x, train_y)."""
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(_numpy(train_x), np.asarray(train_y))
    return float(clf.score(_numpy(test_x), np.asarray(test_y)))
