"""Importing the authors' checkpoints: layout, route choice, safe unpickling, CLI."""

from __future__ import annotations

import collections
import random

import pytest
import torch

from clap.adapter.reference import convert_reference, load_reference_state
from clap.cli.main import main
from clap.errors import ClapError


def reference_state(in_dim=12, latent=6, out=12, trained=("text",), seed=0):
    torch.manual_seed(seed)
    state = collections.OrderedDict()
    for route, prefix in (("text", "network_beta."), ("image", "network_psi.")):
        state[prefix + "linear.weight"] = torch.randn(latent, in_dim)
        state[prefix + "linear.bias"] = torch.randn(latent)
        proj = torch.randn(out, latent) if route in trained else torch.zeros(out, latent)
        state[prefix + "projection.weight"] = proj
    return state


def manual(state, prefix, z, alpha=1.0):
    """The method's forward with the reference weights placed by hand."""
    h = torch.nn.functional.silu(z) @ state[prefix + "linear.weight"].T + state[prefix + "linear.bias"]
    return z + alpha * h @ state[prefix + "projection.weight"].T


def test_converted_adapter_matches_weights_placed_by_hand(tmp_path):
    state = reference_state()
    torch.save(state, tmp_path / "ckpt.pth")
    adapter = convert_reference(tmp_path / "ckpt.pth")
    assert adapter.config.route == "text" and (adapter.config.in_dim, adapter.config.latent_dim) == (12, 6)
    z = torch.randn(4, 12)
    assert torch.allclose(adapter(z), manual(state, "network_beta.", z), atol=1e-6)
    assert torch.allclose(adapter(z, alpha=0.1), manual(state, "network_beta.", z, 0.1), atol=1e-6)


def test_image_route_is_picked_when_it_is_the_trained_one(tmp_path):
    state = reference_state(trained=("image",))
    torch.save({"state_dict": state}, tmp_path / "ckpt.pth")
    adapter = convert_reference(tmp_path / "ckpt.pth")
    z = torch.randn(2, 12)
    assert adapter.config.route == "image"
    assert torch.allclose(adapter(z), manual(state, "network_psi.", z), atol=1e-6)


def test_ambiguous_routes_need_a_choice(tmp_path):
    torch.save(reference_state(trained=("text", "image")), tmp_path / "both.pth")
    with pytest.raises(ClapError, match="both sub-networks are trained"):
        convert_reference(tmp_path / "both.pth")
    assert convert_reference(tmp_path / "both.pth", route="image").config.route == "image"
    torch.save(reference_state(trained=()), tmp_path / "none.pth")
    with pytest.raises(ClapError, match="no sub-network is trained"):
        convert_reference(tmp_path / "none.pth")
    damaged = reference_state()
    damaged["network_psi.projection.weight"][0, 0] = float("nan")
    torch.save(damaged, tmp_path / "nan.pth")
    with pytest.raises(ClapError, match="image sub-network's projection holds NaN"):
        convert_reference(tmp_path / "nan.pth")


def test_dims_are_read_from_shapes(tmp_path):
    torch.save(reference_state(in_dim=10, latent=4, out=14), tmp_path / "c.pth")
    cfg = convert_reference(tmp_path / "c.pth").config
    assert (cfg.in_dim, cfg.latent_dim, cfg.out_dim) == (10, 4, 14)


class Payload:
    """A non-tensor object: weights_only unpickling must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_python_objects_are_refused(tmp_path, capsys):
    state = reference_state()
    state["evil"] = Payload()
    torch.save(state, tmp_path / "evil.pth")
    with pytest.raises(ClapError, match="holds Python objects .*not loaded for safety"):
        convert_reference(tmp_path / "evil.pth")
    assert "this must never run" not in capsys.readouterr().out


def test_wrong_files(tmp_path):
    with pytest.raises(ClapError, match="does not exist"):
        convert_reference(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ClapError, match="cannot read"):
        convert_reference(tmp_path / "junk.pth")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ClapError, match="no reference adapter weights"):
        convert_reference(tmp_path / "other.pth")


def test_any_malformed_bytes_are_one_clap_error(tmp_path):
    """The tensors-only unpickler fails on random bytes with IndexError, KeyError, struct errors...: every
    one of them must come out as the reader's ClapError (a CI run once met an IndexError)."""
    torch.save(reference_state(), tmp_path / "real.pth")
    real = (tmp_path / "real.pth").read_bytes()
    rng = random.Random(0)
    samples = [rng.randbytes(rng.randrange(1, 5000)) for _ in range(300)]
    samples += [real[:n] for n in range(0, len(real), max(1, len(real) // 50))]
    samples += [bytes([op]) + rng.randbytes(40) for op in range(256)]  # every opcode as the first byte
    for data in samples:
        (tmp_path / "bad.pth").write_bytes(data)
        with pytest.raises(ClapError, match="cannot read|holds Python objects|not a state dict"):
            load_reference_state(tmp_path / "bad.pth")


def test_cli_convert_reference(tmp_path, capsys):
    torch.save(reference_state(), tmp_path / "ckpt.pth")
    assert main(["convert-reference", str(tmp_path / "ckpt.pth"), str(tmp_path / "out"), "--alpha", "0.056"]) == 0
    assert "text-route adapter 12->6->12" in capsys.readouterr().out
    from clap.adapter.disentangler import Disentangler

    assert Disentangler.from_pretrained(tmp_path / "out").config.alpha == 0.056


def test_cli_convert_reference_error_is_one_line(tmp_path, capsys):
    assert main(["convert-reference", str(tmp_path / "missing.pth"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clap: error: checkpoint") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
