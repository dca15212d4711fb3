"""The image route's data (Im.Aug): synthetic images and their augmented views, as frozen features.

Images come in the layout of the SD generator and of the world's image-route export:
root/<class>/<prompt>/<image>. Each image's clean view (the backbone's eval transform) is encoded
once; augmented views (random resized crop 0.64-1.0, colour jitter, optional block mask,
perspective and flip) are drawn per sample, a chunk of steps at a time, from seeded generators.
"""

from __future__ import annotations

from typing import Any

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms as T

from clap.batching import encode_in_batches
from clap.data.domains import IMAGE_SUFFIXES, class_name_from_folder
from clap.errors import ClapError
from clap.options import PATH, PROBABILITY, Number, check_options
from clap.training.steps import FrozenFeatureDataModule, load_and_encode


@dataclass(frozen=True)
class ImageAugmentation:
    """The method's contrastive image augmentations."""

    crop_scale: tuple[float, float] = (0.64, 1.0)
    jitter: float = 0.4
    jitter_p: float = 0.8
    block_mask_p: float = 0.0
    perspective_p: float = 0.0
    flip_p: float = 0.0

    def transform(self, size: int) -> T.Compose:
        steps = [T.RandomResizedCrop(size, scale=self.crop_scale, interpolation=T.InterpolationMode.BICUBIC)]
        if self.perspective_p > 0:
            steps.append(T.RandomPerspective(p=self.perspective_p))
        if self.flip_p > 0:
            steps.append(T.RandomHorizontalFlip(self.flip_p))
        j = self.jitter
        steps += [T.RandomApply([T.ColorJitter(j, j, j, j / 4)], p=self.jitter_p), T.ToTensor()]
        if self.block_mask_p > 0:
            steps.append(T.RandomErasing(p=self.block_mask_p, scale=(0.05, 0.25), value=0.5))
        return T.Compose(steps)


def scan_image_route(root: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """Image paths, class indices and class names of root/<class>/<prompt>/<image>."""
    root = Path(root)
    if not root.is_dir():
        raise ClapError(f"image folder {root} does not exist; expected root/<class>/<prompt>/<image>")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    inner = [{q.name for q in d.iterdir() if q.is_dir()} for d in class_dirs]
    if len(class_dirs) > 1 and len(inner[0]) > 1 and all(names == inner[0] for names in inner):
        raise ClapError(f"{root} looks like root/domain/class/image (each of {[d.name for d in class_dirs][:4]} holds "
                        f"the same folders {sorted(inner[0])[:4]}); the image route reads "
                        "root/<class>/<prompt>/<image> "
                        "(as `clap generate` writes it): give those images, not an evaluation dataset")
    paths, labels = [], []
    for c, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        paths += files
        labels += [c] * len(files)
    if not paths:
        raise ClapError(f"{root} holds no images in root/<class>/<prompt>/<image> layout")
    return paths, labels, [class_name_from_folder(d.name) for d in class_dirs]


class ImageChunks:
    """Produces clean and augmented image features for `chunk_steps` consecutive steps of one rank."""

    def __init__(self, images: list, clean: torch.Tensor, backbone, augment: T.Compose, batch_size: int,
                 chunk_steps: int, seed: int, rank: int = 0, encode_batch_size: int = 128) -> None:
        self.images, self.clean, self.backbone, self.augment = images, clean, backbone, augment
        self.batch_size, self.chunk_steps, self.seed, self.rank = batch_size, chunk_steps, seed, rank
        self.encode_batch_size = encode_batch_size

    def __call__(self, chunk: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, chunk])
        picks = rng.integers(0, len(self.images), size=self.chunk_steps * self.batch_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            views = [self.augment(self.images[i]) for i in picks]
        augmented = encode_in_batches(lambda batch: self.backbone.encode_image(torch.stack(batch)), views,
                                      self.encode_batch_size)
        return {"image": self.clean[torch.from_numpy(picks)], "augmented": augmented}


class ImageDataModule(FrozenFeatureDataModule):
    """(clean view, augmented view) image features for the Im.Aug image route.

    Args:
        root: images in root/<class>/<prompt>/<image> layout (`clap generate` or `clap world render`).
        batch_size: images per step.
        window: steps per epoch (the early-stopping window).
        crop_scale_min, jitter, jitter_p, block_mask_p, perspective_p, flip_p: augmentations.
        chunk_samples: samples encoded ahead at a time.
        encode_batch_size: images per frozen forward.
        shared: `FrozenFeatureDataModule`'s (model, pretrained, seed of sampling and augmentation, device,
            precision, ...).
    """

    LIMITS = {**FrozenFeatureDataModule.LIMITS, "root": PATH, "crop_scale_min": Number(low=0, high=1, open_low=True),
              "jitter": Number(low=0, high=2), **dict.fromkeys(("jitter_p", "block_mask_p", "perspective_p", "flip_p"),
                                                               PROBABILITY)}

    def __init__(self, root: str, batch_size: int = 8, window: int = 480, crop_scale_min: float = 0.64,
                 jitter: float = 0.4, jitter_p: float = 0.8, block_mask_p: float = 0.0, perspective_p: float = 0.0,
                 flip_p: float = 0.0, chunk_samples: int = 2048, encode_batch_size: int = 128, **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        super().__init__(**shared)
        self.save_hyperparameters()
        self.augmentation = ImageAugmentation((crop_scale_min, 1.0), jitter, jitter_p, block_mask_p, perspective_p,
                                              flip_p)
        self.images: list | None = None

    def read_inputs(self) -> None:
        root = self.hparams.root
        self.paths, _, self.classes = scan_image_route(root)
        self.dataset = self.hparams.dataset_name or Path(root).name

    def encode_once(self, backbone) -> None:
        _, self.images, self.clean = load_and_encode(backbone, self.paths, self.hparams.encode_batch_size)

    def training_data(self) -> dict:
        return {"route": "image", "classes": len(self.classes), "images": len(self.images),
                "source": str(self.hparams.root)}

    def producer(self, rank: int) -> ImageChunks:
        hp = self.hparams
        augment = self.augmentation.transform(self.backbone.image_size)
        return ImageChunks(self.images, self.clean, self.backbone, augment, hp.batch_size, self.chunk_steps, hp.seed,
                           rank, hp.encode_batch_size)
