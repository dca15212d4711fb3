"""The command line: help, info, one-line errors with exit 2, --debug tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clap.cli.main import main


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "clap.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("info", "world", "convert-reference", "demo"):
        assert command in out.stdout


def test_info_lists_backbones_and_weight_locations(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "tiny-clip-world" in out and "weights present" in out
    assert "Hugging Face hub cache" in out and "HF_HUB_OFFLINE" in out and "hf:ORG/NAME" in out


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    code = main(["world", "render", "--out", str(tmp_path / "w"), "--classes", "dragon"])
    err = capsys.readouterr().err
    assert code == 2
    from clap.data_gen.world.shapes import SHAPES

    assert err == f"clap: error: unknown class 'dragon' for the rendered world; choose from: {', '.join(SHAPES)}\n"


def test_debug_shows_the_traceback(tmp_path):
    from clap.errors import ClapError

    with pytest.raises(ClapError):
        main(["--debug", "world", "render", "--out", str(tmp_path / "w"), "--classes", "no-such-shape"])


def test_subprocess_error_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "clap.cli.main", "convert-reference", str(tmp_path / "x.pth"),
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_every_option_says_what_it_is_and_help_shows_defaults(capsys):
    """Each option and positional of every command has help text, and --help prints the defaults."""
    import argparse

    from clap.cli.main import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sub_parser in action.choices.items():
                    walk(sub_parser, f"{name} {sub}")
            elif action.help is None:
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "clap")
    assert not missing
    assert main(["eval", "--help"]) == 0
    assert "(default: 2000)" in capsys.readouterr().out


@pytest.mark.parametrize("command, owner", [("eval", "clap.evaluation.pipeline.tasks.EvalOptions"),
                                            ("demo", "clap.data_gen.world.demo.DemoOptions")])
def test_every_option_is_one_flag_with_the_same_default_and_limits(command, owner):
    """`clap eval`'s and `clap demo`'s flags are built from their option dataclasses: one per field (but the progress
    switch, which is --no-progress), with the field's default, kind (its limits) and help, so they cannot drift."""
    import importlib
    from dataclasses import fields

    from clap.cli.main import build_parser, command_parser

    module, _, name = owner.rpartition(".")
    options = getattr(importlib.import_module(module), name)
    flags = {a.dest: a for a in command_parser(build_parser(), command)._actions}
    names = [item.name for item in fields(options)]
    for item in fields(options):
        if item.name == "progress":
            assert "progress" not in flags and "no_progress" in flags
            continue
        action, meta = flags[item.name], item.metadata
        assert action.option_strings == ["--" + item.name.replace("_", "-")]
        default = list(item.default) if meta["many"] and item.default is not None else item.default
        assert action.default == default and action.help == meta["help"], item.name
        assert action.type is meta["kind"] if meta["kind"] is not None else action.const is True, item.name
    defaults = {name: flags[name].default for name in names if name != "progress"}
    assert vars(options(**defaults)) == vars(options())  # the command line's defaults are the library's
