"""The segmentation route: VL4AD's mask decoder trained on in-distribution scenes over frozen dense features.

    clap train --config experiments/configs/world_vl4ad.yaml --data.root SCENES --out adapters/vl4ad

`SceneDataModule` computes every scene's MaskCLIP features once (the scene enlarged `dense_scale` times), its label
map at the decoder's mask size (nearest) and the frozen class text features; scenes holding anomaly pixels are
refused (the decoder never sees an anomaly). `SegmentationModule` trains `MaskDecoder` with Mask2Former's set loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from clap.adapter.mask_decoder import DECODER_DEFAULTS, MaskDecoder, decoder_config
from clap.data.scenes import read_scenes
from clap.errors import ClapError
from clap.model import check_templates
from clap.options import PATH, POSITIVE, SCALE, Count, Text, check_options
from clap.training.mask_losses import set_loss
from clap.training.modules import AdapterModule
from clap.training.steps import FrozenFeatureDataModule


class SceneChunks:
    """Scenes drawn with replacement for `chunk_steps` steps of one rank: their dense features and label maps."""

    def __init__(self, dense: torch.Tensor, labels: torch.Tensor, batch_size: int, chunk_steps: int, seed: int,
                 rank: int = 0) -> None:
        self.dense, self.labels = dense, labels
        self.batch_size, self.chunk_steps, self.seed, self.rank = batch_size, chunk_steps, seed, rank

    def __call__(self, chunk: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, chunk])
        picks = torch.from_numpy(rng.integers(0, len(self.dense), size=self.chunk_steps * self.batch_size))
        return {"features": self.dense[picks], "labels": self.labels[picks]}


class SceneDataModule(FrozenFeatureDataModule):
    """In-distribution scenes with label maps (`clap world render --layout scenes --no-ood`) as frozen dense
    features, for the segmentation route.

    Args:
        root: the scenes folder.
        batch_size: scenes per step.
        window: steps per early-stopping window.
        dense_scale: how many times each scene is enlarged before its dense features (a finer grid).
        mask_size: the side of the decoder's square masks (label maps are resized to it, nearest).
        template: the class prompt of the frozen class text features.
        concepts: a max-logit concept ensemble per class (VL4AD's): "world" (the world's concepts preset) or a JSON
            file {class: [concept phrases]}; each class is then the best of its concepts' features.
        adapter: a CLAP adapter folder: the decoder trains in that route's feature space, on the adapter's dense
            features (per location) and class text, at its alpha chosen on validation (else its recorded one).
        chunk_samples: scenes drawn ahead at a time.
        shared: `FrozenFeatureDataModule`'s (model, pretrained, seed, device, precision, ...).
    """

    LIMITS = {**FrozenFeatureDataModule.LIMITS, "root": PATH, "dense_scale": SCALE, "mask_size": Count(4, 512),
              "template": Text(what="a template with '{}'"), "concepts": PATH, "adapter": PATH}

    def __init__(self, root: str, batch_size: int = 8, window: int = 100, dense_scale: float = 2.0,
                 mask_size: int = 32, template: str = DECODER_DEFAULTS["template"], concepts: str | None = None,
                 adapter: str | None = None, chunk_samples: int = 2048, **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        check_templates([template], "SceneDataModule.template: ")
        super().__init__(**shared)
        self.save_hyperparameters()

    def read_inputs(self) -> None:
        self.scenes = read_scenes(self.hparams.root)
        self.classes = self.scenes.classes
        self.void = self.scenes.void
        self.dataset = self.hparams.dataset_name or Path(self.hparams.root).name
        for i in range(len(self.scenes)):
            if (self.scenes.label(i) == self.scenes.anomaly).any():
                raise ClapError(f"{self.scenes.labels[i]} holds anomaly pixels: the decoder trains on in-distribution "
                                "scenes only; render them with `clap world render --layout scenes --no-ood`")

    def encode_once(self, backbone) -> None:
        hp, dense, labels = self.hparams, [], []
        model = feature_model(backbone, hp.adapter)
        self.feature_adapter = feature_record(model, hp.adapter)
        for i in range(len(self.scenes)):
            pixels = self.scenes.image(i)
            with torch.no_grad():
                dense.append(adapted_dense(model, backbone.encode_image_dense(pixels[None], hp.dense_scale)[0]).cpu())
            label = torch.from_numpy(self.scenes.label(i, tuple(pixels.shape[1:])).astype(np.int64))
            labels.append(F.interpolate(label[None, None].float(), size=(hp.mask_size,) * 2, mode="nearest")[0, 0])
        self.dense, self.labels = torch.stack(dense), torch.stack(labels).long()
        self.concepts = class_concepts(hp.concepts, self.classes)
        with torch.no_grad():
            self.text, self.owners = concept_features(model, self.classes, hp.template, self.concepts)

    def training_data(self) -> dict:
        return {"route": "segmentation", "classes": len(self.classes), "scenes": len(self.scenes),
                "source": str(self.hparams.root)}

    def producer(self, rank: int) -> SceneChunks:
        hp = self.hparams
        return SceneChunks(self.dense, self.labels, hp.batch_size, self.chunk_steps, hp.seed, rank)


def feature_model(backbone, adapter: str | None):
    """The model whose features a decoder trains on: the frozen backbone, or it behind a CLAP adapter (at the alpha
    chosen on validation, else its recorded one)."""
    from clap.adapter.disentangler import Disentangler
    from clap.model import CLAPModel

    if adapter is None:
        return CLAPModel(backbone)
    loaded = Disentangler.from_pretrained(adapter)
    if loaded.config.route not in ("text", "image"):
        raise ClapError(f"SceneDataModule.adapter {adapter} is a {loaded.config.route} adapter; give a CLAP (text) "
                        "or Im.Aug (image) adapter, whose features the decoder then trains on")
    chosen = (loaded.config.alpha_selection or {}).get("alpha")
    return CLAPModel(backbone, loaded, None if chosen is None else float(chosen))


def feature_record(model, adapter: str | None) -> dict | None:
    """What a decoder's config records of its feature adapter: the folder and the alpha (scoring checks both)."""
    return None if adapter is None else {"path": str(Path(adapter).expanduser().resolve()), "alpha": model.alpha}


def adapted_dense(model, dense: torch.Tensor) -> torch.Tensor:
    """Dense features [D, h, w] with the model's adapter applied at every location (the frozen ones unchanged)."""
    if model.adapter is None:
        return dense
    d, h, w = dense.shape
    return model.adapt(dense.flatten(1).T).T.reshape(-1, h, w)


def class_concepts(source: str | None, classes: list[str]) -> dict[str, list[str]] | None:
    """{class: concepts} for a decoder's classes from "world" (the preset) or a JSON file; None without."""
    if source is None:
        return None
    from clap.prompts.classes import preset_concepts

    if source == "world":
        table = preset_concepts("world")
    else:
        try:
            table = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ClapError(f"concepts {source}: not a readable JSON of {{class: [concepts]}} ({e})") from None
    missing = [c for c in classes if not table.get(c)]
    if missing or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in table.values()):
        raise ClapError(f"concepts {source}: every class needs a list of concept phrases; missing {missing[:4]}")
    return {c: list(table[c]) for c in classes}


def concept_features(model, classes: list[str], template: str, concepts: dict[str, list[str]] | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The class text features a decoder is trained and scored against: one per class in `template`, or, with
    concepts, one per concept (the phrase in the template) with its class index [P]."""
    from clap.prompts.templates import fill, format_template

    if concepts is None:
        return model.encode_text([format_template(template, c) for c in classes]).cpu(), None
    phrases = [(k, fill(template, phrase)) for k, c in enumerate(classes) for phrase in concepts[c]]
    return model.encode_text([text for _, text in phrases]).cpu(), torch.tensor([k for k, _ in phrases])


class SegmentationModule(AdapterModule):
    """VL4AD's mask decoder (segmentation route) trained with Mask2Former's set loss on `SceneDataModule`.

    Args:
        queries, width, layers, heads: the decoder's N queries, its width, transformer decoder layers and heads.
        temperature: T of the mask classification softmax(cos(v, t) / T).
        lr, weight_decay: Adam (default lr 1e-3: the decoder starts from scratch).
        window: as `CLAPModule`.
    """

    route = "segmentation"
    LR = 1e-3
    LIMITS = {**AdapterModule.LIMITS, "queries": Count(1, 1024), "width": Count(4, 4096), "layers": Count(1, 64),
              "heads": Count(1, 64), "temperature": POSITIVE}

    def __init__(self, queries: int = 16, width: int = 64, layers: int = 2, heads: int = 4,
                 temperature: float = DECODER_DEFAULTS["temperature"], **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        if shared.get("in_dim") is not None:
            raise ClapError("SegmentationModule takes its feature size from the data module's backbone; drop in_dim")
        if width % heads:
            raise ClapError(f"SegmentationModule.width {width} must be a multiple of heads {heads}")
        self._frozen: list = []  # the class text features and the void label, kept out of the state dict
        super().__init__(**shared)
        self.save_hyperparameters()

    def configure_model(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "text"):
            raise ClapError("the segmentation route trains on scenes: use `data` SceneDataModule")
        self._frozen = [datamodule.text, datamodule.owners, datamodule.void]
        if self.adapter is None:
            hp, data = self.hparams, datamodule.hparams
            self.adapter = MaskDecoder(decoder_config(
                datamodule.embed_dim, datamodule.classes, datamodule.concepts, datamodule.feature_adapter,
                queries=hp.queries, width=hp.width, layers=hp.layers, heads=hp.heads, temperature=hp.temperature,
                mask_size=data.mask_size, dense_scale=data.dense_scale, template=data.template))

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        text, owners, void = self._frozen
        masks, embeddings = self.adapter(batch["features"])
        logits = self.adapter.class_logits(embeddings, text.to(embeddings.device), owners)
        per_scene = [set_loss(m, c, labels, void) for m, c, labels in zip(masks, logits, batch["labels"])]
        return {k: torch.stack([terms[k] for terms in per_scene]).mean() for k in per_scene[0]}
