"""Scenes of the world with pixel label maps, for pixel-wise anomaly segmentation (VL4AD in miniature).

A scene is a larger canvas (128 px by default) of one image type and art style holding 3-5 objects of
in-distribution classes (the world's classes less its held-out ones) and, in a share of scenes, one object of a
held-out class: the anomaly. Objects do not overlap. Beside every scene image a label map PNG (uint8, the
Cityscapes-style convention): the in-distribution class's index, `background` (the number of ID classes)
where no object is, ANOMALY for the held-out object and VOID (ignored by every metric) on the antialiased
rim where an object covers between 10% and 90% of a pixel. `scenes.jsonl` lists each scene's objects.

    root/images/<n>.png, root/labels/<n>.png, root/scenes.jsonl, root/world.json

Writes are atomic and scenes already written are kept, so an interrupted render resumes; a folder holding
another render is refused. `--no-ood` renders training scenes without anomalies.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from clap.data_gen.world.export import WORLD_FILE
from clap.data_gen.world.render import WorldSpec, image_rng
from clap.data_gen.world.shapes import shape_mask
from clap.data_gen.world.styles import ART_STYLES, COLOURS, IMAGE_TYPES, MULTICOLORED, Layout, colour_field
from clap.errors import ClapError
from clap.fileio import claim_output_folder, folder_lock, save_image_atomic, write_text_atomic

SCENE_SIZE = 128
MIN_SCENE_SIZE, MAX_SCENE_SIZE = 64, 1024  # road-anomaly benchmarks run at 1280 x 720 to 2048 x 1024
OBJECTS = (3, 5)  # in-distribution objects per scene, inclusive
RADIUS = (0.09, 0.14)  # object radius, as a share of the canvas
OOD_SHARE = 0.5  # scenes holding one anomaly
ANOMALY, VOID = 254, 255
RIM = (0.1, 0.9)  # coverage of a void pixel
MANIFEST = "scenes.jsonl"
PLACEMENT_TRIES = 200


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: its class, paint and placement (pixels), and whether it is the anomaly."""

    class_name: str
    colour: str
    cx: float
    cy: float
    radius: float
    angle: float
    anomaly: bool = False

    def mask(self, size: int) -> np.ndarray:
        return shape_mask(self.class_name, size, self.cx, self.cy, self.radius, self.angle)


@dataclass(frozen=True)
class Scene:
    """A scene's style and objects (the anomaly, if any, first: it is placed on the empty canvas)."""

    image_type: str
    art_style: str
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict:
        return {"image_type": self.image_type, "art_style": self.art_style,
                "objects": [dataclasses.asdict(o) for o in self.objects]}


def label_values(id_classes: list[str]) -> dict:
    """What the label maps' values mean."""
    return {"classes": id_classes, "background": len(id_classes), "anomaly": ANOMALY, "void": VOID}


def _place(rng: np.random.Generator, size: int, placed: list[SceneObject]) -> tuple[float, float, float] | None:
    """A centre and radius inside the canvas that keeps clear of every placed object, or None."""
    for _ in range(PLACEMENT_TRIES):
        radius = rng.uniform(*RADIUS) * size
        cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
        if all(np.hypot(cx - o.cx, cy - o.cy) > 1.05 * (radius + o.radius) for o in placed):
            return float(cx), float(cy), float(radius)
    return None


def plan_scene(rng: np.random.Generator, spec: WorldSpec, id_classes: list[str], ood_classes: list[str],
               size: int, with_anomaly: bool) -> Scene:
    """Draw a scene's style, its in-distribution objects and (when asked) one held-out object."""
    image_type = spec.image_types[int(rng.integers(len(spec.image_types)))]
    art_style = spec.art_styles[int(rng.integers(len(spec.art_styles)))]
    count = int(rng.integers(OBJECTS[0], OBJECTS[1] + 1))
    kinds = [(ood_classes[int(rng.integers(len(ood_classes)))], True)] if with_anomaly else []
    kinds += [(id_classes[int(k)], False) for k in rng.choice(len(id_classes), size=count)]
    colours = [*COLOURS, MULTICOLORED]
    placed: list[SceneObject] = []
    for name, anomaly in kinds:
        spot = _place(rng, size, placed)
        if spot is not None:  # a canvas too full for one more object gets fewer
            colour = colours[int(rng.integers(len(colours)))]
            placed.append(SceneObject(name, colour, *spot, float(rng.uniform(-0.5, 0.5)), anomaly))
    return Scene(image_type, art_style, tuple(placed))


def render_scene(scene: Scene, rng: np.random.Generator, size: int, id_classes: list[str]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The scene's RGB uint8 image and its label map (uint8: class index, background, ANOMALY or VOID)."""
    coverage = np.zeros((len(scene.objects), size, size), np.float32)
    paint = np.zeros((size, size, 3), np.float32)
    for k, obj in enumerate(scene.objects):
        coverage[k] = obj.mask(size)
        paint = paint * (1 - coverage[k][..., None]) + colour_field(obj.colour, rng, size) * coverage[k][..., None]
    mask = np.clip(coverage.sum(0), 0.0, 1.0)
    shading = Layout(size / 2, size / 2, 0.4 * size, 0.0)  # light and pedestal for the scene as a whole
    img = IMAGE_TYPES[scene.image_type](mask, paint, shading, rng, size)
    style = ART_STYLES[scene.art_style]
    if style is not None:
        img = style(np.clip(img, 0.0, 1.0), rng)
    values = np.array([ANOMALY if o.anomaly else id_classes.index(o.class_name) for o in scene.objects], np.uint8)
    label = np.where(mask >= RIM[1], values[coverage.argmax(0)], len(id_classes)).astype(np.uint8)
    label[(mask > RIM[0]) & (mask < RIM[1])] = VOID
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), label


def render_scenes(out: str | Path, scenes: int, seed: int, ood: bool = True, spec: WorldSpec | None = None,
                  ood_classes: list[str] | None = None, size: int = SCENE_SIZE, progress: bool = True) -> Path:
    """Render `scenes` scenes into `out` (a share OOD_SHARE with an anomaly unless `ood` is False); returns the
    manifest. The held-out classes default to the world's (`clap.prompts.classes.world_held_out`)."""
    from clap.prompts.classes import world_held_out

    if scenes < 1:
        raise ClapError(f"scenes must be at least 1, got {scenes}")
    if not MIN_SCENE_SIZE <= size <= MAX_SCENE_SIZE:
        raise ClapError(f"scene size {size} is impossible; use {MIN_SCENE_SIZE} to {MAX_SCENE_SIZE} pixels")
    spec = spec or WorldSpec()
    held = list(ood_classes or [c for c in world_held_out() if c in spec.classes])
    id_classes = [c for c in spec.classes if c not in held]
    if not id_classes or (ood and not held):
        raise ClapError("scenes need in-distribution classes and, with anomalies, held-out classes")
    root = Path(out)
    request = {"layout": "scenes", "scenes": scenes, "seed": seed, "ood": ood, "size": size,
               "image_types": list(spec.image_types), "art_styles": list(spec.art_styles),
               "labels": label_values(id_classes), "ood_classes": held}
    with folder_lock(root, "a scene render"):  # a second writer of the same render is refused
        claim_output_folder(root, WORLD_FILE, request, "scene render")
        rows = []
        for n in tqdm(range(scenes), desc=f"rendering {root.name}", unit="scene", disable=not progress):
            rng = image_rng(seed, n)
            scene = plan_scene(rng, spec, id_classes, held, size, ood and rng.random() < OOD_SHARE)
            row = {"image": f"images/{n:06d}.png", "label": f"labels/{n:06d}.png", "index": n, **scene.to_dict()}
            if not ((root / row["image"]).is_file() and (root / row["label"]).is_file()):
                image, label = render_scene(scene, rng, size, id_classes)
                save_image_atomic(Image.fromarray(label), root / row["label"])
                save_image_atomic(Image.fromarray(image), root / row["image"])
            rows.append(row)
        manifest = root / MANIFEST
        write_text_atomic(manifest, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return manifest
