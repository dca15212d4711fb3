"""`load_backbone`: one entry point for every way of naming a frozen CLIP-like model.

    load_backbone()                                   the embedded tiny CLIP (offline, shipped)
    load_backbone("ViT-B-16", "openai")               open_clip name + pretrained tag
    load_backbone("ViT-B-16", "/path/weights.pt")     open_clip name + local checkpoint file
    load_backbone("my-arch.json", "weights.safetensors")  open_clip model-config JSON + weights
    load_backbone("/path/open_clip_folder")           folder with open_clip_config.json + weights
    load_backbone("hf:openai/clip-vit-base-patch16")  transformers CLIPModel (hub id or folder)
    load_backbone("/path/hf_clip_folder")             folder with a transformers config.json

A weights file does not carry its pretrained tag's architecture flags (open_clip #771): pass them with
`quick_gelu=True` (OpenAI-trained weights use QuickGELU) and `preprocess={"mean": ..., "std": ...}`.
Both are recorded in the backbone identity, so an adapter is refused on a backbone built otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import torch

from clap.backbones.base import Backbone, BackboneIdentity
from clap.errors import ClapError, first_line
from clap.extras import require
from clap.hub import HUB_HOST, require_network
from clap.options import PRECISIONS, Device, resolve_device

logger = logging.getLogger(__name__)

EMBEDDED_NAME = "tiny-clip-world"
RANDOM_INIT = "random"
PREPROCESS_KEYS = ("mean", "std", "size", "interpolation", "resize_mode")
WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors",
                "pytorch_model.bin")


def embedded_dir() -> Path:
    """Folder of the shipped tiny CLIP (open_clip_config.json + open_clip_model.safetensors)."""
    return Path(str(resources.files("clap") / "assets" / "tiny_clip_world"))


def file_checksum(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_backbone(model: str | None = None, pretrained: str | None = None, device: str | torch.device = "auto",
                  cache_dir: str | None = None, quick_gelu: bool | None = None,
                  preprocess: dict | None = None, precision: str = "auto") -> Backbone:
    """A frozen backbone on `device` ("auto": CUDA when this machine has it, else the CPU); see the module docstring
    for the accepted forms.

    `precision` of the encoders: "fp32", "bf16" or "fp16" autocast (fp16 on CUDA only), or "auto" (fp16
    autocast on CUDA, fp32 on the CPU). Adversarial attacks run in fp32 whatever it is.

    `quick_gelu=True` and `preprocess` (mean, std, size, interpolation, resize_mode) override an open_clip
    model's config, for weights files whose tag used them.
    """
    arch = _architecture(quick_gelu, preprocess)
    if arch and (model is None or model.startswith("hf:") or (Path(model).expanduser() / "config.json").is_file()):
        raise ClapError("quick_gelu and preprocess apply to open_clip models built from a weights file; the embedded "
                        "model and transformers folders carry their own")
    device = resolve_device(Device().check("device", str(device)))
    dtype = autocast_dtype(precision, torch.device(device))
    backbone = _build(model, pretrained, cache_dir, arch)
    backbone = backbone.to(device)
    backbone.autocast_dtype = dtype
    logger.info("loaded backbone %s", backbone.identity.describe())
    return backbone


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The encoders' autocast dtype for a precision on a device (None: fp32)."""
    if precision not in PRECISIONS:
        raise ClapError(f"precision '{precision}': use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ClapError("precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _architecture(quick_gelu: bool | None, preprocess: dict | None) -> dict:
    """open_clip.create_model keywords that force QuickGELU and the preprocessing config."""
    arch: dict = {}
    if quick_gelu:
        arch["force_quick_gelu"] = True
    if preprocess:
        unknown = sorted(set(preprocess) - set(PREPROCESS_KEYS))
        if unknown:
            raise ClapError(f"unknown preprocess keys {unknown}; use {', '.join(PREPROCESS_KEYS)}")
        for key in ("mean", "std"):
            if key in preprocess and len(preprocess[key]) != 3:
                raise ClapError(f"preprocess {key} needs 3 numbers (R, G, B), got {preprocess[key]!r}")
        arch["force_preprocess_cfg"] = dict(preprocess)
    return arch


def _build(model: str | None, pretrained: str | None, cache_dir: str | None, arch: dict) -> Backbone:
    if model is None:
        return _open_clip_folder(embedded_dir(), EMBEDDED_NAME, "embedded", {})
    if model.startswith("hf:"):
        return _hf_clip(model[3:], pretrained, cache_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return _open_clip_folder(path, path.name, pretrained, arch)
        if (path / "config.json").is_file():
            return _hf_clip(str(path), pretrained, cache_dir)
        raise ClapError(f"folder {path} holds neither open_clip_config.json (open_clip) nor config.json "
                        "(transformers CLIPModel)")
    if model.endswith(".json"):
        return _open_clip_config_file(path, pretrained, arch)
    return _open_clip_named(model, pretrained, cache_dir, arch)


def _open_clip_folder(folder: Path, name: str, tag: str | None, arch: dict) -> Backbone:
    import open_clip

    from clap.backbones.open_clip_backbone import OpenClipBackbone

    weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    if weights is None:
        raise ClapError(f"no weights in {folder}: expected one of {', '.join(WEIGHT_NAMES)} "
                        "beside open_clip_config.json")
    model = open_clip.create_model(f"local-dir:{folder}", weights_only=True, **arch)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    identity = BackboneIdentity("open_clip", name, tag, file_checksum(weights))
    return OpenClipBackbone(model, tokenizer, identity)


def _open_clip_config_file(config: Path, weights: str | None, arch: dict) -> Backbone:
    import open_clip

    from clap.backbones.open_clip_backbone import OpenClipBackbone

    if not config.is_file():
        raise ClapError(f"model config {config} does not exist")
    if weights is None:
        raise ClapError(f"a model config ({config.name}) needs its weights: pass pretrained=PATH "
                        "(or pretrained='random' for a randomly initialised model)")
    try:
        spec = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClapError(f"model config {config} is not valid JSON: {e}") from None
    if isinstance(spec, dict) and isinstance(spec.get("model_cfg"), dict):
        raise ClapError(f"model config {config} is an open_clip hub config (model_cfg, preprocess_cfg): give the "
                        f"folder that holds it and its weights as the model ({config.parent}), not the file")
    if not (isinstance(spec, dict) and isinstance(spec.get("embed_dim"), int)
            and all(isinstance(spec.get(k), dict) for k in ("vision_cfg", "text_cfg"))):
        raise ClapError(f"model config {config} is not an open_clip model config: it needs an integer 'embed_dim' "
                        "and objects 'vision_cfg' and 'text_cfg'")
    open_clip.add_model_config(config)
    name = config.stem
    if weights == RANDOM_INIT:
        model = open_clip.create_model(name, **arch)
        identity = BackboneIdentity("open_clip", name, RANDOM_INIT)
    else:
        _check_file(weights, name)
        model = _from_weights_file(name, weights, arch)
        identity = BackboneIdentity("open_clip", name, Path(weights).name, file_checksum(weights))
    return OpenClipBackbone(model, open_clip.get_tokenizer(name), identity)


def _from_weights_file(name: str, weights: str, arch: dict):
    """open_clip's model `name` with the weights of a local file (tensors only); a file that is not such a
    checkpoint, or holds another architecture's weights, is one ClapError."""
    import pickle

    import open_clip
    from safetensors import SafetensorError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return open_clip.create_model(name, pretrained=weights, weights_only=True, **arch)
    except pickle.UnpicklingError:
        raise ClapError(f"weights {weights}: not a torch checkpoint, or one holding Python objects, which are not "
                        "loaded for safety") from None
    except (RuntimeError, SafetensorError, EOFError, ValueError, KeyError) as e:
        detail = first_line(e, 150)
        if "loading state_dict" in detail:
            detail = "its tensors do not fit this architecture (keys or shapes differ)"
        raise ClapError(f"cannot load weights {weights} into {name}: {detail}") from None


def _check_file(weights: str, model: str) -> None:
    if not Path(weights).is_file():
        raise ClapError(f"weights file {weights} for {model} does not exist; give an existing checkpoint "
                        "(.safetensors, .pt or .bin)")


def _open_clip_named(name: str, pretrained: str | None, cache_dir: str | None, arch: dict) -> Backbone:
    import open_clip

    from clap.backbones.open_clip_backbone import OpenClipBackbone

    if name not in open_clip.list_models():
        raise ClapError(f"unknown model '{name}': not an open_clip model name (see `clap info`), an existing "
                        "folder, a model-config .json, or an 'hf:' transformers id")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained is None:
        raise ClapError(f"{name} needs pretrained weights: a tag ({', '.join(tags) or 'none known'}), a local "
                        "checkpoint file, or 'random' for a randomly initialised model")
    if pretrained == RANDOM_INIT:
        model = open_clip.create_model(name, **arch)
        identity = BackboneIdentity("open_clip", name, RANDOM_INIT)
    elif pretrained in tags:
        if arch:
            raise ClapError(f"tag '{pretrained}' carries its own QuickGELU and preprocessing; pass quick_gelu and "
                            "preprocess only with a weights file")
        model = _open_clip_tag(name, pretrained, cache_dir)
        identity = BackboneIdentity("open_clip", name, pretrained)
    else:
        if not Path(pretrained).is_file():
            raise ClapError(f"pretrained '{pretrained}' for {name} is neither a known tag "
                            f"({', '.join(tags) or 'none'}) nor an existing file")
        model = _from_weights_file(name, pretrained, arch)
        identity = BackboneIdentity("open_clip", name, Path(pretrained).name, file_checksum(pretrained))
    return OpenClipBackbone(model, open_clip.get_tokenizer(name), identity)


def _tag_cache_file(cfg: dict, cache_dir: str | None) -> str | None:
    """The tag's weights file if it is already cached (no network)."""
    from huggingface_hub import try_to_load_from_cache

    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])  # open_clip's 'org/repo/[file]' convention
        names = [filename] if filename else list(WEIGHT_NAMES[:2])
        names = [n.replace(".bin", ".safetensors") for n in names] + names
        for n in names:
            found = try_to_load_from_cache(repo, n, cache_dir=cache_dir)
            if isinstance(found, str):
                return found
    if cfg.get("url"):
        path = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


def _open_clip_tag(name: str, tag: str, cache_dir: str | None):
    """Weights of a pretrained tag from the cache, or downloaded when the network allows it."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    cached = _tag_cache_file(cfg, cache_dir)
    if cached:
        # A file path loses the tag's flags: pass QuickGELU and mean/std explicitly (open_clip #771).
        return open_clip.create_model(name, pretrained=cached, weights_only=True,
                                      **_architecture(bool(cfg.get("quick_gelu")), preprocess))
    host = HUB_HOST if cfg.get("hf_hub") else urlparse(cfg.get("url", "")).hostname or HUB_HOST
    require_network(f"open_clip weights {name} / {tag}", host, _file_route_hint(name, bool(cfg.get("quick_gelu")),
                                                                                 preprocess))
    return open_clip.create_model(name, pretrained=tag, cache_dir=cache_dir, weights_only=True)


def _file_route_hint(name: str, quick_gelu: bool, preprocess: dict) -> str:
    """How to load the tag's weights from a file without losing its architecture flags."""
    mean_std = {k: [round(v, 8) for v in preprocess[k]] for k in ("mean", "std") if k in preprocess}
    py = f"load_backbone('{name}', '/path/to/weights', quick_gelu={quick_gelu}, preprocess={mean_std})"
    cli = f"--model {name} --pretrained /path/to/weights" + (" --quick-gelu" if quick_gelu else "")
    cli += f" --preprocess '{json.dumps(mean_std)}'"
    train = f"--data.model {name} --data.pretrained /path/to/weights --data.quick_gelu {str(quick_gelu).lower()}"
    train += f" --data.preprocess '{json.dumps(mean_std)}'"
    return (f"download the weights file elsewhere and pass it with the tag's architecture: {py}, `{cli}` "
            f"(clap eval, select-alpha, convert-reference) or `{train}` (clap train)")


def _hf_clip(name: str, revision: str | None, cache_dir: str | None) -> Backbone:
    require("hf", "transformers", what="a transformers CLIPModel backbone")
    from transformers import AutoProcessor, AutoTokenizer, CLIPModel

    from clap.backbones.hf_clip_backbone import HFClipBackbone

    local = Path(name).expanduser().is_dir()
    how = ("download the model folder elsewhere and pass it: load_backbone('/path/to/folder') "
           "or `--model /path/to/folder`")

    def load(local_only: bool):
        kw = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_only)
        model = CLIPModel.from_pretrained(name, **kw)
        tokenizer = AutoTokenizer.from_pretrained(name, **kw)
        try:
            processor = AutoProcessor.from_pretrained(name, **kw).image_processor
        except (OSError, ValueError, AttributeError) as e:
            logger.warning("%s has no usable image processor (%s); using CLIP's mean/std and the model's "
                           "image size", name, str(e).splitlines()[0] if str(e) else type(e).__name__)
            processor = None
        return model, tokenizer, processor

    try:
        model, tokenizer, processor = load(local_only=True)
    except OSError as e:
        if local:
            raise ClapError(f"cannot load a transformers CLIPModel from {name}: {str(e).splitlines()[0]}") from None
        require_network(f"transformers model {name}", HUB_HOST, how)
        model, tokenizer, processor = load(local_only=False)
    weights = Path(name) / "model.safetensors"
    checksum = file_checksum(weights) if local and weights.is_file() else None
    identity = BackboneIdentity("hf_clip", Path(name).name if local else name, revision, checksum)
    return HFClipBackbone(model.eval(), tokenizer, processor, identity)
