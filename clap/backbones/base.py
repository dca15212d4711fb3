"""One small interface for a frozen CLIP-like model, whatever library it comes from."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import nn

from clap.backbones.folding import folded_tower
from clap.backbones.prefix_tree import CausalStack, encode_shared
from clap.batching import encode_in_batches
from clap.defaults import NOISE_STD, NOISE_TOKENS
from clap.errors import ClapError

NoisePosition = Literal["front", "middle", "end", "random"]
NOISE_POSITIONS = ("front", "middle", "end")
NOT_TEXT = ("visual.", "vision_model.", "visual_projection.", "logit_scale", "logit_bias")  # open_clip and HF names


@dataclass(frozen=True)
class BackboneIdentity:
    """What a backbone is: recorded in adapters and checked when they are applied."""

    family: str
    model: str
    pretrained: str | None = None
    checksum: str | None = None
    embed_dim: int = 0
    quick_gelu: bool | None = None
    preprocess: dict | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BackboneIdentity":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        weights = self.pretrained or (f"sha256:{self.checksum}" if self.checksum else "random init")
        return f"{self.family} {self.model} ({weights})"

    def matches(self, other: "BackboneIdentity") -> bool:
        """Same family, model, weights, feature size and architecture flags (each compared where both record it)."""
        same = (self.family, self.model, self.embed_dim) == (other.family, other.model, other.embed_dim)
        same = same and not self.architecture_differences(other)
        if self.checksum and other.checksum:
            return same and self.checksum == other.checksum
        return same and self.pretrained == other.pretrained

    def architecture_differences(self, other: "BackboneIdentity") -> list[str]:
        """What differs in activation and preprocessing, as 'name: self vs other' (unrecorded sides are skipped)."""
        out = []
        if None not in (self.quick_gelu, other.quick_gelu) and self.quick_gelu != other.quick_gelu:
            out.append(f"quick_gelu: {self.quick_gelu} vs {other.quick_gelu}")
        mine, theirs = self.preprocess or {}, other.preprocess or {}
        for key in sorted(set(mine) & set(theirs)):
            if _rounded(mine[key]) != _rounded(theirs[key]):
                out.append(f"{key}: {mine[key]} vs {theirs[key]}")
        return out


def _rounded(value):
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return round(value, 5) if isinstance(value, float) else value


def insertion_index(eot: torch.Tensor, position: str, generator: torch.Generator | None) -> torch.Tensor:
    """Where noise goes per sequence: after the start token, at the middle, or before end-of-text."""
    front = torch.ones_like(eot)
    middle = 1 + (eot - 1) // 2
    choices = torch.stack([front, middle, eot], dim=1)
    if position == "random":
        pick = torch.randint(0, 3, (eot.shape[0],), generator=generator, device="cpu").to(eot.device)
    elif position in NOISE_POSITIONS:
        pick = torch.full_like(eot, NOISE_POSITIONS.index(position))
    else:
        raise ValueError(f"unknown noise position '{position}'; use front, middle, end or random")
    return choices.gather(1, pick[:, None]).squeeze(1)


def draw_noise(eot: torch.Tensor, n_tokens: int, std: float, position: str, width: int,
               generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """IGN draws for a batch: insertion indices [B] and noise embeddings [B, n_tokens, width] (on the CPU)."""
    if n_tokens < 0 or std < 0:
        raise ValueError(f"noise needs n_tokens >= 0 and std >= 0, got {n_tokens} and {std}")
    at = insertion_index(eot, position, generator)
    return at, torch.randn(eot.shape[0], n_tokens, width, generator=generator) * std


def split_at(tokens: torch.Tensor, embedded: torch.Tensor, eot: torch.Tensor, at: torch.Tensor,
             extra: torch.Tensor) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Per text: the clean token ids before `at`, and `extra` followed by the embeddings from `at` to EOT."""
    prefixes = [row[:a] for row, a in zip(tokens.tolist(), at.tolist())]
    suffixes = [torch.cat([x, e[a: end + 1]]) for x, e, a, end in zip(extra, embedded, at.tolist(), eot.tolist())]
    return prefixes, suffixes


def insert_embeddings(x: torch.Tensor, eot: torch.Tensor, extra: torch.Tensor, at: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Insert `extra` [B, n, D] into `x` [B, L, D] before index `at` per row; returns the new EOT index."""
    batch, length, _ = x.shape
    n = extra.shape[1]
    j = torch.arange(length + n, device=x.device)[None, :]
    at = at[:, None]
    source = torch.where(j < at, j, torch.where(j < at + n, length + (j - at), j - n))
    merged = torch.cat([x, extra.to(x.dtype)], dim=1)
    index = source[..., None].expand(batch, length + n, x.shape[2])
    return merged.gather(1, index), eot + n


class Backbone(nn.Module, abc.ABC):
    """A frozen CLIP-like model.

    `encode_image` takes pixels in [0, 1] (as made by `eval_transform`) and normalises inside, so
    that attacks can work in pixel space; `encode_text` takes strings or token tensors.
    Subclasses provide the tower-specific pieces: `_encode_pixels`, `_token_embeddings`,
    `_encode_embeddings`, `tokenize` and the transforms.
    """

    identity: BackboneIdentity
    model: nn.Module  # the library's model (open_clip or transformers), both towers
    IMAGE_TOWER = "visual"  # the attribute of `model` that holds its image tower
    eval_transform: Callable
    train_transform: Callable

    def __init__(self, mean: Sequence[float], std: Sequence[float], image_size: int, embed_dim: int,
                 context_length: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.context_length = context_length
        self.autocast_dtype: torch.dtype | None = None  # the encoders' autocast (`load_backbone`'s precision)

    def freeze(self) -> "Backbone":
        """Eval mode and no gradients into the weights (inputs can still get gradients)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Backbone":
        """A frozen backbone stays in eval mode (no dropout, fixed norms) whatever its parent does."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def logit_scale(self) -> float:
        """The pretrained logit scale, exp of the model's `logit_scale` (100 for OpenAI's CLIP), at most 100 as CLIP
        and CLIPN clamp it: 1 / the softmax temperature the model was trained with."""
        scale = getattr(self.model, "logit_scale", None)
        if not isinstance(scale, torch.Tensor):
            raise ClapError(f"{self.identity.describe()} has no logit_scale; give the temperature explicitly")
        return float(scale.detach().float().exp().clamp(max=100.0))

    @property
    def precision(self) -> str:
        """The encoders' numerics: 'fp32', or the autocast dtype ('bf16', 'fp16'); part of feature-cache keys."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def feature_digest(self) -> "hashlib._Hash":
        """A sha256 started with what makes this backbone's features what they are: its identity and, unless fp32
        (whose keys predate precision), its precision. Feature caches add their inputs and key files by it."""
        digest = hashlib.sha256(json.dumps(self.identity.to_dict(), sort_keys=True).encode())
        if self.precision != "fp32":
            digest.update(self.precision.encode())
        return digest

    @contextlib.contextmanager
    def full_precision(self):
        """Within this block the encoders run in fp32 whatever the precision (e.g. for adversarial attacks)."""
        previous, self.autocast_dtype = self.autocast_dtype, None
        try:
            yield self
        finally:
            self.autocast_dtype = previous

    @contextlib.contextmanager
    def folded_norms(self):
        """Within this block the image tower runs with its batch norms folded into its convolutions
        (`clap.backbones.folding`: the same function up to float rounding, about a third less time per attack
        step on a ResNet tower; a ViT is left as it is). The folded copy is made once per tower and device."""
        tower = getattr(self.model, self.IMAGE_TOWER)
        cached = self.__dict__.get("_folded")
        if cached is None or cached[0] is not tower or cached[1] != self.device:
            cached = self.__dict__["_folded"] = (tower, self.device, folded_tower(tower, self.image_size))
        setattr(self.model, self.IMAGE_TOWER, cached[2])
        try:
            yield self
        finally:
            setattr(self.model, self.IMAGE_TOWER, tower)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the model's normalised input."""
        return (pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features [B, D] from pixels [B, 3, H, W] in [0, 1]."""
        with self._autocast():
            return self._encode_pixels(self.normalize(pixels.to(self.device))).float()

    def encode_image_dense(self, pixels: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Per-location image features [B, D, h, w] (MaskCLIP, training-free) from pixels [B, 3, H, W] in [0, 1],
        enlarged `scale` times first (bilinear); a larger input gives a finer grid."""
        pixels = pixels.to(self.device)
        if scale != 1:
            pixels = nn.functional.interpolate(pixels, scale_factor=scale, mode="bilinear", align_corners=False)
        with self._autocast():
            return self._encode_pixels_dense(self.normalize(pixels)).float()

    def _encode_pixels_dense(self, pixels: torch.Tensor) -> torch.Tensor:
        raise ClapError(f"dense (per-location) features are built for open_clip image towers; {self.identity.model} "
                        "is not one")

    def _as_tokens(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("encode_text expects a list of strings, not one string; wrap it in a list")
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(list(texts))
        return tokens.to(self.device)

    def encode_text(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Text features [B, D], computed only up to the longest real token sequence."""
        with self._autocast():
            x, eot = self._token_embeddings(self._as_tokens(texts))
            return self._encode_embeddings(x, eot).float()

    def encode_text_full(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Text features through the library's own full-context forward (reference path)."""
        with self._autocast():
            return self._encode_tokens_full(self._as_tokens(texts)).float()

    def encode_text_with_noise(self, texts: Sequence[str] | torch.Tensor, n_tokens: int = NOISE_TOKENS,
                               std: float = NOISE_STD, position: NoisePosition = "random",
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """Text features with `n_tokens` N(0, std^2) embeddings inserted before the transformer (IGN)."""
        with self._autocast():
            x, eot = self._token_embeddings(self._as_tokens(texts))
            at, noise = draw_noise(eot, n_tokens, std, position, x.shape[2], generator)
            x, eot = insert_embeddings(x, eot, noise.to(x.device), at)
            return self._encode_embeddings(x, eot).float()

    def encode_text_with_prompt(self, texts: Sequence[str] | torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """Text features with learned token embeddings `prompt` [n, width] after the start token (CLIPN's
        "no" prompts); gradients flow into `prompt` through the frozen tower."""
        with self._autocast():
            x, eot = self._token_embeddings(self._as_tokens(texts))
            extra = prompt.to(x.device, x.dtype).expand(x.shape[0], -1, -1)
            x, eot = insert_embeddings(x, eot, extra, torch.ones_like(eot))
            return self._encode_embeddings(x, eot).float()

    def encode_text_with_added(self, texts: Sequence[str] | torch.Tensor, added: torch.Tensor) -> torch.Tensor:
        """Text features with `added` [B or 1, >= L, width] summed into the token embeddings of the first L
        positions (CLIPN's whole-context "no" prompts; the causal tower makes later positions irrelevant)."""
        with self._autocast():
            x, eot = self._token_embeddings(self._as_tokens(texts))
            return self._encode_embeddings(x + added[:, : x.shape[1]].to(x.device, x.dtype), eot).float()

    def text_parameters(self) -> dict[str, nn.Parameter]:
        """The text tower's parameters by their names in `self.model` (what CLIPN's "no" encoder copies)."""
        return {name: p for name, p in self.model.named_parameters() if not name.startswith(NOT_TEXT)}

    @property
    def token_width(self) -> int:
        """Width of the text tower's token embeddings (what `encode_text_with_prompt` takes)."""
        with torch.no_grad():
            return int(self._token_embeddings(self._as_tokens(["a"]))[0].shape[-1])

    def causal_stack(self) -> CausalStack | None:
        """The text tower split for prefix sharing; None when it is not a plain causal transformer."""
        return None

    def encode_texts(self, texts: Sequence[str], n_tokens: int = 0, std: float = 0.02,
                     position: NoisePosition = "random", generator: torch.Generator | None = None,
                     batch_size: int = 256) -> torch.Tensor:
        """Features of many texts (optionally with IGN noise), computing each shared token prefix once.

        Equals `encode_text_with_noise(texts, ...)` called on all texts as one batch (the same noise
        draws) up to float rounding. Towers without a `causal_stack` encode length-sorted batches (same
        noise distribution, other draws).
        """
        if not len(texts):
            return torch.zeros(0, self.embed_dim)
        stack = self.causal_stack()
        if stack is None:
            return encode_in_batches(
                lambda batch: self.encode_text_with_noise(batch, n_tokens, std, position, generator), list(texts),
                batch_size, len)
        with self._autocast(), torch.no_grad():
            tokens = self._as_tokens(texts)
            eot = stack.end_of_text(tokens).cpu()
            embedded = stack.token_embedding(tokens[:, : int(eot.max()) + 1])
            if n_tokens:
                at, noise = draw_noise(eot, n_tokens, std, position, embedded.shape[2], generator)
            else:  # a clean text: everything before the end-of-text token is a shareable prefix
                at, noise = eot, torch.zeros(len(eot), 0, embedded.shape[2])
            prefixes, suffixes = split_at(tokens.cpu(), embedded, eot, at, noise.to(embedded))
            return encode_shared(stack, prefixes, suffixes, batch_size).float()

    @abc.abstractmethod
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids [B, context_length]."""

    @abc.abstractmethod
    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image tower on normalised pixels."""

    @abc.abstractmethod
    def _token_embeddings(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings cut to the longest real sequence, and the pooling (EOT) index."""

    @abc.abstractmethod
    def _encode_embeddings(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text tower from token embeddings (positions added here), pooled at `eot`, projected."""

    @abc.abstractmethod
    def _encode_tokens_full(self, tokens: torch.Tensor) -> torch.Tensor:
        """The library's own text forward over the full context."""
