"""Backbones: loading forms, fast text path, noise insertion (IGN), freezing, offline errors."""

from __future__ import annotations


import pytest
import torch

from clap import hub
from clap.backbones import loading
from clap.backbones.base import insert_embeddings, insertion_index
from clap.backbones.loading import load_backbone
from clap.errors import ClapError
from conftest import forbid_network

PROMPTS = [
    "a photo of a star",
    "an impressionistic photograph of a large multicolored hexagon",
    "heart",
    "a small red cross in a realistic sketch style",
]


@pytest.fixture(params=["tiny_open_clip", "tiny_hf_clip", "embedded"])
def backbone(request):
    return request.getfixturevalue(request.param)


def test_fast_text_path_equals_full_context_forward(backbone):
    with torch.no_grad():
        fast = backbone.encode_text(PROMPTS)
        full = backbone.encode_text_full(PROMPTS)
    assert fast.shape == (len(PROMPTS), backbone.embed_dim)
    assert torch.allclose(fast, full, atol=1e-5)


def test_fast_path_really_cuts_the_sequence(tiny_open_clip):
    tokens = tiny_open_clip.tokenize(["a star"])
    x, eot = tiny_open_clip._token_embeddings(tokens)
    assert tokens.shape[1] == 77
    assert x.shape[1] == int(eot[0]) + 1 < 10


def test_encode_text_accepts_token_tensors_and_rejects_a_bare_string(tiny_open_clip):
    with torch.no_grad():
        from_tokens = tiny_open_clip.encode_text(tiny_open_clip.tokenize(PROMPTS))
        from_strings = tiny_open_clip.encode_text(PROMPTS)
    assert torch.equal(from_tokens, from_strings)
    with pytest.raises(TypeError, match="list of strings"):
        tiny_open_clip.encode_text("a star")


def test_insert_embeddings_places_noise_and_shifts_eot():
    x = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)  # rows [0..4], [5..9]
    eot = torch.tensor([4, 2])
    extra = -torch.ones(2, 2, 1)
    out, new_eot = insert_embeddings(x, eot, extra, torch.tensor([1, 2]))
    assert out[0, :, 0].tolist() == [0, -1, -1, 1, 2, 3, 4]
    assert out[1, :, 0].tolist() == [5, 6, -1, -1, 7, 8, 9]
    assert new_eot.tolist() == [6, 4]
    assert out[0, 6, 0] == x[0, 4, 0] and out[1, 4, 0] == x[1, 2, 0]  # EOT embedding moved with its index


def test_insertion_positions():
    eot = torch.tensor([9, 5])
    assert insertion_index(eot, "front", None).tolist() == [1, 1]
    assert insertion_index(eot, "middle", None).tolist() == [5, 3]
    assert insertion_index(eot, "end", None).tolist() == [9, 5]
    gen = torch.Generator().manual_seed(0)
    seen = {int(insertion_index(torch.tensor([9]), "random", gen)) for _ in range(60)}
    assert seen == {1, 5, 9}
    with pytest.raises(ValueError, match="noise position"):
        insertion_index(eot, "sideways", None)


def test_noise_encoding_is_seeded_and_changes_features(backbone):
    with torch.no_grad():
        plain = backbone.encode_text(PROMPTS)
        a = backbone.encode_text_with_noise(PROMPTS, generator=torch.Generator().manual_seed(1))
        b = backbone.encode_text_with_noise(PROMPTS, generator=torch.Generator().manual_seed(1))
        c = backbone.encode_text_with_noise(PROMPTS, generator=torch.Generator().manual_seed(2))
        none = backbone.encode_text_with_noise(PROMPTS, n_tokens=0)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, plain, atol=1e-4)
    assert torch.allclose(none, plain, atol=1e-6)


def test_zero_std_noise_equals_explicit_zero_embeddings(tiny_open_clip):
    """With std 0 the inserted vectors are zeros: compare with inserting zeros by hand."""
    with torch.no_grad():
        got = tiny_open_clip.encode_text_with_noise(PROMPTS, n_tokens=3, std=0.0, position="end")
        x, eot = tiny_open_clip._token_embeddings(tiny_open_clip.tokenize(PROMPTS))
        x2, eot2 = insert_embeddings(x, eot, torch.zeros(len(PROMPTS), 3, x.shape[2]), eot)
        want = tiny_open_clip._encode_embeddings(x2, eot2)
    assert torch.allclose(got, want, atol=1e-6)


def test_backbone_is_frozen_but_passes_input_gradients(tiny_open_clip):
    tiny_open_clip.train()
    assert not tiny_open_clip.training and not tiny_open_clip.model.training
    assert all(not p.requires_grad for p in tiny_open_clip.parameters())
    pixels = torch.rand(2, 3, 32, 32, requires_grad=True)
    tiny_open_clip.encode_image(pixels).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_open_clip.parameters())


def test_encode_image_normalises_inside(tiny_open_clip):
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        got = tiny_open_clip.encode_image(pixels)
        want = tiny_open_clip.model.encode_image((pixels - tiny_open_clip.mean) / tiny_open_clip.std)
    assert torch.allclose(got, want, atol=1e-6)


def test_identity_records_checksum_and_dims(tiny_open_clip, tiny_open_clip_files, embedded):
    _, weights = tiny_open_clip_files
    ident = tiny_open_clip.identity
    assert (ident.family, ident.model, ident.embed_dim) == ("open_clip", "tiny-test-vit", 32)
    assert ident.checksum == loading.file_checksum(weights)
    assert embedded.identity.model == loading.EMBEDDED_NAME and embedded.identity.pretrained == "embedded"


def test_loading_forms_agree(tiny_open_clip, tiny_open_clip_files, tmp_path):
    """Config JSON + weights, and a folder with open_clip_config.json, give the same model."""
    import json
    import shutil

    config, weights = tiny_open_clip_files
    folder = tmp_path / "oc"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": json.loads(config.read_text())}))
    shutil.copy(weights, folder / "open_clip_model.safetensors")
    other = load_backbone(str(folder))
    with torch.no_grad():
        assert torch.allclose(other.encode_text(PROMPTS), tiny_open_clip.encode_text(PROMPTS), atol=1e-6)
    assert other.identity.checksum == tiny_open_clip.identity.checksum


def test_transforms_make_unnormalised_pixels(embedded):
    from PIL import Image

    image = Image.new("RGB", (100, 80), (255, 0, 0))
    pixels = embedded.eval_transform(image)
    assert pixels.shape == (3, embedded.image_size, embedded.image_size)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels[0].mean() > 0.99
    assert embedded.train_transform(image).shape == pixels.shape


@pytest.mark.parametrize("model, pretrained, message", [
    ("no-such-model", None, "unknown model 'no-such-model'"),
    ("ViT-B-16", None, "needs pretrained weights"),
    ("ViT-B-16", "/no/such/file.pt", "neither a known tag"),
    ("missing.json", "w.pt", "does not exist"),
    ("hf:/", None, "cannot"),
])
def test_bad_backbone_requests_get_clear_errors(model, pretrained, message):
    with pytest.raises(ClapError, match=message):
        load_backbone(model, pretrained)


def test_config_json_without_weights_or_with_missing_file(tiny_open_clip_files):
    config, _ = tiny_open_clip_files
    with pytest.raises(ClapError, match="needs its weights"):
        load_backbone(str(config))
    with pytest.raises(ClapError, match="does not exist"):
        load_backbone(str(config), "/no/weights.safetensors")


def test_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(ClapError, match="no weights"):
        load_backbone(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ClapError, match="neither open_clip_config.json"):
        load_backbone(str(empty))


@pytest.mark.parametrize("offline_env", ["1", ""])
def test_uncached_tag_fails_fast_offline(monkeypatch, tmp_path, offline_env):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
    monkeypatch.setattr(hub, "reachable", lambda host, timeout=hub.REACH_TIMEOUT_S: False)
    forbid_network(monkeypatch)
    with pytest.raises(ClapError, match=r"ViT-B-16 / openai.*--pretrained /path/to/weights"):
        load_backbone("ViT-B-16", "openai", cache_dir=str(tmp_path))


def test_uncached_hf_hub_id_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forbid_network(monkeypatch)
    with pytest.raises(ClapError, match="openai/clip-vit-base-patch16.*HF_HUB_OFFLINE"):
        load_backbone("hf:openai/clip-vit-base-patch16", cache_dir=str(tmp_path))


def test_reachable_is_false_for_an_unresolvable_host():
    assert hub.reachable("host.invalid", timeout=2) is False


def test_random_init_named_model_is_explicit():
    backbone = load_backbone("RN50", "random")
    assert backbone.identity.pretrained == "random" and backbone.embed_dim == 1024


def test_full_precision_block_restores_autocast(tiny_open_clip):
    tiny_open_clip.autocast_dtype = torch.bfloat16
    try:
        with tiny_open_clip.full_precision():
            assert tiny_open_clip.autocast_dtype is None and tiny_open_clip.precision == "fp32"
        assert tiny_open_clip.precision == "bf16"
    finally:
        tiny_open_clip.autocast_dtype = None


def test_precision_sets_the_encoders_autocast_on_the_cpu_too(embedded):
    """bf16 runs the encoders under CPU autocast (features close to fp32's, not equal); fp16 needs CUDA; auto
    is fp32 on the CPU. Features come back in fp32 either way."""
    from clap.backbones.loading import load_backbone

    bf16 = load_backbone(precision="bf16")
    assert bf16.precision == "bf16" and load_backbone(precision="auto").precision == "fp32"
    pixels = torch.rand(4, 3, embedded.image_size, embedded.image_size)
    full, half = embedded.encode_image(pixels), bf16.encode_image(pixels)
    assert half.dtype == torch.float32 and not torch.equal(full, half)
    assert float(torch.nn.functional.cosine_similarity(full, half).min()) > 0.98
    texts = bf16.encode_text(["a star", "a ring"])
    assert texts.dtype == torch.float32
    with pytest.raises(ClapError, match="fp16 needs a CUDA device"):
        load_backbone(precision="fp16")
    with pytest.raises(ClapError, match="precision 'half'"):
        load_backbone(precision="half")


@pytest.fixture()
def fake_tag(tiny_open_clip_files, tmp_path, monkeypatch):
    """A pretrained tag of the tiny model whose config asks for QuickGELU and its own mean/std, cached like the hub."""
    import shutil

    from open_clip import pretrained

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    tags = {"fake_tag": pretrained._pcfg(hf_hub="fakeorg/fakerepo/", quick_gelu=True, mean=mean, std=std)}
    monkeypatch.setitem(pretrained._PRETRAINED, "tiny-test-vit", tags)
    snapshot = tmp_path / "models--fakeorg--fakerepo" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(tiny_open_clip_files[1], snapshot / "open_clip_model.safetensors")
    (tmp_path / "models--fakeorg--fakerepo" / "refs").mkdir()
    (tmp_path / "models--fakeorg--fakerepo" / "refs" / "main").write_text("0" * 40)
    return {"cache_dir": str(tmp_path), "mean": list(mean), "std": list(std), "weights": tiny_open_clip_files[1]}


def _has_quick_gelu(backbone) -> bool:
    import open_clip

    return any(isinstance(m, open_clip.transformer.QuickGELU) for m in backbone.model.modules())


def test_cached_tag_keeps_its_quick_gelu_and_preprocessing(fake_tag):
    forbid = pytest.MonkeyPatch()
    forbid_network(forbid)
    try:
        backbone = load_backbone("tiny-test-vit", "fake_tag", cache_dir=fake_tag["cache_dir"])
    finally:
        forbid.undo()
    assert _has_quick_gelu(backbone) and backbone.identity.quick_gelu is True
    assert backbone.identity.preprocess["mean"] == pytest.approx(fake_tag["mean"])
    assert backbone.mean.flatten().tolist() == pytest.approx(fake_tag["mean"])


def test_weights_file_route_takes_the_flags_and_the_offline_hint_names_them(fake_tag, monkeypatch, tmp_path):
    plain = load_backbone("tiny-test-vit", str(fake_tag["weights"]))
    assert not _has_quick_gelu(plain) and plain.identity.quick_gelu is False
    flagged = load_backbone("tiny-test-vit", str(fake_tag["weights"]), quick_gelu=True,
                            preprocess={"mean": fake_tag["mean"], "std": fake_tag["std"]})
    assert _has_quick_gelu(flagged) and flagged.identity.preprocess["std"] == pytest.approx(fake_tag["std"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClapError, match=r"quick_gelu=True, preprocess=\{'mean': \[0.5, 0.4, 0.3\]") as e:
        load_backbone("tiny-test-vit", "fake_tag", cache_dir=str(tmp_path / "empty"))
    assert "--quick-gelu" in str(e.value)


def test_an_adapter_is_refused_on_a_backbone_without_its_quick_gelu(fake_tag):
    from clap.adapter.disentangler import Disentangler
    from clap.model import CLAPModel

    flagged = load_backbone("tiny-test-vit", str(fake_tag["weights"]), quick_gelu=True)
    adapter = Disentangler.create(flagged.embed_dim, backbone=flagged.identity.to_dict())
    CLAPModel(flagged, adapter)
    with pytest.raises(ClapError, match="quick_gelu: True vs False"):
        CLAPModel(load_backbone("tiny-test-vit", str(fake_tag["weights"])), adapter)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": None, "quick_gelu": True}, "apply to open_clip models built from a weights file"),
    ({"model": "tiny-test-vit", "pretrained": "random", "preprocess": {"colour": 1}}, "unknown preprocess keys"),
    ({"model": "tiny-test-vit", "pretrained": "random", "preprocess": {"mean": [0.5]}}, "needs 3 numbers"),
])
def test_bad_architecture_flags(tiny_open_clip_files, kwargs, message):
    with pytest.raises(ClapError, match=message):
        load_backbone(**kwargs)
