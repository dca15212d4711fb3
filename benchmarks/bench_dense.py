"""Dense (MaskCLIP) features of a 128-px world scene and the mask decoder: grid, seconds per scene, memory.

For each enlargement of the scene (`--scales`), the grid of per-location features and the median seconds of
`Backbone.encode_image_dense` per scene (batch of 8), against the global feature (`encode_image` at the model's
input size); then the mask decoder's forward on those features (16 queries, 32-pixel masks, as
`experiments/configs/world_vl4ad.yaml`) and its parameter count.

    python -m benchmarks.bench_dense [--threads 2] [--model embedded]

Writes benchmarks/results/dense.json; ratios are to the global feature's time.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import add_backbone_options, bench_backbone, best_of, save_result
from clap.adapter.mask_decoder import MaskDecoder, decoder_config

SCENE, BATCH = 128, 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backbone_options(parser, "embedded")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    args = parser.parse_args()
    backbone = bench_backbone(args)
    torch.manual_seed(0)
    scenes = torch.rand(BATCH, 3, SCENE, SCENE)
    size = backbone.image_size
    with torch.no_grad():
        glob = best_of(lambda: backbone.encode_image(torch.rand(BATCH, 3, size, size)), repeats=3) / BATCH
        result: dict = {"scene_pixels": SCENE, "batch": BATCH, "global_seconds_per_image": round(glob, 5),
                        "dense": {}}
        for scale in args.scales:
            grid = list(backbone.encode_image_dense(scenes[:1], scale).shape[2:])
            seconds = best_of(lambda s=scale: backbone.encode_image_dense(scenes, s), repeats=3) / BATCH
            result["dense"][f"{scale:g}"] = {"grid": grid, "seconds_per_scene": round(seconds, 5),
                                             "vs_global": round(seconds / glob, 1)}
        decoder = MaskDecoder(decoder_config(backbone.embed_dim, ["a"] * 25)).eval()
        features = backbone.encode_image_dense(scenes, 2.0)
        seconds = best_of(lambda: decoder(features), repeats=3) / BATCH
    result["decoder"] = {"parameters": sum(p.numel() for p in decoder.parameters()),
                         "input_grid": list(features.shape[2:]), "seconds_per_scene": round(seconds, 5),
                         "vs_global": round(seconds / glob, 1)}
    save_result("dense", result)


if __name__ == "__main__":
    main()
