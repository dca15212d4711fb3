"""Image-caption pairs as frozen features, for the CLIPN (negation) route.

Three layouts are read: a folder with `captions.jsonl` (rows with "path" and "caption": the world's
captions layout), a folder of images each with a `.txt` caption beside it (CC3M-style), or a JSONL
file whose rows name an image ("path" or "image", relative to the file) and its caption. Image
features and "yes" caption features are encoded once by the frozen backbone; each step draws a
seeded batch of pairs and hands over their token ids, which the "no" path encodes with gradients.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from clap.data.domains import IMAGE_SUFFIXES
from clap.errors import ClapError
from clap.options import PATH, check_options
from clap.training.steps import FrozenFeatureDataModule, load_and_encode

CAPTIONS_FILE = "captions.jsonl"


def read_caption_pairs(root: str | Path) -> tuple[list[Path], list[str]]:
    """(image paths, captions) from any of the three layouts."""
    root = Path(root)
    if root.is_file():
        return _jsonl_pairs(root, root.parent)
    if not root.is_dir():
        raise ClapError(f"caption data {root} does not exist; give a folder or a JSONL file of image-caption pairs")
    if (root / CAPTIONS_FILE).is_file():
        return _jsonl_pairs(root / CAPTIONS_FILE, root)
    images = sorted(p for p in root.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.with_suffix(".txt").is_file())
    if not images:
        raise ClapError(f"{root} has no {CAPTIONS_FILE} and no images with a .txt caption beside them")
    return images, [p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in images]


def _jsonl_pairs(path: Path, base: Path) -> tuple[list[Path], list[str]]:
    paths, captions = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            paths.append(base / row.get("path", row.get("image")))
            captions.append(str(row["caption"]))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise ClapError(f"{path}:{number}: expected a JSON object with \"path\" (or \"image\") and "
                            "\"caption\"") from None
    if not paths:
        raise ClapError(f"{path} lists no image-caption pairs")
    return paths, captions


class CaptionChunks:
    """Seeded batches of pair indices for `chunk_steps` steps of one rank."""

    def __init__(self, images: torch.Tensor, yes: torch.Tensor, tokens: torch.Tensor, batch_size: int,
                 chunk_steps: int, seed: int, rank: int = 0) -> None:
        self.images, self.yes, self.tokens = images, yes, tokens
        self.batch_size, self.chunk_steps, self.seed, self.rank = batch_size, chunk_steps, seed, rank

    def __call__(self, chunk: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, chunk])
        picks = torch.from_numpy(rng.integers(0, len(self.images), self.chunk_steps * self.batch_size))
        return {"image": self.images[picks], "yes": self.yes[picks], "tokens": self.tokens[picks]}


class CaptionDataModule(FrozenFeatureDataModule):
    """(image, "yes" caption feature, caption tokens) batches for the CLIPN route.

    Args:
        root: a folder with captions.jsonl (`clap world render --layout captions`), a folder of images with
            .txt captions beside them, or a JSONL file of {"path", "caption"} rows.
        model, pretrained, quick_gelu, preprocess: the frozen backbone (None = the embedded tiny CLIP).
        dataset_name: recorded in the adapter config (default: the folder name).
        batch_size: pairs per step (every other pair in the batch is a "no" example).
        window: steps per epoch (the early-stopping window).
        chunk_samples: pairs drawn ahead at a time.
        encode_batch_size: images or texts per frozen forward.
        seed: sampling seed.
        device: where the frozen backbone runs.
    """

    LIMITS = {**FrozenFeatureDataModule.LIMITS, "root": PATH}

    def __init__(self, root: str, model: str | None = None, pretrained: str | None = None,
                 dataset_name: str | None = None, batch_size: int = 64, window: int = 480, chunk_samples: int = 4096,
                 encode_batch_size: int = 256, seed: int = 0, device: str = "cpu", quick_gelu: bool | None = None,
                 preprocess: dict | None = None) -> None:
        check_options(self.LIMITS, locals())
        super().__init__()
        self.save_hyperparameters()

    def read_inputs(self) -> None:
        self.paths, self.captions = read_caption_pairs(self.hparams.root)
        self.classes: list[str] = []
        self.dataset = self.hparams.dataset_name or Path(self.hparams.root).name

    def encode_once(self, backbone) -> None:
        bs = self.hparams.encode_batch_size
        keep, _, images = load_and_encode(backbone, self.paths, bs)
        captions = [self.captions[i] for i in keep]
        self.images = F.normalize(images.float(), dim=-1)
        self.yes = F.normalize(backbone.encode_texts(captions, batch_size=bs).float(), dim=-1)
        self.tokens = backbone.tokenize(captions).cpu()
        self.token_width = backbone.token_width

    def producer(self, rank: int) -> CaptionChunks:
        hp = self.hparams
        return CaptionChunks(self.images, self.yes, self.tokens, hp.batch_size, self.chunk_steps, hp.seed, rank)
