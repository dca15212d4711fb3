"""`clap` entry point: subcommands, one-line errors (exit 2), `--debug` for the traceback."""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys
from typing import Sequence

from clap import __version__
from clap.cli import (convert, demo, eval, generate, info, prompts, report, select_alpha, splits, train,
                      world)
from clap.errors import ClapError, first_line
from clap.runtime import keep_freed_memory

SUBCOMMANDS = (info, prompts, generate, world, splits, train, select_alpha, eval, report, convert, demo)
PASSTHROUGH = ("train",)  # commands whose options another parser reads
USER_ERRORS = (ClapError, OSError)  # bad input, and the machine's answer to a file operation (disk full, ...)
OS_HINTS = {errno.ENOSPC: "free some space or write elsewhere", errno.EROFS: "write to another folder",
            errno.EACCES: "check the permissions", errno.EDQUOT: "free some space or write elsewhere"}


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, unless it has none (None: the option is off, or its help says where its
    value comes from)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong and where to look, not the whole usage; --help shows
    every option's default (the subcommands' parsers are of this class too)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

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
        print(f"clap: error: {as_flags(one_line(e), command_parser(parser, args.command))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"clap: interrupted; {str(e) or args.on_interrupt}", file=sys.stderr)
        return 130


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser | None:
    """The subcommand's own parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command)
    return None


def as_flags(message: str, parser: argparse.ArgumentParser | None) -> str:
    """A library message speaks of arguments (`out`, `ood_classes`); the command line's user reads their flags
    (--out, --ood-classes). A command whose options another parser reads (`clap train`) writes `data.root`
    as --data.root."""
    flags = _flags(parser) if parser is not None else {}
    passthrough = parser is not None and parser.prog.split()[-1] in PASSTHROUGH
    return ARGUMENT.sub(lambda m: flags.get(ALIASES.get(m[1], m[1])) or (f"--{m[1]}" if passthrough else m[0]),
                        message)


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{dest: --flag} of a parser and of its own subcommands' parsers (`clap world render --out`)."""
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags = _flags(sub) | flags
        long = [o for o in action.option_strings if o.startswith("--")]
        if long:
            flags[action.dest] = long[0]
    return flags


ARGUMENT = re.compile(r"`([a-z][a-z0-9_.]*)`")
ALIASES = {"adapters": "adapter"}  # the library's argument -> the flag's dest, where they differ


def one_line(error: BaseException) -> str:
    """The error as one line: its own message, or for an OS error what failed, on which file, and what to do."""
    if isinstance(error, OSError) and not isinstance(error, ClapError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        hint = OS_HINTS.get(error.errno)
        return f"{error.strerror}{where}" + (f"; {hint}" if hint else "")
    return first_line(error)


if __name__ == "__main__":
    sys.exit(main())
