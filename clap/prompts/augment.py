"""The method's prompt augmentations as nlpaug augmenters working on structured prompts.

OSD, OCD, ITD and ASD delete one attribute (object size, object colour, image type, art style);
SPO swaps the prompt order. nlpaug passes strings between augmenters, so each augmenter looks its
input up in a `PromptRegistry` (text -> `PromptParts`, filled by the prompt generator and by every
augmenter output) and edits the structure, never the words: class names that contain attribute
words ("orange", "black widow", "mosaic") come out intact.

Each augmenter fires with its own probability, independently. nlpaug's own pipelines retry when
the output equals the input, which would change those probabilities; `PromptAugmentation` is a
`nlpaug.flow.Sequential` that makes exactly one pass. Each augmenter takes one uniform draw per text
from `draw` (nlpaug's global `random.random` unless given), so training can seed the flow per chunk:
the flow is what training applies, not a re-implementation of it.
"""

from __future__ import annotations

import itertools
import operator
import random
from dataclasses import dataclass
from typing import Callable, Iterable

from nlpaug.augmenter.word import RandomWordAug, WordAugmenter
from nlpaug.flow import Sequential, Sometimes
from nlpaug.util import Action

from clap.errors import ClapError
from clap.prompts.templates import PromptParts

DELETIONS = {"osd": "size", "ocd": "colour", "itd": "image_type", "asd": "art_style"}
METHOD_DEFAULTS = {"osd": 0.5, "ocd": 0.5, "itd": 0.0, "asd": 0.0, "spo": 0.5}


class PromptRegistry:
    """Maps each prompt text to its structure; refuses texts that would be ambiguous about content."""

    def __init__(self, parts: Iterable[PromptParts] = ()) -> None:
        self._by_text: dict[str, PromptParts] = {}
        self.add_all(parts)

    def add(self, parts: PromptParts) -> str:
        text = parts.text()
        known = self._by_text.setdefault(text, parts)
        if known.class_name != parts.class_name:
            raise ClapError(f"prompt '{text}' reads the same for classes '{known.class_name}' and "
                            f"'{parts.class_name}'; rename one class")
        return text

    def add_all(self, parts: Iterable[PromptParts]) -> list[str]:
        return [self.add(p) for p in parts]

    def parts(self, text: str) -> PromptParts:
        try:
            return self._by_text[text]
        except KeyError:
            raise ClapError(f"'{text}' is not a registered template prompt; prompt augmenters work on "
                            "prompts made by clap.prompts (register them with PromptRegistry.add)") from None

    def __len__(self) -> int:
        return len(self._by_text)


class _StructuredAugmenter(WordAugmenter):
    """Base: fire with probability `p` (nlpaug's global `random`), apply `edit` to the registered structure."""

    def __init__(self, registry: PromptRegistry, p: float, action: str, name: str,
                 edit: Callable[[PromptParts], PromptParts], draw: Callable[[], float] = random.random) -> None:
        if not 0.0 <= p <= 1.0:
            raise ClapError(f"{name} probability must be in [0, 1], got {p}")
        super().__init__(action=action, name=name, aug_p=p)
        self.registry = registry
        self.p = p
        self.edit = edit
        self.draw = draw

    def _apply(self, data: str) -> str:
        parts = self.registry.parts(data)
        if self.draw() >= self.p:
            return data
        return self.registry.add(self.edit(parts))


class AttributeDeletion(_StructuredAugmenter):
    """Delete one attribute (OSD, OCD, ITD or ASD) with probability p."""

    def __init__(self, registry: PromptRegistry, attribute: str, p: float, name: str | None = None,
                 draw: Callable[[], float] = random.random) -> None:
        if attribute not in DELETIONS.values():
            raise ClapError(f"unknown attribute '{attribute}'; use one of {', '.join(DELETIONS.values())}")
        self.attribute = attribute
        super().__init__(registry, p, Action.DELETE, name or f"delete_{attribute}",
                         operator.methodcaller("without", attribute), draw)

    def delete(self, data: str) -> str:
        return self._apply(data)


class PromptOrderSwap(_StructuredAugmenter):
    """SPO: "a [style] [type] of a [size] [colour] [class]" -> "a [size] [colour] [class] in a [style] [type] style"."""

    def __init__(self, registry: PromptRegistry, p: float, draw: Callable[[], float] = random.random) -> None:
        super().__init__(registry, p, Action.SWAP, "spo", operator.methodcaller("swap"), draw)

    def swap(self, data: str) -> str:
        return self._apply(data)


class PromptAugmentation(Sequential):
    """An nlpaug Sequential flow that applies each augmenter once, with no retry on unchanged output."""

    def augment(self, data, n: int = 1, num_thread: int = 1):
        texts = [data] if isinstance(data, str) else list(data)
        out = [self._one_pass(t) for t in texts]
        return out if not isinstance(data, str) else out[:1]

    def _one_pass(self, text: str) -> str:
        for aug in self:
            text = aug.augment(text)[0]
        return text


@dataclass(frozen=True)
class AugmentationConfig:
    """Probabilities of the method's prompt augmentations (defaults: the paper's)."""

    osd: float = METHOD_DEFAULTS["osd"]
    ocd: float = METHOD_DEFAULTS["ocd"]
    itd: float = METHOD_DEFAULTS["itd"]
    asd: float = METHOD_DEFAULTS["asd"]
    spo: float = METHOD_DEFAULTS["spo"]

    def __post_init__(self) -> None:
        for name, p in self.probabilities().items():
            if not 0.0 <= p <= 1.0:
                raise ClapError(f"{name} probability must be in [0, 1], got {p}")

    def probabilities(self) -> dict[str, float]:
        return {"osd": self.osd, "ocd": self.ocd, "itd": self.itd, "asd": self.asd, "spo": self.spo}

    def flow(self, registry: PromptRegistry, draw: Callable[[], float] = random.random) -> PromptAugmentation:
        """The nlpaug flow: deletions (OSD, OCD, ITD, ASD) then SPO, each with its probability and one draw."""
        augs = [AttributeDeletion(registry, attr, getattr(self, key), key, draw) for key, attr in DELETIONS.items()]
        return PromptAugmentation([*augs, PromptOrderSwap(registry, self.spo, draw)], name="clap_prompt_augmentation")

    def variants(self, parts: PromptParts) -> list[tuple[PromptParts, float]]:
        """Every output the flow can produce from `parts`, with its probability (sums to 1)."""
        choices = []
        for key, attr in DELETIONS.items():
            choices.append([(None, 1 - getattr(self, key)), (attr, getattr(self, key))])
        choices.append([(False, 1 - self.spo), (True, self.spo)])
        merged: dict[PromptParts, float] = {}
        for combo in itertools.product(*choices):
            prob = 1.0
            for _, p in combo:
                prob *= p
            if prob == 0.0:
                continue
            deleted = [attr for attr, _ in combo[:-1] if attr]
            out = parts.without(*deleted)
            out = out.swap() if combo[-1][0] else out
            merged[out] = merged.get(out, 0.0) + prob
        return list(merged.items())


def eda_augmenter(p_swap: float = 0.1, p_delete: float = 0.1) -> Sometimes:
    """The paper's EDA ablation baseline: nlpaug random word swap and deletion (may cut content)."""
    return Sometimes([RandomWordAug(action=Action.SWAP, aug_p=p_swap),
                      RandomWordAug(action=Action.DELETE, aug_p=p_delete)], aug_p=0.5)


def seed_augmenters(seed: int) -> None:
    """nlpaug draws from the global `random` and `numpy.random`: seed both."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
