"""Batch norms folded into the convolutions before them, for a frozen ResNet image tower under attack.

A frozen backbone's batch norms run in eval mode: each is a fixed affine map per channel, so it folds into the
weights and bias of the convolution that feeds it (`torch.ao.quantization.fuse_modules`), giving the same
function up to float rounding. With channels-last weights on top, a PGD step (forward and backward) on the
embedded tiny CLIP takes about a third less time on a CPU (`benchmarks/bench_attacks.py`). Towers without batch
norms (ViTs) are left as they are.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.ao.quantization import fuse_modules

logger = logging.getLogger(__name__)

TOLERANCE = 1e-3  # largest change of the tower's output, relative to its largest value, that folding may make


def conv_norm_pairs(tower: nn.Module) -> list[list[str]]:
    """[convolution, batch norm] names of every pair the tower applies one after the other: a module's `convN`
    and `bnN` children (open_clip's ModifiedResNet stem and bottlenecks, torchvision's ResNets) and consecutive
    children of a Sequential (their downsample branches)."""
    pairs = []
    for name, module in tower.named_modules():
        prefix = f"{name}." if name else ""
        children = dict(module.named_children())
        if isinstance(module, nn.Sequential):
            keys = list(children)
            candidates = zip(keys, keys[1:])
        else:
            candidates = ((key, "bn" + key[4:]) for key in children if key.startswith("conv"))
        pairs += [[prefix + conv, prefix + norm] for conv, norm in candidates
                  if type(children.get(conv)) is nn.Conv2d and type(children.get(norm)) is nn.BatchNorm2d]
    return pairs


def folded_tower(tower: nn.Module, image_size: int) -> nn.Module:
    """A frozen copy of an eval-mode `tower` with every conv/norm pair folded and channels-last weights, or the
    tower itself when it has no such pair (or, with a warning, when folding would change its output on a probe
    image beyond TOLERANCE: an architecture that applies something between a pair)."""
    pairs = conv_norm_pairs(tower)
    if not pairs:
        return tower
    folded = fuse_modules(copy.deepcopy(tower).eval(), pairs).to(memory_format=torch.channels_last)
    for p in folded.parameters():
        p.requires_grad_(False)
    device = next(tower.parameters()).device
    probe = torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        expected, got = tower(probe), folded(probe)
    if (got - expected).abs().max() > TOLERANCE * expected.abs().max():
        logger.warning("folding the image tower's batch norms changes its output; attacks run on the tower as it is")
        return tower
    return folded
