"""open_clip's text tower, run on a token-embedding sequence cut to the longest real prompt.

With a causal attention mask, position i only sees positions <= i, so the end-of-text output does
not depend on the padding after it: cutting every sequence in the batch to the longest real one
gives the same features as the full-context forward, at a fraction of the cost. The same entry
point takes extra embeddings (the method's IGN noise tokens) inserted before the transformer.
"""

from __future__ import annotations

import torch
from torch import nn


def supports_trimming(model: nn.Module) -> bool:
    """True when the text tower is causal and pools at the end-of-text token (argmax or eos)."""
    return getattr(model, "attn_mask", None) is not None and getattr(model, "text_pool_type", "argmax") in (
        "argmax",
        "eos",
    )


def end_of_text_index(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Index of the token whose output is pooled, per sequence."""
    if getattr(model, "text_pool_type", "argmax") == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


def token_embeddings(model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of tokens cut after the longest end-of-text, and each sequence's pooling index."""
    eot = end_of_text_index(model, tokens)
    if supports_trimming(model):
        tokens = tokens[:, : int(eot.max()) + 1]
    cast_dtype = model.transformer.get_cast_dtype()
    return model.token_embedding(tokens).to(cast_dtype), eot


def encode_embeddings(model: nn.Module, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
    """Text features from a token-embedding sequence [B, L, D] (L <= context length)."""
    length = x.shape[1]
    context = model.positional_embedding.shape[0]
    if length > context:
        raise ValueError(f"text of {length} tokens exceeds the model's context length {context}")
    x = x + model.positional_embedding[:length].to(x.dtype)
    mask = model.attn_mask
    x = model.transformer(x, attn_mask=None if mask is None else mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot]
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection


def encode_tokens(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Equivalent of `model.encode_text(tokens)`, computed on the trimmed sequence."""
    x, eot = token_embeddings(model, tokens)
    return encode_embeddings(model, x, eot)
