"""A compressed ``.npz`` data set, decoded once per machine and memory-mapped afterwards.

Decompressing the 171 MB CIFAR-10 ``.npz`` costs every process about 1.2 s on a 2-core
CPU: each ``main.py``, each ``--workers`` process, each test that starts one. The first
load writes the decoded arrays as plain ``.npy`` files; later loads map them in
milliseconds, sharing the pages between processes. The copy is keyed by the source's
path, size and modification time, so an edited or replaced file is decoded again; where
the cache folder cannot be written, the data set is read as before.

Where: ``UNLEARN_CACHE``, else ``$XDG_CACHE_HOME/unlearn-kit``, else
``~/.cache/unlearn-kit`` (``decoded/KEY/``, 184 MB for CIFAR-10).
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np

from data import load_dataset, resolve_source
from data.cifar10 import ARRAYS, from_arrays

from .files import write_atomically

CACHE_VAR = "UNLEARN_CACHE"


def cache_root() -> pathlib.Path:
    if os.environ.get(CACHE_VAR):
        return pathlib.Path(os.environ[CACHE_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "unlearn-kit"


def load_dataset_cached(name: str, path, root: pathlib.Path | None = None):
    """``data.load_dataset(name, path)``, with a CIFAR-10 ``.npz`` served from its decoded copy."""
    source = pathlib.Path(resolve_source(path)).expanduser() if name == "cifar10" else None
    if source is None or source.suffix != ".npz" or not source.is_file():
        return load_dataset(name, path)
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = (root or cache_root()) / "decoded" / key
    files = {k: folder / f"{k}.npy" for k in ARRAYS}
    fingerprint = folder / "fingerprint.txt"  # hashing the images costs another 0.3 s a process
    if all(f.is_file() for f in [*files.values(), fingerprint]):
        try:
            arrays = {k: np.load(f, mmap_mode="r") for k, f in files.items()}
            return from_arrays(arrays, str(source), fingerprint.read_text().strip()), None
        except (OSError, ValueError):
            pass  # a damaged copy: decoded and written again below
    data, groups = load_dataset(name, path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for k, f in files.items():  # each file whole: a copy lacking one is decoded again
            write_atomically(f, lambda out, array=getattr(data, k): np.save(out, array))
        write_atomically(fingerprint, data.fingerprint())
    except OSError:
        pass  # no writable cache: this process has its data all the same
    return data, groups
