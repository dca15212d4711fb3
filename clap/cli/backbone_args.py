"""The backbone options shared by commands that load one: model, weights, and architecture flags."""

from __future__ import annotations

import argparse
import json

from typing import Any

from clap.options import Kind, Text


def add_backbone_arguments(p: argparse.ArgumentParser, model_help: str) -> None:
    p.add_argument("--model", default=None, type=Text(what="a model name, config file or folder"), help=model_help)
    p.add_argument("--pretrained", default=None, type=Text(what="a pretrained tag or weights file"),
                   help="pretrained tag or weights file of the backbone")
    p.add_argument("--quick-gelu", action="store_true",
                   help="force QuickGELU (a weights file from an OpenAI-trained tag needs it)")
    p.add_argument("--preprocess", default=None, metavar="JSON", type=JSON_OBJECT,
                   help='override the preprocessing of a weights file, e.g. \'{"mean": [...], "std": [...]}\'')


class JsonObject(Kind):
    """A JSON object given on the command line."""

    def convert(self, value: Any) -> dict:
        try:
            parsed = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            parsed = None
        if not isinstance(parsed, dict):
            raise ValueError("expected a JSON object such as '{\"mean\": [0.5, 0.5, 0.5], \"std\": [0.5, 0.5, 0.5]}'")
        return parsed


JSON_OBJECT = JsonObject()


def backbone_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of `load_backbone` from the parsed options."""
    return {"model": args.model, "pretrained": args.pretrained, "quick_gelu": args.quick_gelu or None,
            "preprocess": args.preprocess}
