"""Causal text encoding that computes every shared token prefix once.

In a causal text transformer the hidden states of positions 0..i depend only on tokens 0..i. Training
texts share long prefixes ("a realistic painting of a ..."), and a text with IGN noise inserted at
position `a` shares its first `a` positions with the clean text. So the texts are split into a clean
token prefix and a suffix of embeddings (noise, the remaining tokens, end-of-text); the prefixes form a
token trie whose nodes are computed once each, depth by depth, every node attending to its ancestors'
cached keys and values; then only the suffixes run, attending to their prefix's cache. The features
equal the plain forward's up to float rounding (tests hold them to 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F


class CausalLayer(Protocol):
    """One pre-norm transformer block, split around its attention."""

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values [B, T, heads, head_dim] of the block's input x [B, T, D]."""

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The block's output from its input and the attention result [B, T, D] (before out-projection)."""


@dataclass
class CausalStack:
    """What the prefix-shared forward needs from a causal text tower.

    token_embedding: token ids -> embeddings (positions not added); positional: [context, D];
    layers: the transformer blocks in order; pool: final hidden state at the pooled position [N, D]
    -> text features (final norm, projection); end_of_text: token ids [B, L] -> pooled index per row.
    """

    token_embedding: Callable[[torch.Tensor], torch.Tensor]
    positional: torch.Tensor
    layers: Sequence[CausalLayer]
    pool: Callable[[torch.Tensor], torch.Tensor]
    end_of_text: Callable[[torch.Tensor], torch.Tensor]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention on [B, T, H, d] tensors; returns [B, T, H * d]."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2).flatten(2)


@dataclass
class PrefixTree:
    """A token trie: node i holds `tokens[i]` at depth `depth[i]`; `ancestors[i, :depth[i] + 1]` is its path."""

    tokens: torch.Tensor
    depth: torch.Tensor
    ancestors: torch.Tensor

    @classmethod
    def build(cls, prefixes: Sequence[Sequence[int]]) -> tuple["PrefixTree", torch.Tensor]:
        """The trie of lexicographically sorted `prefixes`, and the node that ends each prefix."""
        tokens: list[int] = []
        parent: list[int] = []
        depth: list[int] = []
        ends: list[int] = []
        path: list[int] = []  # the nodes of the previous prefix
        previous: Sequence[int] = ()
        for prefix in prefixes:
            del path[common_length(previous, prefix):]
            for token in prefix[len(path):]:
                parent.append(path[-1] if path else 0)
                depth.append(len(path))
                path.append(len(tokens))
                tokens.append(token)
            ends.append(path[-1])
            previous = prefix
        depth_t, parent_t = torch.tensor(depth), torch.tensor(parent)
        levels = by_depth(depth_t)
        ancestors = torch.zeros(len(tokens), len(levels), dtype=torch.long)
        for d, nodes in enumerate(levels):  # parents are filled in before their children
            ancestors[nodes] = ancestors[parent_t[nodes]]
            ancestors[nodes, d] = nodes
        return cls(torch.tensor(tokens), depth_t, ancestors), torch.tensor(ends)

    def to(self, device: torch.device) -> "PrefixTree":
        return PrefixTree(self.tokens.to(device), self.depth.to(device), self.ancestors.to(device))

    def levels(self) -> list[torch.Tensor]:
        return by_depth(self.depth)


def by_depth(depth: torch.Tensor) -> list[torch.Tensor]:
    """Node indices grouped by depth, shallowest first."""
    return [torch.nonzero(depth == d).squeeze(1) for d in range(int(depth.max()) + 1)]


def suffix_mask(prefix_lengths: torch.Tensor, width_a: int, width_s: int) -> torch.Tensor:
    """[B, 1, S, A + S]: each suffix position sees its own prefix (not the padding) and the suffix up to itself."""
    seen_prefix = torch.arange(width_a, device=prefix_lengths.device) < prefix_lengths[:, None]
    j = torch.arange(width_s, device=prefix_lengths.device)
    causal = j[:, None] >= j[None, :]
    batch = len(prefix_lengths)
    return torch.cat([seen_prefix[:, None, :].expand(-1, width_s, -1), causal.expand(batch, -1, -1)], dim=2)[:, None]


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_cache(stack: CausalStack, tree: PrefixTree, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys and values [nodes, H, d] of every trie node at every layer, each node computed once.

    `tree` lives on the stack's device (`PrefixTree.to`).
    """
    cache: list[tuple[torch.Tensor, torch.Tensor]] = []
    last = len(stack.layers) - 1
    for d, level in enumerate(tree.levels()):
        for nodes in level.split(batch_size):
            x = stack.token_embedding(tree.tokens[nodes]) + stack.positional[d]
            x = x[:, None]
            path = tree.ancestors[nodes, : d + 1]
            for i, layer in enumerate(stack.layers):
                q, k, v = layer.qkv(x)
                if len(cache) <= i:
                    shape = (len(tree.tokens), *k.shape[2:])
                    cache.append((k.new_empty(shape), v.new_empty(shape)))
                keys, values = cache[i]
                keys[nodes], values[nodes] = k[:, 0], v[:, 0]
                if i < last:  # the last layer's outputs at prefix positions are never used
                    x = layer.finish(x, attend(q, keys[path], values[path], None))
    return cache


def suffix_batch(stack: CausalStack, tree: PrefixTree, cache, ends: torch.Tensor, suffixes: list[torch.Tensor]
                 ) -> torch.Tensor:
    """Pooled features of texts = cached prefix (ending at trie node `ends`) + suffix embeddings [s_i, D]."""
    device = stack.positional.device
    a = tree.depth[ends] + 1
    s = torch.tensor([len(x) for x in suffixes], device=device)
    width_a, width_s = int(a.max()), int(s.max())
    if int((a + s).max()) > len(stack.positional):
        raise ValueError(f"text of {int((a + s).max())} tokens exceeds the context length {len(stack.positional)}")
    past = tree.ancestors[ends, :width_a]  # beyond a row's own prefix: masked
    x = torch.nn.utils.rnn.pad_sequence(suffixes, batch_first=True)
    positions = (a[:, None] + torch.arange(width_s, device=device)).clamp(max=len(stack.positional) - 1)
    x = x + stack.positional[positions]
    mask = suffix_mask(a, width_a, width_s)
    rows, end = torch.arange(len(suffixes), device=device), s - 1
    last = len(stack.layers) - 1
    for i, layer in enumerate(stack.layers):
        q, k, v = layer.qkv(x)
        keys, values = cache[i]
        k, v = torch.cat([keys[past], k], dim=1), torch.cat([values[past], v], dim=1)
        if i == last:  # only the pooled position's output is needed
            q, x, mask = q[rows, end][:, None], x[rows, end][:, None], mask[rows, :, end][:, :, None]
        x = layer.finish(x, attend(q, k, v, mask))
    return stack.pool(x[:, 0])


def node_groups(prefixes: list[tuple[int, ...]], order: list[int], max_nodes: int) -> list[list[int]]:
    """Consecutive runs of the sorted prefixes whose trie stays within `max_nodes` nodes."""
    groups: list[list[int]] = [[]]
    nodes, previous = 0, ()
    for i in order:
        new = len(prefixes[i]) - common_length(previous, prefixes[i])
        if groups[-1] and nodes + new > max_nodes:
            groups.append([])
            nodes, new = 0, len(prefixes[i])
        groups[-1].append(i)
        nodes += new
        previous = prefixes[i]
    return groups


@torch.no_grad()
def encode_shared(stack: CausalStack, prefixes: Sequence[Sequence[int]], suffixes: Sequence[torch.Tensor],
                  batch_size: int = 256, max_nodes: int = 8192) -> torch.Tensor:
    """Features of texts given as clean token prefixes (at least one token each) and suffix embeddings.

    The texts are sorted by prefix and split so that each group's trie has at most `max_nodes` nodes
    (bounding the key/value cache); suffixes run `batch_size` at a time, grouped by length.
    """
    keys = [tuple(int(t) for t in p) for p in prefixes]
    if any(len(k) == 0 for k in keys):
        raise ValueError("every text needs a non-empty token prefix (at least the start token)")
    order = sorted(range(len(keys)), key=keys.__getitem__)
    out: list[torch.Tensor | None] = [None] * len(keys)
    for group in node_groups(keys, order, max_nodes):
        tree, ends = PrefixTree.build([keys[i] for i in group])
        tree, ends = tree.to(stack.positional.device), ends.to(stack.positional.device)
        cache = prefix_cache(stack, tree, batch_size)
        prefix_length = tree.depth[ends].tolist()
        by_length = sorted(range(len(group)), key=lambda j: (len(suffixes[group[j]]), prefix_length[j]))
        for start in range(0, len(by_length), batch_size):
            chunk = by_length[start:start + batch_size]
            pooled = suffix_batch(stack, tree, cache, ends[chunk], [suffixes[group[j]] for j in chunk])
            for j, feature in zip(chunk, pooled):
                out[group[j]] = feature
    return torch.stack(out)
