"""The anomaly task of the table: the scenes, models and mask decoders it scores (`SceneSetup`), and the run
turned into the report's entries (`anomaly_output`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from clap.adapter.mask_decoder import MaskDecoder
from clap.data.scenes import SceneSet, read_scenes
from clap.errors import ClapError
from clap.evaluation.protocols.anomaly import FIGURE, TASK, AnomalyOptions, merge_groups, run_anomaly
from clap.evaluation.output.plots import plot_anomaly
from clap.evaluation.inputs.setup import adapter_file_info, describe_models, load_backbone_for, load_models
from clap.evaluation.pipeline.task_output import TaskOutput

if TYPE_CHECKING:
    from clap.evaluation.pipeline.tasks import EvalOptions

LEVELS = ("training seeds of a seed group, with replacement",
          "scenes within each domain (image type), the same for every model")


@dataclass
class SceneSetup:
    """What the anomaly task scores: the scenes, the backbone, CLIP and each adapter's model (their files), and the
    mask decoders each model owns ({model: [decoder folders]}, loaded in `decoders`)."""

    scenes: SceneSet
    backbone: object
    models: dict
    files: dict
    owners: dict[str, list[str]]
    decoders: dict[str, MaskDecoder]
    negation: dict = field(default_factory=dict)

    def describe(self) -> dict:
        by_domain = self.scenes.by_domain()
        return {"dataset": {"root": str(self.scenes.root), "domains": list(by_domain), "classes": self.scenes.classes,
                            "scenes": {d: len(i) for d, i in by_domain.items()}},
                **describe_models(self.backbone, self.models, self.files, self.negation)}


def build_scene_setup(scenes: str | Path | SceneSet, adapters: Sequence, backbone, options) -> SceneSetup:
    """Read the scenes (or take a `SceneSet` already read), load the backbone (a `Backbone`, or `load_backbone`
    keywords on `options.device`), CLIP and each adapter's model, and the mask decoders (`options.decoder`), each
    to the model whose features it was trained on."""
    scene_set = scenes if isinstance(scenes, SceneSet) else read_scenes(scenes)
    model = load_backbone_for(backbone, options.device, options.precision)
    models, files, negation = load_models(model, adapters)
    if negation:
        raise ClapError(f"{', '.join(negation)}: CLIPN (negation) adapters score whole images (the ood task); "
                        "pixel-wise anomaly segmentation compares CLIP-space adapters")
    loaded = {str(folder): load_decoder(folder, model, scene_set) for folder in options.decoder or ()}
    return SceneSetup(scene_set, model, models, files, decoder_owners(loaded, models, files), loaded)


def anomaly_output(setup: SceneSetup, options: EvalOptions) -> TaskOutput:
    """The anomaly task of `clap.evaluate` (`EvalOptions`: dense_scale, merge, ood_prompts, templates, decoder)."""
    settings = AnomalyOptions(options.dense_scale, merge_groups(options.merge, setup.scenes.classes),
                              tuple(options.ood_prompts) if options.ood_prompts else None,
                              tuple(options.templates) if options.templates else None)
    decoders = {name: [setup.decoders[f] for f in found] for name, found in setup.owners.items()}
    results, per_decoder, measure, examples = run_anomaly(setup.scenes, setup.backbone, setup.models, settings,
                                                          decoders, options.progress)
    decoder_info = {name: [adapter_file_info(f) | {"config": setup.decoders[f].config.decoder} for f in found]
                    for name, found in setup.owners.items()}
    grid = setup.backbone.encode_image_dense(setup.scenes.image(0)[None], settings.dense_scale).shape[2:]
    run = {"protocol": {"name": "VL4AD pixel-wise anomaly segmentation (anomaly pixels positive, void ignored)"},
           "anomaly": {"dense_scale": settings.dense_scale, "dense_grid": list(grid), "merge": settings.merge,
                       "ood_prompts": settings.ood_prompts, "pc_templates": settings.pc_templates,
                       "decoders": decoder_info}}
    return TaskOutput({TASK: results, "anomaly_decoders": per_decoder, "anomaly_plot": FIGURE}, {TASK: measure},
                      {FIGURE: lambda folder: plot_anomaly(examples, Path(folder) / FIGURE)}, run, LEVELS)


def decoder_owners(decoders: dict[str, MaskDecoder], models: dict, files: dict[str, dict]) -> dict[str, list[str]]:
    """{model: [decoder folders]}: each decoder to the model whose features it was trained on (the frozen model's:
    CLIP; an adapter's: the model of that adapter file at that alpha); one ClapError line for a decoder no model
    given has."""
    owners: dict[str, list[str]] = {}
    for folder, found in decoders.items():
        wanted = found.feature_adapter
        matches = [name for name, m in models.items()
                   if (m.adapter is None if wanted is None else
                       m.adapter is not None and _same_file(files.get(name, {}).get("adapter"), wanted["path"])
                       and abs(m.alpha - wanted["alpha"]) < 1e-9)]
        if not matches:
            raise ClapError(f"`decoder` {folder} was trained behind the adapter {wanted['path']} at alpha "
                            f"{wanted['alpha']:g}; give that adapter at that alpha (`adapters`: NAME=PATH@ALPHA) to "
                            "score it")
        owners.setdefault(matches[0], []).append(folder)
    return owners


def _same_file(path: str | None, other: str) -> bool:
    return path is not None and Path(path).expanduser().resolve() == Path(other).expanduser().resolve()


def load_decoder(folder: str | Path, backbone, scenes: SceneSet) -> MaskDecoder:
    """A trained mask decoder for this backbone and these scenes' labels, or one ClapError line."""
    from clap.model import check_compatible

    decoder = MaskDecoder.from_pretrained(folder)
    check_compatible(backbone, decoder)
    if decoder.config.classes != scenes.classes:
        raise ClapError(f"`decoder` {folder} was trained on the labels {decoder.config.classes[:4]}..., the scenes "
                        f"have {scenes.classes[:4]}...; train it on scenes of the same label set")
    return decoder.eval()
