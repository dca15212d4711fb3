"""The backbone options shared by commands that load one: model, weights, and architecture flags."""

from __future__ import annotations

import argparse
import json

from clap.errors import ClapError


def add_backbone_arguments(p: argparse.ArgumentParser, model_help: str) -> None:
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--pretrained", default=None, help="pretrained tag or weights file of the backbone")
    p.add_argument("--quick-gelu", action="store_true",
                   help="force QuickGELU (a weights file from an OpenAI-trained tag needs it)")
    p.add_argument("--preprocess", default=None, metavar="JSON",
                   help='override the preprocessing of a weights file, e.g. \'{"mean": [...], "std": [...]}\'')


def backbone_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of `load_backbone` from the parsed options."""
    preprocess = None
    if args.preprocess:
        try:
            preprocess = json.loads(args.preprocess)
        except json.JSONDecodeError as e:
            raise ClapError(f"--preprocess is not valid JSON ({e}); give e.g. '{{\"mean\": [0.5, 0.5, 0.5]}}'"
                            ) from None
        if not isinstance(preprocess, dict):
            raise ClapError("--preprocess must be a JSON object such as '{\"mean\": [...], \"std\": [...]}'")
    return {"model": args.model, "pretrained": args.pretrained, "quick_gelu": args.quick_gelu or None,
            "preprocess": preprocess}
