"""Zero-shot OOD detection for CLIP and adapters: per domain, the ID images of the ID classes against OOD
images (held-out classes of the same domain, or one OOD folder for every domain); scores and metrics in
`clap.evaluation.ood_scores`.

Class features for MCM, MaxLogit and Energy come from "a photo of a [class]" (MCM's prompt); the
max-logit ensemble takes the best of `ENSEMBLE_TEMPLATES` per class, over merged classes when groups
are given. REPE, when given, enhances every class feature first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from clap.adapter import negation
from clap.errors import ClapError
from clap.evaluation import ood_scores
from clap.evaluation.zeroshot import ENSEMBLE_TEMPLATES, PROMPT_FORMS, classifiers


@dataclass(frozen=True)
class OODOptions:
    """Merging groups (class names) for the ensemble score and MCM's temperature T'."""

    groups: tuple[tuple[str, ...], ...] | None = None
    mcm_temperature: float = ood_scores.MCM_TEMPERATURE


class Scorer:
    """One model's OOD scores: its class features computed once, then any image features scored."""

    def __init__(self, model, classnames: Sequence[str], options: OODOptions = OODOptions(), repe=None) -> None:
        weights = classifiers(model, classnames, ("PC", "MAX"), repe)
        self.model, self.options, self.class_weights = model, options, weights["PC"]
        owner, self.n_merged = ood_scores.merged_owner(classnames, options.groups)
        self.prompts = weights["MAX"].permute(2, 0, 1).reshape(-1, weights["MAX"].shape[1])  # [C * T, D]
        self.owners = [owner[c] for c in range(len(classnames)) for _ in ENSEMBLE_TEMPLATES]

    def __call__(self, raw: torch.Tensor) -> dict[str, np.ndarray]:
        """Every OOD score of raw image features (higher = more ID)."""
        feats = self.model.adapted(raw)
        cos = feats @ self.class_weights
        ensemble = ood_scores.ensemble_cosines(feats, self.prompts, self.owners, self.n_merged)
        return {"MCM": ood_scores.mcm(cos, self.options.mcm_temperature).numpy(),
                "MaxLogit": ood_scores.max_logit(cos).numpy(), "Energy": ood_scores.energy(cos).numpy(),
                "MaxLogitEnsemble": ood_scores.max_logit(ensemble).numpy()}


class CLIPNScorer:
    """CLIPN's CTW and ATD scores: plain CLIP image features, "yes" features of "a photo of a [class]" from the
    frozen tower and "no" features of the same prompts from a negation adapter."""

    def __init__(self, backbone, adapter, classnames: Sequence[str], temperature: float = negation.TEMPERATURE
                 ) -> None:
        prompts = [PROMPT_FORMS["PC"].format(c) for c in classnames]
        with torch.no_grad():
            self.yes = F.normalize(backbone.encode_text(prompts), dim=-1).cpu()
            self.no = adapter.no_features(backbone, prompts).cpu()
        self.temperature = temperature

    def __call__(self, raw: torch.Tensor) -> dict[str, np.ndarray]:
        feats = F.normalize(raw.float(), dim=-1)
        p_yes = torch.softmax(feats @ self.yes.T / self.temperature, dim=1)
        rules = negation.ctw_atd(p_yes, negation.p_no(feats, self.yes, self.no, self.temperature))
        return {"CTW": rules["CTW"].numpy(), "ATD": rules["ATD"].numpy()}


def evaluate_ood(scorer, id_sets: dict[str, torch.Tensor], ood_sets: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """({domain|mean: {score: metrics}}, {domain: {score: {"id": scores, "ood": scores}}}) for one scorer
    (raw features -> {score: array}). `ood_sets` maps each domain to its OOD features, or holds one entry used
    for every domain."""
    rows, raw_scores = {}, {}
    shared = next(iter(ood_sets.values())) if len(ood_sets) == 1 else None
    for domain, id_raw in id_sets.items():
        ids, oods = scorer(id_raw), scorer(ood_sets.get(domain, shared))
        rows[domain] = {s: ood_scores.detection_metrics(ids[s], oods[s]) for s in ids}
        raw_scores[domain] = {s: {"id": ids[s], "ood": oods[s]} for s in ids}
    first = next(iter(rows.values()))
    rows["mean"] = {s: {m: float(np.mean([rows[d][s][m] for d in id_sets])) for m in first[s]} for s in first}
    return rows, raw_scores



def held_out_split(raw: dict, classes: Sequence[str], ood_classes: Sequence[str]
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Per domain: raw features of the ID classes' images and of the held-out classes' images, and the ID
    class names (the vocabulary the scores use)."""
    held = [classes.index(c) for c in ood_classes]
    id_classes = [c for i, c in enumerate(classes) if i not in held]
    id_sets, ood_sets = {}, {}
    for domain, data in raw.items():
        is_ood = torch.isin(data.labels, torch.tensor(held))
        if is_ood.all() or not is_ood.any():
            continue
        id_sets[domain], ood_sets[domain] = data.features[~is_ood], data.features[is_ood]
    if not id_sets:
        raise ClapError("no domain holds images of both the ID classes and the held-out classes")
    return id_sets, ood_sets, id_classes


def run_ood(setup, id_sets: dict, ood_sets: dict, id_classes: Sequence[str], options: OODOptions = OODOptions(),
            repe: dict | None = None) -> tuple[dict, dict]:
    """OOD rows of every model of an `EvalSetup`, CLIPN's CTW and ATD for each negation adapter (and, given
    `repe`, {model: `Repe`}, the models' rows with REPE); and
    the pooled scores of the plain run for the plots: {model: {score: {"id": array, "ood": array}}}."""
    results, pooled = {"ood": {}}, {}
    scorers = {name: Scorer(model, id_classes, options) for name, model in setup.models.items()}
    scorers |= {name: CLIPNScorer(setup.backbone, adapter, id_classes) for name, adapter in setup.negation.items()}
    for name, scorer in scorers.items():
        rows, scores = evaluate_ood(scorer, id_sets, ood_sets)
        results["ood"][name] = rows
        pooled[name] = {s: {part: np.concatenate([scores[d][s][part] for d in scores]) for part in ("id", "ood")}
                        for s in scores[next(iter(scores))]}
    if repe is not None:
        results["ood_repe"] = {name: evaluate_ood(Scorer(model, id_classes, options, repe[name]), id_sets, ood_sets)[0]
                               for name, model in setup.models.items()}
    return results, pooled
