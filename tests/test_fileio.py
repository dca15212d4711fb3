"""Atomic writes: whole files or none, with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest
from PIL import Image

from clap.fileio import atomic_file, save_image_atomic, write_text_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_the_usual_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "a.json", "{}")
    save_image_atomic(Image.new("RGB", (4, 4)), tmp_path / "img" / "a.png")
    assert mode(tmp_path / "a.json") == mode(plain) == mode(tmp_path / "img" / "a.png")
    assert Image.open(tmp_path / "img" / "a.png").size == (4, 4)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
