"""Does the adapter remove style from image features? Three measures per factor.

- text-aligned recognition: zero-shot accuracy of recognising the factor's value from text prompts
  ("a red object", "a sketch", ...) through the same model and adapter;
- variance share: between-group variance over total variance of the L2-normalised features;
- probe accuracy: a held-out logistic probe (nearly invertible maps keep this high, which is why
  the first two are needed to tell the story).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from clap.data.domains import read_attributes
from clap.evaluation.protocols.probe import probe_accuracy
from clap.evaluation.protocols.zeroshot import accuracy
from clap.model import per_model

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup

FACTOR_TEMPLATES = {
    "class_name": "a photo of a {}",
    "colour": "a {} object",
    "size": "a {} object",
    "image_type": "a {}",
    "art_style": "an image in a {} style",
    "domain": "a {} image",
}


def variance_share(features: torch.Tensor, groups: Sequence) -> float:
    """Between-group variance / total variance of the rows of `features`."""
    x = features.double()
    centre = x.mean(0)
    total = ((x - centre) ** 2).sum(1).mean()
    keys = np.asarray(groups)
    between = sum((keys == g).sum() * float(((x[torch.from_numpy(keys == g)].mean(0) - centre) ** 2).sum())
                  for g in np.unique(keys))
    return float(between / len(keys) / total)


def text_recognition(model, features: torch.Tensor, values: Sequence[str], factor: str) -> float:
    """Zero-shot accuracy of naming each image's factor value from text prompts."""
    names = sorted(set(values))
    template = FACTOR_TEMPLATES.get(factor, "a {}")
    weights = model.zero_shot_classifier([n.replace("_", " ") for n in names], [template])
    labels = torch.tensor([names.index(v) for v in values])
    return accuracy(features, weights, labels)


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def factor_measures(model, raw: torch.Tensor, factors: dict[str, Sequence[str]], seed: int = 0
                    ) -> dict[str, dict[str, float]]:
    """{factor: {recognition, variance_share, probe}} for features adapted by `model`."""
    feats = model.adapted(raw)
    train, test = split_halves(len(feats), seed)
    out = {}
    for factor, values in factors.items():
        values = list(values)
        if len(set(values)) < 2:
            continue
        out[factor] = {
            "recognition": text_recognition(model, feats, values, factor),
            "variance_share": variance_share(feats, values),
            "probe": probe_accuracy(feats[train], [values[i] for i in train], feats[test], [values[i] for i in test]),
        }
    return out


def dataset_factors(setup: EvalSetup) -> tuple[torch.Tensor, dict[str, list[str]]]:
    """All raw features and the factor values of each image: class, domain, and recorded attributes."""
    feats, factors = [], {"class_name": [], "domain": []}
    attributes = read_attributes(setup.dataset.root)
    for domain, data in setup.raw.items():
        feats.append(data.features)
        factors["class_name"] += [setup.dataset.classes[i] for i in data.labels.tolist()]
        factors["domain"] += [domain] * len(data.paths)
        for path in data.paths:
            record = attributes.get(path.relative_to(setup.dataset.root).as_posix(), {})
            for key in ("colour", "size", "image_type", "art_style"):
                if key in record:
                    factors.setdefault(key, []).append(record[key])
    n = sum(len(d.paths) for d in setup.raw.values())
    factors = {k: v for k, v in factors.items() if len(v) == n}
    if "image_type" in factors:  # the world's domains are its image types: one factor, one name
        factors.pop("domain")
    return torch.cat(feats), factors


def run_probe(setup: EvalSetup, seed: int = 0) -> dict:
    """Disentanglement measures per model and factor."""
    raw, factors = dataset_factors(setup)
    return per_model(setup.models, lambda m: factor_measures(m, raw, factors, seed))
