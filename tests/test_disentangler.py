"""The disentangler: the method's residual MLP, its files, strict loading, the hub."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from clap import __version__
from clap.adapter.config import AdapterConfig
from clap.adapter.disentangler import CONFIG_NAME, WEIGHTS_NAME, Disentangler
from clap.errors import ClapError


def trained(adapter: Disentangler, seed: int = 0) -> Disentangler:
    """Give the zero-initialised projection random weights, as training would."""
    torch.manual_seed(seed)
    torch.nn.init.normal_(adapter.projection.weight, std=0.1)
    return adapter


def test_layers_follow_the_method():
    adapter = Disentangler.create(16, latent_dim=8, out_dim=12)
    assert isinstance(adapter.act, torch.nn.SiLU)
    assert adapter.linear.weight.shape == (8, 16) and adapter.linear.bias is not None
    assert adapter.projection.weight.shape == (12, 8) and adapter.projection.bias is None
    assert adapter.config.alpha == 1.0 and not hasattr(adapter, "alpha")


def test_identity_at_initialisation():
    adapter = Disentangler.create(16)
    z = torch.randn(5, 16)
    assert adapter.is_identity()
    assert torch.equal(adapter(z), z)


def test_forward_is_shortcut_plus_alpha_times_main_branch():
    adapter = trained(Disentangler.create(16, latent_dim=8))
    z = torch.randn(4, 16)
    main = adapter.projection(adapter.linear(torch.nn.functional.silu(z)))
    assert torch.allclose(adapter(z), z + main, atol=1e-6)
    assert torch.allclose(adapter(z, alpha=0.1), z + 0.1 * main, atol=1e-6)
    adapter.config.alpha = 0.2  # the recorded inference alpha is the default weight
    assert torch.allclose(adapter(z), z + 0.2 * main, atol=1e-6)


def test_nearest_neighbour_shortcut_when_out_dim_differs():
    adapter = Disentangler.create(4, latent_dim=3, out_dim=8)
    z = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert adapter(z).tolist() == [[1, 1, 2, 2, 3, 3, 4, 4]]
    down = Disentangler.create(6, out_dim=3)
    assert down(torch.arange(6.0)[None]).tolist() == [[0, 2, 4]]


def test_wrong_feature_size_is_refused():
    with pytest.raises(ClapError, match="expects 16-d"):
        Disentangler.create(16)(torch.randn(2, 8))


def test_save_load_round_trip_is_bit_exact(tmp_path):
    adapter = trained(Disentangler.create(16, latent_dim=8, out_dim=12, route="image", classes=["a", "b"],
                                          dataset="toy", training={"lr": 1e-4}, alpha=0.25))
    adapter.save_pretrained(tmp_path)
    loaded = Disentangler.from_pretrained(tmp_path)
    for key, value in adapter.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    z = torch.randn(3, 16)
    assert torch.equal(adapter(z), loaded(z))
    assert loaded.config == adapter.config
    assert loaded.config.alpha == 0.25


def test_files_are_peft_like(tmp_path):
    Disentangler.create(8).save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    text = (tmp_path / CONFIG_NAME).read_text()
    data = json.loads(text)
    assert list(data) == sorted(data) and text.startswith("{\n  ")
    assert data["package_version"] == __version__ and data["route"] == "text"
    from safetensors import safe_open

    with safe_open(str(tmp_path / WEIGHTS_NAME), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert sorted(f.keys()) == ["linear.bias", "linear.weight", "projection.weight"]


def test_loading_is_strict(tmp_path):
    Disentangler.create(8).save_pretrained(tmp_path)
    state = load_file(str(tmp_path / WEIGHTS_NAME))
    state["extra"] = torch.zeros(1)
    save_file(state, str(tmp_path / WEIGHTS_NAME))
    with pytest.raises(ClapError, match=r"unexpected \['extra'\]"):
        Disentangler.from_pretrained(tmp_path)
    del state["extra"]
    state["linear.bias"] = torch.zeros(3)
    save_file(state, str(tmp_path / WEIGHTS_NAME))
    with pytest.raises(ClapError, match="wrong shapes"):
        Disentangler.from_pretrained(tmp_path)


@pytest.mark.parametrize("bad, message", [
    ({"in_dim": 0}, "integer in \\[1, 65536\\]"),
    ({"in_dim": 8, "latent_dim": -1}, "integer in \\[1, 65536\\]"),
    ({"in_dim": 8, "activation": "tanh"}, "unknown adapter activation"),
    ({"in_dim": 8, "route": "audio"}, "unknown adapter route"),
    ({"in_dim": 8, "alpha": float("nan")}, "finite"),
    ({"in_dim": 8, "format_version": 99}, "newer than this clap"),
])
def test_bad_configs(bad, message):
    with pytest.raises(ClapError, match=message):
        AdapterConfig(**bad)


def test_bad_files(tmp_path):
    with pytest.raises(ClapError, match="neither an existing folder"):
        Disentangler.from_pretrained(tmp_path / "nope.bin")
    (tmp_path / CONFIG_NAME).write_text("{not json")
    (tmp_path / WEIGHTS_NAME).write_bytes(b"junk")
    with pytest.raises(ClapError, match="not valid JSON"):
        Disentangler.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"in_dim": 8, "colour": "red"}))
    with pytest.raises(ClapError, match="unknown keys"):
        Disentangler.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"in_dim": 8}))
    with pytest.raises(ClapError, match="cannot read"):
        Disentangler.from_pretrained(tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(ClapError, match="lacks adapter_model.safetensors"):
        Disentangler.from_pretrained(tmp_path)


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClapError, match="cannot fetch adapter 'someone/some-adapter'"):
        Disentangler.from_pretrained("someone/some-adapter", cache_dir=str(tmp_path))


def test_hub_id_loads_from_the_hub_cache(tmp_path, monkeypatch):
    """from_pretrained(repo id) resolves through hf_hub_download (served here from a fake hub)."""
    import huggingface_hub

    source = tmp_path / "remote"
    adapter = trained(Disentangler.create(8))
    adapter.save_pretrained(source)
    calls = []

    def fake_download(repo_id, filename, revision=None, cache_dir=None):
        calls.append((repo_id, filename, revision))
        return str(source / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    loaded = Disentangler.from_pretrained("someone/adapter", revision="v1")
    assert [c[1] for c in calls] == [CONFIG_NAME, WEIGHTS_NAME] and calls[0][2] == "v1"
    assert torch.equal(loaded.projection.weight, adapter.projection.weight)


def test_push_to_hub_uploads_the_two_files(monkeypatch):
    import huggingface_hub

    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False):
            uploaded["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            from pathlib import Path

            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return "https://example.invalid/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = Disentangler.create(8).push_to_hub("someone/adapter", private=True)
    assert uploaded == {"repo": ("someone/adapter", True, True), "files": [CONFIG_NAME, WEIGHTS_NAME]}
    assert url.endswith("/commit/1")


def test_interrupted_save_keeps_the_previous_files(tmp_path, monkeypatch):
    old = trained(Disentangler.create(8), seed=1)
    old.save_pretrained(tmp_path)
    before = (tmp_path / WEIGHTS_NAME).read_bytes()
    import clap.adapter.disentangler as module

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "save_file", failing_save)
    with pytest.raises(OSError):
        trained(Disentangler.create(8), seed=2).save_pretrained(tmp_path)
    assert (tmp_path / WEIGHTS_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]


def test_training_weighs_the_branch_by_one_whatever_the_inference_alpha():
    from clap.training.modules import CLAPModule

    module = CLAPModule(in_dim=16, inference_alpha=0.05)
    trained(module.adapter)
    z = torch.randn(3, 16)
    assert module.adapter.config.alpha == 0.05
    assert torch.allclose(module.train_features(z), module.adapter(z, alpha=1.0))
    assert not torch.allclose(module.train_features(z), module.adapter(z))
