"""`clap eval anomaly`: pixel-wise anomaly segmentation of scenes (VL4AD in miniature), training-free and through
a trained mask decoder.

Every scene's MaskCLIP dense features (`Backbone.encode_image_dense`, the scene enlarged `dense_scale` times first)
are computed once; each model (CLIP, CLIP + an adapter) scores every location with the image-level OOD scores of
`clap.evaluation.protocols.ood.Scorer` against the scene set's ID labels, the background included: MaxLogit (VL4AD's
-max_k cos), the max-logit prompt ensemble (over merged classes with `merge`), OODPrompts (VL4AD's outlier
concepts), MCM and Energy. A location's anomaly score is minus its ID score, upsampled (bilinear) to the label map.
Given a mask decoder (`clap.adapter.mask_decoder`, trained by `clap train` on in-distribution scenes), VL4AD's own
u = -max_k sum_i s_i c_ik is added (`DecoderScores`), with each adapter applied to the decoder's query embeddings
and to the class text features.
Metrics (`clap.evaluation.protocols.pixel_metrics`) per domain (image type) and their unweighted mean; each adapter's
difference to CLIP has a 95% interval from scenes drawn with replacement within each domain, paired across models
(and training seeds drawn for a seed group, as `clap.evaluation.statistics.stats` does for every protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clap.data.scenes import SceneSet
from clap.errors import ClapError
from clap.options import SCALE
from clap.adapter.mask_decoder import MaskDecoder, pixel_class_scores
from clap.evaluation.protocols import ood_scores
from clap.evaluation.protocols.ood import OODOptions, Scorer
from clap.evaluation.protocols.pixel_metrics import SceneScores
from clap.evaluation.statistics.resample import OBSERVED, Sample, as_row, domain_mean
from clap.evaluation.statistics.stats import TaskMeasure

TASK = "anomaly"
FIGURE = "anomaly_maps.png"
SHOWN_SCENES = 4
SHOWN_SIDE = 256  # the figure's scenes and maps are kept at most this many pixels a side
HEAT_SCORE = "MaxLogit"


@dataclass(frozen=True)
class AnomalyOptions:
    """How locations are scored: the scene's enlargement before the dense features, merging groups (class
    names) for the ensemble, VL4AD's outlier concepts, and the PC templates."""

    dense_scale: float = 1.0
    merge: tuple[tuple[str, ...], ...] | None = None
    ood_prompts: tuple[str, ...] | None = None
    pc_templates: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        SCALE.check("dense_scale", self.dense_scale)
        if self.pc_templates is not None:
            from clap.evaluation.protocols.zeroshot import read_templates

            object.__setattr__(self, "pc_templates", tuple(read_templates(self.pc_templates, "pc_templates: ")))

    def ood_options(self) -> OODOptions:
        return OODOptions(groups=self.merge, ood_prompts=self.ood_prompts, pc_templates=self.pc_templates)


@dataclass
class SceneInputs:
    """What every model's scores of one scene start from: the dense features (flattened [h * w, D] at the
    training-free scale, and their grid), the frozen dense features [D, h, w] at each decoder's scale, the label map."""

    raw: torch.Tensor
    grid: tuple[int, int]
    dense: dict[float, torch.Tensor]
    label: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.label.shape


def upsampled(anomaly: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """An anomaly map [h, w] resized (bilinear) to the label map."""
    return F.interpolate(anomaly[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


class DenseScores:
    """The training-free baseline: each location scored by the image-level OOD scores (higher = more ID)."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def __call__(self, inputs: SceneInputs) -> dict[str, np.ndarray]:
        return {name: upsampled(-torch.as_tensor(values).view(*inputs.grid), inputs.size)
                for name, values in self.scorer(inputs.raw).items()}


class DecoderScores:
    """VL4AD's scores through a model's own mask decoders (trained on its feature space: its adapted dense features
    and class text), one set of maps per decoder seed: u = -max_k sum_i s_i c_ik with c against the decoder's own
    class features (Decoder: one prompt; DecoderConcepts: a decoder trained and scored on its concept ensemble),
    with the classes merged into groups at test time (...Merged) and with the outlier concepts in the softmax
    (...OODPrompts); and each decoder's in-distribution segmentation (argmax_k sum_i s_i c_ik) as a confusion
    matrix for its mIoU."""

    def __init__(self, model, decoders: Sequence[MaskDecoder], classes: Sequence[str], options: AnomalyOptions,
                 anomaly: int, void: int) -> None:
        from clap.training.segmentation import concept_features

        self.model, self.decoders, self.anomaly, self.void = model, list(decoders), anomaly, void
        self.classes = len(classes)
        with torch.no_grad():  # everything on the CPU, where the decoders' outputs are
            self.text = [concept_features(model, list(classes), d.config.decoder["template"], d.concepts)
                         for d in self.decoders]
            self.concepts = [outlier_features(model, options.ood_prompts, d.config.decoder["template"])
                             for d in self.decoders] if options.ood_prompts else None
        merged, self.n_merged = ood_scores.ensemble_owners(classes, options.merge, 1)
        self.merged = torch.tensor(merged) if options.merge else None
        self.confusion = [np.zeros((self.classes, self.classes), np.int64) for _ in self.decoders]

    @torch.no_grad()
    def __call__(self, inputs: SceneInputs) -> dict[str, np.ndarray]:
        from clap.adapter.mask_decoder import concept_max
        from clap.training.segmentation import adapted_dense

        out = {}
        for j, decoder in enumerate(self.decoders):
            features = adapted_dense(self.model, inputs.dense[decoder.config.decoder["dense_scale"]])
            masks, embeddings = (x[0] for x in decoder(features[None]))
            text, owners = self.text[j]
            logits = decoder.class_logits(embeddings, text, owners)  # [N, K + 1], no-object last
            cos, no = logits[:, :-1], logits[:, -1:]
            kind = "DecoderConcepts" if decoder.concepts else "Decoder"
            out[f"{kind}@{j}"] = self._anomaly(masks, torch.cat([cos, no], 1), cos.shape[1], inputs.size, j, inputs)
            if self.merged is not None:
                merged = concept_max(cos, self.merged)
                out[f"{kind}Merged@{j}"] = self._anomaly(masks, torch.cat([merged, no], 1), merged.shape[1],
                                                         inputs.size)
            if self.concepts is not None:
                extra = decoder.class_logits(embeddings, self.concepts[j])[:, :-1]
                out[f"{kind}OODPrompts@{j}"] = self._anomaly(masks, torch.cat([cos, extra, no], 1), cos.shape[1],
                                                             inputs.size)
        return out

    def _anomaly(self, masks: torch.Tensor, logits: torch.Tensor, kept: int, size: tuple[int, int],
                 decoder: int | None = None, inputs: SceneInputs | None = None) -> np.ndarray:
        """The anomaly map -max_k sum_i s_i c_ik (c: softmax over every column, the first `kept` kept); with a
        decoder index, its ID segmentation is also counted into that decoder's confusion matrix."""
        probs = torch.softmax(logits, dim=-1)[:, :kept]
        per_class = pixel_class_scores(masks[None], probs[None])[0]  # [kept, S, S]
        if decoder is not None:
            self._count(per_class, inputs.label, decoder)
        return upsampled(-per_class.max(dim=0).values, size)

    def _count(self, per_class: torch.Tensor, label: np.ndarray, decoder: int) -> None:
        """Add a scene's ID segmentation (argmax class, at the label map's size) on its ID pixels to the confusion."""
        scores = F.interpolate(per_class[None].float(), size=label.shape, mode="bilinear", align_corners=False)[0]
        predicted = scores.argmax(dim=0).numpy()
        keep = (label != self.void) & (label != self.anomaly) & (label < self.classes)
        pairs = label[keep].astype(np.int64) * self.classes + predicted[keep]
        self.confusion[decoder] += np.bincount(pairs, minlength=self.classes ** 2).reshape(self.classes, -1)

    def miou(self) -> list[float]:
        """Each decoder's mean IoU over the ID classes present in the labels."""
        return [mean_iou(c) for c in self.confusion]


def mean_iou(confusion: np.ndarray) -> float:
    """Mean over the classes present (a row with pixels) of TP / (TP + FP + FN), rows the truth."""
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = confusion.sum(1) > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else float("nan")


def outlier_features(model, phrases: Sequence[str], template: str) -> torch.Tensor:
    """VL4AD's outlier concepts as text features, each phrase in the template (its own article kept)."""
    from clap.prompts.templates import fill

    return model.encode_text([fill(template, q) for q in phrases]).cpu()


def scene_inputs(backbone, pixels: torch.Tensor, label: np.ndarray, scale: float, scales: set[float]
                 ) -> SceneInputs:
    """One scene's dense features at the training-free scale and at every decoder's scale."""
    with torch.no_grad():
        dense = {s: backbone.encode_image_dense(pixels[None], s)[0].cpu() for s in {scale, *scales}}
    return SceneInputs(dense[scale].flatten(1).T, tuple(dense[scale].shape[1:]), dense, label)


def for_display(image: np.ndarray) -> np.ndarray:
    """A scene's image or map as the figure shows it: every k-th pixel, at most `SHOWN_SIDE` a side (a copy: the
    full-resolution one is not kept; 96 MB for 4 scenes of 1024 px and their maps)."""
    step = -(-max(image.shape[:2]) // SHOWN_SIDE)
    return np.ascontiguousarray(image[::step, ::step]) if step > 1 else image


def score_scenes(scenes: SceneSet, backbone, scorers: dict[str, list], scale: float, scales: set[float],
                 progress: bool = True, shown: Sequence[int] = ()
                 ) -> tuple[dict[str, dict[str, dict[str, SceneScores]]], dict]:
    """{model: {domain: {score: SceneScores}}} from each model's scorers (SceneInputs -> {score: map}) and, for the
    scenes `shown`, their images, ground truth and heat maps (`scales`: the decoders' dense scales)."""
    collected: dict[str, dict[str, dict[str, SceneScores]]] = {m: {} for m in scorers}
    examples: dict = {"scenes": {}, "maps": {m: {} for m in scorers}}
    heat = "Decoder@0" if scales else HEAT_SCORE
    for i in tqdm(range(len(scenes)), desc="anomaly maps", unit="scene", disable=not progress):
        pixels = scenes.image(i)
        label = scenes.label(i, tuple(pixels.shape[1:]))
        domain = scenes.domains[i]
        inputs = scene_inputs(backbone, pixels, label, scale, scales)
        for model, makers in scorers.items():
            for name, m in (item for make in makers for item in make(inputs).items()):
                collected[model].setdefault(domain, {}).setdefault(name, SceneScores()).add(
                    m, label, scenes.anomaly, scenes.void)
                if i in shown and name in (heat, HEAT_SCORE) and (name == heat or i not in examples["maps"][model]):
                    examples["maps"][model][i] = for_display(m)
        if i in shown:
            truth = np.where(label == scenes.anomaly, 1.0, np.where(label == scenes.void, 0.5, 0.0))
            examples["scenes"][i] = (for_display(pixels.permute(1, 2, 0).numpy()), for_display(truth))
    examples["heat"] = heat
    return collected, examples


def by_decoder(by_score: dict[str, SceneScores]) -> dict[str, list[SceneScores]]:
    """{score: [its SceneScores per decoder seed]} ("Decoder@0", "Decoder@1" -> "Decoder"; others a list of one)."""
    out: dict[str, list[SceneScores]] = {}
    for name, scores in by_score.items():
        out.setdefault(name.split("@")[0], []).append(scores)
    return out


def statistic(per_domain: dict[str, dict[str, SceneScores]], model: str):
    """A model's table mean row, {"SCORE METRIC": [rows]}, as a function of a sample of scenes and of the model's
    decoder seeds (drawn with replacement, the same draw in every domain: a decoder serves them all)."""
    def one(domain: str, by_score: dict[str, SceneScores], sample: Sample) -> dict[str, np.ndarray]:
        out = {}
        for score, seeds in by_decoder(by_score).items():
            values = [s.statistic(f"{TASK}:{domain}", sample) for s in seeds]
            picks = sample.picks(f"decoders:{model}", len(seeds))  # [rows, seeds]
            for metric in values[0]:
                stacked = np.stack([v[metric] for v in values])  # [seeds, rows]
                out[f"{score} {metric}"] = stacked[picks, np.arange(len(picks))[:, None]].mean(axis=1)
        return out

    return lambda sample: domain_mean(one(d, by_score, sample) for d, by_score in per_domain.items())


def rows(per_domain: dict[str, dict[str, SceneScores]], model: str) -> dict:
    """{domain|mean: {score: {metric: value}}} on the data (decoder scores: the mean over decoder seeds)."""
    out = {d: {score: {m: float(np.mean([s.metrics()[m] for s in seeds])) for m in seeds[0].metrics()}
               for score, seeds in by_decoder(by_score).items()} for d, by_score in per_domain.items()}
    nested: dict = {}
    for key, value in as_row(statistic(per_domain, model)(OBSERVED)).items():
        score, _, metric = key.rpartition(" ")
        nested.setdefault(score, {})[metric] = value
    return {**out, "mean": nested}


def decoder_seeds(per_domain: dict[str, dict[str, SceneScores]]) -> dict:
    """{score: {metric: [mean over domains, per decoder seed]}} for the scores of several decoders (their spread)."""
    grouped = {d: by_decoder(by_score) for d, by_score in per_domain.items()}
    first = next(iter(grouped.values()))
    return {score: {m: [float(np.mean([grouped[d][score][j].metrics()[m] for d in grouped]))
                        for j in range(len(seeds))] for m in seeds[0].metrics()}
            for score, seeds in first.items() if len(seeds) > 1}


def run_anomaly(scenes: SceneSet, backbone, models: dict, options: AnomalyOptions = AnomalyOptions(),
                decoders: dict[str, list[MaskDecoder]] | None = None, progress: bool = True
                ) -> tuple[dict, dict, TaskMeasure, dict]:
    """Results {model: rows}, each model's decoders' ID mIoU and their scores' metrics one by one ({model: {"miou":
    [per decoder], "scores": {score: {metric: [per decoder]}}}}), the statistics' measure and the figure's examples;
    `decoders` gives each model its own decoders ({model: [decoder per seed]})."""
    check_groups_known(options.merge, scenes.classes)
    shown = anomalous_scenes(scenes)[:SHOWN_SCENES]
    decoders = {name: found for name, found in (decoders or {}).items() if found}
    owned = {name: DecoderScores(models[name], found, scenes.classes, options, scenes.anomaly, scenes.void)
             for name, found in decoders.items()}
    scorers = {name: [DenseScores(Scorer(model, scenes.classes, options.ood_options()))]
               + ([owned[name]] if name in owned else []) for name, model in models.items()}
    scales = {d.config.decoder["dense_scale"] for found in decoders.values() for d in found}
    collected, examples = score_scenes(scenes, backbone, scorers, options.dense_scale, scales, progress, shown)
    results = {model: rows(per_domain, model) for model, per_domain in collected.items()}
    seeds = {"decoder seeds": max(len(d) for d in decoders.values())} if decoders else {}
    measure = TaskMeasure({model: statistic(per_domain, model) for model, per_domain in collected.items()},
                          len(scenes), seeds)
    per_decoder = {name: {"miou": scores.miou(), "scores": decoder_seeds(collected[name])}
                   for name, scores in owned.items()}
    return results, per_decoder, measure, examples


def anomalous_scenes(scenes: SceneSet) -> list[int]:
    """The scenes holding anomaly pixels; every domain needs one (and pixels of in-distribution labels), or its
    metrics do not exist: one ClapError line."""
    anomalous, normal = set(), set()
    for i in range(len(scenes)):
        label = scenes.label(i)
        kept = label[label != scenes.void]
        if (kept == scenes.anomaly).any():
            anomalous.add(i)
        if (kept != scenes.anomaly).any():
            normal.add(scenes.domains[i])
    for domain, indices in scenes.by_domain().items():
        if not anomalous & set(indices) or domain not in normal:
            lacking = "anomaly pixels" if not anomalous & set(indices) else "in-distribution pixels"
            raise ClapError(f"{scenes.root}: the {len(indices)} scenes of image type '{domain}' hold no {lacking}, "
                            "so its metrics do not exist; render more scenes or drop that type")
    return sorted(anomalous)


def check_groups_known(groups, classes: Sequence[str]) -> None:
    from clap.evaluation.protocols.openness import check_groups

    if groups:
        check_groups(groups, classes, "--merge", cover=False)


def merge_groups(merge: str | None, classes: Sequence[str]) -> tuple[tuple[str, ...], ...] | None:
    """--merge: a JSON of class groups, or "families" (the world's 8 shape families, less classes the scenes lack)."""
    from clap.evaluation.protocols.openness import read_groups
    from clap.prompts.classes import preset_groups

    if not merge:
        return None
    if merge == "families":
        groups = [[c for c in members if c in classes] for members in preset_groups("world").values()]
        if not any(groups):
            raise ClapError("`merge` families: the scenes hold none of the world's classes; give a JSON of groups")
    else:
        groups = read_groups(merge)
    groups = [g for g in groups if g]
    check_groups_known(groups, classes)
    return tuple(tuple(g) for g in groups)
