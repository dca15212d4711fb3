"""The method's attribute vocabularies and template sentences."""

from __future__ import annotations

import pytest

from clap.prompts.templates import AttributeVocab, PromptParts, article, class_prompts


def test_default_vocab_is_the_methods():
    vocab = AttributeVocab.default()
    assert len(vocab.colour) == 10 and "multicolored" in vocab.colour
    assert vocab.size == ("large", "normal sized", "small")
    assert len(vocab.image_type) == 8 and "mosaic art" in vocab.image_type
    assert vocab.art_style == ("realistic", "impressionistic")
    assert len(vocab) == 480


def test_480_prompts_per_class_in_a_fixed_order():
    prompts = class_prompts("dog")
    texts = [p.text() for p in prompts]
    assert len(texts) == len(set(texts)) == 480
    assert texts[0] == "a realistic painting of a large red dog"
    assert texts[-1] == "an impressionistic sculpture of a small multicolored dog"
    assert texts == [p.text() for p in class_prompts("dog")]


@pytest.mark.parametrize("word, expected", [("apple", "an"), ("orange", "an"), ("red", "a"), ("Eagle", "an"),
                                            ("impressionistic", "an"), ("large", "a")])
def test_article(word, expected):
    assert article(word) == expected


def test_standard_and_swapped_forms():
    parts = PromptParts("elephant", "orange", "large", "infograph", "impressionistic")
    assert parts.text() == "an impressionistic infograph of a large orange elephant"
    assert parts.swap().text() == "a large orange elephant in an impressionistic infograph style"
    assert parts.without("size", "colour").text() == "an impressionistic infograph of an elephant"
    assert parts.without("image_type").text() == "an impressionistic large orange elephant"
    assert parts.without("image_type", "art_style").swap().text() == "a large orange elephant"


def test_vocab_from_folder_and_errors(tmp_path):
    for name, values in {"colours.txt": "red\n", "sizes.txt": "big\n", "image_types.txt": "photo\n",
                         "art_styles.txt": "# comment\nflat\n"}.items():
        (tmp_path / name).write_text(values)
    vocab = AttributeVocab.from_folder(tmp_path)
    assert vocab.art_style == ("flat",) and len(vocab) == 1
    (tmp_path / "sizes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="sizes.txt"):
        AttributeVocab.from_folder(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        AttributeVocab(colour=(), size=("a",), image_type=("b",), art_style=("c",))
