"""Quality report of the embedded tiny CLIP on freshly rendered images (unseen seed).

    python experiments/tiny_clip/evaluate_tiny_clip.py [--out report.json]

Zero-shot C / PC / CP per image type, and held-out logistic probes of content and style factors,
for the shipped weights and for a random initialisation of the same architecture (reference row).
"""

from __future__ import annotations

import argparse
import json
import logging

import open_clip
import torch

from clap.backbones.base import BackboneIdentity
from clap.backbones.loading import embedded_dir, load_backbone
from clap.backbones.open_clip_backbone import OpenClipBackbone
from clap.data_gen.world.quality import factor_probes, zero_shot_by_type
from clap.model import CLAPModel
from clap.data_gen.world.render import WorldSpec

SEED = 20261123


def random_init_backbone() -> OpenClipBackbone:
    name = f"local-dir:{embedded_dir()}"
    torch.manual_seed(0)
    model = open_clip.create_model(name, load_weights=False)
    return OpenClipBackbone(model, open_clip.get_tokenizer(name), BackboneIdentity("open_clip", "random-init"))


def evaluate(backbone, per_type: int, n_train: int, n_test: int) -> dict:
    spec, model = WorldSpec(), CLAPModel(backbone)
    return {"zero_shot": zero_shot_by_type(model, spec, SEED, per_type),
            "probes": factor_probes(model, spec, SEED + 100, n_train, n_test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=100)
    parser.add_argument("--probe-train", type=int, default=2000)
    parser.add_argument("--probe-test", type=int, default=1000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    report = {name: evaluate(b, args.per_type, args.probe_train, args.probe_test)
              for name, b in (("embedded", load_backbone()), ("random init", random_init_backbone()))}
    for name, result in report.items():
        print(f"\n## {name}\n| image type | C | PC | CP |\n| --- | --- | --- | --- |")
        for itype, accs in result["zero_shot"].items():
            print(f"| {itype} | {accs['C']:.3f} | {accs['PC']:.3f} | {accs['CP']:.3f} |")
        print("\nprobe: " + ", ".join(f"{k} {v:.3f}" for k, v in result["probes"].items()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
