"""Zero-shot classification with the method's four prompt forms, and prompt-robustness statistics.

ZS(C) "[class]", ZS(PC) "a photo of a [class]", ZS(CP) "a [class] in a photo", ZS(NC) "[noise][class]"
(4 Gaussian token embeddings, std 0.02, in front). R and delta are the range and standard deviation
of the C, PC and CP accuracies; Delta(NC) is the drop from C to NC.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

PROMPT_FORMS = {"C": "{}", "PC": "a photo of a {}", "CP": "a {} in a photo"}
ALL_FORMS = (*PROMPT_FORMS, "NC")
NOISE_SEED = 0


@torch.no_grad()
def encode_images(model, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Normalised image features of pixels in [0, 1], in batches."""
    feats = [model.encode_image(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return F.normalize(torch.cat(feats), dim=-1)


def correct(image_features: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per image: whether cosine-similarity classification is right (bool array, on the CPU)."""
    predictions = (image_features @ class_weights.to(image_features.device)).argmax(dim=1)
    return (predictions.cpu() == labels.cpu()).numpy()


def accuracy(image_features: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of cosine-similarity classification."""
    return float(correct(image_features, class_weights, labels).mean())


@torch.no_grad()
def noise_classifier(model, classnames: Sequence[str], seed: int = NOISE_SEED) -> torch.Tensor:
    """Class weights [D, C] of "[noise][class]" prompts (fixed seed, so every model sees the same noise)."""
    generator = torch.Generator().manual_seed(seed)
    feats = model.encode_text_with_noise(list(classnames), 4, 0.02, "front", generator, normalize=True)
    return feats.T.contiguous()


def classifiers(model, classnames: Sequence[str], forms: Sequence[str] = ALL_FORMS) -> dict[str, torch.Tensor]:
    """Zero-shot class weights of each prompt form."""
    out = {f: model.zero_shot_classifier(classnames, [PROMPT_FORMS[f]]) for f in forms if f in PROMPT_FORMS}
    if "NC" in forms:
        out["NC"] = noise_classifier(model, classnames)
    return out


def zero_shot_accuracies(model, image_features: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str],
                         forms: Sequence[str] = tuple(PROMPT_FORMS)) -> dict[str, float]:
    """Accuracy per prompt form, from precomputed normalised image features."""
    return {form: accuracy(image_features, w, labels) for form, w in classifiers(model, classnames, forms).items()}


def robustness(accs: dict[str, float]) -> dict[str, float]:
    """R (range) and delta (std) over C, PC, CP; Delta(NC) = C - NC."""
    values = np.array([accs[f] for f in PROMPT_FORMS])
    out = {"R": float(values.max() - values.min()), "delta": float(values.std())}
    if "NC" in accs:
        out["Delta_NC"] = accs["C"] - accs["NC"]
    return out


def evaluate_zero_shot(model, raw_by_domain: dict, classnames: Sequence[str],
                       per_image: dict[str, list[np.ndarray]] | None = None) -> dict[str, dict[str, float]]:
    """Per domain and mean: accuracies of C, PC, CP, NC and the robustness statistics.

    `per_image`, when given, receives each form's per-image correctness, domain after domain.
    """
    weights = classifiers(model, classnames)
    rows = {}
    for domain, data in raw_by_domain.items():
        feats = model.adapted(data.features)
        hits = {form: correct(feats, w, data.labels) for form, w in weights.items()}
        if per_image is not None:
            for form, h in hits.items():
                per_image.setdefault(form, []).append(h)
        accs = {form: float(h.mean()) for form, h in hits.items()}
        rows[domain] = {**accs, **robustness(accs)}
    keys = list(next(iter(rows.values())))
    rows["mean"] = {k: float(np.mean([rows[d][k] for d in raw_by_domain])) for k in keys}
    return rows
