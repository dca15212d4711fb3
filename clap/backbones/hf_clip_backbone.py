"""Hugging Face `transformers` CLIPModel as a frozen backbone."""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision import transforms as T
from transformers import CLIPModel
from transformers.masking_utils import create_causal_mask

from clap.backbones.base import Backbone, BackboneIdentity
from clap.backbones.prefix_tree import CausalStack


def _size(value, default: int) -> int:
    """An int from an image processor's size field (int, dict or transformers SizeDict)."""
    if value is None or isinstance(value, int):
        return default if value is None else value
    get = value.get if isinstance(value, dict) else (lambda key: getattr(value, key, None))
    return int(get("shortest_edge") or get("height") or default)


class ToRGB:
    """PIL image to RGB (a picklable transform, unlike a lambda)."""

    def __call__(self, image):
        return image.convert("RGB")


def image_transforms(processor, image_size: int) -> tuple[T.Compose, T.Compose]:
    """Eval and train transforms (to [0, 1] tensors) that follow the CLIPImageProcessor's geometry."""
    resize = _size(getattr(processor, "size", None), image_size)
    crop = _size(getattr(processor, "crop_size", None), image_size)
    bicubic = T.InterpolationMode.BICUBIC
    rgb = ToRGB()
    eval_tf = T.Compose([rgb, T.Resize(resize, interpolation=bicubic), T.CenterCrop(crop), T.ToTensor()])
    train_tf = T.Compose([rgb, T.RandomResizedCrop(crop, scale=(0.9, 1.0), interpolation=bicubic), T.ToTensor()])
    return eval_tf, train_tf


class HFClipLayer:
    """A transformers CLIPEncoderLayer split around its attention (see `clap.backbones.prefix_tree`)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        self.layer = layer
        self.heads = layer.self_attn.num_heads

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, attn = self.layer.layer_norm1(x), self.layer.self_attn
        q, k, v = (proj(h).unflatten(-1, (self.heads, -1)) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        return q, k, v

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = x + self.layer.self_attn.out_proj(attended)
        return x + self.layer.mlp(self.layer.layer_norm2(x))


class HFClipBackbone(Backbone):
    """A frozen `transformers.CLIPModel`; build it with `clap.load_backbone("hf:...")`."""

    IMAGE_TOWER = "vision_model"

    def __init__(self, model: CLIPModel, tokenizer, processor, identity: BackboneIdentity) -> None:
        mean = getattr(processor, "image_mean", None) or [0.48145466, 0.4578275, 0.40821073]
        std = getattr(processor, "image_std", None) or [0.26862954, 0.26130258, 0.27577711]
        size = int(model.config.vision_config.image_size)
        text_cfg = model.config.text_config
        super().__init__(mean, std, size, int(model.config.projection_dim), int(text_cfg.max_position_embeddings))
        self.model = model
        self._tokenizer = tokenizer
        quick_gelu = getattr(text_cfg, "hidden_act", None) == "quick_gelu"
        preprocess = {"mean": list(mean), "std": list(std), "size": size}
        self.identity = BackboneIdentity(**{**identity.to_dict(), "embed_dim": self.embed_dim,
                                            "quick_gelu": quick_gelu, "preprocess": preprocess})
        self.eval_transform, self.train_transform = image_transforms(processor, size)
        self.freeze()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        out = self._tokenizer(list(texts), padding="max_length", truncation=True,
                              max_length=self.context_length, return_tensors="pt")
        return out["input_ids"]

    def _eot(self, tokens: torch.Tensor) -> torch.Tensor:
        eos = self.model.text_model.eos_token_id
        if eos == 2:  # legacy configs: the end-of-text token has the highest id
            return tokens.argmax(dim=-1)
        return (tokens == eos).int().argmax(dim=-1)

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.vision_model(pixel_values=pixels)
        return self.model.visual_projection(out.pooler_output)

    def _token_embeddings(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eot = self._eot(tokens)
        tokens = tokens[:, : int(eot.max()) + 1]
        return self.model.text_model.embeddings.token_embedding(tokens), eot

    def _encode_embeddings(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        text = self.model.text_model
        if x.shape[1] > self.context_length:
            raise ValueError(f"text of {x.shape[1]} tokens exceeds the model's context length {self.context_length}")
        hidden = text.embeddings(inputs_embeds=x)
        mask = create_causal_mask(config=text.config, inputs_embeds=hidden, attention_mask=None,
                                  past_key_values=None)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        hidden = text.final_layer_norm(hidden)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), eot]
        return self.model.text_projection(pooled)

    def causal_stack(self) -> CausalStack | None:
        text = self.model.text_model
        layers = list(text.encoder.layers)
        if not all(type(layer).__name__ == "CLIPEncoderLayer" for layer in layers):
            return None
        return CausalStack(token_embedding=text.embeddings.token_embedding,
                           positional=text.embeddings.position_embedding.weight,
                           layers=[HFClipLayer(layer) for layer in layers],
                           pool=lambda x: self.model.text_projection(text.final_layer_norm(x)),
                           end_of_text=self._eot)

    def _encode_tokens_full(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.text_projection(self.model.text_model(input_ids=tokens).pooler_output)
