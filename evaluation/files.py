"""Every file the kit writes, written whole or not at all, and the checks made before writing.

The content goes to a temporary file beside the target, is flushed to disk and renamed over
it, so a reader (or a rerun after a kill) sees the old file or the new one, never half of
one, and a failed write leaves no temporary behind and raises ``WriteFailed``, which names
the file. Before any work a command checks that its folders can be written
(``check_writable``) and have room for what it will write (``check_space``). Needs nothing but
the standard library, so processes that never import torch can use it too.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable
from typing import BinaryIO


class WriteFailed(OSError):
    """A file could not be written (disk full, permissions, a vanished mount); what was
    written before stays whole, and nothing half-written is left."""

    def __init__(self, path, error: OSError):
        super().__init__(error.errno, f"cannot write {path}: {error.strerror or error}")
        self.path, self.error = pathlib.Path(path), error

    def __str__(self) -> str:
        return self.strerror


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files only their owner can read; a store or archive a team shares gets the
# permissions open() would give (0666 less the umask), read once, before any thread starts
_FILE_MODE = 0o666 & ~_umask()


class PathUnusable(Exception):
    """A folder a command would write to cannot be created or written, or lacks room."""


def write_atomically(path, content: str | bytes | Callable[[BinaryIO], object]) -> pathlib.Path:
    """Write ``content`` to ``path``: text (UTF-8), bytes, or a function that writes to the
    open binary file (``np.savez``, ``torch.save``, ``fig.savefig``)."""
    path = pathlib.Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteFailed(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        pathlib.Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteFailed):
            raise WriteFailed(path, e) from e
        raise
    return path


def check_writable(folder, what: str) -> None:
    """``folder`` (``what``: the flag that names it) can be written: it exists and a file can
    be made in it, or it can be made in its nearest existing parent. Nothing is left behind."""
    folder = pathlib.Path(folder).expanduser().absolute()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise PathUnusable(f"{what} {folder} cannot be used: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".unlearn-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PathUnusable(f"{what} {folder} cannot be written ({e.strerror or e} in {existing}); pass a folder you "
                           f"can write") from None


def free_bytes(folder) -> int:
    """Free space where ``folder`` is (or would be made)."""
    return shutil.disk_usage(_nearest_existing(pathlib.Path(folder).expanduser().absolute())).free


def _nearest_existing(folder: pathlib.Path) -> pathlib.Path:
    """``folder`` or, when it is still to be made, its nearest parent that exists (``/`` at worst)."""
    return next(p for p in (folder, *folder.parents) if p.exists())


def check_space(folder, needed: int, what: str, detail: str) -> None:
    """Stops the command before any work when ``folder`` has less than ``needed`` bytes free."""
    free = free_bytes(folder)
    if needed > free:
        raise PathUnusable(f"{what} {folder} needs about {_size(needed)} for {detail}, and {_size(free)} is free; "
                           "free some space or pass a folder on another disk")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
