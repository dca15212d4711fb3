"""Quality report of the embedded tiny CLIP on freshly rendered, style-balanced images (unseen seed).

    python experiments/tiny_clip/evaluate_tiny_clip.py [--weights DIR] [--seed N] [--out report.json]

Zero-shot C / PC / CP / NC per image type with R and Delta(NC), the spread between image types,
held-out logistic probes of content and style factors, and text recognition of each style factor,
for the shipped weights (or a candidate folder written by train_tiny_clip.py, `--weights`) and for a
random initialisation of the same architecture (reference row); then which of the world's targets
(`clap.data_gen.world.quality.TARGETS`) those weights meet.
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
from clap.data_gen.world.quality import targets_met, world_report
from clap.data_gen.world.render import WorldSpec
from clap.model import CLAPModel

SEED = 20261123


def random_init_backbone() -> OpenClipBackbone:
    name = f"local-dir:{embedded_dir()}"
    torch.manual_seed(0)
    model = open_clip.create_model(name, load_weights=False)
    return OpenClipBackbone(model, open_clip.get_tokenizer(name), BackboneIdentity("open_clip", "random-init"))


def print_report(name: str, report: dict) -> None:
    print(f"\n## {name}\n| image type | C | PC | CP | NC | R | R if forms were interchangeable | Delta(NC) |\n|"
          + " --- |" * 8)
    for itype, a in report["zero_shot"].items():
        print(f"| {itype} | {a['C']:.3f} | {a['PC']:.3f} | {a['CP']:.3f} | {a['NC']:.3f} | {a['R']:.3f} | "
              f"{a['R_null']:.3f} | {a['Delta_NC']:.3f} |")
    print(f"\nbest - worst type (PC): {report['type_spread_PC']:.3f}")
    print("probe: " + ", ".join(f"{k} {v:.3f}" for k, v in report["probes"].items()))
    print("text recognition: " + ", ".join(f"{k} {v['accuracy']:.3f} (chance {v['chance']:.3f}, kappa "
                                           f"{v['kappa']:.2f})" for k, v in report["style_text_recognition"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=1000,
                        help="test images per image type (R's noise floor is about 2 points at 200, 1 at 1000)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="render seed of the test images (default: the one the README's numbers use)")
    parser.add_argument("--probe-train", type=int, default=2000)
    parser.add_argument("--probe-test", type=int, default=1000)
    parser.add_argument("--weights", default=None,
                        help="folder with open_clip_config.json + weights (default: the shipped tiny CLIP)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    spec = WorldSpec()
    report = {name: world_report(CLAPModel(b), spec, args.seed, args.per_type, args.probe_train, args.probe_test)
              for name, b in (("embedded", load_backbone(args.weights)), ("random init", random_init_backbone()))}
    for name, result in report.items():
        print_report(name, result)
    report["targets"] = targets_met(report["embedded"])
    marks = [f"- [{'x' if ok else ' '}] {name}" for name, ok in report["targets"].items()]
    print("\n## targets (embedded)\n" + "\n".join(marks))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
