"""Every file the kit writes, written whole or not at all.

The content goes to a temporary file beside the target, is flushed to disk and renamed over
it, so a reader (or a rerun after a kill) sees the old file or the new one, never half of
one, and a failed write leaves no temporary behind. Needs nothing but the standard library,
so processes that never import torch can use it too.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import BinaryIO


def write_atomically(path, content: str | bytes | Callable[[BinaryIO], object]) -> pathlib.Path:
    """Write ``content`` to ``path``: text (UTF-8), bytes, or a function that writes to the
    open binary file (``np.savez``, ``torch.save``, ``fig.savefig``)."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path
