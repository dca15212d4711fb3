"""Zero-shot OOD detection for CLIP and adapters: per domain, the ID images of the ID classes against OOD
images (held-out classes of the same domain, or one OOD folder for every domain); scores and metrics in
`clap.evaluation.protocols.ood_scores`.

Class features for MCM, MaxLogit and Energy come from "a photo of a [class]" (MCM's prompt); the
max-logit ensemble takes the best of `ENSEMBLE_TEMPLATES` per class, over merged classes when groups
are given. REPE, when given, enhances every class feature first. CLIPN sums its "yes" and its "no"
features over its authors' inference templates (`CLIPN_TEMPLATES`), then normalises.
The table's mean row is the unweighted mean over domains of per-domain metrics; its intervals
recompute exactly that on resamples of each domain's ID images and of the OOD images (one OOD set
shared by every domain is drawn once per resample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from clap.adapter import negation
from clap.errors import ClapError
from clap.evaluation.protocols import ood_scores
from clap.evaluation.statistics.resample import OBSERVED, Sample, as_row, domain_mean
from clap.evaluation.statistics.stats import TaskMeasure, with_treatment
from clap.evaluation.protocols.zeroshot import ENSEMBLE_TEMPLATES, classifiers, phrase_classifier
from clap.prompts.templates import format_template
from clap.runtime import release_freed_memory

SHARED = "shared"  # the stratum of one OOD set scored against every domain

_CLIPN_OF = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a low resolution photo of the {}.",
    "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.",
    "a tattoo of a {}.", "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.",
    "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
    "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.",
    "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.", "the {} in a video game.",
    "a sketch of a {}.", "a doodle of the {}.", "a low resolution photo of a {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "art of a {}.", "a sketch of the {}.",
    "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
    "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "a dark photo of a {}.", "itap of a {}.",
    "graffiti of the {}.", "a photo of a cool {}.", "a photo of a small {}.", "a tattoo of the {}.")
CLIPN_TEMPLATES = _CLIPN_OF + tuple(t.replace(" of ", " with ", 1).replace(" in a video", " appearing in a video")
                                    for t in _CLIPN_OF)
"""CLIPN's inference ensemble (xmed-lab/CLIPN, src/prompt/prompt.txt): 64 of CLIP's ImageNet templates and each
with "of" turned into "with". Their file keeps each line's quote marks, which their code feeds to the tokenizer;
here the templates are the text between them."""


@dataclass(frozen=True)
class OODOptions:
    """Merging groups (class names) for the ensemble score, MCM's temperature T' and the user's templates."""

    groups: tuple[tuple[str, ...], ...] | None = None
    mcm_temperature: float = ood_scores.MCM_TEMPERATURE
    pc_templates: tuple[str, ...] | None = None  # replace "a photo of a {}" for MCM, MaxLogit and Energy
    ood_prompts: tuple[str, ...] | None = None  # VL4AD's outlier concepts (the OODPrompts score)
    clipn_templates: tuple[str, ...] = CLIPN_TEMPLATES  # what CLIPN sums its yes and no features over


class Scorer:
    """One model's OOD scores: its class features computed once, then any image features scored."""

    def __init__(self, model, classnames: Sequence[str], options: OODOptions = OODOptions(), repe=None) -> None:
        weights = classifiers(model, classnames, ("PC", "MAX"), repe, pc_templates=options.pc_templates)
        self.model, self.options, self.class_weights = model, options, weights["PC"]
        self.prompts = weights["MAX"].permute(2, 0, 1).reshape(-1, weights["MAX"].shape[1])  # [C * T, D]
        self.owners, self.n_merged = ood_scores.ensemble_owners(classnames, options.groups, len(ENSEMBLE_TEMPLATES))
        self.concepts = None  # the outlier concepts' features, in the classes' prompt form and enhancement
        if options.ood_prompts:
            self.concepts = phrase_classifier(model, options.ood_prompts, options.pc_templates, repe)

    def __call__(self, raw: torch.Tensor) -> dict[str, np.ndarray]:
        """Every OOD score of raw image features (higher = more ID)."""
        feats = self.model.adapted(raw)
        cos = feats @ self.class_weights
        ensemble = ood_scores.ensemble_cosines(feats, self.prompts, self.owners, self.n_merged)
        out = {"MCM": ood_scores.mcm(cos, self.options.mcm_temperature).numpy(),
               "MaxLogit": ood_scores.max_logit(cos).numpy(), "Energy": ood_scores.energy(cos).numpy(),
               "MaxLogitEnsemble": ood_scores.max_logit(ensemble).numpy(),
               "VL4AD": ood_scores.vl4ad_probability(ensemble).numpy()}
        if self.concepts is not None:
            out["OODPrompts"] = ood_scores.ood_prompt_score(cos, feats @ self.concepts).numpy()
        return out


class CLIPNScorer:
    """CLIPN's CTW and ATD scores: plain CLIP image features, "yes" features from the frozen tower and "no"
    features from a negation adapter, each summed over the prompt ensemble `templates` and normalised; and, as its
    authors set them beside CTW and ATD, MSP, MaxLogit and Energy from the same "yes" logits at the same temperature
    (and MCM at T'), so that a rule is compared with baselines that see the same class features.
    The temperature is the one the adapter was trained with (recorded in its config), else the backbone's own."""

    def __init__(self, backbone, adapter, classnames: Sequence[str], templates: Sequence[str] = CLIPN_TEMPLATES,
                 temperature: float | None = None, mcm_temperature: float = ood_scores.MCM_TEMPERATURE) -> None:
        yes, no = 0.0, 0.0
        with torch.no_grad():
            for template in templates:
                prompts = [format_template(template, c) for c in classnames]
                yes = yes + F.normalize(backbone.encode_text(prompts), dim=-1).cpu()
                no = no + adapter.no_features(backbone, prompts).cpu()
        self.yes, self.no = F.normalize(yes, dim=-1), F.normalize(no, dim=-1)
        self.temperature = temperature or clipn_temperature(backbone, adapter)
        self.mcm_temperature = mcm_temperature

    def __call__(self, raw: torch.Tensor) -> dict[str, np.ndarray]:
        feats, t = F.normalize(raw.float(), dim=-1), self.temperature
        cos = feats @ self.yes.T
        rules = negation.ctw_atd(torch.softmax(cos / t, dim=1), negation.p_no(feats, self.yes, self.no, t))
        same = {"MSP": ood_scores.mcm(cos, t), "MaxLogit": ood_scores.max_logit(cos, t),
                "Energy": ood_scores.energy(cos, t), "MCM": ood_scores.mcm(cos, self.mcm_temperature)}
        return {"CTW": rules["CTW"].numpy(), "ATD": rules["ATD"].numpy()} | {k: v.numpy() for k, v in same.items()}


CLIPN_RULES = ("CTW", "ATD")
CLIPN_BASELINES = ("MSP", "MaxLogit", "Energy", "MCM")  # from CLIPN's own "yes" logits


def clipn_temperature(backbone, adapter) -> float:
    """The yes/no softmax's T of a CLIPN adapter: the one it was trained with, else 1 / the backbone's logit scale."""
    recorded = adapter.config.training.get("temperature")
    return float(recorded) if recorded else 1.0 / backbone.logit_scale


Scores = dict[str, dict[str, dict[str, np.ndarray]]]  # {domain: {score: {"id": scores, "ood": scores}}}


def domain_statistics(scores: dict[str, dict[str, np.ndarray]], id_key: str, ood_key: str, sample: Sample,
                      ranked: dict[str, ood_scores.RankedScores] | None = None) -> dict[str, np.ndarray]:
    """{"SCORE METRIC": [rows]}: a domain's detection metrics on a sample of its ID and OOD images (`ranked`: its
    scores already ranked, as `ood_statistic` keeps them for every resample)."""
    out = {}
    for score, parts in scores.items():
        id_w = sample.weights(id_key, len(parts["id"]))
        ood_w = sample.weights(ood_key, len(parts["ood"]))
        found = ranked[score] if ranked else ood_scores.RankedScores(parts["id"], parts["ood"])
        out |= {f"{score} {m}": v for m, v in found.metrics(id_w, ood_w, merged=sample is not OBSERVED).items()}
    return out


def ood_statistic(scores: Scores, shared: bool):
    """The OOD table's mean row as a function of a sample (one model's per-domain scores, ranked once)."""
    ranked = {d: {score: ood_scores.RankedScores(p["id"], p["ood"]) for score, p in s.items()}
              for d, s in scores.items()}
    return lambda sample: domain_mean(domain_statistics(s, f"ood-id:{d}", f"ood-ood:{SHARED if shared else d}",
                                                        sample, ranked[d]) for d, s in scores.items())


def _nested(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    """{score: {metric: value}} from {"SCORE METRIC": value}."""
    out: dict = {}
    for key, value in flat.items():
        score, _, metric = key.rpartition(" ")
        out.setdefault(score, {})[metric] = value
    return out


@dataclass(frozen=True)
class Rows:
    """The rows of a domain's raw features that a mask picks (its ID or its held-out images), copied out only while
    they are scored (`picked`): a split never holds a second copy of every domain's features."""

    features: torch.Tensor
    mask: torch.Tensor

    def picked(self) -> torch.Tensor:
        return self.features[self.mask]


Features = torch.Tensor | Rows


def ood_scores_of(scorer, id_sets: dict[str, Features], ood_sets: dict[str, Features]) -> Scores:
    """{domain: {score: {"id": scores, "ood": scores}}} for one scorer (raw features -> {score: array}). `ood_sets`
    maps each domain to its OOD features, or holds one entry used for every domain."""
    out = {}
    shared = next(iter(ood_sets.values())) if len(ood_sets) == 1 else None
    for domain, id_raw in id_sets.items():
        ids, oods = (scorer(x.picked() if isinstance(x, Rows) else x) for x in (id_raw, ood_sets.get(domain, shared)))
        out[domain] = {s: {"id": ids[s], "ood": oods[s]} for s in ids}
    release_freed_memory()
    return out


def ood_rows(scores: Scores, statistic) -> dict:
    """{domain|mean: {score: metrics}} of one model's scores (`statistic`: their `ood_statistic`, for the mean)."""
    rows = {domain: {s: ood_scores.detection_metrics(p["id"], p["ood"]) for s, p in by_score.items()}
            for domain, by_score in scores.items()}
    rows["mean"] = _nested(as_row(statistic(OBSERVED)))
    return rows


def held_out_split(raw: dict, classes: Sequence[str], ood_classes: Sequence[str]
                   ) -> tuple[dict[str, Rows], dict[str, Rows], list[str]]:
    """Per domain: the rows of the ID classes' images and of the held-out classes' images in its raw features, and
    the ID class names (the vocabulary the scores use)."""
    held = [classes.index(c) for c in ood_classes]
    id_classes = [c for i, c in enumerate(classes) if i not in held]
    id_sets, ood_sets = {}, {}
    for domain, data in raw.items():
        is_ood = torch.isin(data.labels, torch.tensor(held))
        if is_ood.all() or not is_ood.any():
            continue
        id_sets[domain], ood_sets[domain] = Rows(data.features, ~is_ood), Rows(data.features, is_ood)
    if not id_sets:
        raise ClapError("no domain holds images of both the ID classes and the held-out classes")
    return id_sets, ood_sets, id_classes


def ood_records(setup, id_sets: dict, ood_sets: dict, id_classes: Sequence[str], options: OODOptions = OODOptions(),
                repe: dict | None = None) -> dict[str, dict[str, Scores]]:
    """{"ood": {model: scores}} of every model of an `EvalSetup` and of CLIPN (CTW, ATD and its same-logit baselines)
    for each negation adapter; given `repe` ({model: `Repe`}), also {"ood_repe": {model: scores}} with REPE."""
    scorers = {name: Scorer(model, id_classes, options) for name, model in setup.models.items()}
    scorers |= {name: CLIPNScorer(setup.backbone, adapter, id_classes, options.clipn_templates,
                                  mcm_temperature=options.mcm_temperature)
                for name, adapter in setup.negation.items()}
    out = {"ood": {name: ood_scores_of(scorer, id_sets, ood_sets) for name, scorer in scorers.items()}}
    if repe is not None:
        out["ood_repe"] = {name: ood_scores_of(Scorer(model, id_classes, options, repe[name]), id_sets, ood_sets)
                           for name, model in setup.models.items()}
    return out


def ood_results(records: dict[str, dict[str, Scores]], shared: bool) -> tuple[dict, dict[str, TaskMeasure]]:
    """The OOD rows ("ood", and "ood_repe" with REPE) and the task's statistics for intervals ("ood": CLIPN's rules
    compared with CLIP's MCM and with its own baselines; "ood_repe": REPE's effect inside each model) from
    `ood_records`; `shared`: one OOD set scored against every domain (its images counted and drawn once)."""
    plain = records["ood"]
    first = next(iter(plain.values()))
    parts = [next(iter(by_score.values())) for by_score in first.values()]
    images = sum(len(p["id"]) for p in parts) + (len(parts[0]["ood"]) if shared else sum(len(p["ood"]) for p in parts))
    metrics = ood_scores.METRICS
    against = {f"{rule} {m}": f"MCM {m}" for rule in CLIPN_RULES for m in metrics}
    within = tuple((f"{rule} {m}", f"{base} {m}") for rule in CLIPN_RULES for base in CLIPN_BASELINES for m in metrics)
    statistics = {key: {name: ood_statistic(scores, shared) for name, scores in by_model.items()}
                  for key, by_model in records.items()}  # each model's scores ranked once, for rows and intervals
    results = {key: {name: ood_rows(scores, statistics[key][name]) for name, scores in by_model.items()}
               for key, by_model in records.items()}
    measures = {"ood": TaskMeasure(statistics["ood"], images, against=against, within=within)}
    if "ood_repe" in records:
        measures["ood_repe"] = with_treatment(measures["ood"], TaskMeasure(statistics["ood_repe"], images))
    return results, measures


def named_in_training(setup, held_out: Sequence[str]) -> dict[str, list[str]]:
    """{model: held-out classes its training data named or showed}, for every route: a text-route adapter's
    prompts, an image-route adapter's image classes, a CLIPN adapter's captions (their classes and the objects
    beside them, where the captions record them). An adapter that saw the "unknown" classes is not tested
    open-set, which a reader of the OOD table should know."""
    adapters = {name: m.adapter for name, m in setup.models.items() if m.adapter is not None} | setup.negation
    out = {}
    for name, adapter in adapters.items():
        named = [c for c in held_out if c in set(adapter.config.classes)]
        if named:
            out[name] = named
    return out
