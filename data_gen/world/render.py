"""Render one image of the content/style world from its attributes and a seed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from clap.prompts.templates import AttributeVocab, PromptParts
from clap.data_gen.world.shapes import SHAPES, shape_mask
from clap.data_gen.world.styles import ART_STYLES, COLOURS, IMAGE_TYPES, MULTICOLORED, Layout, colour_field

SIZE_RADIUS = {"large": 0.40, "normal sized": 0.30, "small": 0.20}
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

    def __post_init__(self) -> None:
        _check("class", self.class_name, SHAPES)
        _check("colour", self.colour, (*COLOURS, MULTICOLORED))
        _check("size", self.size, tuple(SIZE_RADIUS))
        _check("image type", self.image_type, tuple(IMAGE_TYPES))
        _check("art style", self.art_style, tuple(ART_STYLES))

    def prompt(self) -> PromptParts:
        """The template prompt that describes this image."""
        return PromptParts(**dataclasses.asdict(self))

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


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

    def sample(self, rng: np.random.Generator, **fixed: str) -> WorldAttributes:
        """Attributes drawn uniformly, except those given in `fixed`."""
        draw = {
            "class_name": self.classes, "colour": self.colours, "size": self.sizes,
            "image_type": self.image_types, "art_style": self.art_styles,
        }
        values = {k: fixed.get(k) or v[int(rng.integers(len(v)))] for k, v in draw.items()}
        return WorldAttributes(**values)


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


def render_image(attrs: WorldAttributes, rng: np.random.Generator, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """An RGB uint8 image (image_size x image_size x 3) of the object with these attributes."""
    layout = _layout(attrs, rng, image_size)
    mask = shape_mask(attrs.class_name, image_size, layout.cx, layout.cy, layout.radius, layout.angle)
    paint = colour_field(attrs.colour, rng, image_size)
    img = IMAGE_TYPES[attrs.image_type](mask, paint, layout, rng, image_size)
    style = ART_STYLES[attrs.art_style]
    if style is not None:
        img = style(np.clip(img, 0.0, 1.0), rng)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image `index` of a render seeded with `seed` (independent of order)."""
    return np.random.default_rng([seed, index])


def render_samples(spec: WorldSpec, seed: int, indices: Iterable[int], **fixed: str
                   ) -> Iterator[tuple[np.ndarray, WorldAttributes]]:
    """(image, attributes) for each index; image i depends only on (seed, i, fixed)."""
    for index in indices:
        rng = image_rng(seed, index)
        attrs = spec.sample(rng, **fixed)
        yield render_image(attrs, rng, spec.image_size), attrs


def render_arrays(spec: WorldSpec, seed: int, n: int, start: int = 0, **fixed: str
                  ) -> tuple[np.ndarray, list[WorldAttributes]]:
    """n images as one uint8 array [n, S, S, 3] plus their attributes."""
    images = np.empty((n, spec.image_size, spec.image_size, 3), np.uint8)
    records = []
    for k, (img, attrs) in enumerate(render_samples(spec, seed, range(start, start + n), **fixed)):
        images[k] = img
        records.append(attrs)
    return images, records
