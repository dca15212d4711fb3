"""CLAPModel: the adapter after both encoders, compatibility checks, zero-shot classifier."""

from __future__ import annotations

import pytest
import torch

from clap.adapter.disentangler import Disentangler
from clap.errors import ClapError
from clap.model import CLAPModel


def trained_adapter(backbone, **kw):
    adapter = Disentangler.create(backbone.embed_dim, backbone=backbone.identity.to_dict(), **kw)
    torch.manual_seed(0)
    torch.nn.init.normal_(adapter.projection.weight, std=0.2)
    return adapter


def test_adapter_is_applied_to_raw_features_of_both_encoders(tiny_open_clip):
    adapter = trained_adapter(tiny_open_clip)
    model = CLAPModel(tiny_open_clip, adapter, alpha=0.3)
    pixels, texts = torch.rand(2, 3, 32, 32), ["a star", "a photo of a ring"]
    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(texts, normalize=True)
        assert torch.allclose(img, adapter(tiny_open_clip.encode_image(pixels), alpha=0.3), atol=1e-6)
        want = torch.nn.functional.normalize(adapter(tiny_open_clip.encode_text(texts), alpha=0.3), dim=-1)
        assert torch.allclose(txt, want, atol=1e-6)
        noisy = model.encode_text_with_noise(texts, generator=torch.Generator().manual_seed(0))
        raw = tiny_open_clip.encode_text_with_noise(texts, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(noisy, adapter(raw, alpha=0.3), atol=1e-6)


def test_default_alpha_comes_from_the_adapter_config(tiny_open_clip):
    model = CLAPModel(tiny_open_clip, trained_adapter(tiny_open_clip, alpha=0.14))
    assert model.alpha == 0.14
    assert CLAPModel(tiny_open_clip).alpha == 0.0


def test_plain_torch_adapter_gives_the_cli_features(tiny_open_clip, tmp_path):
    trained_adapter(tiny_open_clip, alpha=0.14).save_pretrained(tmp_path)
    loaded = Disentangler.from_pretrained(tmp_path)
    model = CLAPModel(tiny_open_clip, Disentangler.from_pretrained(tmp_path))
    with torch.no_grad():
        raw = tiny_open_clip.encode_text(["a star", "a ring"])
        assert torch.equal(loaded(raw), model.adapt(raw))
        assert not torch.allclose(loaded(raw), loaded(raw, alpha=1.0))


def test_without_adapter_it_is_the_backbone(tiny_open_clip):
    model = CLAPModel(tiny_open_clip)
    with torch.no_grad():
        assert torch.equal(model.encode_text(["a star"]), tiny_open_clip.encode_text(["a star"]))


def test_mismatched_adapters_are_refused(tiny_open_clip, tiny_hf_clip):
    with pytest.raises(ClapError, match="expects 24-d features"):
        CLAPModel(tiny_open_clip, Disentangler.create(24))
    other = trained_adapter(tiny_open_clip)
    other.config.backbone = {**tiny_open_clip.identity.to_dict(), "checksum": "0" * 16}
    with pytest.raises(ClapError, match="adapter was trained on another build of open_clip tiny-test-vit"):
        CLAPModel(tiny_open_clip, other)


def test_adapter_without_identity_is_accepted_on_dims(tiny_open_clip, caplog):
    CLAPModel(tiny_open_clip, Disentangler.create(tiny_open_clip.embed_dim))
    assert "records no backbone identity" in caplog.text


def test_zero_shot_classifier(tiny_open_clip):
    model = CLAPModel(tiny_open_clip, trained_adapter(tiny_open_clip), alpha=1.0)
    weights = model.zero_shot_classifier(["star", "ring", "cross"], ["a photo of a {}", "{}"])
    assert weights.shape == (tiny_open_clip.embed_dim, 3)
    assert torch.allclose(weights.norm(dim=0), torch.ones(3), atol=1e-5)
    with torch.no_grad():
        single = model.zero_shot_classifier(["star"], ["{}"])[:, 0]
        assert torch.allclose(single, model.encode_text(["star"], normalize=True)[0], atol=1e-6)
        twice = model.zero_shot_classifier(["star"], ["a {c} of {c} {{braces}}"])[:, 0]  # CLIP_benchmark fills both
        assert torch.allclose(twice, model.encode_text(["a star of star {braces}"], normalize=True)[0], atol=1e-6)
    with pytest.raises(ClapError, match="has no slot"):
        model.zero_shot_classifier(["star"], ["no slot"])
    with pytest.raises(ClapError, match="at least one class"):
        model.zero_shot_classifier([], ["{}"])


def test_open_clip_style_zero_shot_loop_accepts_clap_model(embedded):
    """The loop CLIP_benchmark runs: tokenizer + encode_text(tokens) + encode_image(preprocessed)."""
    from PIL import Image

    model = CLAPModel(embedded, trained_adapter(embedded), alpha=0.1)
    tokens = model.tokenize(["a photo of a star", "a photo of a ring"])
    pixels = torch.stack([model.eval_transform(Image.new("RGB", (64, 64), (200, 30, 30)))])
    with torch.no_grad():
        text = model.encode_text(tokens, normalize=True)
        image = model.encode_image(pixels, normalize=True)
    assert (image @ text.T).shape == (1, 2)
