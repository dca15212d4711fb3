"""Image-caption pairs as frozen features, for the CLIPN (negation) route.

Three layouts are read: a folder with `captions.jsonl` (rows with "path" and "caption": the world's
captions layout), a folder of images each with a `.txt` caption beside it (CC3M-style), or a JSONL
file whose rows name an image ("path" or "image", relative to the file) and its caption. Image
features and "yes" caption features are encoded once by the frozen backbone; each step draws a
seeded batch of pairs and hands over their token ids, which the "no" path encodes with gradients, and
a meaning id per pair (the pair itself, or a JSONL field such as the world's `class_name`), so that two
pairs of the same meaning are not taught to be each other's "no".
"""

from __future__ import annotations

from typing import Any

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from clap.data.domains import IMAGE_SUFFIXES
from clap.errors import ClapError
from clap.options import NAME, PATH, check_options
from clap.training.steps import FrozenFeatureDataModule, load_and_encode

CAPTIONS_FILE = "captions.jsonl"


def read_caption_pairs(root: str | Path, field: str | None = None) -> tuple[list[Path], list[str], list[str] | None]:
    """(image paths, captions, each pair's `field` value or None) from any of the three layouts."""
    root = Path(root)
    if root.is_file():
        return _jsonl_pairs(root, root.parent, field)
    if not root.is_dir():
        raise ClapError(f"caption data {root} does not exist; give a folder or a JSONL file of image-caption pairs")
    if (root / CAPTIONS_FILE).is_file():
        return _jsonl_pairs(root / CAPTIONS_FILE, root, field)
    images = sorted(p for p in root.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.with_suffix(".txt").is_file())
    if not images:
        raise ClapError(f"{root} has no {CAPTIONS_FILE} and no images with a .txt caption beside them")
    if field is not None:
        raise ClapError(f"{root} holds .txt captions, which have no field {field!r}; leave same_meaning unset")
    return images, [p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in images], None


def _jsonl_pairs(path: Path, base: Path, field: str | None) -> tuple[list[Path], list[str], list[str] | None]:
    paths, captions, values = [], [], []
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
        if field is not None:
            if field not in row:
                raise ClapError(f"{path}:{number}: no field {field!r} (same_meaning); name a field every row has")
            values.append(json.dumps(row[field], sort_keys=True))
    if not paths:
        raise ClapError(f"{path} lists no image-caption pairs")
    return paths, captions, values if field is not None else None


def shown_classes(root: str | Path) -> list[str]:
    """The classes a JSONL caption set names or shows, from its rows' `class_name` and `distractors` fields (a world
    render's captions.jsonl), sorted; [] where the rows carry neither (caption data that does not say)."""
    root = Path(root)
    path = root / CAPTIONS_FILE if root.is_dir() else root
    if path.suffix != ".jsonl" or not path.is_file():
        return []
    shown: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        named = [row.get("class_name"), *(row.get("distractors") or [])]
        shown.update(c for c in named if isinstance(c, str))
    return sorted(shown)


def meaning_ids(count: int, values: list[str] | None) -> torch.Tensor:
    """[count] ids: equal for pairs of the same meaning (equal field values), else each pair its own."""
    if values is None:
        return torch.arange(count)
    codes = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return torch.tensor([codes[v] for v in values])


class CaptionChunks:
    """Seeded batches of pair indices for `chunk_steps` steps of one rank."""

    def __init__(self, images: torch.Tensor, yes: torch.Tensor, tokens: torch.Tensor, meaning: torch.Tensor,
                 batch_size: int, chunk_steps: int, seed: int, rank: int = 0) -> None:
        self.images, self.yes, self.tokens, self.meaning = images, yes, tokens, meaning
        self.batch_size, self.chunk_steps, self.seed, self.rank = batch_size, chunk_steps, seed, rank

    def __call__(self, chunk: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, chunk])
        picks = torch.from_numpy(rng.integers(0, len(self.images), self.chunk_steps * self.batch_size))
        return {"image": self.images[picks], "yes": self.yes[picks], "tokens": self.tokens[picks],
                "meaning": self.meaning[picks]}


class CaptionDataModule(FrozenFeatureDataModule):
    """(image, "yes" caption feature, caption tokens, meaning id) batches for the CLIPN route.

    Args:
        root: a folder with captions.jsonl (`clap world render --layout captions`), a folder of images with
            .txt captions beside them, or a JSONL file of {"path", "caption"} rows.
        batch_size: pairs per step (every other pair in the batch is a "no" example, unless of the same meaning).
        same_meaning: a JSONL field (e.g. `class_name` in a world render's captions.jsonl) whose equal values
            mark pairs of the same meaning, left out of each other's "no" term; default: only a pair drawn
            twice into one batch.
        window: steps per epoch (the early-stopping window).
        chunk_samples: pairs drawn ahead at a time.
        encode_batch_size: images or texts per frozen forward.
        shared: `FrozenFeatureDataModule`'s (model, pretrained, dataset_name (default: the folder name), seed,
            device, precision, ...).
    """

    LIMITS = {**FrozenFeatureDataModule.LIMITS, "root": PATH, "same_meaning": NAME}

    def __init__(self, root: str, batch_size: int = 64, same_meaning: str | None = None, window: int = 480,
                 chunk_samples: int = 4096, encode_batch_size: int = 256, **shared: Any) -> None:
        check_options(self.LIMITS, locals())
        super().__init__(**shared)
        self.save_hyperparameters()

    def read_inputs(self) -> None:
        self.paths, self.captions, self.meaning_values = read_caption_pairs(self.hparams.root,
                                                                             self.hparams.same_meaning)
        self.classes: list[str] = shown_classes(self.hparams.root)  # recorded: what an OOD report checks for leaks
        self.dataset = self.hparams.dataset_name or Path(self.hparams.root).name

    def encode_once(self, backbone) -> None:
        bs = self.hparams.encode_batch_size
        keep, _, images = load_and_encode(backbone, self.paths, bs)
        captions = [self.captions[i] for i in keep]
        values = None if self.meaning_values is None else [self.meaning_values[i] for i in keep]
        self.meaning = meaning_ids(len(keep), values)
        self.images = F.normalize(images.float(), dim=-1)
        self.yes = F.normalize(backbone.encode_texts(captions, batch_size=bs).float(), dim=-1)
        self.tokens = backbone.tokenize(captions).cpu()
        self.token_width = backbone.token_width

    def training_data(self) -> dict:
        return {"route": "negation", "pairs": len(self.images), "source": str(self.hparams.root)}

    def producer(self, rank: int) -> CaptionChunks:
        hp = self.hparams
        return CaptionChunks(self.images, self.yes, self.tokens, self.meaning, hp.batch_size, self.chunk_steps,
                             hp.seed, rank)
