"""Prompt augmenters: structure not strings, nlpaug composition, probabilities, property tests."""

from __future__ import annotations

import re
from collections import Counter

import nlpaug.flow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clap.errors import ClapError
from clap.prompts.augment import (AttributeDeletion, AugmentationConfig, PromptOrderSwap, PromptRegistry,
                                  eda_augmenter, seed_augmenters)
from clap.prompts.classes import PRESETS, preset_classes
from clap.prompts.templates import AttributeVocab, PromptParts, class_prompts

VOCAB = AttributeVocab.default()
TRICKY = ["orange", "black widow", "brown bear", "white shark", "mosaic", "small red ant", "crème brûlée",
          "t-shirt", "the eiffel tower"]
ALL_CLASSES = sorted({c for p in PRESETS for c in preset_classes(p)} | set(TRICKY))
WELL_FORMED = re.compile(r"^(a|an) \S.*\S$")


def registry_for(name: str) -> tuple[PromptRegistry, list[PromptParts]]:
    parts = class_prompts(name)
    return PromptRegistry(parts), parts


def test_deletion_edits_the_structure_not_the_words():
    registry, _ = registry_for("orange")
    text = registry.add(PromptParts("orange", "orange", "large", "photograph", "realistic"))
    ocd = AttributeDeletion(registry, "colour", p=1.0)
    assert ocd.augment(text) == ["a realistic photograph of a large orange"]
    osd = AttributeDeletion(registry, "size", p=1.0)
    assert osd.augment(ocd.augment(text)[0]) == ["a realistic photograph of an orange"]


def test_mosaic_class_survives_image_type_deletion():
    registry, _ = registry_for("mosaic")
    text = registry.add(PromptParts("mosaic", "red", "small", "mosaic art", "realistic"))
    out = AttributeDeletion(registry, "image_type", p=1.0).augment(text)[0]
    assert out == "a realistic small red mosaic"


def test_spo_form():
    registry, _ = registry_for("brown bear")
    text = registry.add(PromptParts("brown bear", "white", "normal sized", "sketch", "impressionistic"))
    assert PromptOrderSwap(registry, 1.0).augment(text) == [
        "a normal sized white brown bear in an impressionistic sketch style"]


def test_unregistered_text_is_refused():
    registry, _ = registry_for("dog")
    with pytest.raises(ClapError, match="not a registered template prompt"):
        AttributeDeletion(registry, "colour", 1.0).augment("a red dog running")


def test_ambiguous_prompts_are_refused():
    registry = PromptRegistry([PromptParts("black widow", None, "large")])
    with pytest.raises(ClapError, match="reads the same"):
        registry.add(PromptParts("widow", "black", "large"))


def test_bad_probabilities_and_attributes():
    registry, _ = registry_for("dog")
    with pytest.raises(ClapError, match=r"\[0, 1\]"):
        AugmentationConfig(osd=1.5)
    with pytest.raises(ClapError, match="unknown attribute"):
        AttributeDeletion(registry, "texture", 0.5)


def test_augmenters_compose_with_nlpaug_flows():
    registry, parts = registry_for("dog")
    flow = nlpaug.flow.Sequential([AttributeDeletion(registry, "size", 1.0), PromptOrderSwap(registry, 1.0)])
    assert flow.augment(parts[0].text()) == ["a red dog in a realistic painting style"]


def test_each_augmenter_fires_with_its_probability():
    """Empirical check: one pass of the flow matches the exact independent-Bernoulli distribution."""
    config = AugmentationConfig(osd=0.5, ocd=0.3, itd=0.2, asd=0.1, spo=0.5)
    registry, parts = registry_for("giraffe")
    flow = config.flow(registry)
    seed_augmenters(0)
    source = parts[123]
    n = 6000
    counts = Counter(flow.augment(source.text())[0] for _ in range(n))
    expected = {p.text(): q for p, q in config.variants(source)}
    assert abs(sum(expected.values()) - 1) < 1e-9
    assert set(counts) <= set(expected)
    for text, q in expected.items():
        assert abs(counts[text] / n - q) < 4 * (q * (1 - q) / n) ** 0.5 + 1e-3, text
    no_change = counts[source.text()] / n
    assert abs(no_change - 0.5 * 0.7 * 0.8 * 0.9 * 0.5) < 0.02  # no retry when nothing fired


def test_method_defaults():
    config = AugmentationConfig()
    assert config.probabilities() == {"osd": 0.5, "ocd": 0.5, "itd": 0.0, "asd": 0.0, "spo": 0.5}
    assert len(config.variants(PromptParts("dog", "red", "large", "sketch", "realistic"))) == 8


def test_seeding_makes_augmentation_repeatable():
    registry, parts = registry_for("horse")
    flow = AugmentationConfig().flow(registry)
    texts = [p.text() for p in parts[:50]]
    seed_augmenters(3)
    first = flow.augment(texts)
    seed_augmenters(3)
    assert flow.augment(texts) == first


def test_eda_baseline_is_nlpaug():
    seed_augmenters(0)
    out = eda_augmenter(0.3, 0.3).augment("a realistic painting of a large red dog", n=1)
    assert isinstance(out, list) and out and isinstance(out[0], str)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(ALL_CLASSES), index=st.integers(0, len(VOCAB) - 1),
       probs=st.tuples(*[st.sampled_from([0.0, 0.5, 1.0])] * 5), seed=st.integers(0, 2**16))
def test_properties_over_all_presets(name, index, probs, seed):
    registry, parts = registry_for(name)
    config = AugmentationConfig(*probs)
    seed_augmenters(seed)
    out = config.flow(registry).augment(parts[index].text())[0]
    structure = registry.parts(out)
    assert structure.class_name == name
    assert re.search(rf"(^| ){re.escape(name)}( |$)", out)
    assert WELL_FORMED.match(out) and "  " not in out
    for word, nxt in zip(out.split(), out.split()[1:]):
        if word in ("a", "an"):
            assert word == ("an" if nxt[0] in "aeiou" else "a"), out
    if structure.swapped and structure.image_type:
        assert out.endswith(" style") and f"{name} in " in out
    if probs[4] == 0.0:
        assert not structure.swapped
