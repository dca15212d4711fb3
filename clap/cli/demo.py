"""`clap demo`: the whole method on the embedded world, offline, end to end (`clap.data_gen.world.demo`)."""

from __future__ import annotations

import argparse

from clap.cli.option_flags import add_option_flags


def add_parser(sub) -> None:
    from clap.data_gen.world.demo import DemoOptions

    p = sub.add_parser("demo", help="end-to-end run on the embedded world, offline",
                       description=__doc__.splitlines()[0])
    add_option_flags(p, DemoOptions)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(run=run, on_interrupt="rerun the same command (renders already written are reused)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from clap.data_gen.world.demo import DemoOptions, run_demo

    values = {f.name: getattr(args, f.name) for f in fields(DemoOptions) if f.name != "progress"}
    run_demo(DemoOptions(**values, progress=not args.no_progress))
    return 0
