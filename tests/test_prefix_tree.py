"""Prefix-shared text encoding: same features as the plain forward, each shared prefix computed once."""

from __future__ import annotations

import pytest
import torch

from clap.backbones import open_clip_text
from clap.backbones.prefix_tree import PrefixTree, encode_shared, node_groups

TEXTS = [
    "a realistic painting of a large red star",
    "a realistic painting of a large red ring",
    "a realistic painting of a small blue ring",
    "a large red star in a realistic painting style",
    "star",
    "a realistic painting of a large red star",  # a duplicate
    "an impressionistic mosaic art of a normal sized multicolored black widow",
]


@pytest.fixture(params=["tiny_open_clip", "tiny_hf_clip", "embedded"])
def backbone(request):
    return request.getfixturevalue(request.param)


def test_every_supported_tower_has_a_causal_stack(backbone):
    assert backbone.causal_stack() is not None


def test_shared_encoding_equals_the_plain_forward(backbone):
    with torch.no_grad():
        plain = backbone.encode_text(TEXTS)
    shared = backbone.encode_texts(TEXTS, batch_size=3)
    assert shared.shape == plain.shape
    assert torch.allclose(shared, plain, atol=1e-5)


@pytest.mark.parametrize("position", ["front", "middle", "end", "random"])
def test_shared_encoding_with_noise_equals_the_plain_noisy_forward(backbone, position):
    """Same generator seed, same draws: the noisy views match `encode_text_with_noise` on one batch."""
    with torch.no_grad():
        plain = backbone.encode_text_with_noise(TEXTS, 4, 0.5, position, torch.Generator().manual_seed(7))
    shared = backbone.encode_texts(TEXTS, 4, 0.5, position, torch.Generator().manual_seed(7), batch_size=4)
    assert torch.allclose(shared, plain, atol=1e-5)
    other = backbone.encode_texts(TEXTS, 4, 0.5, position, torch.Generator().manual_seed(8))
    assert not torch.allclose(shared, other, atol=1e-3), "fresh draws must change the features"


def test_small_tries_and_batches_give_the_same_features(embedded):
    """Splitting the texts into many tries (a tight node budget) changes nothing."""
    stack = embedded.causal_stack()
    tokens = embedded.tokenize(TEXTS)
    eot = stack.end_of_text(tokens)
    prefixes = [row[:e].tolist() for row, e in zip(tokens, eot.tolist())]
    suffixes = [stack.token_embedding(row[e:e + 1]) for row, e in zip(tokens, eot.tolist())]
    one = encode_shared(stack, prefixes, suffixes)
    many = encode_shared(stack, prefixes, suffixes, batch_size=2, max_nodes=5)
    assert torch.allclose(one, many, atol=1e-5)
    with pytest.raises(ValueError, match="non-empty token prefix"):
        encode_shared(stack, [[]], suffixes[:1])


def test_prefix_tree_computes_each_shared_prefix_once():
    tree, ends = PrefixTree.build([(1, 2, 3), (1, 2, 3), (1, 2, 4), (1, 5)])
    assert tree.tokens.tolist() == [1, 2, 3, 4, 5]
    assert ends.tolist() == [2, 2, 3, 4]
    assert tree.depth.tolist() == [0, 1, 2, 2, 1]
    assert tree.ancestors[3].tolist() == [0, 1, 3] and tree.ancestors[4, :2].tolist() == [0, 4]
    assert [level.tolist() for level in tree.levels()] == [[0], [1, 4], [2, 3]]


def test_node_groups_stay_within_the_budget():
    prefixes = [(1, 2, 3), (1, 2, 4), (1, 5), (6, 7, 8, 9)]
    assert node_groups(prefixes, [0, 1, 2, 3], max_nodes=100) == [[0, 1, 2, 3]]
    assert node_groups(prefixes, [0, 1, 2, 3], max_nodes=5) == [[0, 1, 2], [3]]
    assert node_groups(prefixes, [0, 1, 2, 3], max_nodes=2) == [[0], [1], [2], [3]]  # one text always fits


def test_towers_without_a_causal_stack_use_the_plain_path(embedded, monkeypatch):
    monkeypatch.setattr(embedded, "causal_stack", lambda: None)
    with torch.no_grad():
        plain = embedded.encode_text(TEXTS)
    assert torch.allclose(embedded.encode_texts(TEXTS, batch_size=3), plain, atol=1e-6)


def test_only_plain_causal_masks_count_as_causal():
    causal = torch.full((4, 4), float("-inf")).triu(1)
    assert open_clip_text.is_causal_mask(causal)
    assert not open_clip_text.is_causal_mask(None)
    assert not open_clip_text.is_causal_mask(torch.zeros(4, 4))


def test_no_texts_give_no_features(embedded):
    assert embedded.encode_texts([]).shape == (0, embedded.embed_dim)
