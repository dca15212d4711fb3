"""MaskCLIP dense features (`Backbone.encode_image_dense`): wired as the towers' own pooling path, and useful."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clap.backbones.open_clip_dense import dense_features, interpolated_positions
from clap.errors import ClapError


def test_resnet_dense_features_average_to_the_attention_pool_under_uniform_attention(embedded):
    """With the pool's positional embedding and query projection zeroed, every token attends uniformly to the mean
    token and all positions, so the pool's output is c_proj(v_proj(mean)): the mean of the dense features."""
    visual = copy.deepcopy(embedded.model.visual)
    with torch.no_grad():
        visual.attnpool.positional_embedding.zero_()
        visual.attnpool.q_proj.weight.zero_()
        visual.attnpool.q_proj.bias.zero_()
    pixels = embedded.normalize(torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    dense = dense_features(visual, pixels)
    assert dense.shape == (3, embedded.embed_dim, 2, 2)
    torch.testing.assert_close(dense.mean(dim=(2, 3)), visual(pixels), atol=1e-5, rtol=1e-4)


def test_vit_dense_features_are_the_last_blocks_value_path(tiny_open_clip):
    """open_clip's own forward with the last block's attention replaced by its value path gives the same tokens;
    a larger input gives a finer grid through interpolated positions (identity at the trained size)."""
    visual = copy.deepcopy(tiny_open_clip.model.visual)
    last, width = visual.transformer.resblocks[-1], visual.conv1.out_channels
    attn = last.attn

    def value_path(q_x, k_x=None, v_x=None, attn_mask=None):
        value = F.linear(q_x, attn.in_proj_weight[2 * width:], attn.in_proj_bias[2 * width:])
        return attn.out_proj(value)

    last.attention = value_path
    visual.output_tokens = True
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    _, tokens = visual(pixels)
    expected = (tokens @ visual.proj).transpose(1, 2).reshape(2, -1, 4, 4)
    torch.testing.assert_close(dense_features(tiny_open_clip.model.visual, pixels), expected, atol=1e-5, rtol=1e-4)
    assert tiny_open_clip.encode_image_dense(torch.rand(1, 3, 64, 48)).shape == (1, 32, 8, 6)
    positions = visual.positional_embedding
    assert torch.equal(interpolated_positions(positions, 4, 4), positions)


def test_a_hugging_face_tower_is_refused_in_one_line(tiny_hf_clip):
    with pytest.raises(ClapError, match="built for open_clip image towers"):
        tiny_hf_clip.encode_image_dense(torch.rand(1, 3, 32, 32))


def test_dense_features_name_the_objects_of_a_scene(embedded, tmp_path):
    """Training-free, the embedded tiny CLIP's per-location features pick the right class on object pixels far
    above chance (1 in 24): the dense path carries the image tower's class information to each place."""
    from clap.data_gen.world.scenes import render_scenes

    render_scenes(tmp_path, 8, seed=5, progress=False)
    world = json.loads((tmp_path / "world.json").read_text())
    classes = world["labels"]["classes"]
    text = F.normalize(embedded.encode_text([f"a photo of a {c}." for c in classes]), dim=-1)
    right, total = 0, 0
    for row in map(json.loads, (tmp_path / "scenes.jsonl").read_text().splitlines()):
        image = np.array(Image.open(tmp_path / row["image"]).convert("RGB"))
        labels = np.array(Image.open(tmp_path / row["label"]))
        dense = F.normalize(embedded.encode_image_dense(torch.from_numpy(image).permute(2, 0, 1)[None] / 255), dim=1)
        cosines = F.interpolate(torch.einsum("bdhw,kd->bkhw", dense, text), size=labels.shape, mode="bilinear")
        predicted = cosines[0].argmax(0).numpy()
        objects = labels < len(classes)
        right, total = right + (predicted[objects] == labels[objects]).sum(), total + objects.sum()
    assert right / total > 5 / len(classes)
