"""Batch norms folded into convolutions for attacks (`clap.backbones.folding`, `Backbone.folded_norms`)."""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from clap.backbones.folding import conv_norm_pairs, folded_tower
from clap.evaluation.protocols.adversarial import AttackTarget, robust_correct, zero_shot_head
from clap.model import CLAPModel


def test_every_conv_norm_pair_of_the_resnet_tower_is_found_and_folded(embedded):
    """The embedded ModifiedResNet: 3 stem pairs, and 3 per bottleneck plus its downsample branch; the folded copy
    holds no batch norm and computes the same features."""
    tower = embedded.model.visual
    pairs = conv_norm_pairs(tower)
    bottlenecks = [n for n, m in tower.named_modules() if type(m).__name__ == "Bottleneck"]
    assert len(pairs) == 3 + 4 * len(bottlenecks)
    assert ["layer1.0.downsample.0", "layer1.0.downsample.1"] in pairs and ["conv1", "bn1"] in pairs
    folded = folded_tower(tower, embedded.image_size)
    assert folded is not tower and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in tower.modules())  # the original is untouched
    assert not any(p.requires_grad for p in folded.parameters())
    x = torch.rand(3, 3, embedded.image_size, embedded.image_size)
    with torch.no_grad():
        assert torch.allclose(folded(x), tower(x), rtol=1e-4, atol=1e-4)


def test_a_tower_without_batch_norms_is_left_as_it_is(tiny_open_clip, tiny_hf_clip):
    for backbone in (tiny_open_clip, tiny_hf_clip):
        tower = getattr(backbone.model, backbone.IMAGE_TOWER)
        assert conv_norm_pairs(tower) == [] and folded_tower(tower, backbone.image_size) is tower


class _ActivationInBetween(nn.Module):
    """conv1 and bn1 by name, but a ReLU between them: not a pair that folds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        with torch.no_grad():
            self.bn1.running_mean.uniform_(-1, 1)
            self.bn1.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(torch.relu(self.conv1(x)))


def test_folding_that_would_change_the_output_is_refused_with_a_warning(caplog):
    tower = _ActivationInBetween().eval()
    with caplog.at_level(logging.WARNING, logger="clap.backbones.folding"):
        assert folded_tower(tower, 8) is tower
    assert "changes its output" in caplog.text


def test_folded_norms_swaps_the_tower_in_and_out_once_made(embedded):
    """Inside the block the backbone encodes with the folded copy (the same features up to rounding), after it
    the original tower is back, the state dict is unchanged, and the copy is made once."""
    original, keys = embedded.model.visual, set(embedded.state_dict())
    x = torch.rand(2, 3, embedded.image_size, embedded.image_size)
    with torch.no_grad():
        plain = embedded.encode_image(x)
        with embedded.folded_norms():
            first = embedded.model.visual
            folded = embedded.encode_image(x)
        with embedded.folded_norms():
            assert embedded.model.visual is first
    assert first is not original and embedded.model.visual is original and set(embedded.state_dict()) == keys
    assert torch.allclose(folded, plain, rtol=1e-4, atol=1e-4)


def test_attacks_on_the_folded_tower_reach_what_they_reach_on_the_plain_one(embedded, monkeypatch):
    """Folding changes float rounding only: PGD-20's per-image outcomes on the folded tower agree with those on the
    plain tower (the same seeded starts) on nearly every image."""
    torch.manual_seed(0)
    weights = nn.functional.normalize(torch.randn(embedded.embed_dim, 32), dim=0)
    target = AttackTarget(CLAPModel(embedded), zero_shot_head(weights))
    x = torch.rand(16, 3, embedded.image_size, embedded.image_size)
    with torch.no_grad():
        y = target(x).argmax(1)
    eps = (1 / 255, 2 / 255)
    folded = robust_correct(target, x, y, ("PGD-20",), eps)
    monkeypatch.setattr(type(embedded), "folded_norms", contextlib.nullcontext)
    plain = robust_correct(target, x, y, ("PGD-20",), eps)
    assert 0 < folded[("PGD-20", eps[0])].mean() < 1  # the attack is neither hopeless nor trivial here
    agree = sum(int((folded[k] == plain[k]).sum()) for k in folded)
    assert agree >= 0.95 * len(x) * len(folded)

