"""Web-like captions of rendered images, for pretraining the embedded tiny CLIP.

As on the web, captions vary in phrasing and in where the class name stands, carry extra words,
name other objects in the picture, and say "photo" mostly about photographs: the phrasing itself
carries style, so "[class]", "a photo of a [class]" and "a [class] in a photo" are not the same
point for the text tower. A minority are the method's full template sentence. Optionally every class
has a phrasing habit (`CaptionMix.habit_share`), as web pages about one kind of thing tend to word it
alike: the name alone ("star"), "[type] of [class]" ("a sketch of a star") or "[class] in [type]" ("a star
in a sketch"), the three frames of the prompts C, PC and CP with the image type's word in them.
Optionally name-only captions are tags (`CaptionMix.tag_any_object`): they name any object in the
picture, the subject or a distractor, as tags and keywords list what a picture shows without
saying which object it is about, while sentences describe the subject.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from clap.data_gen.world.priors import deal
from clap.data_gen.world.render import WorldAttributes
from clap.prompts.templates import article

BARE = ("{c}", "{a} {c}", "the {c}", "my {c}", "{c} !", "one {c}")
NAME_ONLY = ("{c}", "{c} !")  # the bare forms that are the (described) name alone
PHOTO = ("a photo of {a} {c}", "{a} {c} in a photo", "photo of the {c}", "a close-up photo of {a} {c}",
         "a picture of {a} {c}", "a photo of my {c}", "{a} {c} , photo")
PHOTO_OF = tuple(f for f in PHOTO if "in a photo" not in f)
TYPED = ("{a} {t} of {a2} {c}", "{c} {t}", "{a2} {c} {t}", "{t} : {c}", "my {t} of {a2} {c}")
CONTEXT = ("look at this {c}", "{a} {c} on the table", "{c} for sale", "i love this {c}", "new {c} design",
           "{a} {c} i made today", "best {c} ever", "{a} {c} from the shop")
OTHERS = ("{x} next to {a} {d}", "{x} and {a} {d}", "{a} {d} beside {x}", "{x} with {a} {d} behind it")
HABIT_FORMS = {"name": "{c}", "type of class": "{a} {t} of {a2} {c}", "class in type": "{a2} {c} in {a} {t}"}
HABIT_SEED = 2025  # not the style priors' seed, whose first shuffle would deal the same order
TYPE_WORDS = {"photograph": ("photo", "photograph"), "mosaic art": ("mosaic", "mosaic art")}
P_FULL_TEMPLATE = 0.15
P_MENTION_OTHER = 0.5
P_COLOUR, P_SIZE, P_STYLE = 0.4, 0.25, 0.2


@dataclass(frozen=True)
class CaptionMix:
    """How often the caption phrasings occur: "photo" phrasings for `photo_types` (images that are, or
    on the web are shown as, photographs) and for the other image types; the share of drawn name-only
    phrasings ("star", "small red star !") that are kept (the rest are redrawn from the other bare
    forms); `label_types`, image types whose captions are a name-only label with probability
    `label_share` (as icons and clipart on the web are captioned by their file name); whether
    "[class] in a photo" is among the photo phrasings (on the web it is rare beside "a photo of a
    [class]"); `habit_share`, the share of captions in their class's phrasing habit
    (`phrasing_habit`); and `tag_any_object`, whether a name-only caption of a picture with
    distractors names one of its objects drawn evenly (a distractor by its bare name) instead of
    the subject. The defaults ("photograph",), 1.0, (), 0.0, True, 0.0 and False draw the captions
    of earlier recipes."""

    photo_share_photograph: float = 0.6
    photo_share_other: float = 0.0
    photo_types: tuple[str, ...] = ("photograph",)
    name_only_keep: float = 1.0
    label_types: tuple[str, ...] = ()
    label_share: float = 0.0
    in_a_photo: bool = True
    habit_share: float = 0.0
    habit_seed: int = HABIT_SEED
    tag_any_object: bool = False


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def phrasing_habit(class_name: str, seed: int = HABIT_SEED) -> str:
    """The class's phrasing habit (a key of HABIT_FORMS), dealt evenly over the classes from a seeded shuffle."""
    return _habits(seed)[class_name]


@functools.cache
def _habits(seed: int) -> dict[str, str]:
    return deal(list(HABIT_FORMS), np.random.default_rng(seed))


def _described(attrs: WorldAttributes, rng: np.random.Generator) -> str:
    """The class name with some of its adjectives ("small red star")."""
    words = [attrs.size] if rng.random() < P_SIZE else []
    words += [attrs.colour] if rng.random() < P_COLOUR else []
    return " ".join([*words, attrs.class_name])


def _tag(attrs: WorldAttributes, described: str, rng: np.random.Generator, mix: CaptionMix) -> str:
    """The name in a name-only caption: the (described) subject, or with `mix.tag_any_object` any
    object in the picture, drawn evenly, a distractor by its bare name."""
    if not (mix.tag_any_object and attrs.distractors):
        return described
    k = int(rng.integers(len(attrs.distractors) + 1))
    return described if k == 0 else attrs.distractors[k - 1]


def _phrase(attrs: WorldAttributes, rng: np.random.Generator, mix: CaptionMix) -> str:
    """The main object in one of the web-like forms; "photo" words mostly for photographs."""
    if attrs.image_type in mix.label_types and rng.random() < mix.label_share:
        return _pick(NAME_ONLY, rng).format(c=_tag(attrs, _described(attrs, rng), rng, mix))
    c = _described(attrs, rng)
    t = _pick(TYPE_WORDS.get(attrs.image_type, (attrs.image_type,)), rng)
    photo_share = mix.photo_share_photograph if attrs.image_type in mix.photo_types else mix.photo_share_other
    habit = mix.habit_share > 0 and rng.random() < mix.habit_share
    if habit:
        forms = (HABIT_FORMS[phrasing_habit(attrs.class_name, mix.habit_seed)],)
    elif (u := rng.random()) < photo_share:
        forms = PHOTO if mix.in_a_photo else PHOTO_OF
    elif u < photo_share + (1 - photo_share) * 0.4:
        forms = TYPED
    else:
        forms = BARE if rng.random() < 0.6 else CONTEXT
    lead = t if habit or forms is TYPED else c  # the article agrees with the word after it
    form = _pick(forms, rng)
    if mix.name_only_keep < 1 and not habit and form in NAME_ONLY and rng.random() >= mix.name_only_keep:
        form = _pick(tuple(f for f in BARE if f not in NAME_ONLY), rng)
    if form in NAME_ONLY:
        c = _tag(attrs, c, rng, mix)
    text = form.format(c=c, a=article(lead), t=t, a2=article(c))
    if rng.random() < P_STYLE:
        text = f"{text} , {attrs.art_style}"
    return text


def caption(attrs: WorldAttributes, rng: np.random.Generator, mix: CaptionMix = CaptionMix()) -> str:
    """One caption for an image with these attributes, phrasings drawn as `mix` says."""
    if rng.random() < P_FULL_TEMPLATE:
        parts = attrs.prompt()
        return (parts.swap() if rng.random() < 0.3 else parts).text()
    text = _phrase(attrs, rng, mix)
    if attrs.distractors and rng.random() < P_MENTION_OTHER:
        other = attrs.distractors[int(rng.integers(len(attrs.distractors)))]
        text = _pick(OTHERS, rng).format(x=text, a=article(other), d=other)
    return text
