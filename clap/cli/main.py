"""`clap` entry point: subcommands, one-line errors (exit 2), `--debug` for the traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from clap import __version__
from clap.cli import (convert, demo, eval, generate, info, prompts, report, select_alpha, splits, train,
                      world)
from clap.errors import ClapError
from clap.runtime import keep_freed_memory

SUBCOMMANDS = (info, prompts, generate, world, splits, train, select_alpha, eval, report, convert, demo)
USER_ERRORS = (ClapError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clap", description="Train and apply CLAP content-disentanglement adapters on frozen CLIP models.")
    parser.add_argument("--version", action="version", version=f"clap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for name in ("lightning.pytorch", "lightning.fabric"):  # they print through their own handlers
        logging.getLogger(name).propagate = False
    keep_freed_memory()
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as e:
        if args.debug:
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"clap: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
