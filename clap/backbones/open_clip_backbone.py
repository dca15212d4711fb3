"""open_clip models as frozen backbones: built-in names with tags, local files, config folders."""

from __future__ import annotations

import logging
from typing import Sequence

import open_clip
from open_clip.transform import PreprocessCfg, image_transform_v2
import torch
from torchvision import transforms as T

from clap.backbones import open_clip_text
from clap.backbones.base import Backbone, BackboneIdentity
from clap.backbones.open_clip_dense import dense_features
from clap.backbones.prefix_tree import CausalStack
from clap.errors import ClapError

logger = logging.getLogger(__name__)


def without_normalize(transform: T.Compose) -> T.Compose:
    """open_clip's transform minus its final Normalize: our backbones normalise inside."""
    steps = list(transform.transforms)
    if not steps or not isinstance(steps[-1], T.Normalize):
        raise ValueError("expected open_clip's image transform to end with Normalize")
    return T.Compose(steps[:-1])


class OpenClipBackbone(Backbone):
    """A frozen `open_clip.CLIP`; build it with `clap.load_backbone`."""

    def __init__(self, model: torch.nn.Module, tokenizer, identity: BackboneIdentity) -> None:
        if not hasattr(model, "transformer"):
            raise ClapError(f"{identity.model} has a custom text tower; clap supports open_clip CLIP models "
                            "with open_clip's own text transformer")
        cfg = open_clip.get_model_preprocess_cfg(model)
        context = int(model.positional_embedding.shape[0])
        embed_dim = int(model.visual.output_dim)
        size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
        super().__init__(cfg["mean"], cfg["std"], size, embed_dim, context)
        self.model = model
        self._tokenizer = tokenizer
        quick_gelu = any(isinstance(m, open_clip.transformer.QuickGELU) for m in model.modules())
        preprocess = {"mean": list(cfg["mean"]), "std": list(cfg["std"]), "size": size,
                      "interpolation": cfg.get("interpolation"), "resize_mode": cfg.get("resize_mode")}
        self.identity = BackboneIdentity(**{**identity.to_dict(), "embed_dim": embed_dim, "quick_gelu": quick_gelu,
                                            "preprocess": preprocess})
        pp = PreprocessCfg(**cfg)
        self.eval_transform = without_normalize(image_transform_v2(pp, is_train=False))
        self.train_transform = without_normalize(image_transform_v2(pp, is_train=True))
        self.freeze()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self._tokenizer(list(texts))

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _encode_pixels_dense(self, pixels: torch.Tensor) -> torch.Tensor:
        return dense_features(self.model.visual, pixels)

    def _token_embeddings(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return open_clip_text.token_embeddings(self.model, tokens)

    def _encode_embeddings(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        return open_clip_text.encode_embeddings(self.model, x, eot)

    def causal_stack(self) -> CausalStack | None:
        return open_clip_text.causal_stack(self.model)

    def _encode_tokens_full(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)
