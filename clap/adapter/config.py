"""`AdapterConfig`: everything needed to rebuild and check a trained disentangler."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from clap.errors import ClapError

ACTIVATIONS = ("silu", "gelu", "relu")
ROUTES = ("text", "image", "negation", "segmentation")
DECODER_KEYS = ("queries", "width", "layers", "heads", "mask_size")  # the segmentation route's sizes (integers)
NO_ENCODERS = ("frozen", "copy")  # the negation route's "no" text encoder: the frozen tower + a head, or a copy
FORMAT_VERSION = 1
MAX_DIM = 1 << 16  # larger than any CLIP feature or token width; a bigger number is a broken file
NUMBER, OPTIONAL_INT = (int, float), (int, type(None))
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "in_dim": (int,), "latent_dim": OPTIONAL_INT, "out_dim": OPTIONAL_INT, "activation": (str,), "alpha": NUMBER,
    "alpha_selection": (dict, type(None)), "route": (str,), "prompt_tokens": (int,), "token_width": OPTIONAL_INT,
    "no_encoder": (str,), "context_length": OPTIONAL_INT, "text_tower": (dict, type(None)),
    "decoder": (dict, type(None)),
    "backbone": (dict, type(None)), "classes": (list,), "dataset": (str, type(None)), "training": (dict,),
    "package_version": (str, type(None)), "format_version": (int,)}


def _meta(help_text: str) -> dict[str, str]:
    return {"help": help_text}


@dataclass
class AdapterConfig:
    """Written as adapter_config.json beside adapter_model.safetensors."""

    in_dim: int = field(metadata=_meta("feature size of the frozen encoder (input of the adapter)"))
    latent_dim: int | None = field(default=None, metadata=_meta("hidden size; defaults to in_dim"))
    out_dim: int | None = field(default=None, metadata=_meta("output size; defaults to in_dim"))
    activation: str = field(default="silu", metadata=_meta(f"first layer of the main branch: {ACTIVATIONS}"))
    alpha: float = field(default=1.0, metadata=_meta("default inference weight of the residual branch"))
    alpha_selection: dict[str, Any] | None = field(
        default=None, metadata=_meta("how `alpha` was chosen on validation data (clap select-alpha), if it was"))
    route: str = field(default="text", metadata=_meta(
        "what it was trained as: 'text' (CLAP), 'image' (Im.Aug) or 'negation' (CLIPN's 'no' prompts and head)"))
    prompt_tokens: int = field(default=0, metadata=_meta(
        "learned 'no' prompts (negation route): tokens inserted after the start token (frozen encoder), or whole-"
        "context prompts added to the token embeddings (copy)"))
    token_width: int | None = field(default=None, metadata=_meta("width of the text tower's token embeddings "
                                                                 "(negation route)"))
    no_encoder: str = field(default="frozen", metadata=_meta(
        f"negation route's 'no' text encoder: {NO_ENCODERS} (the frozen tower and a head, or a trained copy)"))
    context_length: int | None = field(default=None, metadata=_meta("the text tower's context (copy encoder)"))
    text_tower: dict[str, list[int]] | None = field(default=None, metadata=_meta(
        "names and shapes of the copied text tower's parameters in the backbone (copy encoder)"))
    decoder: dict[str, Any] | None = field(default=None, metadata=_meta(
        f"segmentation route's mask decoder: sizes {DECODER_KEYS}, dense_scale, temperature and class template"))
    backbone: dict[str, Any] | None = field(default=None, metadata=_meta("identity of the frozen backbone"))
    classes: list[str] = field(default_factory=list, metadata=_meta("class names of the training prompts"))
    dataset: str | None = field(default=None, metadata=_meta("name of the dataset the adapter was trained for"))
    training: dict[str, Any] = field(default_factory=dict, metadata=_meta("training hyperparameters"))
    package_version: str | None = field(default=None, metadata=_meta("clap version that wrote the file"))
    format_version: int = field(default=FORMAT_VERSION, metadata=_meta("version of this file's layout"))

    def __post_init__(self) -> None:
        self._check_types()
        self.latent_dim = self.in_dim if self.latent_dim is None else self.latent_dim
        self.out_dim = self.in_dim if self.out_dim is None else self.out_dim
        for name in ("in_dim", "latent_dim", "out_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DIM:
                raise ClapError(f"adapter {name} must be an integer in [1, {MAX_DIM}], got {value!r}")
        if not 0 <= self.prompt_tokens <= MAX_DIM or not 0 < (self.token_width or 1) <= MAX_DIM:
            raise ClapError(f"adapter prompt_tokens and token_width must be in [0, {MAX_DIM}], got "
                            f"{self.prompt_tokens!r} and {self.token_width!r}")
        if self.activation not in ACTIVATIONS:
            raise ClapError(f"unknown adapter activation '{self.activation}'; use one of {', '.join(ACTIVATIONS)}")
        if self.route not in ROUTES:
            raise ClapError(f"unknown adapter route '{self.route}'; use one of {', '.join(ROUTES)}")
        if self.route == "negation" and not (self.prompt_tokens >= 0 and (self.token_width or 0) >= 1):
            raise ClapError("a negation adapter needs prompt_tokens >= 0 and token_width >= 1")
        self._check_no_encoder()
        self._check_decoder()
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
            raise ClapError(f"adapter alpha must be a finite number, got {self.alpha!r}")
        if self.format_version > FORMAT_VERSION:
            raise ClapError(f"adapter format {self.format_version} is newer than this clap understands "
                            f"({FORMAT_VERSION}); upgrade clap")

    def _check_no_encoder(self) -> None:
        if self.no_encoder not in NO_ENCODERS:
            raise ClapError(f"unknown 'no' encoder '{self.no_encoder}'; use one of {', '.join(NO_ENCODERS)}")
        if self.no_encoder == "frozen":
            return
        tower = self.text_tower or {}
        shapes_ok = all(isinstance(v, list) and all(isinstance(d, int) and 0 < d <= 1 << 24 for d in v)
                        for v in tower.values())
        if self.route != "negation" or not tower or not shapes_ok or not 0 < (self.context_length or 0) <= MAX_DIM:
            raise ClapError("a copied 'no' encoder needs route 'negation', text_tower {name: shape} and a "
                            f"context_length in [1, {MAX_DIM}]")

    def _check_decoder(self) -> None:
        if (self.route == "segmentation") != (self.decoder is not None):
            raise ClapError("a segmentation adapter (and only one) records its mask decoder's sizes in 'decoder'")
        if self.decoder is None:
            return
        sizes_ok = all(isinstance(self.decoder.get(k), int) and 0 < self.decoder[k] <= MAX_DIM for k in DECODER_KEYS)
        scale, temperature = self.decoder.get("dense_scale"), self.decoder.get("temperature")
        numbers_ok = all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (scale, temperature))
        if not (sizes_ok and numbers_ok and isinstance(self.decoder.get("template"), str)):
            raise ClapError(f"a mask decoder's config needs integers {DECODER_KEYS} in [1, {MAX_DIM}], positive "
                            f"dense_scale and temperature and a class template, got {self.decoder!r}")

    def _check_types(self) -> None:
        """Each field of the JSON the type it must have (a hand-edited or foreign file fails here, in one line)."""
        for name, kinds in FIELD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise ClapError(f"adapter config field '{name}' must be {wanted}, got {value!r}")
        if not all(isinstance(c, str) for c in self.classes):
            raise ClapError(f"adapter config field 'classes' must be a list of names, got {self.classes!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "adapter config") -> "AdapterConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ClapError(f"{source} has unknown keys {unknown}; was it written by a newer clap?")
        if "in_dim" not in data:
            raise ClapError(f"{source} lacks 'in_dim'")
        try:
            return cls(**data)
        except ClapError as e:
            raise ClapError(f"{source}: {e}") from None
