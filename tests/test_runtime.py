"""Process-level settings applied by the CLI."""

from __future__ import annotations

import sys

from clap import runtime


def test_glibc_thresholds_are_raised_and_freed_memory_given_back_on_linux():
    if sys.platform.startswith("linux"):
        assert runtime.keep_freed_memory() is True
        assert runtime.release_freed_memory() is True


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.keep_freed_memory() is False
    assert runtime.release_freed_memory() is False
