"""Scenes with pixel label maps, for pixel-wise anomaly segmentation: the world's scene renders and the real
benchmarks' folder layouts.

A `SceneSet` lists each scene's image, its label map (uint8 PNG, the Cityscapes convention: an in-distribution
label's index, `anomaly` for anomaly pixels, `void` for pixels every metric ignores) and its domain (metrics are
reported per domain and as their unweighted mean). `classes` names the in-distribution labels by index (the texts
every pixel is scored against). `read_scenes` recognises:

- the world: root/world.json ("labels": classes, background, anomaly, void), root/scenes.jsonl, images, labels;
  domains are image types;
- Cityscapes (training a decoder): root/leftImg8bit/train/<city>/<stem>_leftImg8bit.png with
  root/gtFine/train/<city>/<stem>_gtFine_labelTrainIds.png (cityscapesScripts' 19 train ids, 255 ignored);
- RoadAnomaly (Lis et al. 2019): root/frames/<stem>.jpg with root/frames/<stem>.labels/labels_semantic.png
  (0 in-distribution, 2 anomaly);
- SegmentMeIfYouCan's anomaly or obstacle track: root/images/<stem>.jpg (or .webp) with
  root/labels_masks/<stem>_labels_semantic.png (0 in-distribution, 1 anomaly, 255 void).
The real test sets label only anomaly against the rest, and are scored against Cityscapes' 19 classes.
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
CITYSCAPES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
              "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
"""Cityscapes' 19 evaluation classes in train-id order (cityscapesScripts' labels.py)."""
VOID = 255


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
        self._check_values(labels, i)
        return labels

    def _check_values(self, labels: np.ndarray, i: int) -> None:
        """Every value is a class id, the anomaly id or void (e.g. Cityscapes labelIds given for trainIds are not)."""
        n = len(self.classes)
        strange = np.unique(labels[(labels >= n) & (labels != self.anomaly) & (labels != self.void)])
        if strange.size:
            raise ClapError(f"label map {self.labels[i]} holds the values {strange[:8].tolist()}, neither a class id "
                            f"(0-{n - 1}), the anomaly id {self.anomaly} nor void {self.void}; give label maps of "
                            "these ids (Cityscapes: the labelTrainIds maps, not labelIds)")

    def by_domain(self) -> dict[str, list[int]]:
        """Scene indices of each domain, domains in first-seen order."""
        out: dict[str, list[int]] = {}
        for i, d in enumerate(self.domains):
            out.setdefault(d, []).append(i)
        return out


def read_scenes(root: str | Path) -> SceneSet:
    """The scenes of a folder in one of the layouts above; anything else is one ClapError line."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ClapError(f"scenes folder {root} does not exist")
    if (root / "world.json").is_file() and _layout(root / "world.json") not in ("scenes", None):
        raise ClapError(f"{root} is a world render of the {_layout(root / 'world.json')} layout, not of scenes; "
                        "render scenes with `clap world render --layout scenes --scenes N --out DIR`")
    if (root / "scenes.jsonl").is_file() or (root / "world.json").is_file():
        return _world(root)
    for marker, reader in ((root / "leftImg8bit" / "train", _cityscapes), (root / "frames", _road_anomaly),
                           (root / "labels_masks", _smiyc)):
        if marker.is_dir():
            return reader(root)
    raise ClapError(f"{root} holds no scenes with label maps (no scenes.jsonl and world.json, nor a Cityscapes, "
                    "RoadAnomaly or SegmentMeIfYouCan layout); render some with "
                    "`clap world render --layout scenes --scenes N --out DIR`")


def _layout(world: Path) -> str | None:
    """The layout a world render records (None: unreadable, left to the reader's own message)."""
    try:
        layout = json.loads(world.read_text(encoding="utf-8")).get("layout")
    except (OSError, ValueError, AttributeError):
        return None
    return layout if isinstance(layout, str) else None


def _world(root: Path) -> SceneSet:
    manifest, world = root / "scenes.jsonl", root / "world.json"
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
    return _scene_set(root, scenes, classes, anomaly, void)


def _cityscapes(root: Path) -> SceneSet:
    images = sorted((root / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))
    scenes = [(p, root / "gtFine" / "train" / p.parent.name / p.name.replace("_leftImg8bit.png",
                                                                             "_gtFine_labelTrainIds.png"),
               p.parent.name) for p in images]
    return _scene_set(root, scenes, list(CITYSCAPES), VOID - 1, VOID, "run cityscapesScripts' createTrainIdLabelImgs")


def _road_anomaly(root: Path) -> SceneSet:
    images = sorted((root / "frames").glob("*.jpg"))
    scenes = [(p, p.with_suffix(".labels") / "labels_semantic.png", "RoadAnomaly") for p in images]
    return _scene_set(root, scenes, list(CITYSCAPES), 2, VOID)


def _smiyc(root: Path) -> SceneSet:
    labels = sorted((root / "labels_masks").glob("*_labels_semantic.png"))
    scenes = []
    for label in labels:
        stem = label.name.removesuffix("_labels_semantic.png")
        image = next((p for p in (root / "images" / f"{stem}{s}" for s in (".jpg", ".webp", ".png")) if p.is_file()),
                     root / "images" / f"{stem}.jpg")
        scenes.append((image, label, root.name))
    return _scene_set(root, scenes, list(CITYSCAPES), 1, VOID)


def _scene_set(root: Path, scenes: list[tuple[Path, Path, str]], classes: list[str], anomaly: int, void: int,
               hint: str = "finish the render (rerun the same `clap world render` command) or render it again"
               ) -> SceneSet:
    if not scenes:
        raise ClapError(f"{root} lists no scenes (no image with a label map)")
    missing = [p for _, p, _ in scenes if not p.is_file()] + [p for p, _, _ in scenes if not p.is_file()]
    if missing:
        raise ClapError(f"{root}: {len(missing)} scene files are missing, e.g. {missing[0]}; {hint}")
    images, labels, domains = (list(column) for column in zip(*scenes))
    return SceneSet(root, images, labels, domains, classes, anomaly, void)
