"""Atomic file writes: a reader never sees a half-written file, a crash never truncates one."""

from __future__ import annotations

import contextlib
import errno
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
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    with naming(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
                yield f
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """An OS error inside that names no file (a full disk's, on write) names `path`: the message says where."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None
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
    if root.is_symlink() and not root.exists():
        raise ClapError(f"output folder {root} is a link to {os.readlink(root)}, which does not exist; create that "
                        "folder or choose another `out`")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClapError(f"cannot create output folder {root}: {e.strerror}") from None
    if not os.access(root, os.W_OK):
        raise ClapError(f"output folder {root} is not writable; choose another `out`")
    path = root / marker
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != request:
            changed = sorted(k for k in set(previous) | set(request) if previous.get(k) != request.get(k))
            raise ClapError(f"{root} already holds a different {what} (differs in {', '.join(changed)}); "
                            "choose another `out` or repeat the same request to resume it")
        return
    if any(p.name != marker for p in root.iterdir()):
        raise ClapError(f"{root} is not empty and holds no {what}; choose an empty or new `out`")
    write_text_atomic(path, json.dumps(request, indent=2, sort_keys=True) + "\n")


LOCK_SUFFIX = ".clap.lock"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def writable_folder(path: str | Path, option: str = "`out`", outside: str | Path | None = None) -> Path:
    """Check, before any work and without creating anything, that `path` is a folder this process can write
    into (or can be made one) and that it does not lie inside `outside` (e.g. the dataset being read); a
    one-line error otherwise."""
    from clap.errors import ClapError

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ClapError(f"{option} {folder} is a file; give a folder")
    if outside is not None and folder.resolve().is_relative_to(Path(outside).expanduser().resolve()):
        raise ClapError(f"{option} {folder} is inside {outside}, the data being read; write it elsewhere")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ClapError(f"{option} {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryDirectory(dir=existing, prefix=".clap-check-"):
            pass
    except OSError as e:
        raise ClapError(f"{option} {folder} cannot be written: {e.strerror or e}") from None
    return folder


def refuse_existing_adapter(folder: str | Path, overwrite: bool, option: str = "`out`") -> None:
    """An adapter already in `folder` is an earlier result: kept unless the user asks to replace it."""
    from clap.errors import ClapError

    found = [name for name in ADAPTER_FILES if (Path(folder) / name).exists()]
    if found and not overwrite:
        raise ClapError(f"{option} {folder} already holds an adapter ({found[0]}) from an earlier run; choose "
                        "another folder or pass `overwrite`")


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold `folder` for one writer: a second clap command writing there fails at once with one line (a lock
    left by a process that no longer runs is taken over). The lock sits beside the folder
    (`.NAME.clap.lock`), so a command that fails leaves no folder behind. This process may take it again
    inside (a command saving a `Report` while holding the folder)."""
    from clap.errors import ClapError

    folder = Path(folder).absolute()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClapError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    lock = folder.parent / f".{folder.name}{LOCK_SUFFIX}"
    if _lock_owner(lock) == os.getpid():
        yield
        return
    mine = lock.with_name(f"{lock.name}.{os.getpid()}")
    mine.write_text(str(os.getpid()))
    try:
        for _ in range(2):
            try:
                os.link(mine, lock)  # atomic: the lock appears with its owner's pid in it, or not at all
                break
            except FileExistsError:
                owner = _lock_owner(lock)
                if owner is not None:
                    raise ClapError(f"another clap command (pid {owner}) is writing {what} in {folder}; wait for "
                                    "it to finish or choose another `out`") from None
                lock.unlink(missing_ok=True)
        else:
            raise ClapError(f"cannot take the lock {lock}; remove it if no clap command is writing there")
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_owner(lock: Path) -> int | None:
    """The pid holding a lock file, or None when it is not a running process."""
    try:
        pid = int(lock.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid
