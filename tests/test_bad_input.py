"""A sweep of bad values over every option of every `clap` command, read from the parsers themselves.

Each option that takes a value must declare what it accepts (a `clap.options.Kind` or argparse choices),
so an option added later is swept too. Every value it refuses must end the command with exit 2, one
line on stderr, no traceback, and a pre-existing output folder left byte-identical.
"""

from __future__ import annotations

import argparse
import inspect
import math

import pytest

from clap.cli.main import build_parser, main
from clap.options import Kind, Number
from clap.training.image_data import ImageDataModule
from clap.training.caption_data import CaptionDataModule
from clap.training.modules import CLAPModule, CLIPNModule, ImAugModule
from clap.training.text_data import PromptDataModule

BAD_VALUES = ("0", "-1", "nan", "inf", "-inf", "", "1e400", "99999999999999999999", "abc", "1/0")
UNCHECKED_INIT_ARGS = {
    "classes": "checked when read (preset, file or folder; see test_classes)",
    "quick_gelu": "a flag",
    "preprocess": "a JSON object, checked by the backbone loader",
}
LINKED = {("model", "window"): "set from --data.window (linked in ClapTrainCLI)"}


def value_actions(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, action) for every action of every (sub)command that takes a value."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from value_actions(sub, path + (name,))
        elif action.nargs != 0 and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def refused(action: argparse.Action, value: str) -> bool:
    if action.choices is not None:
        return value not in action.choices
    return not action.type.accepts(value)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def existing_out(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "report.json").write_text('{"kept": true}\n')
    (out / "sub" / "adapter_model.safetensors").write_bytes(b"\x00\x01")
    return out


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, argv) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and "Traceback" not in err, (argv, err)


def test_every_option_declares_what_it_accepts():
    untyped = [(" ".join(path), a.dest) for path, a in value_actions(build_parser())
               if a.choices is None and not isinstance(a.type, Kind)]
    assert not untyped, f"options without a clap.options kind: {untyped}"


CASES = [(path, action, value) for path, action in value_actions(build_parser()) for value in BAD_VALUES
         if refused(action, value)]


@pytest.mark.parametrize("path, action, value", CASES,
                         ids=[f"{' '.join(p)}:{a.dest}={v!r}" for p, a, v in CASES])
def test_bad_value_is_one_line_exit_2(path, action, value, existing_out, capsys):
    before = snapshot(existing_out)
    actions = [a for p, a in value_actions(build_parser()) if p == path]
    keep = ["--out", str(existing_out)] if "--out" not in action.option_strings and any(
        "--out" in a.option_strings for a in actions) else []
    if action.option_strings:
        option = [f"{action.option_strings[-1]}={value}"]
    else:  # the positionals before it get valid values
        before_it = [a for a in actions if not a.option_strings][:[a.dest for a in actions
                                                                    if not a.option_strings].index(action.dest)]
        option = ["--", *[a.choices[0] if a.choices else "x" for a in before_it], value]
    argv = [*path, *keep, *option]
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, argv)
    assert f"argument {action.option_strings[-1] if action.option_strings else action.dest}" in err
    assert snapshot(existing_out) == before


def test_the_sweep_covers_every_command():
    commands = {" ".join(path) for path, _, _ in CASES}
    assert {"prompts", "generate", "world render", "splits", "select-alpha", "eval", "report merge",
            "report claims", "convert-reference", "demo"} <= commands
    assert len(CASES) > 150


def init_arguments(cls) -> list[str]:
    """A class's init arguments, those its `**shared` passes on to the classes above it included."""
    names = []
    for owner in cls.__mro__:
        if "__init__" not in vars(owner):
            continue
        parameters = inspect.signature(owner.__init__).parameters.values()
        names += [p.name for p in parameters if p.kind is not p.VAR_KEYWORD and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return names


def train_cases():
    """(route options, group, argument, bad value) over the init arguments of both routes' classes."""
    routes = ((CLAPModule, PromptDataModule, []), (ImAugModule, ImageDataModule, ["--data.root", "IMAGES"]),
              (CLIPNModule, CaptionDataModule, ["--data.root", "IMAGES"]))
    seen = set()
    for model, data, required in routes:
        route = ["--model", model.__name__, "--data", data.__name__, *required]
        for group, cls in (("model", model), ("data", data)):
            for name in init_arguments(cls):
                if name == "self" or name in UNCHECKED_INIT_ARGS or (group, name) in seen | LINKED.keys():
                    continue
                assert name in cls.LIMITS, f"{cls.__name__}({name}) has no entry in LIMITS"
                seen.add((group, name))
                for value in BAD_VALUES:
                    if not cls.LIMITS[name].accepts(value):
                        yield route, group, name, value


TRAIN_CASES = list(train_cases())


@pytest.mark.parametrize("route, group, name, value", TRAIN_CASES,
                         ids=[f"{g}.{n}={v!r}" for _, g, n, v in TRAIN_CASES])
def test_bad_train_option_is_one_line_exit_2(route, group, name, value, existing_out, tmp_path, capsys):
    before = snapshot(existing_out)
    argv = ["train", *[str(tmp_path) if a == "IMAGES" else a for a in route], f"--{group}.{name}={value}",
            "--out", str(existing_out), "--trainer.max_steps", "1", "--trainer.default_root_dir", str(existing_out)]
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, argv)
    assert f"{name}" in err
    assert snapshot(existing_out) == before


@pytest.mark.parametrize("argv, message", [
    (["--data.batch_size", "0"], "batch_size = 0"),
    (["--config", "CONFIG", "--data.batch_size", "abc"], "--data.batch_size"),
    (["--config", "BROKEN"], "Problems parsing config"),
    (["--data.bogus", "1"], "'bogus' is not accepted"),
    (["--trainer.max_steps", "abc"], "--trainer.max_steps"),
    (["--model", "Nope"], "--model"),
    (["--ckpt_path", "missing.ckpt"], "no such checkpoint"),
])
def test_train_parse_errors_are_one_line(argv, message, tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  init_args: [\n")
    names = {"CONFIG": "experiments/configs/world_clap.yaml", "BROKEN": str(broken),
             "missing.ckpt": str(tmp_path / "missing.ckpt")}
    full = ["train", *[names.get(a, a) for a in argv], "--out", str(tmp_path / "adapter")]
    code, err = run_cli(full, capsys)
    assert_one_line_error(code, err, full)
    assert message in err
    assert "--ckpt_path" in argv or "clap train --help" in err
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize("kind, text, ok", [
    (Number(integer=True, low=1), "1", True), (Number(integer=True, low=1), "0", False),
    (Number(low=0, high=1), "1", True), (Number(low=0, high=1), "1.0001", False),
    (Number(low=0, open_low=True), "0", False), (Number(low=0), "nan", False), (Number(), "inf", False),
    (Number(integer=True), "2.0", False), (Number(integer=True), "True", False),
])
def test_number_kinds(kind, text, ok):
    assert kind.accepts(text) is ok
    if ok:
        assert math.isfinite(kind(text))
