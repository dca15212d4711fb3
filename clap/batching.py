"""Mini-batch encoding of many items through a frozen model."""

from __future__ import annotations

from typing import Callable

import torch


def encode_in_batches(encode: Callable[[list], torch.Tensor], items: list, batch_size: int,
                      length: Callable | None = None) -> torch.Tensor:
    """encode(items) in mini-batches; with `length`, items are grouped by length to minimise padding."""
    order = sorted(range(len(items)), key=lambda i: length(items[i])) if length else list(range(len(items)))
    parts = []
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            parts.append(encode([items[j] for j in order[i:i + batch_size]]).float().cpu())
    stacked = torch.cat(parts)
    out = torch.empty_like(stacked)
    out[torch.tensor(order)] = stacked
    return out
