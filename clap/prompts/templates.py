"""The method's attribute vocabularies and the attribute-templated prompt form."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

ATTRIBUTE_FIELDS = ("colour", "size", "image_type", "art_style")
_VOCAB_FILES = {
    "colour": "colours.txt",
    "size": "sizes.txt",
    "image_type": "image_types.txt",
    "art_style": "art_styles.txt",
}


def _read_lines(path: Path | resources.abc.Traversable) -> tuple[str, ...]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class AttributeVocab:
    """The four style attribute lists that the templates combine with each class name."""

    colour: tuple[str, ...]
    size: tuple[str, ...]
    image_type: tuple[str, ...]
    art_style: tuple[str, ...]

    def __post_init__(self) -> None:
        for field in ATTRIBUTE_FIELDS:
            values = getattr(self, field)
            if not values:
                raise ValueError(f"attribute list '{field}' is empty; give at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"attribute list '{field}' has repeated values: {values}")

    @classmethod
    def default(cls) -> "AttributeVocab":
        """The method's lists: 10 colours, 3 sizes, 8 image types, 2 art styles."""
        folder = resources.files("clap.prompts") / "vocab"
        return cls(**{f: _read_lines(folder / name) for f, name in _VOCAB_FILES.items()})

    @classmethod
    def from_folder(cls, folder: str | Path) -> "AttributeVocab":
        """Read the lists from a folder holding colours.txt, sizes.txt, image_types.txt, art_styles.txt."""
        folder = Path(folder)
        missing = [n for n in _VOCAB_FILES.values() if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; one value per line is expected")
        return cls(**{f: _read_lines(folder / name) for f, name in _VOCAB_FILES.items()})

    def combinations(self) -> Iterator[dict[str, str]]:
        """All attribute combinations in the method's fixed order (art style outermost)."""
        for style, itype, size, colour in itertools.product(
            self.art_style, self.image_type, self.size, self.colour
        ):
            yield {"colour": colour, "size": size, "image_type": itype, "art_style": style}

    def __len__(self) -> int:
        return len(self.colour) * len(self.size) * len(self.image_type) * len(self.art_style)


def article(word: str) -> str:
    """'a' or 'an' for the word that follows."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _with_article(words: str) -> str:
    return f"{article(words)} {words}"


@dataclass(frozen=True)
class PromptParts:
    """A prompt as structured attributes; a deleted attribute is None, `swapped` puts the object first."""

    class_name: str
    colour: str | None = None
    size: str | None = None
    image_type: str | None = None
    art_style: str | None = None
    swapped: bool = False

    def __post_init__(self) -> None:
        if self.swapped and not self.image_type:  # nothing to swap: keep one structure per sentence
            object.__setattr__(self, "swapped", False)

    def without(self, *fields: str) -> "PromptParts":
        """The same prompt with the named attributes deleted."""
        return dataclasses.replace(self, **{f: None for f in fields})

    def object_phrase(self) -> str:
        """'[size] [colour] [class]' with the deleted words left out."""
        return " ".join(w for w in (self.size, self.colour, self.class_name) if w)

    def image_phrase(self) -> str | None:
        """'[art style] [image type]', or None when there is no image type to describe."""
        if not self.image_type:
            return None
        return " ".join(w for w in (self.art_style, self.image_type) if w)

    def swap(self) -> "PromptParts":
        """The same prompt in the method's swapped order (SPO)."""
        return dataclasses.replace(self, swapped=True)

    def text(self) -> str:
        """The template sentence; swapped prompts put the object first (the method's SPO form).

        Standard: "a/an [art style] [image type] of a/an [size] [colour] [class]".
        Swapped:  "a/an [size] [colour] [class] in a/an [art style] [image type] style".
        Without an image type the art style qualifies the object: "an impressionistic red star".
        """
        image = self.image_phrase()
        if image is None:
            return _with_article(" ".join(w for w in (self.art_style, self.object_phrase()) if w))
        if self.swapped:
            return f"{_with_article(self.object_phrase())} in {_with_article(image)} style"
        return f"{_with_article(image)} of {_with_article(self.object_phrase())}"


def class_prompts(class_name: str, vocab: AttributeVocab | None = None) -> list[PromptParts]:
    """The len(vocab) (480 by default) attribute prompts of one class, in the fixed order."""
    vocab = vocab or AttributeVocab.default()
    return [PromptParts(class_name, **combo) for combo in vocab.combinations()]


ARTICLES = ("a", "an", "the")


def format_template(template: str, phrase: str) -> str:
    """The template with `phrase` in every slot ('{}', or '{c}' as often as it appears, as CLIP_benchmark fills
    its templates); doubled braces become single ones as in str.format."""
    import string

    return "".join(literal + (phrase if name is not None else "")
                   for literal, name, _, _ in string.Formatter().parse(template))


def fill(template: str, phrase: str) -> str:
    """The template with `phrase` in its slot; a phrase that brings its own article ("an oval", "the background")
    takes the place of the template's "a {}" or "an {}", and a plural ("circles") too, so that no "a an oval" or
    "a circles" is written."""
    import re

    template = template.replace("{c}", "{}")
    bare = re.sub(r"\b(a|an) \{\}", "{}", template, count=1)
    own_article = phrase.split(" ", 1)[0].lower() in ARTICLES
    return format_template(bare if own_article or phrase.endswith("s") and not phrase.endswith("ss") else template,
                           phrase)

