"""Render one image of the content/style world from its attributes and a seed.

An image shows one main object (the class) in a colour, size, image type and art style, and 0-2
smaller distractor objects of other classes and colours, drawn in the same image type: clutter, as in
real photos, so that the main object is not the only thing a caption or a feature can describe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from clap.prompts.templates import AttributeVocab, PromptParts
from clap.data_gen.world.priors import StylePriors
from clap.data_gen.world.shapes import SHAPES, shape_mask
from clap.data_gen.world.styles import ART_STYLES, COLOURS, IMAGE_TYPES, MULTICOLORED, Layout, colour_field

SIZE_RADIUS = {"large": 0.40, "normal sized": 0.30, "small": 0.20}
DISTRACTOR_RADIUS = 0.13
DISTRACTOR_COUNTS = (0, 1, 2)
DISTRACTOR_PROBS = (0.5, 0.3, 0.2)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 512
DEFAULT_IMAGE_SIZE = 64


@dataclass(frozen=True)
class WorldAttributes:
    """Content (the class) and the four style factors of one rendered image."""

    class_name: str
    colour: str
    size: str
    image_type: str
    art_style: str
    distractors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check("class", self.class_name, SHAPES)
        _check("colour", self.colour, (*COLOURS, MULTICOLORED))
        _check("size", self.size, tuple(SIZE_RADIUS))
        _check("image type", self.image_type, tuple(IMAGE_TYPES))
        _check("art style", self.art_style, tuple(ART_STYLES))
        for name in self.distractors:
            _check("distractor class", name, SHAPES)

    def prompt(self) -> PromptParts:
        """The template prompt that describes this image's main object."""
        return PromptParts(self.class_name, self.colour, self.size, self.image_type, self.art_style)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "distractors": list(self.distractors)}


def _check(what: str, value: str, known: Iterable[str]) -> None:
    known = tuple(known)
    if value not in known:
        raise ValueError(f"unknown {what} '{value}' for the rendered world; choose from: {', '.join(known)}")


@dataclass(frozen=True)
class WorldSpec:
    """Which classes and style values a render draws from (defaults: the whole world)."""

    classes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = AttributeVocab.default().colour
    sizes: tuple[str, ...] = AttributeVocab.default().size
    image_types: tuple[str, ...] = AttributeVocab.default().image_type
    art_styles: tuple[str, ...] = AttributeVocab.default().art_style
    image_size: int = DEFAULT_IMAGE_SIZE

    def __post_init__(self) -> None:
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image size {self.image_size} is impossible; use {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels"
            )
        for field in ("classes", "colours", "sizes", "image_types", "art_styles"):
            if not getattr(self, field):
                raise ValueError(f"the world spec has no {field}; give at least one")
        for name in self.classes:
            _check("class", name, SHAPES)
        for field, known in (("colour", (*COLOURS, MULTICOLORED)), ("size", SIZE_RADIUS),
                             ("image type", IMAGE_TYPES), ("art style", ART_STYLES)):
            for value in getattr(self, _PLURAL[field]):
                _check(field, value, known)

    def sample(self, rng: np.random.Generator, priors: StylePriors | None = None, **fixed: str) -> WorldAttributes:
        """Attributes drawn uniformly (style-balanced), or with the class's typical style under `priors`
        (web-like co-occurrence, for pretraining); values in `fixed` are kept; then the distractors."""
        name = fixed.get("class_name") or self.classes[int(rng.integers(len(self.classes)))]
        lists = {"colour": self.colours, "size": self.sizes, "image_type": self.image_types,
                 "art_style": self.art_styles}
        typical = priors.typical(name) if priors is not None else {}
        values = {}
        for key, options in lists.items():
            use_typical = key in typical and typical[key] in options and rng.random() < priors.p_typical
            values[key] = fixed.get(key) or (typical[key] if use_typical else options[int(rng.integers(len(options)))])
        others = [c for c in self.classes if c != name]
        n = min(int(rng.choice(DISTRACTOR_COUNTS, p=DISTRACTOR_PROBS)), len(others))
        distractors = tuple(others[int(k)] for k in rng.choice(len(others), size=n, replace=False)) if n else ()
        return WorldAttributes(name, distractors=distractors, **values)


_PLURAL = {"colour": "colours", "size": "sizes", "image type": "image_types", "art style": "art_styles"}


def _layout(attrs: WorldAttributes, rng: np.random.Generator, size: int) -> Layout:
    radius = SIZE_RADIUS[attrs.size] * size * rng.uniform(0.92, 1.08)
    angle = rng.uniform(-0.5, 0.5)
    margin = radius + 1
    low_y, high_y = margin, size - margin
    if attrs.image_type == "sculpture":  # keep room for the pedestal below the object
        high_y = max(low_y, size - margin - 0.15 * size)
    cx = rng.uniform(margin, max(margin, size - margin))
    cy = rng.uniform(low_y, max(low_y, high_y))
    return Layout(cx, cy, radius, angle)


def _add_distractors(attrs: WorldAttributes, mask: np.ndarray, paint: np.ndarray, rng: np.random.Generator,
                     size: int) -> tuple[np.ndarray, np.ndarray]:
    """Small objects of other classes and colours placed where they overlap the main object least."""
    colours = [c for c in (*COLOURS, MULTICOLORED) if c != attrs.colour]
    paint = np.array(paint, dtype=np.float32)
    for name in attrs.distractors:
        radius = DISTRACTOR_RADIUS * size * rng.uniform(0.9, 1.1)
        spots = rng.uniform(radius + 1, size - radius - 1, size=(6, 2))
        cx, cy = min(spots, key=lambda p: float(mask[int(p[1]), int(p[0])]))
        extra = shape_mask(name, size, cx, cy, radius, rng.uniform(-0.5, 0.5)) * (1.0 - mask)
        colour = colours[int(rng.integers(len(colours)))]
        paint = paint * (1.0 - extra[..., None]) + colour_field(colour, rng, size) * extra[..., None]
        mask = np.clip(mask + extra, 0.0, 1.0)
    return mask, paint


def render_image(attrs: WorldAttributes, rng: np.random.Generator, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """An RGB uint8 image (image_size x image_size x 3) of the object with these attributes."""
    layout = _layout(attrs, rng, image_size)
    mask = shape_mask(attrs.class_name, image_size, layout.cx, layout.cy, layout.radius, layout.angle)
    paint = colour_field(attrs.colour, rng, image_size)
    if attrs.distractors:
        mask, paint = _add_distractors(attrs, mask, paint, rng, image_size)
    img = IMAGE_TYPES[attrs.image_type](mask, paint, layout, rng, image_size)
    style = ART_STYLES[attrs.art_style]
    if style is not None:
        img = style(np.clip(img, 0.0, 1.0), rng)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image `index` of a render seeded with `seed` (independent of order)."""
    return np.random.default_rng([seed, index])


def render_samples(spec: WorldSpec, seed: int, indices: Iterable[int], priors: StylePriors | None = None,
                   **fixed: str) -> Iterator[tuple[np.ndarray, WorldAttributes]]:
    """(image, attributes) for each index; image i depends only on (seed, i, priors, fixed)."""
    for index in indices:
        rng = image_rng(seed, index)
        attrs = spec.sample(rng, priors, **fixed)
        yield render_image(attrs, rng, spec.image_size), attrs


def render_arrays(spec: WorldSpec, seed: int, n: int, start: int = 0, priors: StylePriors | None = None,
                  **fixed: str) -> tuple[np.ndarray, list[WorldAttributes]]:
    """n images as one uint8 array [n, S, S, 3] plus their attributes."""
    images = np.empty((n, spec.image_size, spec.image_size, 3), np.uint8)
    records = []
    for k, (img, attrs) in enumerate(render_samples(spec, seed, range(start, start + n), priors, **fixed)):
        images[k] = img
        records.append(attrs)
    return images, records
