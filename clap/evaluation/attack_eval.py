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
from clap.defaults import EPS_SWEEP
from clap.evaluation.adversarial import (ATTACKS, LOGIT_SCALE, AttackTarget, eps_label, linear_head, robust_correct,
                                         subset, zero_shot_head)
from clap.evaluation.fewshot import few_shot_scoring, scored_positions
from clap.evaluation.probe import fit_probe
from clap.evaluation.resample import OBSERVED, Sample, as_row, images_of, per_domain, weighted_mean
from clap.evaluation.stats import TaskMeasure
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
                    max_images: int | None = 100, seed: int = 0) -> tuple[dict, TaskMeasure]:
    """{model: {classifier: {domain|mean: {clean, FGSM: {eps: acc}, ...}}}} for the zero-shot C and the
    1-shot linear classifiers, at every eps of the sweep (8/255 is the paper's), and the task's statistics
    for intervals ("classifier/attack@eps" of the mean row).

    Both classifiers are attacked on the same images: by default none of them is one of the 1-shot
    probe's training shots; the paper protocol draws from the whole domain. A model that is the frozen
    backbone (no adapter, or alpha 0) is attacked once and shares its results: the attacks are seeded
    alike, so they would come out the same.
    """
    out: dict = {name: {head: {} for head in ADV_HEADS} for name in setup.models}
    records: dict = {name: {} for name in setup.models}
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
            hits = {}
            for head_name, correct in per_head.items():
                for key, h in correct.items():
                    hits[f"{head_name}/{key if key == 'clean' else f'{key[0]}@{eps_label(key[1])}'}"] = h
            records[name][domain] = hits
            flat = as_row(domain_statistics(hits, f"attacked:{domain}", OBSERVED))
            for head_name in per_head:
                out[name][head_name][domain] = _nest_attacks(head_name, flat)
    for name, rows in out.items():
        mean = as_row(attack_statistic(records[name])(OBSERVED))
        for head_name, per_head in rows.items():
            per_head["mean"] = _nest_attacks(head_name, mean)
    images = sum(images_of(hits) for hits in next(iter(records.values())).values())
    return out, TaskMeasure({name: attack_statistic(r) for name, r in records.items()}, images)


def domain_statistics(hits: dict[str, np.ndarray], key: str, sample: Sample) -> dict[str, np.ndarray]:
    """{"classifier/attack@eps" or "classifier/clean": [rows]}: a domain's accuracies on a sample of its
    attacked images."""
    weights = sample.weights(key, images_of(hits))
    return {metric: weighted_mean(weights, h) for metric, h in hits.items()}


def attack_statistic(records: dict[str, dict[str, np.ndarray]]):
    """The attack table's mean rows as a function of a sample ({domain: per-image hits per setting})."""
    return per_domain(records, "attacked", domain_statistics)


def _attack_model(setup: EvalSetup, data: DomainFeatures, shots: list[int], pixels: torch.Tensor,
                  labels: torch.Tensor, model: CLAPModel, *, attacks: Sequence[str], epsilons: Sequence[float],
                  protocol: str, seed: int) -> dict[str, dict]:
    """{classifier: robust_correct per-image results} for one model."""
    return {name: robust_correct(AttackTarget(model, head, protocol), pixels, labels, attacks, epsilons, seed=seed)
            for name, head in _attack_heads(setup, model, data, shots, seed, protocol).items()}


def _attack_heads(setup: EvalSetup, model: CLAPModel, data: DomainFeatures, shots: list[int], seed: int,
                  protocol: str) -> dict:
    """The two attacked classifiers: zero-shot ZS(C) weights (the protocol's logit scale) and the 1-shot
    logistic probe."""
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    feats = model.adapted(data.features).numpy()
    probe = fit_probe(feats[shots], data.labels.numpy()[shots], seed)
    return {"zero-shot C": zero_shot_head(weights, LOGIT_SCALE[protocol]), "1-shot linear": linear_head(probe)}


def _nest_attacks(head: str, flat: dict[str, float]) -> dict:
    """{'clean': acc, attack: {eps label: acc}} of one classifier from "classifier/attack@eps" accuracies."""
    row: dict = {}
    for metric, acc in flat.items():
        owner, _, setting = metric.partition("/")
        if owner != head:
            continue
        attack, at, eps = setting.partition("@")
        if at:
            row.setdefault(attack, {})[eps] = acc
        else:
            row[setting] = acc
    return row
