"""Attacks over an eps sweep: every setting of an attack in one stacked batch vs one setting at a time, and the
stacked batch on the image tower as it is vs with its batch norms folded (`Backbone.folded_norms`, what attacks use).

    python -m benchmarks.bench_attacks [--model embedded | --model ViT-B-16 --pretrained random] [--images 8]

The demo's setting: 8 images of a domain, FGSM / PGD-20 / CW-20 at 1/255, 4/255 and 8/255, a
zero-shot head. Every way starts from the same seeded random starts; the JSON records how many
per-image outcomes agree (stacking and folding change a gradient's last bits only).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from benchmarks.common import add_backbone_options, bench_backbone, save_result
from clap.evaluation.protocols.adversarial import ATTACKS, AttackTarget, attack, attack_sweep, zero_shot_head
from clap.model import CLAPModel

EPSILONS = (1 / 255, 4 / 255, 8 / 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backbone_options(parser, "embedded")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--classes", type=int, default=32)
    args = parser.parse_args()
    backbone = bench_backbone(args)
    torch.manual_seed(0)
    weights = torch.nn.functional.normalize(torch.randn(backbone.embed_dim, args.classes), dim=0)
    target = AttackTarget(CLAPModel(backbone), zero_shot_head(weights))
    x = torch.rand(args.images, 3, backbone.image_size, backbone.image_size)
    with torch.no_grad():
        y = target(x).argmax(1)  # every image starts right: the attacks have something to undo
    bounds = (0.0, 1.0)
    start = time.perf_counter()
    stacked = attack_sweep(target, x, y, ATTACKS, EPSILONS, torch.Generator().manual_seed(0), bounds)
    stacked_s = time.perf_counter() - start
    start, alone = time.perf_counter(), torch.Generator().manual_seed(0)
    single = {(name, eps): attack(name, target, x, y, eps, alone, bounds) for name in ATTACKS for eps in EPSILONS}
    single_s = time.perf_counter() - start
    plain, plain_s = _on_the_plain_tower(backbone, target, x, y, bounds)
    with torch.no_grad():
        agree = sum(int((target(stacked[k]).argmax(1) == target(single[k]).argmax(1)).sum()) for k in single)
        agree_plain = sum(int((target(stacked[k]).argmax(1) == target(plain[k]).argmax(1)).sum()) for k in single)
    save_result("attacks", {
        "backbone": backbone.identity.describe(), "images": args.images, "attacks": list(ATTACKS),
        "epsilons": [f"{e * 255:g}/255" for e in EPSILONS], "one_setting_at_a_time_s": single_s,
        "stacked_s": stacked_s, "speedup": single_s / stacked_s,
        "same_prediction_share": agree / (len(single) * args.images),
        "stacked_plain_tower_s": plain_s, "folding_speedup": plain_s / stacked_s,
        "folded_vs_plain_same_prediction_share": agree_plain / (len(single) * args.images),
    })


def _on_the_plain_tower(backbone, target, x, y, bounds) -> tuple[dict, float]:
    """The stacked sweep with `folded_norms` a no-op: (adversarial inputs, seconds)."""
    folded_norms = type(backbone).folded_norms
    type(backbone).folded_norms = lambda self: contextlib.nullcontext(self)
    try:
        start = time.perf_counter()
        adv = attack_sweep(target, x, y, ATTACKS, EPSILONS, torch.Generator().manual_seed(0), bounds)
        return adv, time.perf_counter() - start
    finally:
        type(backbone).folded_norms = folded_norms


if __name__ == "__main__":
    main()
