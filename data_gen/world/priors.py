"""Web-like co-occurrence of style with content, for the renders the tiny CLIP is pretrained on.

On the web, hearts are mostly red clipart and houses mostly photographed: style and content are
correlated, and CLIP learns both. Here every class has a typical colour, image type and size; in a
pretraining render each of the three is the class's typical value with probability `p_typical` and
uniform over all values otherwise (art style stays uniform). Evaluation renders use no priors: they are
style-balanced, so a style shortcut learned in pretraining costs accuracy there.

Typical values are dealt out evenly from a seeded shuffle (each colour is typical for 3-4 of the 32
classes, each image type for 4, each size for 10-11), so no value is typical for everything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from clap.data_gen.world.shapes import SHAPES
from clap.prompts.templates import AttributeVocab

PRIOR_FIELDS = ("colour", "image_type", "size")


@dataclass(frozen=True)
class StylePriors:
    """Each class's typical colour, image type and size, each used with probability `p_typical`."""

    p_typical: float = 0.6
    seed: int = 2024

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_typical <= 1.0:
            raise ValueError(f"p_typical must be in [0, 1], got {self.p_typical}")

    def typical(self, class_name: str) -> dict[str, str]:
        """The class's typical value of each prior field."""
        return _table(self.seed)[class_name]

    def table(self) -> dict[str, dict[str, str]]:
        """{class: {field: typical value}} for every class of the world (for docs and world.json)."""
        return dict(_table(self.seed))


def deal(values: list[str], rng: np.random.Generator) -> dict[str, str]:
    """{class: value}: the values dealt out evenly over the world's classes in a shuffled order."""
    return {name: values[k % len(values)] for name, k in zip(SHAPES, rng.permutation(len(SHAPES)))}


@functools.cache
def _table(seed: int) -> dict[str, dict[str, str]]:
    rng = np.random.default_rng(seed)
    vocab = AttributeVocab.default()
    table: dict[str, dict[str, str]] = {name: {} for name in SHAPES}
    for field in PRIOR_FIELDS:
        for name, value in deal(list(getattr(vocab, field)), rng).items():
            table[name][field] = value
    return table
