"""`clap info`: the backbones clap can load and where it looks for weights."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from clap import __version__


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="show loadable backbones and weight locations",
                       description=__doc__.splitlines()[0])
    p.add_argument("--models", action="store_true", help="list every open_clip model name with its tags")
    p.set_defaults(run=run)


def _weights_locations() -> list[tuple[str, str]]:
    from huggingface_hub import constants

    return [
        ("Hugging Face hub cache (open_clip tags, transformers ids)", str(constants.HF_HUB_CACHE)),
        ("open_clip URL downloads", str(Path("~/.cache/clip").expanduser())),
        ("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "unset")),
    ]


def run(args: argparse.Namespace) -> int:
    import open_clip

    from clap.backbones.loading import EMBEDDED_NAME, WEIGHT_NAMES, embedded_dir

    embedded = embedded_dir()
    shipped = any((embedded / n).is_file() for n in WEIGHT_NAMES)
    print(f"clap {__version__}")
    print("\nBackbones (--model / --pretrained):")
    print(f"  (default)            {EMBEDDED_NAME}, the embedded tiny CLIP: {embedded}"
          f" [{'weights present' if shipped else 'WEIGHTS MISSING'}]")
    names = open_clip.list_models()
    print(f"  open_clip NAME       {len(names)} architectures, e.g. ViT-B-16 with --pretrained "
          "openai|laion2b_s34b_b88k|/path/to/weights|random")
    print("  CONFIG.json          an open_clip model-config JSON with --pretrained /path/to/weights")
    print("  FOLDER               open_clip_config.json + weights, or a transformers CLIPModel folder")
    print("  hf:ORG/NAME          a transformers CLIPModel from the hub (e.g. hf:openai/clip-vit-base-patch16)")
    print("\nWhere weights are looked for:")
    for what, where in _weights_locations():
        print(f"  {what}: {where}")
    if args.models:
        print("\nopen_clip models and pretrained tags:")
        for name in names:
            print(f"  {name}: {', '.join(open_clip.list_pretrained_tags_by_model(name)) or '-'}")
    return 0
