"""CLIPN's "no" encoders: trainable numbers, training-state memory and seconds per step, for the authors' copy of
the text tower against the package's frozen tower + prompts + head and the head alone.

A step is `CLIPNModule.losses` on a batch of 64 caption pairs (image features fixed, "yes" features encoded
once, as `CaptionDataModule` gives them), the backward pass and Adam's update; median of 3 after a warm-up.
Training state = weights, gradients and Adam's two moments in fp32 (16 bytes a trainable number); the
activations come on top.

    python -m benchmarks.bench_clipn [--threads 2] [--models embedded ViT-B-16]

Writes benchmarks/results/clipn.json (ViT-B-16 with random weights: the sizes are the real ones).
"""

from __future__ import annotations

import argparse
import logging

import torch
from torch.nn import functional as F

from benchmarks.common import best_of, save_result
from clap.backbones.loading import load_backbone
from clap.training.modules import CLIPNModule

VARIANTS = {"copy": {"no_encoder": "copy"}, "frozen + head": {"no_encoder": "frozen"},
            "head only": {"no_encoder": "frozen", "prompt_tokens": 0}}
BATCH = 64
STATE_BYTES = 16


class _Data:
    """What `CLIPNModule.configure_model` reads from a caption data module."""

    def __init__(self, backbone) -> None:
        self.backbone, self.embed_dim, self.token_width = backbone, backbone.embed_dim, backbone.token_width


def measure(backbone, options: dict) -> dict:
    module = CLIPNModule(**options)
    module._frozen, module.adapter = [backbone], module._new_adapter(_Data(backbone))
    optimiser = module.configure_optimizers()
    texts = [f"a photo of a {w} thing number {i}" for i, w in enumerate(["red", "small", "round", "dark"] * 16)]
    with torch.no_grad():
        tokens = backbone.tokenize(texts)
        batch = {"tokens": tokens, "yes": F.normalize(backbone.encode_text(tokens), dim=-1),
                 "image": F.normalize(torch.randn(BATCH, backbone.embed_dim), dim=-1),
                 "meaning": torch.arange(BATCH)}

    def step() -> None:
        optimiser.zero_grad()
        module.losses(batch)["loss"].backward()
        optimiser.step()

    numbers = sum(p.numel() for p in module.adapter.parameters())
    return {"trainable": numbers, "state_mib": round(numbers * STATE_BYTES / 2**20, 1),
            "seconds_per_step": round(best_of(step, repeats=3), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--models", nargs="+", default=["embedded", "ViT-B-16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    result = {"batch": BATCH}
    for name in args.models:
        backbone = load_backbone(None, None) if name == "embedded" else load_backbone(name, "random")
        result[name] = {variant: measure(backbone, options) for variant, options in VARIANTS.items()}
        copy, frozen = result[name]["copy"], result[name]["frozen + head"]
        result[name]["copy / frozen + head"] = {k: round(copy[k] / frozen[k], 1) for k in ("trainable",
                                                                                           "seconds_per_step")}
    save_result("clipn", result)


if __name__ == "__main__":
    main()
