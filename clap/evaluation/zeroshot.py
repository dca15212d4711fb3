"""Zero-shot classification with the method's four prompt forms, and prompt-robustness statistics.

ZS(C) "[class]", ZS(PC) "a photo of a [class]", ZS(CP) "a [class] in a photo", ZS(NC) "[noise][class]"
(4 Gaussian token embeddings, std 0.02, in front). R and delta are the range and standard deviation
of the C, PC and CP accuracies; Delta(NC) is the drop from C to NC.
Two prompt ensembles over `ENSEMBLE_TEMPLATES` stand beside them: ENS, the mean of the templates'
normalised features (CLIP's ImageNet-templates practice), and MAX, the max-logit ensemble (each class
scored by its best template, as in VL4AD). With REPE every class feature is enhanced first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from clap.evaluation.runner import EvalSetup

PROMPT_FORMS = {"C": "{}", "PC": "a photo of a {}", "CP": "a {} in a photo"}
ENSEMBLE_TEMPLATES = ("a photo of a {}", "a picture of a {}", "an image of a {}", "a drawing of a {}",
                      "a sketch of a {}", "a painting of a {}", "a cartoon of a {}", "a {} in a photo",
                      "a close-up photo of the {}", "a small {}", "a large {}", "the {}", "a rendering of a {}",
                      "a mosaic of a {}", "art of the {}", "a bright photo of a {}")
ENSEMBLES = ("ENS", "MAX")
SINGLE_FORMS = (*PROMPT_FORMS, "NC")
ALL_FORMS = (*SINGLE_FORMS, *ENSEMBLES)
NOISE_SEED = 0


@torch.no_grad()
def encode_images(model, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Normalised image features of pixels in [0, 1], in batches."""
    feats = [model.encode_image(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return F.normalize(torch.cat(feats), dim=-1)


def class_scores(image_features: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """[N, C] cosines to class weights [D, C]; for a max-logit ensemble [T, D, C], the best template's."""
    cos = image_features @ class_weights.to(image_features.device)
    return cos if class_weights.dim() == 2 else cos.amax(dim=0)


def correct(image_features: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per image: whether cosine-similarity classification is right (bool array, on the CPU)."""
    predictions = class_scores(image_features, class_weights).argmax(dim=1)
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


def classifiers(model, classnames: Sequence[str], forms: Sequence[str] = ALL_FORMS, repe=None
                ) -> dict[str, torch.Tensor]:
    """Zero-shot class weights of each prompt form: [D, C], or [T, D, C] for the max-logit ensemble (MAX);
    with `repe` (a `clap.evaluation.repe.Repe`) each class feature is REPE-enhanced."""
    out = {f: model.zero_shot_classifier(classnames, [PROMPT_FORMS[f]]) for f in forms if f in PROMPT_FORMS}
    if "NC" in forms:
        out["NC"] = noise_classifier(model, classnames)
    if set(ENSEMBLES) & set(forms):
        per_template = model.prompt_features(classnames, ENSEMBLE_TEMPLATES).permute(1, 2, 0)  # [T, D, C]
        if "ENS" in forms:
            out["ENS"] = F.normalize(per_template.mean(dim=0), dim=0)
        if "MAX" in forms:
            out["MAX"] = per_template
    if repe is not None:
        out = {f: _enhanced(w, repe, classnames) for f, w in out.items()}
    return out


def _enhanced(weights: torch.Tensor, repe, classnames: Sequence[str]) -> torch.Tensor:
    if weights.dim() == 3:
        return torch.stack([_enhanced(w, repe, classnames) for w in weights])
    return repe.enhance(weights.T, classnames).T.contiguous()


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
                       per_image: dict[str, list[np.ndarray]] | None = None, repe=None,
                       forms: Sequence[str] = ALL_FORMS) -> dict[str, dict[str, float]]:
    """Per domain and mean: accuracies of C, PC, CP, NC, the ensembles and the robustness statistics.

    `per_image`, when given, receives each form's per-image correctness, domain after domain.
    """
    weights = classifiers(model, classnames, forms, repe)
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


def run_zeroshot(setup: EvalSetup, repe: dict | None = None) -> dict:
    """Zero-shot rows per model; per-image results go to `setup.per_image["zeroshot"]` (without REPE; with
    `repe`, {model: `Repe`}, the class features are REPE-enhanced)."""
    out, hits = {}, {}
    for name, m in setup.models.items():
        parts: dict[str, list[np.ndarray]] = {}
        enhancer = repe[name] if repe is not None else None
        out[name] = evaluate_zero_shot(m, setup.raw, setup.dataset.classes, parts, enhancer)
        hits[name] = {form: np.concatenate(v) for form, v in parts.items()}
    if repe is None:
        setup.per_image["zeroshot"] = hits
    return out
