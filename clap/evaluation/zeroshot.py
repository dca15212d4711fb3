"""Zero-shot classification with the method's four prompt forms."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F

PROMPT_FORMS = {
    "C": "{}",
    "PC": "a photo of a {}",
    "CP": "a {} in a photo",
}


@torch.no_grad()
def encode_images(model, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Normalised image features of pixels in [0, 1], in batches."""
    feats = [model.encode_image(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return F.normalize(torch.cat(feats), dim=-1)


def accuracy(image_features: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of cosine-similarity classification."""
    predictions = (image_features @ class_weights).argmax(dim=1)
    return float((predictions == labels).float().mean())


def zero_shot_accuracies(model, image_features: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str],
                         forms: dict[str, str] = PROMPT_FORMS) -> dict[str, float]:
    """Accuracy per prompt form, from precomputed normalised image features."""
    return {name: accuracy(image_features, model.zero_shot_classifier(classnames, [template]), labels)
            for name, template in forms.items()}
