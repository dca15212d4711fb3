"""Zero-shot classification with the method's four prompt forms, and prompt-robustness statistics.

ZS(C) "[class]", ZS(PC) "a photo of a [class]", ZS(CP) "a [class] in a photo", ZS(NC) "[noise][class]":
4 Gaussian token embeddings (std 0.02) after the start token. In the authors' form (`NOISE_FORMS`
"shared", the default) one noise context is drawn for all class names at a time; ZS(NC) is the mean
accuracy over `NOISE_DRAWS` contexts (the same seeded draws for every model), and its spread over
draws is reported beside it. "per-class" draws each class its own noise (a different, harsher test).
R and delta are the range and standard deviation of the C, PC and CP accuracies; Delta(NC) is the
drop from C to NC; R_null is R's noise floor (`range_null`: the R of forms that were interchangeable
on these images), beside R because a range of noisy accuracies reads above 0 even when the forms
agree. gap2 (`squared_gap`) is the mean squared gap between the forms' accuracies, noise-corrected: an
unbiased estimate whose interval covers the truth where R's cannot (R's estimate is biased upward by
an amount that depends on how close the forms are; `benchmarks/bench_coverage.py`). Every row is
computed by `domain_statistics`, which the intervals recompute on each bootstrap resample.
Two prompt ensembles over `ENSEMBLE_TEMPLATES` stand beside them: ENS, the mean of the templates'
normalised features (CLIP's ImageNet-templates practice), and MAX, the max-logit ensemble (each class
scored by its best template, as in VL4AD). With REPE every class feature is enhanced first.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from clap.defaults import NOISE_DRAWS, NOISE_FORMS, NOISE_STD, NOISE_TOKENS
from clap.evaluation.statistics.resample import (OBSERVED, Sample, Series, as_row, images_of, per_domain,
                                                weighted_mean)
from clap.errors import ClapError
from clap.evaluation.statistics.stats import TaskMeasure
from clap.model import check_templates, template_problem
from clap.runtime import release_freed_memory

if TYPE_CHECKING:
    from clap.evaluation.inputs.setup import EvalSetup

PROMPT_FORMS = {"C": "{}", "PC": "a photo of a {}", "CP": "a {} in a photo"}
ENSEMBLE_TEMPLATES = ("a photo of a {}", "a picture of a {}", "an image of a {}", "a drawing of a {}",
                      "a sketch of a {}", "a painting of a {}", "a cartoon of a {}", "a {} in a photo",
                      "a close-up photo of the {}", "a small {}", "a large {}", "the {}", "a rendering of a {}",
                      "a mosaic of a {}", "art of the {}", "a bright photo of a {}")
ENSEMBLES = ("ENS", "MAX")
SINGLE_FORMS = (*PROMPT_FORMS, "NC")
ALL_FORMS = (*SINGLE_FORMS, *ENSEMBLES)
NOISE_SEED = 0
NULL_DRAWS, NULL_SEED = 500, 0


@torch.no_grad()
def encode_images(model, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Normalised image features of pixels in [0, 1], in batches."""
    feats = [model.encode_image(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return F.normalize(torch.cat(feats), dim=-1)


def class_scores(image_features: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """[N, C] cosines to class weights [D, C]; for a max-logit ensemble [T, D, C], the best template's (a running
    maximum: never the [T, N, C] cosines of every template at once)."""
    class_weights = class_weights.to(image_features.device)
    if class_weights.dim() == 2:
        return image_features @ class_weights
    best = image_features @ class_weights[0]
    for template in class_weights[1:]:
        torch.maximum(best, image_features @ template, out=best)
    return best


def correct(image_features: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per image: whether cosine-similarity classification is right (bool array, on the CPU)."""
    predictions = class_scores(image_features, class_weights).argmax(dim=1)
    return (predictions.cpu() == labels.cpu()).numpy()


def form_hits(image_features: torch.Tensor, form: str, weights: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per image right or wrong under a form's weights: [N], or [draws, N] for NC (one row per noise draw)."""
    if form == "NC":
        return np.stack([correct(image_features, w, labels) for w in weights])
    return correct(image_features, weights, labels)


def accuracy(image_features: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of cosine-similarity classification."""
    return float(correct(image_features, class_weights, labels).mean())


_RAW_NOISE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # {backbone: {arguments: raw features}}


@torch.no_grad()
def raw_noise_features(backbone, classnames: Sequence[str], draws: int = NOISE_DRAWS, form: str = "shared",
                       seed: int = NOISE_SEED) -> torch.Tensor:
    """The frozen encoder's features [draws, C, D] of the "[noise][class]" prompts, before any adapter: the same for
    every adapter and alpha, so computed once per backbone and arguments (kept while the backbone lives)."""
    if form not in NOISE_FORMS:
        raise ValueError(f"unknown noise form '{form}'; use {' or '.join(NOISE_FORMS)}")
    key, memo = (tuple(classnames), draws, form, seed), _RAW_NOISE.setdefault(backbone, {})
    if key not in memo:
        generator, names, out = torch.Generator().manual_seed(seed), list(classnames), []
        for _ in range(draws):
            if form == "shared":
                context = torch.randn(NOISE_TOKENS, backbone.token_width, generator=generator) * NOISE_STD
                out.append(backbone.encode_text_with_prompt(names, context))
            else:
                out.append(backbone.encode_text_with_noise(names, NOISE_TOKENS, NOISE_STD, "front", generator))
        memo[key] = torch.stack(out)
    return memo[key]


@torch.no_grad()
def noise_classifiers(model, classnames: Sequence[str], draws: int = NOISE_DRAWS, form: str = "shared",
                      seed: int = NOISE_SEED) -> torch.Tensor:
    """Class weights [draws, D, C] of "[noise][class]" prompts, one set per noise draw (seeded, so every
    model sees the same noise): one context shared by all classes ("shared", the authors' form) or
    noise of each class's own ("per-class"); the model's adapter applied to `raw_noise_features`."""
    raw = raw_noise_features(model.backbone, classnames, draws, form, seed)
    return torch.stack([model.adapt(feats, normalize=True).T for feats in raw]).contiguous()


def form_templates(pc_templates: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The templates of each single prompt form: `PROMPT_FORMS`, with `pc_templates` replacing PC's if given."""
    return {f: [t] for f, t in PROMPT_FORMS.items()} | ({"PC": list(pc_templates)} if pc_templates else {})


def classifiers(model, classnames: Sequence[str], forms: Sequence[str] = ALL_FORMS, repe=None,
                noise_form: str = "shared", pc_templates: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Zero-shot class weights of each prompt form: [D, C]; [T, D, C] for the max-logit ensemble (MAX), whose
    classes take their best template, and for NC, one [D, C] per noise draw; `pc_templates` replace PC's
    "a photo of a {}" (several: the mean of their features); with `repe` (a `clap.evaluation.protocols.repe.Repe`)
    each class feature is REPE-enhanced."""
    templates = form_templates(pc_templates)
    out = {f: model.zero_shot_classifier(classnames, templates[f]) for f in forms if f in PROMPT_FORMS}
    if "NC" in forms:
        out["NC"] = noise_classifiers(model, classnames, form=noise_form)
    if set(ENSEMBLES) & set(forms):
        per_template = model.prompt_features(classnames, ENSEMBLE_TEMPLATES).permute(1, 2, 0)  # [T, D, C]
        if "ENS" in forms:
            out["ENS"] = F.normalize(per_template.mean(dim=0), dim=0)
        if "MAX" in forms:
            out["MAX"] = per_template
    if repe is not None:
        out = {f: _enhanced(w, repe, classnames) for f, w in out.items()}
    return out


@torch.no_grad()
def phrase_classifier(model, phrases: Sequence[str], pc_templates: Sequence[str] | None = None, repe=None
                      ) -> torch.Tensor:
    """Weights [D, Q] of free phrases (VL4AD's outlier concepts) in the PC prompt form: each template filled by
    `fill`, which keeps a phrase's own article ("an unknown shape" -> "a photo of an unknown shape"), the renormalised
    mean of the normalised features per phrase, as `CLAPModel.zero_shot_classifier` does for class names."""
    from clap.prompts.templates import fill

    templates = [t.replace("{c}", "{}") for t in form_templates(pc_templates)["PC"]]
    weights = torch.stack([model.encode_text([fill(t, q) for t in templates], normalize=True).mean(dim=0)
                           for q in phrases], dim=1)
    weights = F.normalize(weights.cpu(), dim=0)
    return weights if repe is None else _enhanced(weights, repe, phrases)


def _enhanced(weights: torch.Tensor, repe, classnames: Sequence[str]) -> torch.Tensor:
    if weights.dim() == 3:
        return torch.stack([_enhanced(w, repe, classnames) for w in weights])
    return repe.enhance(weights.T, classnames).T.contiguous()


def zero_shot_accuracies(model, image_features: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str],
                         forms: Sequence[str] = tuple(PROMPT_FORMS), noise_form: str = "shared") -> dict[str, float]:
    """Accuracy per prompt form, from precomputed normalised image features (NC: mean over noise draws)."""
    return {form: float(form_hits(image_features, form, w, labels).mean())
            for form, w in classifiers(model, classnames, forms, noise_form=noise_form).items()}


def robustness(accs: dict[str, np.ndarray | float]) -> dict[str, np.ndarray | float]:
    """R (range) and delta (std) over C, PC, CP; Delta(NC) = C - NC (per resample when given arrays)."""
    values = np.stack([np.asarray(accs[f], dtype=float) for f in PROMPT_FORMS])
    out = {"R": values.max(axis=0) - values.min(axis=0), "delta": values.std(axis=0)}
    if "NC" in accs:
        out["Delta_NC"] = np.asarray(accs["C"], dtype=float) - np.asarray(accs["NC"], dtype=float)
    return out if values.ndim > 1 else {k: float(v) for k, v in out.items()}


def read_templates(values: str | Path | Sequence[str | Path], option: str = "templates: ") -> list[str]:
    """Prompt templates: one template string, a list of them, or one file (a Path, or the list's only value
    naming a file) with one template a line; each holds one '{}' or '{c}' slot."""
    if isinstance(values, (str, Path)):
        values = [values]
    values = [str(v) for v in values]
    if len(values) == 1 and Path(values[0]).is_file():
        try:
            values = [line.strip() for line in Path(values[0]).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise ClapError(f"{option}cannot read {values[0]}: {e}") from None
    elif len(values) == 1 and template_problem(values[0]) == "has no slot" and _looks_like_path(values[0]):
        raise ClapError(f"{option}{values[0]} does not exist (a file of templates) and is not a template (no '{{}}')")
    check_templates(values, option)
    return values


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or Path(value).suffix.lower() in (".txt", ".lst", ".csv")


def range_null(hits: np.ndarray, draws: int = NULL_DRAWS, seed: int = NULL_SEED) -> float:
    """The R that interchangeable prompt forms would show on these images: `hits` [N, forms] (each
    image right or wrong under each form) shuffled within each image (the paired null), R averaged
    over draws. R is a range of noisy accuracies, so it reads above 0 even without any prompt effect."""
    rng = np.random.default_rng(seed)
    return float(np.mean([np.ptp(rng.permuted(hits, axis=1).mean(axis=0)) for _ in range(draws)]))


class FormHits:
    """A domain's per-image hits per form (NC: [draws, N]) stacked once, with gap2's per-image differences, into one
    `Series`: every sample's accuracies come from one product."""

    def __init__(self, hits: dict[str, np.ndarray]) -> None:
        self.noise = {form: h.ndim == 2 for form, h in hits.items()}
        self.gaps = set(PROMPT_FORMS) <= set(hits)
        series = [np.atleast_2d(h) for h in hits.values()] + ([gap_series([hits[f] for f in PROMPT_FORMS])]
                                                             if self.gaps else [])
        self.splits = np.cumsum([len(s) for s in series])[:-1]
        self.series = Series(np.concatenate(series))
        self.images = self.series.shape[-1]


def domain_statistics(hits: "dict[str, np.ndarray] | FormHits", key: str, sample: Sample) -> dict[str, np.ndarray]:
    """A domain's accuracy per form and R, delta, Delta(NC) on a sample of its images (and of the noise
    draws): {statistic: [rows]}."""
    forms = hits if isinstance(hits, FormHits) else FormHits(hits)
    weights = sample.weights(key, forms.images)
    means = np.split(forms.series.means(weights), forms.splits, axis=1)
    accs = {form: noise_accuracy(m, sample) if noisy else m[:, 0]
            for (form, noisy), m in zip(forms.noise.items(), means)}
    if not forms.gaps:
        return accs
    return accs | robustness(accs) | {"gap2": gap_of(means[-1], weights.sum(axis=1))}


def noise_accuracy(per_draw: np.ndarray, sample: Sample) -> np.ndarray:
    """[rows] a noise form's accuracy: its accuracies per noise draw [rows, draws] averaged over the drawn draws."""
    return np.take_along_axis(per_draw, sample.picks("noise", per_draw.shape[1]), axis=1).mean(axis=1)


def gap_series(hits: Sequence[np.ndarray]) -> np.ndarray:
    """[2 x pairs, N]: for each pair of forms, the per-image difference of their hits x and its square."""
    rows = []
    for i, f in enumerate(hits):
        for g in hits[i + 1:]:
            x = np.asarray(f, dtype=float) - np.asarray(g, dtype=float)
            rows += [x, x * x]
    return np.stack(rows)


def gap_of(means: np.ndarray, n: np.ndarray) -> np.ndarray:
    """[rows] gap2 from the weighted means [rows, 2 x pairs] of `gap_series` on samples of n images: per pair the
    unbiased estimate of (acc_f - acc_g)^2 from the differences x (mean(x)^2 minus the estimated variance of that
    mean, var(x) / n with ddof 1), averaged over pairs."""
    m1, m2 = means[:, 0::2], means[:, 1::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.mean(m1 ** 2 - (m2 - m1 ** 2) / (n[:, None] - 1), axis=1)


def squared_gap(hits: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """[rows] the mean over pairs of forms of their squared accuracy gap, noise-corrected (`gap_of`). Unlike R it
    reads 0 on average when the forms agree."""
    return gap_of(weighted_mean(weights, gap_series(hits)), weights.sum(axis=1))


def zero_shot_statistic(records: dict[str, dict[str, np.ndarray]]):
    """The zero-shot table's mean row as a function of a sample ({domain: per-image hits per form})."""
    return per_domain({d: FormHits(hits) for d, hits in records.items()}, "images", domain_statistics)


def zero_shot_hits(model, raw_by_domain: dict, classnames: Sequence[str], repe=None, forms: Sequence[str] = ALL_FORMS,
                   noise_form: str = "shared", pc_templates: Sequence[str] | None = None) -> dict:
    """The records {domain: {form: per-image hits}} (NC: [draws, N]) behind the zero-shot rows."""
    weights, records = classifiers(model, classnames, forms, repe, noise_form, pc_templates), {}
    for domain, data in raw_by_domain.items():
        feats = model.adapted(data.features)
        records[domain] = {form: form_hits(feats, form, w, data.labels) for form, w in weights.items()}
    release_freed_memory()
    return records


def zero_shot_rows(records: dict[str, dict[str, np.ndarray]], floor: bool = True) -> dict:
    """{domain|mean: accuracies of the records' forms and the robustness statistics (and R's noise floor, with
    `floor`, and the spread of NC's draws)} from the records {domain: per-image hits per form}."""
    rows = {}
    for domain, hits in records.items():
        rows[domain] = as_row(domain_statistics(hits, f"images:{domain}", OBSERVED))
        if floor and set(PROMPT_FORMS) <= set(hits):
            rows[domain]["R_null"] = range_null(np.stack([hits[f] for f in PROMPT_FORMS], axis=1).astype(float))
        if "NC" in hits:
            rows[domain]["NC_draw_std"] = float(np.std(hits["NC"].mean(axis=1), ddof=1))
    rows["mean"] = as_row(zero_shot_statistic(records)(OBSERVED))
    forms = next(iter(records.values()))
    if floor and set(PROMPT_FORMS) <= set(forms):
        rows["mean"]["R_null"] = float(np.mean([rows[d]["R_null"] for d in records]))
    if "NC" in forms:
        rows["mean"]["NC_draw_std"] = float(np.std(np.mean([h["NC"].mean(axis=1) for h in records.values()],
                                                           axis=0), ddof=1))
    return rows


def evaluate_zero_shot(model, raw_by_domain: dict, classnames: Sequence[str], repe=None,
                       forms: Sequence[str] = ALL_FORMS, noise_form: str = "shared", floor: bool = True,
                       pc_templates: Sequence[str] | None = None) -> tuple[dict, dict]:
    """(`zero_shot_rows`, the records {domain: per-image hits per form} that `zero_shot_statistic` turns into the
    mean row)."""
    records = zero_shot_hits(model, raw_by_domain, classnames, repe, forms, noise_form, pc_templates)
    return zero_shot_rows(records, floor), records


def zero_shot_records(setup: EvalSetup, repe: dict | None = None, noise_form: str = "shared",
                      pc_templates: Sequence[str] | None = None) -> dict[str, dict]:
    """{model: records} of every model (with `repe`, {model: `Repe`}, the class features REPE-enhanced;
    `pc_templates` replace PC's template)."""
    return {name: zero_shot_hits(m, setup.raw, setup.dataset.classes, repe[name] if repe is not None else None,
                                 noise_form=noise_form, pc_templates=pc_templates)
            for name, m in setup.models.items()}


def zero_shot_results(records: dict[str, dict]) -> tuple[dict, TaskMeasure]:
    """Zero-shot rows per model and the task's statistics for intervals, from {model: records}."""
    rows = {name: zero_shot_rows(by_domain) for name, by_domain in records.items()}
    first = next(iter(records.values()))
    images = sum(images_of(hits) for hits in first.values())
    return rows, TaskMeasure({name: zero_shot_statistic(r) for name, r in records.items()}, images,
                             {"noise_draws": NOISE_DRAWS})


def run_zeroshot(setup: EvalSetup, repe: dict | None = None, noise_form: str = "shared",
                 pc_templates: Sequence[str] | None = None) -> tuple[dict, TaskMeasure]:
    """Zero-shot rows per model and the task's statistics for intervals (see `zero_shot_records`)."""
    return zero_shot_results(zero_shot_records(setup, repe, noise_form, pc_templates))
