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
PASSTHROUGH = ("train",)  # commands whose options another parser reads
USER_ERRORS = (ClapError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong and where to look, not the whole usage."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="clap", description="Train and apply CLAP content-disentanglement adapters on frozen CLIP models.")
    parser.add_argument("--version", action="version", version=f"clap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.set_defaults(on_interrupt="nothing complete-looking was written; rerun the same command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """(clap's own arguments, the rest): everything after `train` goes to LightningCLI untouched."""
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] in PASSTHROUGH:
        return argv[:command + 1], argv[command + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    head, rest = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(head)
    except SystemExit as e:  # a parse error (one line already printed), --help or --version
        return int(e.code or 0)
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
    except KeyboardInterrupt as e:
        print(f"clap: interrupted; {str(e) or args.on_interrupt}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
