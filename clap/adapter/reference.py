"""Import the authors' released checkpoints (torch state dicts) as clap adapters."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch

from clap.adapter.config import AdapterConfig
from clap.adapter.disentangler import Disentangler
from clap.errors import ClapError, first_line

PREFIXES = {"text": "network_beta.", "image": "network_psi."}
KEYS = ("linear.weight", "linear.bias", "projection.weight")


def load_reference_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, unpickled with weights_only=True (no arbitrary code)."""
    state = read_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ClapError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def read_torch_file(path: str | Path) -> object:
    """A torch file's contents, unpickled with weights_only=True; any unreadable file is one ClapError line.

    Malformed bytes make the tensors-only unpickler fail in many ways (IndexError, KeyError, struct errors...),
    so every exception of the read is a file that is not a torch checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise ClapError(f"checkpoint {path} is a folder; give the checkpoint file (e.g. a .pth inside it)")
    if not path.is_file():
        raise ClapError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols is noise beside our one line
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - see the docstring
        if not is_pickle(path):
            raise ClapError(f"cannot read {path} as a torch checkpoint (not a valid pickle)") from None
        if isinstance(e, pickle.UnpicklingError):
            found = re.search(r"Unsupported global: (\S+ \S+)", str(e))
            what = f" ({found.group(1)})" if found else ""
            raise ClapError(f"{path} holds Python objects{what}, which are not loaded for safety (weights_only=True); "
                            "re-save it as a plain state dict of tensors") from None
        detail = first_line(e, 120) if str(e).strip() else f"{type(e).__name__} (empty or truncated)"
        raise ClapError(f"cannot read {path} as a torch checkpoint: {detail}") from None


def is_pickle(path: Path) -> bool:
    """Whether the file (or the data.pkl inside a torch zip archive) is a well-formed pickle stream, read
    opcode by opcode without running anything."""
    import io
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                data = archive.read(names[0]) if names else b""
        else:
            data = path.read_bytes()
        for _ in pickletools.genops(io.BytesIO(data)):
            pass
    except Exception:  # any malformation: not a pickle
        return False
    return bool(data)


def _routes_present(state: dict, path: Path) -> list[str]:
    present = [r for r, p in PREFIXES.items() if all(p + k in state for k in KEYS)]
    if not present:
        raise ClapError(f"{path} has no reference adapter weights: expected keys "
                        f"{', '.join('network_beta.' + k for k in KEYS)} (or network_psi.*)")
    return present


def pick_route(state: dict[str, torch.Tensor], path: Path, route: str | None) -> str:
    """The trained sub-network: the one whose output projection is non-zero, unless `route` says."""
    present = _routes_present(state, path)
    if route is not None:
        if route not in present:
            raise ClapError(f"{path} has no '{route}' route weights; it has {', '.join(present)}")
        return route
    broken = [r for r in present if not bool(torch.isfinite(state[PREFIXES[r] + "projection.weight"]).all())]
    if broken:
        raise ClapError(f"{path}: the {broken[0]} sub-network's projection holds NaN or infinite weights; "
                        "the checkpoint is damaged (its training diverged?)")
    trained = [r for r in present if bool(state[PREFIXES[r] + "projection.weight"].abs().sum() > 0)]
    if len(trained) == 1:
        return trained[0]
    what = "both sub-networks are trained" if trained else "no sub-network is trained (all-zero projections)"
    raise ClapError(f"{path}: {what}; choose one with `route` (text or image)")


def convert_reference(path: str | Path, route: str | None = None, alpha: float = 1.0,
                      backbone: dict | None = None, classes: list[str] | None = None,
                      dataset: str | None = None) -> Disentangler:
    """A Disentangler holding the reference checkpoint's weights (dims read from the shapes)."""
    path = Path(path)
    state = load_reference_state(path)
    route = pick_route(state, path, route)
    prefix = PREFIXES[route]
    weights = {k: state[prefix + k] for k in KEYS}
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise ClapError(f"{path}: {prefix + key} is a {type(value).__name__}, not a tensor")
    latent, in_dim = weights["linear.weight"].shape
    out_dim, latent_p = weights["projection.weight"].shape
    if latent_p != latent or weights["linear.bias"].shape != (latent,):
        raise ClapError(f"{path}: inconsistent shapes {[tuple(v.shape) for v in weights.values()]}")
    config = AdapterConfig(in_dim=int(in_dim), latent_dim=int(latent), out_dim=int(out_dim), alpha=alpha,
                           route=route, backbone=backbone, classes=list(classes or []), dataset=dataset,
                           training={"source": f"converted from reference checkpoint {path.name}"})
    adapter = Disentangler(config)
    adapter.load_strict({k: v.float() for k, v in weights.items()}, source=str(path))
    return adapter
