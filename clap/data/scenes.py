"""Scenes with pixel label maps, for pixel-wise anomaly segmentation: the world's scene renders.

A `SceneSet` lists each scene's image, its label map (uint8 PNG, the Cityscapes convention: an in-distribution
label's index, `anomaly` for anomaly pixels, `void` for pixels every metric ignores) and its domain (the image type;
metrics are reported per domain and as their unweighted mean). `classes` names the in-distribution labels by index,
the background included.

    root/world.json ("labels": classes, background, anomaly, void), root/scenes.jsonl, root/images, root/labels
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clap.errors import ClapError

BACKGROUND_NAME = "background"


@dataclass(frozen=True)
class SceneSet:
    """Scenes of one folder: image and label map paths, each scene's domain, the ID label names, the special ids."""

    root: Path
    images: list[Path]
    labels: list[Path]
    domains: list[str]
    classes: list[str]
    anomaly: int
    void: int

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> torch.Tensor:
        """Scene i's pixels [3, H, W] in [0, 1]."""
        with Image.open(self.images[i]) as image:
            return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255

    def label(self, i: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Scene i's label map [H, W]; given the image's (H, W), a map of another size is one ClapError line."""
        try:
            with Image.open(self.labels[i]) as image:
                labels = np.array(image)
        except OSError as e:
            raise ClapError(f"cannot read label map {self.labels[i]}: {e}") from None
        if labels.ndim != 2:
            raise ClapError(f"label map {self.labels[i]} has {labels.shape[-1]} channels; give one channel of label "
                            "indices (a palette or greyscale PNG)")
        if size is not None and labels.shape != tuple(size):
            raise ClapError(f"label map {self.labels[i]} is {labels.shape[1]}x{labels.shape[0]}, its image "
                            f"{self.images[i].name} {size[1]}x{size[0]}; give label maps of the images' size")
        return labels

    def by_domain(self) -> dict[str, list[int]]:
        """Scene indices of each domain, domains in first-seen order."""
        out: dict[str, list[int]] = {}
        for i, d in enumerate(self.domains):
            out.setdefault(d, []).append(i)
        return out


def read_scenes(root: str | Path) -> SceneSet:
    """The scenes of a `clap world render --layout scenes` folder; a folder of another kind is one ClapError line."""
    root = Path(root).expanduser()
    manifest, world = root / "scenes.jsonl", root / "world.json"
    if not (manifest.is_file() and world.is_file()):
        raise ClapError(f"{root} holds no scenes with label maps (no scenes.jsonl and world.json); render some with "
                        "`clap world render --layout scenes --scenes N --out DIR`")
    try:
        spec = json.loads(world.read_text(encoding="utf-8"))["labels"]
        rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
        names = list(spec["classes"])
        classes = names[:spec["background"]] + [BACKGROUND_NAME] + names[spec["background"]:]
        scenes = [(root / r["image"], root / r["label"], r["image_type"]) for r in rows]
        anomaly, void = int(spec["anomaly"]), int(spec["void"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ClapError(f"{root}: cannot read its scenes.jsonl and world.json labels ({type(e).__name__}: {e}); "
                        "render the scenes again") from None
    if not scenes:
        raise ClapError(f"{root}/scenes.jsonl lists no scenes")
    missing = [p for _, p, _ in scenes if not p.is_file()] + [p for p, _, _ in scenes if not p.is_file()]
    if missing:
        raise ClapError(f"{root}: {len(missing)} scene files are missing, e.g. {missing[0]}; finish the render "
                        "(rerun the same `clap world render` command) or render the scenes again")
    images, labels, domains = (list(column) for column in zip(*scenes))
    return SceneSet(root, images, labels, domains, classes, anomaly, void)
