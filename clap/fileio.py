"""Atomic file writes: a reader never sees a half-written file, a crash never truncates one."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@functools.cache
def default_file_mode() -> int:
    """The permissions a plain `open()` would give a new file (mkstemp makes them owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: str | Path, binary: bool = False, suffix: str = "") -> Iterator[IO]:
    """An open temporary file beside `path` that replaces `path` when the block ends without error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` in one step."""
    with atomic_file(path) as f:
        f.write(text)


def save_tensors_atomic(tensors: dict, path: str | Path) -> None:
    """Write tensors as one safetensors file, creating its folder; never a truncated file."""
    from safetensors.torch import save

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = save({name: t.contiguous() for name, t in tensors.items()})
    with atomic_file(path, binary=True) as f:
        f.write(data)


def folder_name(text: str) -> str:
    """A class, domain or prompt as a folder name (spaces to underscores)."""
    return text.replace(" ", "_")


def save_image_atomic(image, path: str | Path) -> None:
    """Write a PIL image as PNG via a temporary file in the same folder (never a truncated image)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, binary=True, suffix=".png") as f:
        image.save(f, format="PNG")


def claim_output_folder(root: str | Path, marker: str, request: dict, what: str) -> None:
    """Make `root` ours for a resumable job described by `request`, recorded in root/marker.

    A folder holding the same request resumes; one holding another request, or other files and
    no marker, is refused so that nothing already written is mixed or lost.
    """
    import json

    from clap.errors import ClapError

    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClapError(f"cannot create output folder {root}: {e.strerror}") from None
    if not os.access(root, os.W_OK):
        raise ClapError(f"output folder {root} is not writable; choose another --out")
    path = root / marker
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != request:
            changed = sorted(k for k in set(previous) | set(request) if previous.get(k) != request.get(k))
            raise ClapError(f"{root} already holds a different {what} (differs in {', '.join(changed)}); "
                            "choose another --out or repeat the same request to resume it")
        return
    if any(p.name != marker for p in root.iterdir()):
        raise ClapError(f"{root} is not empty and holds no {what}; choose an empty or new --out")
    write_text_atomic(path, json.dumps(request, indent=2, sort_keys=True) + "\n")
