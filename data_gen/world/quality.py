"""How well a backbone sees the rendered world: zero-shot content and linearly decodable style."""

from __future__ import annotations

import numpy as np
import torch

from clap.evaluation.probe import probe_accuracy
from clap.evaluation.zeroshot import PROMPT_FORMS, encode_images, zero_shot_accuracies
from clap.data_gen.world.render import WorldSpec, render_arrays

FACTORS = ("class_name", "colour", "size", "image_type", "art_style")


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def world_features(model, spec: WorldSpec, seed: int, n: int, **fixed: str):
    """Normalised features of n rendered images and their attribute records."""
    images, records = render_arrays(spec, seed, n, **fixed)
    with torch.no_grad():
        return encode_images(model, to_pixels(images)), records


def zero_shot_by_type(model, spec: WorldSpec, seed: int, per_type: int) -> dict[str, dict[str, float]]:
    """Zero-shot accuracy per prompt form (C, PC, CP) for each image type, plus the mean over types."""
    rows = {}
    for t, itype in enumerate(spec.image_types):
        feats, records = world_features(model, spec, seed + t, per_type, image_type=itype)
        labels = torch.tensor([spec.classes.index(r.class_name) for r in records])
        rows[itype] = zero_shot_accuracies(model, feats, labels, spec.classes)
    rows["mean"] = {f: float(np.mean([rows[t][f] for t in spec.image_types])) for f in PROMPT_FORMS}
    return rows


def factor_probes(model, spec: WorldSpec, seed: int, n_train: int, n_test: int) -> dict[str, float]:
    """Held-out logistic-probe accuracy of each factor (content and the four style factors)."""
    train_x, train_r = world_features(model, spec, seed, n_train)
    test_x, test_r = world_features(model, spec, seed + 1, n_test)
    return {f: probe_accuracy(train_x, [getattr(r, f) for r in train_r], test_x, [getattr(r, f) for r in test_r])
            for f in FACTORS}
