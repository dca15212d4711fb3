"""The adversarial protocol: FGSM, PGD-20 and CW-20 over an eps sweep against two classifiers per model,
the zero-shot ZS(C) weights and the 1-shot logistic probe, on the same images (attacks in
`clap.evaluation.protocols.adversarial`)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from clap.data.domains import load_image
from clap.data.fewshot import pick_per_class
from clap.errors import ClapError
from clap.defaults import EPS_SWEEP
from clap.evaluation.protocols.adversarial import (ATTACKS, LOGIT_SCALE, AttackTarget, eps_label, linear_head,
                                                   robust_correct, subset, zero_shot_head)
from clap.evaluation.protocols.fewshot import drawn_mean, few_shot_scoring, scored_positions
from clap.evaluation.protocols.probe import fit_probe
from clap.evaluation.statistics.resample import OBSERVED, Sample, as_row, images_of, per_domain, weighted_mean
from clap.evaluation.statistics.stats import TaskMeasure
from clap.model import per_model

if TYPE_CHECKING:
    from clap.evaluation.inputs.features import DomainFeatures
    from clap.evaluation.inputs.setup import EvalSetup
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
                    max_images: int | None = 100, seed: int = 0, draws: Sequence[int] = (0,)
                    ) -> tuple[dict, TaskMeasure]:
    """{model: {classifier: {domain|mean: {clean, FGSM: {eps: acc}, ...}}}} for the zero-shot C and the
    1-shot linear classifiers, at every eps of the sweep (8/255 is the paper's), and the task's statistics
    for intervals ("classifier/attack@eps" of the mean row).

    The 1-shot probe is fit once per shot draw (`draws`: the few-shot task's probe seeds, so the same shots and
    probes as its 1-shot column); its accuracy is the mean over draws, and the draws are a level of the bootstrap
    (drawn with replacement, the same picks for every model). Both classifiers are attacked on the same images: by
    default none of them is a shot of any draw; the paper protocol draws from the whole domain. A model that is the
    frozen backbone (no adapter, or alpha 0) is attacked once and shares its results: the attacks are seeded alike,
    so they would come out the same.
    """
    out: dict = {name: {head: {} for head in ADV_HEADS} for name in setup.models}
    records: dict = {name: {} for name in setup.models}
    for domain in setup.dataset.domains:
        data = setup.raw[domain]
        shots = [pick_per_class(data.labels.tolist(), 1, draw, salt=domain) for draw in draws]
        candidates = scored_positions(len(data.paths), sorted({i for s in shots for i in s}),
                                      few_shot_scoring(protocol))
        if len(candidates) == 0:
            raise ClapError(f"domain {domain} has no image left to attack besides the 1-shot probes' shots; "
                            "give it more images per class")
        pixels, labels = _pixels(setup, domain, candidates, max_images, seed)
        attack_model = functools.partial(_attack_model, setup, data, dict(zip(draws, shots)), pixels, labels,
                                         attacks=attacks, epsilons=epsilons, protocol=protocol, seed=seed)
        for name, hits in per_model(setup.models, attack_model).items():
            records[name][domain] = hits
            flat = as_row(domain_statistics(hits, f"attacked:{domain}", OBSERVED))
            for head_name in ADV_HEADS:
                out[name][head_name][domain] = _nest_attacks(head_name, flat)
    for name, rows in out.items():
        mean = as_row(attack_statistic(records[name])(OBSERVED))
        for head_name, per_head in rows.items():
            per_head["mean"] = _nest_attacks(head_name, mean)
    images = sum(images_of(hits) for hits in next(iter(records.values())).values())
    return out, TaskMeasure({name: attack_statistic(r) for name, r in records.items()}, images,
                            {"shot draws": len(draws)})


def domain_statistics(hits: dict[str, np.ndarray], key: str, sample: Sample) -> dict[str, np.ndarray]:
    """{"classifier/attack@eps" or "classifier/clean": [rows]}: a domain's accuracies on a sample of its
    attacked images (the 1-shot head's: the mean over a sample of its shot draws, `drawn_mean`)."""
    weights = sample.weights(key, images_of(hits))
    return {metric: drawn_mean(sample, key, weights, h) if h.ndim == 2 else weighted_mean(weights, h)
            for metric, h in hits.items()}


def attack_statistic(records: dict[str, dict[str, np.ndarray]]):
    """The attack table's mean rows as a function of a sample ({domain: per-image hits per setting})."""
    return per_domain(records, "attacked", domain_statistics)


def _attack_model(setup: EvalSetup, data: DomainFeatures, shots: dict[int, list[int]], pixels: torch.Tensor,
                  labels: torch.Tensor, model: CLAPModel, *, attacks: Sequence[str], epsilons: Sequence[float],
                  protocol: str, seed: int) -> dict[str, np.ndarray]:
    """{"classifier/attack@eps" or "classifier/clean": per-image hits} of one model: the zero-shot head's [N], the
    1-shot head's [draws, N] (one probe per shot draw)."""
    def attacked(head) -> dict[str, np.ndarray]:
        correct = robust_correct(AttackTarget(model, head, protocol), pixels, labels, attacks, epsilons, seed=seed)
        return {key if key == "clean" else f"{key[0]}@{eps_label(key[1])}": h for key, h in correct.items()}

    zero_shot = attacked(_zero_shot_head(setup, model, protocol))
    feats, y = model.adapted(data.features).numpy(), data.labels.numpy()
    per_draw = [attacked(linear_head(fit_probe(feats[fitted], y[fitted], draw)))  # as the few-shot task fits
                for draw, fitted in shots.items()]
    return {**{f"{ADV_HEADS[0]}/{k}": h for k, h in zero_shot.items()},
            **{f"{ADV_HEADS[1]}/{k}": np.stack([d[k] for d in per_draw]) for k in per_draw[0]}}


def _zero_shot_head(setup: EvalSetup, model: CLAPModel, protocol: str):
    """The zero-shot ZS(C) weights at the protocol's logit scale."""
    weights = model.zero_shot_classifier(setup.dataset.classes, ["{}"])
    return zero_shot_head(weights, LOGIT_SCALE[protocol])


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
