"""`clap eval anomaly`: pixel-wise anomaly segmentation of scenes (VL4AD in miniature), training-free.

Every scene's MaskCLIP dense features (`Backbone.encode_image_dense`, the scene enlarged `dense_scale` times first)
are computed once; each model (CLIP, CLIP + an adapter) scores every location with the image-level OOD scores of
`clap.evaluation.ood.Scorer` against the scene set's ID labels, the background included: MaxLogit (VL4AD's
-max_k cos), the max-logit prompt ensemble (over merged classes with `merge`), OODPrompts (VL4AD's outlier
concepts), MCM and Energy. A location's anomaly score is minus its ID score, upsampled (bilinear) to the label map.
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
from clap.evaluation.ood import OODOptions, Scorer
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


def dense_raw(backbone, pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """Raw per-location features [h * w, D] of one scene [3, H, W] and the grid (h, w)."""
    x = pixels[None]
    if scale != 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    with torch.no_grad():
        dense = backbone.encode_image_dense(x)[0].cpu()
    return dense.flatten(1).T, dense.shape[1:]


def anomaly_maps(scorer: Scorer, raw: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]
                 ) -> dict[str, np.ndarray]:
    """{score: anomaly map [H, W]}: minus each ID score of the locations, upsampled to the label map."""
    out = {}
    for name, values in scorer(raw).items():
        coarse = -torch.as_tensor(values, dtype=torch.float32).view(1, 1, *grid)
        out[name] = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    return out


def score_scenes(scenes: SceneSet, backbone, scorers: dict[str, Scorer], scale: float, progress: bool = True,
                 shown: Sequence[int] = ()) -> tuple[dict[str, dict[str, dict[str, SceneScores]]], dict]:
    """{model: {domain: {score: SceneScores}}} and, for the scenes `shown`, their images, labels and heat maps."""
    maps: dict[str, dict[str, dict[str, list]]] = {m: {} for m in scorers}
    labels: dict[str, list[np.ndarray]] = {}
    examples: dict = {"scenes": {}, "maps": {m: {} for m in scorers}}
    for i in tqdm(range(len(scenes)), desc="anomaly maps", unit="scene", disable=not progress):
        pixels = scenes.image(i)
        label = scenes.label(i, tuple(pixels.shape[1:]))
        domain = scenes.domains[i]
        labels.setdefault(domain, []).append(label)
        raw, grid = dense_raw(backbone, pixels, scale)
        for model, scorer in scorers.items():
            for name, m in anomaly_maps(scorer, raw, tuple(grid), label.shape).items():
                maps[model].setdefault(domain, {}).setdefault(name, []).append(m)
                if i in shown and name == HEAT_SCORE:
                    examples["maps"][model][i] = m
        if i in shown:
            truth = np.where(label == scenes.anomaly, 1.0, np.where(label == scenes.void, 0.5, 0.0))
            examples["scenes"][i] = (pixels.permute(1, 2, 0).numpy(), truth)
    collected = {model: {d: {name: SceneScores.collect(ms, labels[d], scenes.anomaly, scenes.void)
                             for name, ms in by_score.items()} for d, by_score in per_domain.items()}
                 for model, per_domain in maps.items()}
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
                progress: bool = True) -> tuple[dict, TaskMeasure, dict]:
    """Results {model: rows}, the statistics' measure and the figure's examples."""
    check_groups_known(options.merge, scenes.classes)
    shown = anomalous_scenes(scenes)[:SHOWN_SCENES]
    scorers = {name: Scorer(model, scenes.classes, options.ood_options()) for name, model in models.items()}
    collected, examples = score_scenes(scenes, backbone, scorers, options.dense_scale, progress, shown)
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
                                              + [(f"{m}: -{HEAT_SCORE}", examples["maps"][m][i], "inferno")
                                                 for m in models]):
            ax.imshow(picture, cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return _save(fig, path)


LEVELS = ("training seeds of a seed group, with replacement",
          "scenes within each domain (image type), the same for every model")


def evaluate_anomaly(scenes: str | Path, backbone: dict | None = None, adapters=None,
                     options: AnomalyOptions = AnomalyOptions(), *, n_boot: int = N_BOOT, seed: int = 0,
                     device: str = "cpu", precision: str = "auto", progress: bool = True) -> Report:
    """Score every pixel of a scene folder with CLIP and each adapter (`clap.evaluate`'s NAME=PATH specs); bad input
    raises `ClapError` (one line)."""
    from clap.backbones.loading import load_backbone
    from clap.evaluation.evaluate import adapter_specs, statistics
    from clap.evaluation.runner import describe_models, load_models

    scene_set = read_scenes(scenes)
    model = load_backbone(**(backbone or {}), device=device, precision=precision)
    models, files, negation = load_models(model, adapter_specs(adapters))
    if negation:
        raise ClapError(f"{', '.join(negation)}: CLIPN (negation) adapters score whole images (`clap eval ood`); "
                        "pixel-wise anomaly segmentation compares CLIP-space adapters")
    results, measure, examples = run_anomaly(scene_set, model, models, options, progress)
    stats = statistics([*models], n_boot, seed, {TASK: results}, {TASK: measure}, LEVELS)
    grid = dense_raw(model, scene_set.image(0), options.dense_scale)[1]
    setup = {"dataset": {"root": str(scene_set.root), "domains": list(scene_set.by_domain()),
                         "classes": scene_set.classes, "scenes": {d: len(i) for d, i in scene_set.by_domain().items()}},
             **describe_models(model, models, files, negation)}
    run = {"seed": seed, "anomaly": {"dense_scale": options.dense_scale, "dense_grid": list(grid),
                                     "merge": options.merge, "ood_prompts": options.ood_prompts,
                                     "pc_templates": options.pc_templates}}
    return Report(TASK, setup, run, {TASK: results, "anomaly_plot": FIGURE}, stats,
                  {FIGURE: lambda folder: plot_anomaly(examples, Path(folder) / FIGURE)})
