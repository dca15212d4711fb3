"""MaskCLIP dense features of an open_clip image tower: an embedding in the joint space per location, training-free.

- ModifiedResNet: the attention pool's value and output projections, c_proj(v_proj(x)), applied to every position
  of the last feature map, without the pool's positional embedding and attention (as MaskCLIP's head does, Zhou et
  al. 2022). Any input size works; the grid is the input size / 32.
- VisionTransformer: the last block's value path for every patch token, x + out_proj(W_v ln_1(x)) followed by the
  block's MLP, then ln_post and proj (MaskCLIP's ViT variant), with the positional embedding interpolated
  (bicubic) to the input's patch grid. The grid is the input size / the patch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clap.errors import ClapError


def dense_features(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Per-location image embeddings [B, D, h, w] (not normalised) of normalised pixels [B, 3, H, W]."""
    if hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
        return _resnet(visual, pixels)
    if hasattr(visual, "transformer") and hasattr(visual, "conv1") and getattr(visual, "attn_pool", None) is None:
        return _vit(visual, pixels)
    raise ClapError(f"dense features need an open_clip ModifiedResNet or plain ViT image tower, not "
                    f"{type(visual).__name__}")


def _resnet(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    x = visual.stem(pixels)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)
    pool = visual.attnpool
    x = pool.c_proj(pool.v_proj(x.permute(0, 2, 3, 1)))
    return x.permute(0, 3, 1, 2)


def _vit(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    x = visual.conv1(pixels)
    batch, width, h, w = x.shape
    x = torch.cat([visual.class_embedding.to(x.dtype).expand(batch, 1, width), x.flatten(2).transpose(1, 2)], dim=1)
    x = visual.ln_pre(x + interpolated_positions(visual.positional_embedding, h, w).to(x.dtype))
    blocks = visual.transformer.resblocks
    if not visual.transformer.batch_first:
        x = x.transpose(0, 1)
    for block in blocks[:-1]:
        x = block(x)
    if not visual.transformer.batch_first:
        x = x.transpose(0, 1)
    last = blocks[-1]
    attn = last.attn
    value = F.linear(last.ln_1(x), attn.in_proj_weight[2 * width:], attn.in_proj_bias[2 * width:])
    x = x + last.ls_1(attn.out_proj(value))
    x = x + last.ls_2(last.mlp(last.ln_2(x)))
    tokens = visual.ln_post(x[:, 1:])
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    return tokens.transpose(1, 2).reshape(batch, -1, h, w)


def interpolated_positions(positions: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The class token's position and the patch positions resized (bicubic) from the trained square grid to h x w."""
    side = round((positions.shape[0] - 1) ** 0.5)
    patches = positions[1:]
    if (side, side) != (h, w):
        grid = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(h * w, -1)
    return torch.cat([positions[:1], patches])
