"""A checkpoint store keyed by everything that determines a model.

Each model is ``<key>.pt`` (a state dict) beside ``<key>.json`` (its config,
accuracies, training time and the file's sha256). Both are written to a temporary
file and renamed into place, the JSON last, so a model exists only once both are
complete: an interrupted run leaves no half-written model behind, and a rerun
trains only what is missing. ``manifest.json`` lists every model in the store;
``notes/`` keeps small measurements made once per store (the retrain clock);
``arrays/`` keeps numbers computed from a model (its scores), so that they are
computed once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import time
import zipfile

import numpy as np
import torch

from .files import write_atomically


# The version of what a model's key covers (the configs evaluation/zoo.py builds): bump it when
# that changes. Older models are then named once and pruned on request, never silently retrained
# beside. 2: device class, precision always, whole-data hash, pixels.
KEY_VERSION = 2


class CorruptCheckpoint(Exception):
    """A stored checkpoint whose bytes or contents do not match its record."""


def config_key(config: dict) -> str:
    """Stable key of a JSON-able config (sorted keys, so order never matters)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class CheckpointStore:
    def __init__(self, root: str | os.PathLike):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str):
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def has(self, key: str) -> bool:
        weights, record = self._paths(key)
        return weights.is_file() and record.is_file()

    def record(self, key: str) -> dict:
        return json.loads(self._paths(key)[1].read_text())

    def load(self, key: str) -> dict:
        """The state dict under ``key``, after checking its hash; never unpickles code."""
        weights, _ = self._paths(key)
        record = self.record(key)
        data = weights.read_bytes()
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            raise CorruptCheckpoint(f"checkpoint {weights} does not match its recorded hash")
        try:  # the bytes just checked, not the file again: another writer may have replaced it since
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - unpickling fails in many ways; each is a corrupt file
            raise CorruptCheckpoint(f"checkpoint {weights} cannot be loaded: {e}") from None

    def save(self, key: str, state_dict: dict, config: dict, manifest: bool = True, **info) -> dict:
        """Write the weights then the record, each atomically; return the record. A caller
        saving many models at once passes ``manifest=False`` and writes it once after them."""
        weights, record_path = self._paths(key)
        state = {k: v.detach().cpu() for k, v in state_dict.items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        # The hash of the bytes written, not of the file read back: a second writer of the
        # same key may have renamed its own file into place in between.
        write_atomically(weights, data)
        record = {
            "key": key,
            "config": config,
            "sha256": hashlib.sha256(data).hexdigest(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **info,
        }
        write_atomically(record_path, json.dumps(record, indent=1))
        if manifest:
            self.write_manifest()
        return record

    def note(self, name: str) -> dict | None:
        """A small JSON value saved with ``save_note`` (None if there is none)."""
        path = self.root / "notes" / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def save_note(self, name: str, value: dict) -> None:
        """Keep ``value`` beside the models (in ``notes/``, out of the manifest), atomically."""
        path = self.root / "notes" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        write_atomically(path, json.dumps(value, indent=1))

    def arrays(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays saved with ``save_arrays`` (None if missing or unreadable: recompute them)."""
        try:
            with np.load(self.root / "arrays" / f"{name}.npz", allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def has_arrays_like(self, prefix: str) -> bool:
        """Whether arrays whose name starts with ``prefix`` were saved."""
        return any((self.root / "arrays").glob(f"{prefix}*.npz"))

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.root / "arrays" / f"{name}.npz"
        path.parent.mkdir(exist_ok=True)
        write_atomically(path, lambda f: np.savez(f, **arrays))

    def older_models(self, version: int) -> list[str]:
        """Keys of the models whose config has a key version below ``version`` (none: 1)."""
        older = []
        for path in self.root.glob("*.json"):
            if path.name == "manifest.json":
                continue
            try:
                config = json.loads(path.read_text()).get("config", {})
            except (OSError, ValueError):
                continue
            if config.get("key_version", 1) < version:
                older.append(path.stem)
        return sorted(older)

    def discard(self, key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def write_manifest(self) -> pathlib.Path:
        records = {}
        for path in sorted(self.root.glob("*.json")):
            if path.name == "manifest.json":
                continue
            try:
                records[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a record being replaced by another process
        target = self.root / "manifest.json"
        write_atomically(target, json.dumps(records, indent=1))
        return target


def prune(root, version: int = KEY_VERSION) -> int:
    """Delete the models of a key version below ``version`` (and their scores); returns how many."""
    store = CheckpointStore(root)
    older = store.older_models(version)
    for key in older:
        store.discard(key)
        for scores in (store.root / "arrays").glob(f"scores_{key}_*.npz"):
            scores.unlink()
    store.write_manifest()
    return len(older)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "prune":
        sys.exit("usage: python -m evaluation.store prune STORE  (deletes models an older kit version made)")
    print(f"deleted {prune(sys.argv[2], KEY_VERSION)} models of a key version below {KEY_VERSION}")
