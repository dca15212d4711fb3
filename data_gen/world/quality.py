"""How a backbone sees the rendered world: zero-shot content per image type, prompt sensitivity, style.

The embedded tiny CLIP is tuned on these raw-backbone statistics only (never on adapter results):
freshly rendered, style-balanced images of an unseen seed, per image type, with distractors.
"""

from __future__ import annotations

import numpy as np
import torch

from clap.data_gen.world.render import WorldSpec, render_arrays
from clap.evaluation.protocols.disentangle import text_recognition
from clap.evaluation.protocols.probe import probe_accuracy
from clap.evaluation.protocols.zeroshot import (ALL_FORMS, PROMPT_FORMS, classifiers, correct, encode_images,
                                                range_null, robustness, zero_shot_accuracies)

FACTORS = ("class_name", "colour", "size", "image_type", "art_style")
# The world's targets were fixed with each class's own noise; under the authors' shared context the raw
# tiny CLIP's noise drop is far smaller (demo: 2.2 points instead of 9.6; on the quality test's render NC
# came out above C), so the noise target keeps the form it was set in.
NOISE_FORM = "per-class"
STYLE_FACTORS = FACTORS[1:]


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def world_features(model, spec: WorldSpec, seed: int, n: int, **fixed: str):
    """Normalised features of n rendered (style-balanced) images and their attribute records."""
    images, records = render_arrays(spec, seed, n, **fixed)
    with torch.no_grad():
        return encode_images(model, to_pixels(images)), records


def prompt_hits(model, feats: torch.Tensor, labels: torch.Tensor, classnames) -> np.ndarray:
    """[N, 3] float: each image right (1) or wrong (0) under C, PC and CP."""
    weights = classifiers(model, classnames, tuple(PROMPT_FORMS))
    return np.stack([correct(feats, weights[f], labels) for f in PROMPT_FORMS], axis=1).astype(float)


def zero_shot_by_type(model, spec: WorldSpec, seed: int, per_type: int) -> dict[str, dict[str, float]]:
    """Per image type: accuracy of C, PC, CP, NC (per-class noise), R / delta / Delta(NC) and R's noise floor
    (`range_null`); plus the mean over types."""
    rows = {}
    for t, itype in enumerate(spec.image_types):
        feats, records = world_features(model, spec, seed + t, per_type, image_type=itype)
        labels = torch.tensor([spec.classes.index(r.class_name) for r in records])
        accs = zero_shot_accuracies(model, feats, labels, spec.classes, ALL_FORMS, NOISE_FORM)
        null = range_null(prompt_hits(model, feats, labels, spec.classes))
        rows[itype] = {**accs, **robustness(accs), "R_null": null}
    keys = list(next(iter(rows.values())))
    rows["mean"] = {k: float(np.mean([rows[t][k] for t in spec.image_types])) for k in keys}
    return rows


def factor_probes(model, spec: WorldSpec, seed: int, n_train: int, n_test: int) -> dict[str, float]:
    """Held-out logistic-probe accuracy of each factor (content and the four style factors)."""
    train_x, train_r = world_features(model, spec, seed, n_train)
    test_x, test_r = world_features(model, spec, seed + 1, n_test)
    return {f: probe_accuracy(train_x, [getattr(r, f) for r in train_r], test_x, [getattr(r, f) for r in test_r])
            for f in FACTORS}


def style_text_recognition(model, spec: WorldSpec, seed: int, n: int) -> dict[str, dict[str, float]]:
    """Per style factor: zero-shot accuracy of naming its value from text prompts, chance, and
    kappa = (accuracy - chance) / (1 - chance), the share of the way from chance to perfect."""
    feats, records = world_features(model, spec, seed, n)
    out = {}
    for factor in STYLE_FACTORS:
        values = [getattr(r, factor) for r in records]
        acc, chance = text_recognition(model, feats, values, factor), 1.0 / len(set(values))
        out[factor] = {"accuracy": acc, "chance": chance, "kappa": (acc - chance) / (1.0 - chance)}
    return out


def type_spread(zero_shot: dict[str, dict[str, float]], form: str = "PC") -> float:
    """Best minus worst image type's accuracy for one prompt form."""
    values = [row[form] for itype, row in zero_shot.items() if itype != "mean"]
    return max(values) - min(values)


def world_report(model, spec: WorldSpec, seed: int, per_type: int, n_train: int, n_test: int) -> dict:
    """Every statistic the world is tuned on, for one backbone."""
    zero_shot = zero_shot_by_type(model, spec, seed, per_type)
    return {"zero_shot": zero_shot, "type_spread_PC": type_spread(zero_shot),
            "probes": factor_probes(model, spec, seed + 100, n_train, n_test),
            "style_text_recognition": style_text_recognition(model, spec, seed + 200, n_test)}


# The raw tiny CLIP must show the problem CLAP addresses (issue: a world where the problem exists).
TARGETS = {
    "ZS(PC) mean over types in [0.55, 0.85]": lambda r: 0.55 <= r["zero_shot"]["mean"]["PC"] <= 0.85,
    "best - worst type (PC) >= 0.15": lambda r: r["type_spread_PC"] >= 0.15,
    "R over C/PC/CP >= 0.03 (mean over types)": lambda r: r["zero_shot"]["mean"]["R"] >= 0.03,
    "Delta(NC) >= 0.03 (mean over types)": lambda r: r["zero_shot"]["mean"]["Delta_NC"] >= 0.03,
    "every style factor probe >= 0.80": lambda r: all(r["probes"][f] >= 0.80 for f in STYLE_FACTORS),
    "every style factor text-recognisable, kappa >= 0.25": lambda r: all(
        v["kappa"] >= 0.25 for v in r["style_text_recognition"].values()),
}


def targets_met(report: dict) -> dict[str, bool]:
    """Each target of TARGETS, met or not."""
    return {name: bool(check(report)) for name, check in TARGETS.items()}
