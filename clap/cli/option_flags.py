"""Command-line flags built from a dataclass of options (`clap.options.option` fields), so that each option's
kind, default and help are declared once, beside the library's own check."""

from __future__ import annotations

import argparse
from dataclasses import fields

from clap.options import Choice


def add_option_flags(p: argparse.ArgumentParser, options: type) -> None:
    """One flag per `clap.options.option` field of the dataclass `options` (`n_boot`: --n-boot), with its kind,
    default and help; grouped and made exclusive as the fields declare."""
    groups: dict = {}
    for item in fields(options):
        meta = item.metadata
        if not meta.get("flag"):
            continue
        if meta["group"] is not None and meta["group"] not in groups:
            groups[meta["group"]] = p.add_argument_group(meta["group"])
        target = groups.get(meta["group"], p)
        if meta["exclusive"] and meta["exclusive"] not in groups:
            groups[meta["exclusive"]] = target.add_mutually_exclusive_group()
        target = groups.get(meta["exclusive"], target)
        flag = "--" + item.name.replace("_", "-")
        if meta["kind"] is None:
            target.add_argument(flag, action="store_true", help=meta["help"])
            continue
        choices = meta["kind"].choices if isinstance(meta["kind"], Choice) else None
        default = list(item.default) if meta["many"] and item.default is not None else item.default
        repeatable = meta["many"] and item.default is None  # `--decoder A --decoder B` or `--decoder A B`
        target.add_argument(flag, type=meta["kind"], default=default, nargs="+" if meta["many"] else None,
                            action="extend" if repeatable else "store", choices=choices, metavar=meta["metavar"],
                            help=meta["help"])
