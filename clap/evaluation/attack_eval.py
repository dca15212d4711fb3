"""The adversarial protocol: FGSM, PGD-20 and CW-20 over an eps sweep against two classifiers per model,
the zero-shot ZS(C) weights and the 1-shot logistic probe, on the same images (attacks in
`clap.evaluation.adversarial`)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from clap.data.domains import load_image
from clap.data.fewshot import pick_per_class
from clap.errors import ClapError
from clap.evaluation.adversarial import (ATTACKS, EPS_SWEEP, AttackTarget, eps_label, linear_head, robust_correct,
                                         subset, zero_shot_head)
from clap.evaluation.fewshot import few_shot_scoring, scored_positions
from clap.evaluation.probe import fit_probe
from clap.evaluation.stats import leafwise
from clap.model import per_model

if TYPE_CHECKING:
    from clap.evaluation.features import DomainFeatures
    from clap.evaluation.runner import EvalSetup
    from clap.model import CLAPModel

ADV_HEADS = ("zero-shot C", "1-shot linear")


def _pixels(setup: EvalSetup, domain: str, candidates: np.ndarray, limit: int | None, seed: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    data = setup.raw[domain]
    keep = candidates[subset(len(candidates), limit, seed)]
    tf = setup.backbone.eval_transform
    pixels = torch.stack([tf(load_image(data.paths[i])) for i in keep]).to(setup.backbone.device)
    return pixels, data.labels[torch.from_numpy(keep)].to(setup.backbone.device)


def run_adversarial(setup: EvalSetup, attacks: Sequence[str] = ATTACKS,
                    epsilons: Sequence[float] = EPS_SWEEP, protocol: str = "pixel",
                    max_images: int | None = 100, seed: int = 0) -> dict:
    """{model: {classifier: {domain|mean: {clean, FGSM: {eps: acc}, ...}}}} for the zero-shot C and the
    1-shot linear classifiers, at every eps of the sweep (8/255 is the paper's).

    Both classifiers are attacked on the same images: by default none of them is one of the 1-shot
    probe's training shots; the paper protocol draws from the whole domain. A model that is the frozen
    backbone (no adapter, or alpha 0) is attacked once and shares its results: the attacks are seeded
    alike, so they would come out the same. Per-image results go to `setup.per_image["adversarial"]`.
    """
    out: dict = {name: {head: {} for head in ADV_HEADS} for name in setup.models}
    hits: dict = {name: {} for name in setup.models}
    for domain in setup.dataset.domains:
        data = setup.raw[domain]
        shots = pick_per_class(data.labels.tolist(), 1, seed, salt=domain)
        candidates = scored_positions(len(data.paths), shots, few_shot_scoring(protocol))
        if len(candidates) == 0:
            raise ClapError(f"domain {domain} has no image left to attack besides the 1-shot probe's shots; "
                            "give it at least two images per class")
        pixels, labels = _pixels(setup, domain, candidates, max_images, seed)
        attack_model = functools.partial(_attack_model, setup, data, shots, pixels, labels, attacks=attacks,
                                         epsilons=epsilons, protocol=protocol, seed=seed)
        attacked = per_model(setup.models, attack_model)
        for name, per_head in attacked.items():
            for head_name, correct in per_head.items():
                out[name][head_name][domain] = _nest_attacks(correct)
                for key, h in correct.items():
                    metric = key if key == "clean" else f"{key[0]}@{eps_label(key[1])}"
                    hits[name].setdefault(f"{head_name}/{metric}", []).append(h)
    for rows in out.values():
        for per_head in rows.values():
            per_head["mean"] = leafwise([per_head[d] for d in setup.dataset.domains], np.mean)
    setup.per_image["adversarial"] = {name: {k: np.concatenate(v) for k, v in m.items()} for name, m in hits.items()}
    return out


def _attack_model(setup: EvalSetup, data: DomainFeatures, shots: list[int], pixels: torch.Tensor,
                  labels: torch.Tensor, model: CLAPModel, *, attacks: Sequence[str], epsilons: Sequence[float],
                  protocol: str, seed: int) -> dict[str, dict]:
    """{classifier: robust_correct per-image results} for one model."""
    return {name: robust_correct(AttackTarget(model, head, protocol), pixels, labels, attacks, epsilons, seed=seed)
            for name, head in _attack_heads(setup, model, data, shots, seed).items()}


def _attack_heads(setup: EvalSetup, model: CLAPModel, data: DomainFeatures, shots: list[int], seed: int) -> dict:
    """The two attacked classifiers: zero-shot ZS(C) weights and the 1-shot logistic probe."""
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    feats = model.adapted(data.features).numpy()
    probe = fit_probe(feats[shots], data.labels.numpy()[shots], seed)
    return {"zero-shot C": zero_shot_head(weights), "1-shot linear": linear_head(probe)}


def _nest_attacks(correct: dict) -> dict:
    """{'clean': acc, attack: {eps label: acc}} from robust_correct's per-image arrays."""
    row: dict = {"clean": float(correct["clean"].mean())}
    for key, h in correct.items():
        if key != "clean":
            row.setdefault(key[0], {})[eps_label(key[1])] = float(h.mean())
    return row
