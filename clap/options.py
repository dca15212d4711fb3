"""Checked option values: each kind parses a command-line string or checks a Python value, and refuses a bad
one with a one-line error that names the option, the value and what is accepted.

The same objects serve argparse (`type=Count()`: a bad value is a parse error) and the config classes
(`check_options(LIMITS, locals())` in an `__init__`), so the command line and the Python API agree.
"""

from __future__ import annotations

import abc
import argparse
import math
import re
import unicodedata
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from clap.errors import ClapError

INT_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1  # numpy, torch and Lightning all accept seeds up to here


class Kind(abc.ABC):
    """A kind of option value. `convert` raises ValueError with what is accepted."""

    @abc.abstractmethod
    def convert(self, value: Any) -> Any:
        """The accepted value (parsed from a string, or checked)."""

    def __call__(self, text: str) -> Any:
        """argparse `type=`: a parse error (exit 2, one line) for a bad value."""
        try:
            return self.convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None

    def check(self, name: str, value: Any) -> Any:
        """The checked value of option `name`, or a ClapError."""
        try:
            return self.convert(value)
        except ValueError as e:
            raise ClapError(f"{name} = {value!r}: {e}") from None

    def accepts(self, value: Any) -> bool:
        try:
            self.convert(value)
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class Number(Kind):
    """A finite int or float in [low, high] (`open_low`: low itself excluded)."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def describe(self) -> str:
        what = "an integer" if self.integer else "a finite number"
        low = "" if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        high = "" if self.high is None else f"<= {self.high:d}" if self.integer else f"<= {self.high:g}"
        return " ".join([what, " and ".join(b for b in (low, high) if b)]).strip()

    def convert(self, value: Any) -> int | float:
        number = _number(value, self.integer)
        if number is None or not self._in_range(number):
            raise ValueError(f"expected {self.describe()}")
        return number

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.open_low and x == self.low)):
            return False
        return self.high is None or x <= self.high


def _number(value: Any, integer: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            return None
    if integer:
        return value if isinstance(value, int) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def Count(low: int = 1, high: int = INT_MAX) -> Number:
    """An integer count (steps, images, batch size), at least `low`."""
    return Number(integer=True, low=low, high=high)


SEED = Number(integer=True, low=0, high=SEED_MAX)
PROBABILITY = Number(low=0, high=1)
POSITIVE = Number(low=0, open_low=True)
NON_NEGATIVE = Number(low=0)
SCALE = Number(low=0.25, high=4)  # a scene's enlargement before its dense features (a larger one: a finer grid)
ALPHA = NON_NEGATIVE  # the residual weight: 0 is plain CLIP, 1 the trained setting; negative has no meaning


@dataclass(frozen=True)
class Text(Kind):
    """A non-empty string (a name, path or model id); `empty_ok` for options where '' means 'nothing'."""

    empty_ok: bool = False
    what: str = "a non-empty value"
    one_line: bool = False  # no line break or other control character (a name written one a line)

    def convert(self, value: Any) -> str:
        if not isinstance(value, str) or (not value.strip() and not self.empty_ok):
            raise ValueError(f"expected {self.what}")
        if self.one_line and any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValueError(f"expected {self.what} on one line, without control characters")
        return value


AUTO_DEVICE = "auto"


def resolve_device(value: str) -> str:
    """The device "auto" stands for: CUDA when this machine has it, else the CPU; any other device as given."""
    if str(value) != AUTO_DEVICE:
        return str(value)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Device(Kind):
    """A torch device string: auto (CUDA when there is one, else the CPU), cpu, cuda, cuda:1, mps."""

    def convert(self, value: Any) -> str:
        import torch

        if value == AUTO_DEVICE:
            return value
        if not isinstance(value, str) or not re.fullmatch(r"[a-z]+(:\d+)?", value.strip()):
            raise ValueError("expected a device such as auto, cpu, cuda or cuda:1")
        try:
            device = torch.device(value)
        except RuntimeError:
            raise ValueError("expected a device such as auto, cpu, cuda or cuda:1") from None
        missing = _missing_device(device)
        if missing:
            raise ValueError(f"{missing}; use cpu (or a device this machine has)")
        return value


def _missing_device(device) -> str | None:
    """Why this machine cannot run on `device` (a torch.device), or None."""
    import torch

    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return f"this machine has no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda})"
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device{'s' * (count > 1)}: cuda:0 to cuda:{count - 1}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "this machine has no MPS device"
    return None


@dataclass(frozen=True)
class Choice(Kind):
    """One of a fixed set of strings."""

    choices: tuple[str, ...]

    def convert(self, value: Any) -> str:
        if value not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}")
        return value


PATH = Text(what="a path")
NAME = Text(what="a non-empty name", one_line=True)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # the frozen encoders' numerics (`load_backbone`)
PRECISION = Choice(PRECISIONS)


def check_options(limits: Mapping[str, Kind], values: Mapping[str, Any]) -> None:
    """Check each named value of `values` that is not None; given an `__init__`'s `locals()`, errors name the
    class too (`PromptDataModule.batch_size = 0: expected an integer >= 1 ...`)."""
    owner = f"{type(values['self']).__name__}." if "self" in values else ""
    for name, kind in limits.items():
        if values.get(name) is not None:
            kind.check(owner + name, values[name])


MAX_NAME_BYTES = 200  # a class name becomes a folder or file name (255 bytes at most, with room for a suffix)


def check_names(option: str, names: list[str]) -> list[str]:
    """Class names: each non-empty, usable as a folder name (no '/', at most MAX_NAME_BYTES bytes) and unique
    after normalisation (case, spaces, underscores)."""
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ClapError(f"{option}: empty class name in {names!r}; give each class a name")
        if "/" in name or "\0" in name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ClapError(f"{option}: class name '{name[:40]}...' cannot be a folder name (no '/', at most "
                            f"{MAX_NAME_BYTES} bytes); shorten it")
        key = " ".join(name.replace("_", " ").lower().split())
        if key in seen:
            raise ClapError(f"{option}: '{seen[key]}' and '{name}' are the same class; give each class once")
        seen[key] = name
    return names


def option(default: Any, kind: Kind | None, help: str, *, many: bool = False, group: str | None = None,
           exclusive: str | None = None, metavar: str | None = None, flag: bool = True) -> Any:
    """A dataclass field that is also a command-line flag (`--name-with-dashes`): its `kind` (checked by
    `check_fields`; None: a switch, or checked by its owner), its help, whether it takes several values, and its
    place in --help (`group`; `exclusive`: flags of which at most one may be given)."""
    return field(default=default, metadata={"kind": kind, "help": help, "many": many, "group": group,
                                            "exclusive": exclusive, "metavar": metavar, "flag": flag})


def check_fields(instance: Any, skip: tuple[str, ...] = ()) -> None:
    """Check and convert every `option` field of a dataclass instance that has a kind and a value: one value where
    several are taken stands for a list of one; a bad value is one ClapError naming the field."""
    for item in fields(instance):
        kind, value = item.metadata.get("kind"), getattr(instance, item.name)
        if kind is None or value is None or item.name in skip:
            continue
        if item.metadata.get("many"):
            values = [value] if isinstance(value, (int, float, str)) else list(value)
            setattr(instance, item.name, [kind.check(item.name, v) for v in values])
        else:
            setattr(instance, item.name, kind.check(item.name, value))
