"""`clap eval anomaly`: pixel-wise anomaly segmentation of scenes (VL4AD in miniature), training-free and through
a trained mask decoder.

Every scene's MaskCLIP dense features (`Backbone.encode_image_dense`, the scene enlarged `dense_scale` times first)
are computed once; each model (CLIP, CLIP + an adapter) scores every location with the image-level OOD scores of
`clap.evaluation.ood.Scorer` against the scene set's ID labels, the background included: MaxLogit (VL4AD's
-max_k cos), the max-logit prompt ensemble (over merged classes with `merge`), OODPrompts (VL4AD's outlier
concepts), MCM and Energy. A location's anomaly score is minus its ID score, upsampled (bilinear) to the label map.
Given a mask decoder (`clap.adapter.mask_decoder`, trained by `clap train` on in-distribution scenes), VL4AD's own
u = -max_k sum_i s_i c_ik is added (`DecoderScores`), with each adapter applied to the decoder's query embeddings
and to the class text features.
Metrics (`clap.evaluation.pixel_metrics`) per domain (image type) and their unweighted mean; each adapter's
difference to CLIP has a 95% interval from scenes drawn with replacement within each domain, paired across models
(and training seeds drawn for a seed group, as `clap.evaluation.stats` does for every protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clap.data.scenes import SceneSet, read_scenes
from clap.defaults import N_BOOT
from clap.errors import ClapError
from clap.evaluation.evaluate import Report
from clap.adapter.mask_decoder import MaskDecoder, pixel_class_scores
from clap.evaluation import ood_scores
from clap.evaluation.ood import OODOptions, Scorer
from clap.evaluation.zeroshot import ENSEMBLE_TEMPLATES
from clap.evaluation.pixel_metrics import SceneScores
from clap.evaluation.resample import OBSERVED, Sample, as_row, domain_mean
from clap.evaluation.stats import TaskMeasure

TASK = "anomaly"
FIGURE = "anomaly_maps.png"
SHOWN_SCENES = 4
HEAT_SCORE = "MaxLogit"


@dataclass(frozen=True)
class AnomalyOptions:
    """How locations are scored: the scene's enlargement before the dense features, merging groups (class
    names) for the ensemble, VL4AD's outlier concepts, and the PC templates."""

    dense_scale: float = 1.0
    merge: tuple[tuple[str, ...], ...] | None = None
    ood_prompts: tuple[str, ...] | None = None
    pc_templates: tuple[str, ...] | None = None

    def ood_options(self) -> OODOptions:
        return OODOptions(groups=self.merge, ood_prompts=self.ood_prompts, pc_templates=self.pc_templates)


@dataclass
class SceneInputs:
    """What every model's scores of one scene start from: the dense features (flattened [h * w, D], and their
    grid), the decoder's outputs (mask logits [N, S, S], query embeddings [N, D]) when there is one, the label size."""

    raw: torch.Tensor
    grid: tuple[int, int]
    decoded: tuple[torch.Tensor, torch.Tensor] | None
    size: tuple[int, int]


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
    """VL4AD's scores of the mask decoder's outputs for one model (its adapter applied to the query embeddings,
    the class text features and the no-object embedding): u = -max_k sum_i s_i c_ik with c from the decoder's
    own class prompt (Decoder), from the max-logit prompt ensemble over merged classes (DecoderEnsemble), and with
    the outlier concepts in the softmax (DecoderOODPrompts)."""

    def __init__(self, model, decoder: MaskDecoder, classes: Sequence[str], options: AnomalyOptions) -> None:
        template = decoder.config.decoder["template"]
        with torch.no_grad():  # everything on the CPU, where the decoder's outputs are
            self.text = model.prompt_features(classes, [template])[:, 0].cpu()
            prompts = model.prompt_features(classes, ENSEMBLE_TEMPLATES).cpu()
            self.no_object = model.adapted(decoder.no_object[None].detach())
            self.concepts = (model.prompt_features(options.ood_prompts, [template])[:, 0].cpu()
                             if options.ood_prompts else None)
        self.prompts = prompts.reshape(-1, prompts.shape[-1])
        self.owners, self.n_merged = ood_scores.ensemble_owners(classes, options.merge, len(ENSEMBLE_TEMPLATES))
        self.model, self.temperature = model, decoder.temperature

    def _anomaly(self, masks: torch.Tensor, logits: torch.Tensor, kept: int, size: tuple[int, int]) -> np.ndarray:
        probs = torch.softmax(logits / self.temperature, dim=-1)[:, :kept]
        return upsampled(-pixel_class_scores(masks[None], probs[None])[0].max(dim=0).values, size)

    def __call__(self, inputs: SceneInputs) -> dict[str, np.ndarray]:
        masks, embeddings = inputs.decoded
        v = self.model.adapted(embeddings)
        no = v @ self.no_object.T
        cos = v @ self.text.T
        ensemble = ood_scores.ensemble_cosines(v, self.prompts, self.owners, self.n_merged)
        out = {"Decoder": self._anomaly(masks, torch.cat([cos, no], 1), cos.shape[1], inputs.size),
               "DecoderEnsemble": self._anomaly(masks, torch.cat([ensemble, no], 1), ensemble.shape[1], inputs.size)}
        if self.concepts is not None:
            out["DecoderOODPrompts"] = self._anomaly(masks, torch.cat([cos, v @ self.concepts.T, no], 1),
                                                     cos.shape[1], inputs.size)
        return out


def scene_inputs(backbone, pixels: torch.Tensor, size: tuple[int, int], scale: float,
                 decoder: MaskDecoder | None) -> SceneInputs:
    """One scene's dense features (and the decoder's outputs, at the decoder's recorded scale)."""
    with torch.no_grad():
        dense = backbone.encode_image_dense(pixels[None], scale)[0].cpu()
    decoded = None
    if decoder is not None:
        own = decoder.config.decoder["dense_scale"]
        with torch.no_grad():
            features = dense if own == scale else backbone.encode_image_dense(pixels[None], own)[0].cpu()
            masks, embeddings = decoder(features[None])
        decoded = (masks[0], embeddings[0])
    return SceneInputs(dense.flatten(1).T, tuple(dense.shape[1:]), decoded, size)


def score_scenes(scenes: SceneSet, backbone, scorers: dict[str, list], scale: float, decoder: MaskDecoder | None,
                 progress: bool = True, shown: Sequence[int] = ()
                 ) -> tuple[dict[str, dict[str, dict[str, SceneScores]]], dict]:
    """{model: {domain: {score: SceneScores}}} from each model's scorers (SceneInputs -> {score: map}) and, for the
    scenes `shown`, their images, ground truth and heat maps."""
    collected: dict[str, dict[str, dict[str, SceneScores]]] = {m: {} for m in scorers}
    examples: dict = {"scenes": {}, "maps": {m: {} for m in scorers}}
    heat = "Decoder" if decoder is not None else HEAT_SCORE
    for i in tqdm(range(len(scenes)), desc="anomaly maps", unit="scene", disable=not progress):
        pixels = scenes.image(i)
        label = scenes.label(i, tuple(pixels.shape[1:]))
        domain = scenes.domains[i]
        inputs = scene_inputs(backbone, pixels, label.shape, scale, decoder)
        for model, makers in scorers.items():
            for name, m in (item for make in makers for item in make(inputs).items()):
                collected[model].setdefault(domain, {}).setdefault(name, SceneScores([], [])).add(
                    m, label, scenes.anomaly, scenes.void)
                if i in shown and name == heat:
                    examples["maps"][model][i] = m
        if i in shown:
            truth = np.where(label == scenes.anomaly, 1.0, np.where(label == scenes.void, 0.5, 0.0))
            examples["scenes"][i] = (pixels.permute(1, 2, 0).numpy(), truth)
    examples["heat"] = heat
    return collected, examples


def statistic(per_domain: dict[str, dict[str, SceneScores]]):
    """A model's table mean row, {"SCORE METRIC": [rows]}, as a function of a sample of scenes."""
    def one(domain: str, by_score: dict[str, SceneScores], sample: Sample) -> dict[str, np.ndarray]:
        return {f"{score} {metric}": v for score, s in by_score.items()
                for metric, v in s.statistic(f"{TASK}:{domain}", sample).items()}

    return lambda sample: domain_mean(one(d, by_score, sample) for d, by_score in per_domain.items())


def rows(per_domain: dict[str, dict[str, SceneScores]]) -> dict:
    """{domain|mean: {score: {metric: value}}} on the data."""
    out = {d: {score: s.metrics() for score, s in by_score.items()} for d, by_score in per_domain.items()}
    nested: dict = {}
    for key, value in as_row(statistic(per_domain)(OBSERVED)).items():
        score, _, metric = key.rpartition(" ")
        nested.setdefault(score, {})[metric] = value
    return {**out, "mean": nested}


def run_anomaly(scenes: SceneSet, backbone, models: dict, options: AnomalyOptions = AnomalyOptions(),
                decoder: MaskDecoder | None = None, progress: bool = True) -> tuple[dict, TaskMeasure, dict]:
    """Results {model: rows}, the statistics' measure and the figure's examples."""
    check_groups_known(options.merge, scenes.classes)
    shown = anomalous_scenes(scenes)[:SHOWN_SCENES]
    scorers = {name: [DenseScores(Scorer(model, scenes.classes, options.ood_options()))]
               + ([DecoderScores(model, decoder, scenes.classes, options)] if decoder is not None else [])
               for name, model in models.items()}
    collected, examples = score_scenes(scenes, backbone, scorers, options.dense_scale, decoder, progress, shown)
    results = {model: rows(per_domain) for model, per_domain in collected.items()}
    measure = TaskMeasure({model: statistic(per_domain) for model, per_domain in collected.items()}, len(scenes))
    return results, measure, examples


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
                            "so its metrics do not exist; render more scenes (--scenes) or drop that type")
    return sorted(anomalous)


def check_groups_known(groups, classes: Sequence[str]) -> None:
    from clap.evaluation.openness import check_groups

    if groups:
        check_groups(groups, classes, "--merge", cover=False)


def merge_groups(merge: str | None, classes: Sequence[str]) -> tuple[tuple[str, ...], ...] | None:
    """--merge: a JSON of class groups, or "families" (the world's 8 shape families, less classes the scenes lack)."""
    from clap.evaluation.openness import read_groups
    from clap.prompts.classes import preset_groups

    if not merge:
        return None
    if merge == "families":
        groups = [[c for c in members if c in classes] for members in preset_groups("world").values()]
        if not any(groups):
            raise ClapError("--merge families: the scenes hold none of the world's classes; give a JSON of groups")
    else:
        groups = read_groups(merge)
    groups = [g for g in groups if g]
    check_groups_known(groups, classes)
    return tuple(tuple(g) for g in groups)


def plot_anomaly(examples: dict, path: Path) -> Path:
    """A row per shown scene: the image, its ground truth (anomaly white, void grey) and each model's heat map."""
    from clap.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    models, scenes = list(examples["maps"]), sorted(examples["scenes"])
    fig, axes = plt.subplots(len(scenes), 2 + len(models), figsize=(2.2 * (2 + len(models)), 2.2 * len(scenes)),
                             squeeze=False)
    for row, i in zip(axes, scenes):
        image, truth = examples["scenes"][i]
        for ax, (title, picture, cmap) in zip(row, [("scene", image, None), ("anomaly (truth)", truth, "gray")]
                                              + [(f"{m}: {examples['heat']}", examples["maps"][m][i], "inferno")
                                                 for m in models]):
            ax.imshow(picture, cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return _save(fig, path)


LEVELS = ("training seeds of a seed group, with replacement",
          "scenes within each domain (image type), the same for every model")


def evaluate_anomaly(scenes: str | Path | SceneSet, backbone: dict | None = None, adapters=None,
                     options: AnomalyOptions = AnomalyOptions(), *, decoder: str | Path | None = None,
                     n_boot: int = N_BOOT, seed: int = 0, device: str = "cpu", precision: str = "auto",
                     progress: bool = True) -> Report:
    """Score every pixel of a scene folder (or a `SceneSet` already read) with CLIP and each adapter
    (`clap.evaluate`'s NAME=PATH specs), densely
    and, given a trained mask `decoder` folder (`clap train` with SegmentationModule), through it; bad input raises
    `ClapError` (one line)."""
    from clap.backbones.loading import load_backbone
    from clap.evaluation.evaluate import adapter_specs, statistics
    from clap.evaluation.runner import adapter_file_info, describe_models, load_models

    scene_set = scenes if isinstance(scenes, SceneSet) else read_scenes(scenes)
    model = load_backbone(**(backbone or {}), device=device, precision=precision)
    models, files, negation = load_models(model, adapter_specs(adapters))
    if negation:
        raise ClapError(f"{', '.join(negation)}: CLIPN (negation) adapters score whole images (`clap eval ood`); "
                        "pixel-wise anomaly segmentation compares CLIP-space adapters")
    mask_decoder = load_decoder(decoder, model, scene_set) if decoder is not None else None
    results, measure, examples = run_anomaly(scene_set, model, models, options, mask_decoder, progress)
    stats = statistics([*models], n_boot, seed, {TASK: results}, {TASK: measure}, LEVELS)
    decoder_info = (adapter_file_info(str(decoder)) | {"config": mask_decoder.config.decoder}
                    if mask_decoder is not None else None)
    grid = model.encode_image_dense(scene_set.image(0)[None], options.dense_scale).shape[2:]
    setup = {"dataset": {"root": str(scene_set.root), "domains": list(scene_set.by_domain()),
                         "classes": scene_set.classes, "scenes": {d: len(i) for d, i in scene_set.by_domain().items()}},
             **describe_models(model, models, files, negation)}
    run = {"seed": seed, "anomaly": {"dense_scale": options.dense_scale, "dense_grid": list(grid),
                                     "merge": options.merge, "ood_prompts": options.ood_prompts,
                                     "pc_templates": options.pc_templates, "decoder": decoder_info}}
    return Report(TASK, setup, run, {TASK: results, "anomaly_plot": FIGURE}, stats,
                  {FIGURE: lambda folder: plot_anomaly(examples, Path(folder) / FIGURE)})


def load_decoder(folder: str | Path, backbone, scenes: SceneSet) -> MaskDecoder:
    """A trained mask decoder for this backbone and these scenes' labels, or one ClapError line."""
    from clap.model import check_compatible

    decoder = MaskDecoder.from_pretrained(folder)
    if not isinstance(decoder, MaskDecoder):
        raise ClapError(f"--decoder {folder} is a {decoder.config.route} adapter, not a mask decoder; train one with "
                        "`clap train --config experiments/configs/world_vl4ad.yaml`")
    check_compatible(backbone, decoder)
    if decoder.config.classes != scenes.classes:
        raise ClapError(f"--decoder {folder} was trained on the labels {decoder.config.classes[:4]}..., the scenes "
                        f"have {scenes.classes[:4]}...; train it on scenes of the same label set")
    return decoder.eval()
