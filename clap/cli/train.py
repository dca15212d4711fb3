"""`clap train`: train a CLAP (text) or Im.Aug (image) adapter with LightningCLI and YAML configs."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("train", add_help=False, help="train an adapter (LightningCLI; `clap train --help`)",
                       description=__doc__.splitlines()[0])
    p.set_defaults(run=run, on_interrupt="stopped before training began: nothing to resume; rerun the same command")


def run(args: argparse.Namespace) -> int:
    from clap.training.cli import main

    return main(args.rest)
