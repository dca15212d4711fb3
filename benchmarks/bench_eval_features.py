"""Evaluation feature extraction (files -> decoded -> transformed -> encoded) vs the raw encoder forward.

    python -m benchmarks.bench_eval_features [--model ViT-B-16 --pretrained random] [--images 96]

Target from the evaluation issue: clap's extraction runs at >= 90% of the encoder's own throughput
on the same images (pre-transformed tensors); a second pass is served from the feature cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import add_backbone_options, bench_backbone, save_result
from clap.data.domains import load_image, scan_domain_dataset
from clap.evaluation.inputs.features import domain_features
from clap.data_gen.world.export import render_world
from clap.data_gen.world.render import WorldSpec

TARGET = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backbone_options(parser, "ViT-B-16")
    parser.add_argument("--images", type=int, default=96, help="images in total (one domain)")
    args = parser.parse_args()
    backbone = bench_backbone(args)
    with tempfile.TemporaryDirectory() as tmp:
        spec = WorldSpec(image_types=("photograph",), image_size=256)
        render_world(Path(tmp) / "data", "domains", args.images // len(spec.classes), 0, spec, progress=False)
        dataset = scan_domain_dataset(Path(tmp) / "data")
        paths = [p for p, _, _ in dataset.samples]
        pixels = torch.stack([backbone.eval_transform(load_image(p)) for p in paths])
        with torch.no_grad():
            backbone.encode_image(pixels[:8])  # warm-up
            start = time.perf_counter()
            for i in range(0, len(pixels), 128):
                backbone.encode_image(pixels[i:i + 128])
            raw = time.perf_counter() - start
        start = time.perf_counter()
        domain_features(backbone, dataset, Path(tmp) / "cache", progress=False)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        domain_features(backbone, dataset, Path(tmp) / "cache", progress=False)
        cached = time.perf_counter() - start
    n = len(paths)
    save_result("eval_features", {
        "backbone": backbone.identity.describe(), "images": n, "image_file_size": "256x256 PNG",
        "encoder_only_images_per_s": n / raw, "clap_extraction_images_per_s": n / cold,
        "cached_second_pass_images_per_s": n / cached, "ratio_vs_encoder": raw / cold,
        "target_ratio": TARGET, "meets_target": raw / cold >= TARGET,
    })


if __name__ == "__main__":
    main()
