"""The disentangler: the method's zero-initialised residual MLP on frozen CLIP features."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from clap.adapter.config import AdapterConfig
from clap.errors import ClapError
from clap.fileio import default_file_mode, naming

logger = logging.getLogger(__name__)

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
SUMMARY_NAME = "training_summary.json"  # written beside them by a training run (`clap.training.callbacks`)
_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}
TRAINING_ALPHA = 1.0
_ROLE_HINTS = {"segmentation": " (a mask decoder scores road scenes: give it as the anomaly task's decoder, not as "
                               "an adapter)"}


class SavedAdapter(nn.Module):
    """What every trained adapter shares: its `AdapterConfig` and the safetensors file of its weights
    (save_pretrained / from_pretrained / push_to_hub). Each route registers the class it loads as."""

    ROUTE_CLASSES: dict[str, type["SavedAdapter"]] = {}
    """Which module class a saved adapter's route needs; a subclass adds its own (`routes=(...)`)."""

    def __init_subclass__(cls, routes: tuple[str, ...] = (), **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        SavedAdapter.ROUTE_CLASSES.update(dict.fromkeys(routes, cls))

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def variant(cls, config: AdapterConfig) -> type["SavedAdapter"]:
        """The class a config of this route loads as (a route with variants overrides it)."""
        return cls

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write adapter_config.json + adapter_model.safetensors atomically; returns the folder."""
        from clap import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.package_version = __version__
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with naming(directory), tempfile.TemporaryDirectory(dir=directory, prefix=".tmp-") as tmp:
            save_file(state, os.path.join(tmp, WEIGHTS_NAME), metadata={"format": "pt"})
            os.chmod(os.path.join(tmp, WEIGHTS_NAME), default_file_mode())  # safetensors writes it owner-only
            Path(tmp, CONFIG_NAME).write_text(self.config.to_json(), encoding="utf-8")
            os.replace(os.path.join(tmp, WEIGHTS_NAME), directory / WEIGHTS_NAME)
            os.replace(os.path.join(tmp, CONFIG_NAME), directory / CONFIG_NAME)
        return directory

    @classmethod
    def loads(cls, config: AdapterConfig) -> bool:
        """Whether `from_pretrained` of this class returns an adapter of this config (else one ClapError)."""
        return issubclass(_class_for(config), cls)

    @classmethod
    def from_pretrained(cls, name: str | Path, revision: str | None = None,
                        cache_dir: str | None = None) -> "SavedAdapter":
        """Load from a local folder, or else from a Hugging Face hub repo id; strictly."""
        folder = _resolve(str(name), revision, cache_dir)
        config = _read_config(folder / CONFIG_NAME)
        adapter_class = _class_for(config)
        if not cls.loads(config):
            raise ClapError(f"{name} holds a {config.route}-route {adapter_class.__name__}, where a {cls.__name__} "
                            f"is needed{_ROLE_HINTS.get(config.route, '')}")
        adapter = adapter_class(config)
        try:
            state = load_file(str(folder / WEIGHTS_NAME))
        except (SafetensorError, OSError) as e:
            raise ClapError(f"cannot read {folder / WEIGHTS_NAME}: {e}") from None
        adapter.load_strict(state, source=str(folder))
        return adapter

    def load_strict(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load a state dict whose keys and shapes match exactly, or fail with what differs."""
        expected = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if expected != got:
            missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
            raise ClapError(f"{source} does not match its config: missing {missing}, unexpected {extra}, "
                            f"wrong shapes {[(k, got[k], expected[k]) for k in wrong]}")
        broken = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
        if broken:
            raise ClapError(f"{source} holds NaN or infinite weights in {broken[:3]}; it cannot be used (retrain or "
                            "convert it again)")
        self.load_state_dict(state, strict=True)

    def push_to_hub(self, repo_id: str, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload CLAP adapter") -> str:
        """Create (if needed) the hub repo and upload the two adapter files; returns the commit URL."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
        return str(info)



class Disentangler(SavedAdapter):
    """`shortcut(z) + alpha * projection(linear(act(z)))`, the identity at initialisation.

    The projection is zero-initialised (ControlNet's zero-conv idea); the shortcut is `z` itself, or
    `z` resized to `out_dim` by nearest-neighbour interpolation. Two weights exist: the inference
    alpha (`config.alpha`, the default of `forward` everywhere) and `TRAINING_ALPHA` (1, which the
    training routes pass explicitly).
    """

    @classmethod
    def loads(cls, config: AdapterConfig) -> bool:
        """Every adapter of image and text features (CLAP, Im.Aug, CLIPN's variants); not a mask decoder."""
        return config.route != "segmentation"

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.act = _ACTIVATIONS[config.activation]()
        self.linear = nn.Linear(config.in_dim, config.latent_dim, bias=True)
        self.projection = nn.Linear(config.latent_dim, config.out_dim, bias=False)
        nn.init.zeros_(self.projection.weight)

    @classmethod
    def create(cls, in_dim: int, latent_dim: int | None = None, out_dim: int | None = None, **config) -> "Disentangler":
        """A fresh (identity) adapter; extra keywords go to `AdapterConfig`."""
        return cls(AdapterConfig(in_dim=in_dim, latent_dim=latent_dim, out_dim=out_dim, **config))

    def shortcut(self, z: torch.Tensor) -> torch.Tensor:
        if self.config.out_dim == self.config.in_dim:
            return z
        flat = z.reshape(-1, 1, z.shape[-1])
        return F.interpolate(flat, size=self.config.out_dim, mode="nearest").reshape(*z.shape[:-1], -1)

    def residual(self, z: torch.Tensor) -> torch.Tensor:
        """The main branch, before alpha scaling."""
        return self.projection(self.linear(self.act(z)))

    def forward(self, z: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        """Adapted features; `alpha` defaults to the recorded inference alpha (`config.alpha`)."""
        if z.shape[-1] != self.config.in_dim:
            raise ClapError(f"adapter expects {self.config.in_dim}-d features, got {z.shape[-1]}-d")
        weight = self.config.alpha if alpha is None else alpha
        return self.shortcut(z) + weight * self.residual(z.to(self.linear.weight.dtype)).to(z.dtype)

    def is_identity(self) -> bool:
        """True while the output projection is all zeros (untrained)."""
        return bool((self.projection.weight == 0).all())


def _resolve(name: str, revision: str | None, cache_dir: str | None) -> Path:
    folder = Path(name).expanduser()
    if folder.is_dir():
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
        if missing:
            raise ClapError(f"adapter folder {folder} lacks {', '.join(missing)}")
        return folder
    if folder.is_file():
        raise ClapError(f"adapter '{name}' is a file; give the adapter's folder (adapter_config.json and "
                        "adapter_model.safetensors)")
    if not HUB_ID.fullmatch(name):
        raise ClapError(f"adapter '{name}' is neither an existing folder nor a hub repo id (owner/name)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        paths = [hf_hub_download(name, n, revision=revision, cache_dir=cache_dir) for n in (CONFIG_NAME, WEIGHTS_NAME)]
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise ClapError(f"cannot fetch adapter '{name}' from the hub ({type(e).__name__}); "
                        "pass a local folder with adapter_config.json and adapter_model.safetensors") from None
    return Path(paths[0]).parent


def _class_for(config: AdapterConfig) -> type:
    """The module class a saved adapter's route (and variant) needs (the package registers every route on import)."""
    if config.route not in SavedAdapter.ROUTE_CLASSES:
        raise ClapError(f"adapter route {config.route!r} is not one this package knows "
                        f"({', '.join(sorted(SavedAdapter.ROUTE_CLASSES))}); was it written by a newer clap?")
    return SavedAdapter.ROUTE_CLASSES[config.route].variant(config)


SavedAdapter.ROUTE_CLASSES.update(text=Disentangler, image=Disentangler)


def _read_config(path: Path) -> AdapterConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClapError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ClapError(f"{path} must hold a JSON object")
    return AdapterConfig.from_dict(data, source=str(path))
