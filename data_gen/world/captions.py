"""Web-like captions of rendered images, for pretraining the embedded tiny CLIP.

Most captions are short or partial (as on the web), so that content is what tells a batch's
captions apart and zero-shot prompts such as "[class]" or "a photo of a [class]" are in
distribution; the rest are the full attribute template, in standard or swapped order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from clap.prompts.templates import PromptParts, article
from clap.data_gen.world.render import WorldAttributes

GENERIC_FORMS = (
    "{c}", "a {c}", "a photo of {a} {c}", "{a} {c} in a photo", "a picture of {a} {c}",
    "an image of {a} {c}", "a photo of the {c}", "the {c}",
)
STYLE_FIELDS = ("colour", "size", "image_type", "art_style")


def _photo_word(parts: PromptParts, rng: np.random.Generator) -> PromptParts:
    if parts.image_type == "photograph" and rng.random() < 0.5:
        return dataclasses.replace(parts, image_type="photo")
    return parts


def caption(attrs: WorldAttributes, rng: np.random.Generator,
            p_full: float = 0.2, p_generic: float = 0.35, p_keep: float = 0.4) -> str:
    """One caption for an image with these attributes.

    With probability `p_full` the full template sentence, with `p_generic` a class-only form
    ("a photo of a star"), otherwise the template with each attribute kept with prob. `p_keep`.
    """
    u = rng.random()
    if u < p_generic:
        form = GENERIC_FORMS[int(rng.integers(len(GENERIC_FORMS)))]
        return form.format(c=attrs.class_name, a=article(attrs.class_name))
    parts = attrs.prompt()
    if u >= p_generic + p_full:
        dropped = [f for f in STYLE_FIELDS if rng.random() >= p_keep]
        parts = parts.without(*dropped)
    parts = _photo_word(parts, rng)
    return (parts.swap() if rng.random() < 0.3 else parts).text()
