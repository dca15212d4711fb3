"""open_clip's text tower, run on a token-embedding sequence cut to the longest real prompt.

With a causal attention mask, position i only sees positions <= i, so the end-of-text output does
not depend on the padding after it: cutting every sequence in the batch to the longest real one
gives the same features as the full-context forward, at a fraction of the cost. The same entry
point takes extra embeddings (the method's IGN noise tokens) inserted before the transformer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clap.backbones.prefix_tree import CausalStack


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
    return project(model, x[torch.arange(x.shape[0], device=x.device), eot])


def encode_tokens(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Equivalent of `model.encode_text(tokens)`, computed on the trimmed sequence."""
    x, eot = token_embeddings(model, tokens)
    return encode_embeddings(model, x, eot)


def project(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The text projection (a matrix, a Linear or none) applied to pooled features."""
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection


class OpenClipLayer:
    """open_clip's ResidualAttentionBlock split around its attention (see `clap.backbones.prefix_tree`)."""

    def __init__(self, block: nn.Module) -> None:
        self.block = block
        self.heads = block.attn.num_heads

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attn = self.block.attn
        qkv = F.linear(self.block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = (t.unflatten(-1, (self.heads, -1)) for t in qkv.chunk(3, dim=-1))
        return q, k, v

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        block = self.block
        x = x + block.ls_1(block.attn.out_proj(attended))
        return x + block.ls_2(block.mlp(block.ln_2(x)))


def plain_block(block: nn.Module) -> bool:
    """A standard self-attention block (no cross-attention, no custom attention)."""
    attn = getattr(block, "attn", None)
    return (type(block).__name__ == "ResidualAttentionBlock" and isinstance(attn, nn.MultiheadAttention)
            and attn._qkv_same_embed_dim and attn.bias_k is None and not hasattr(block, "ln_1_kv"))


def is_causal_mask(mask: torch.Tensor | None) -> bool:
    if mask is None:
        return False
    above = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isinf(mask), above))


def causal_stack(model: nn.Module) -> CausalStack | None:
    """The text tower as a `CausalStack`, or None when it is not a plain causal CLIP text transformer."""
    blocks = list(getattr(model.transformer, "resblocks", []))
    if not (supports_trimming(model) and is_causal_mask(model.attn_mask) and blocks
            and all(plain_block(b) for b in blocks)):
        return None
    cast_dtype = model.transformer.get_cast_dtype()
    return CausalStack(token_embedding=lambda ids: model.token_embedding(ids).to(cast_dtype),
                       positional=model.positional_embedding.to(cast_dtype),
                       layers=[OpenClipLayer(b) for b in blocks],
                       pool=lambda x: project(model, model.ln_final(x)),
                       end_of_text=lambda tokens: end_of_text_index(model, tokens))
