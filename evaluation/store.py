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


def checkpoint_bytes(num_classes: int) -> int:
    """A stored ResNet-18's size on disk (its state dict as torch.save writes it, and its record):
    44.8 MB with 10 classes."""
    weights = 11_176_512 + 513 * num_classes  # the convolutions and BatchNorms, then fc
    buffers = 9_600  # BatchNorm running statistics
    return 4 * (weights + buffers) + 40_000


def scores_bytes(splits) -> int:
    """A model's cached scores: float64 margins on every split, losses on forget and test."""
    return 8 * (splits.retain.size + 3 * splits.forget.size + 2 * splits.test.size) + 2_000


def report_bytes(num_models: int, splits) -> int:
    """A report's files: the per-model forget confidences of both sides dominate, then the plot."""
    return 8 * 2 * num_models * splits.forget.size + 8 * (splits.retain.size + splits.test.size) + 400_000


class CorruptCheckpoint(Exception):
    """A stored checkpoint whose bytes or contents do not match its record."""


def config_key(config: dict) -> str:
    """Stable key of a JSON-able config (sorted keys, so order never matters)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class CheckpointStore:
    """The store at ``root``, where everything is written, reading also from ``references``:
    stores shared read-only (``--reference-store``). A model found in one is used as if it
    were here, after the same hash check; nothing is ever written into one, not even the
    scores computed from its models (they go to ``root``)."""

    def __init__(self, root: str | os.PathLike, references=()):
        self.root = pathlib.Path(root)  # made at the first write: a command stopped by its checks leaves nothing
        self.references = tuple(pathlib.Path(r) for r in references)
        self._rejected: set[tuple[pathlib.Path, str]] = set()  # corrupt models of a reference store

    def _paths(self, key: str, root: pathlib.Path | None = None):
        root = self.root if root is None else root
        return root / f"{key}.pt", root / f"{key}.json"

    def _where(self, key: str) -> pathlib.Path | None:
        """The store holding ``key``: this one first, then the reference stores in order."""
        for root in (self.root, *self.references):
            weights, record = self._paths(key, root)
            if (root, key) not in self._rejected and weights.is_file() and record.is_file():
                return root
        return None

    def has(self, key: str) -> bool:
        return self._where(key) is not None

    def is_shared(self, key: str) -> bool:
        """Whether ``key`` is read from a reference store."""
        return self._where(key) not in (None, self.root)

    def record(self, key: str) -> dict:
        return json.loads(self._paths(key, self._where(key))[1].read_text())

    def load(self, key: str) -> dict:
        """The state dict under ``key``, after checking its hash; never unpickles code."""
        weights, _ = self._paths(key, self._where(key))
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
        self.root.mkdir(parents=True, exist_ok=True)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(value, indent=1))

    def arrays(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays saved with ``save_arrays``, here or in a reference store (None if missing
        or unreadable: recompute them)."""
        for root in (self.root, *self.references):
            try:
                with np.load(root / "arrays" / f"{name}.npz", allow_pickle=False) as archive:
                    return {k: archive[k] for k in archive.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile):
                continue
        return None

    def has_arrays_like(self, prefix: str) -> bool:
        """Whether arrays whose name starts with ``prefix`` were saved."""
        return any((self.root / "arrays").glob(f"{prefix}*.npz"))

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.root / "arrays" / f"{name}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: np.savez(f, **arrays))

    def older_models(self, version: int) -> list[str]:
        """Keys of the models whose config has a key version below ``version`` (none: 1)."""
        return sorted(key for key, record in self._records().items()
                      if record.get("config", {}).get("key_version", 1) < version)

    def _records(self) -> dict[str, dict]:
        """``{key: record}`` of every readable record here (one being replaced by another
        process is passed over)."""
        records = {}
        for path in sorted(self.root.glob("*.json")):
            if path.name == "manifest.json":
                continue
            try:
                records[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return records

    def discard(self, key: str) -> None:
        """Forget a corrupt model: deleted here, passed over in a reference store (never changed)."""
        root = self._where(key)
        if root is not None and root != self.root:
            self._rejected.add((root, key))
            return
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def write_manifest(self) -> pathlib.Path:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / "manifest.json"
        write_atomically(target, json.dumps(self._records(), indent=1))
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


def info(root) -> str:
    """What a store holds: its size, its models by profile, split seed, device class,
    precision and key version, and what ``prune`` would remove."""
    from collections import Counter

    from .zoo_archive import models, profile_of

    root = pathlib.Path(root)
    records = models(root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    groups = Counter()
    for record in records.values():
        c = record.get("config", {})
        groups[(profile_of(record), c.get("split_seed"), c.get("device"), c.get("precision"),
                c.get("key_version", 1), c.get("role"))] += 1
    lines = [f"{root}: {len(records)} models, {size / 1e9:.2f} GB"]
    lines += [f"  profile {p}, split seed {seed}, {device}, {precision}, key version {version}: {n} {role}"
              for (p, seed, device, precision, version, role), n in sorted(groups.items(), key=str)]
    older = CheckpointStore(root).older_models(KEY_VERSION)
    lines.append(f"prune would remove {len(older)} models of a key version below {KEY_VERSION}" if older
                 else "prune would remove nothing")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m evaluation.store info|prune|verify STORE``, ``pack STORE ARCHIVE [--profile P]
    [--seed S]``, ``unpack ARCHIVE DIR``, ``verify ARCHIVE``: one line and exit 2 for bad input."""
    import argparse
    import sys

    from .files import WriteFailed
    from .zoo_archive import ArchiveError, pack, unpack, verify_archive, verify_store

    p = argparse.ArgumentParser(prog="python -m evaluation.store", description="A checkpoint store's upkeep.")
    commands = p.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="size, models by profile, seed, device, precision, version").add_argument("store")
    commands.add_parser("prune", help="delete the models an older kit version made").add_argument("store")
    packing = commands.add_parser("pack", help="the chosen models in one archive with a manifest")
    packing.add_argument("store")
    packing.add_argument("archive")
    packing.add_argument("--profile")
    packing.add_argument("--seed", type=int, help="split seed")
    unpacking = commands.add_parser("unpack", help="an archive's models, checked, into a store")
    unpacking.add_argument("archive")
    unpacking.add_argument("store")
    commands.add_parser("verify", help="every model's hash, in a store or an archive").add_argument("path")
    args = p.parse_args(argv)
    try:
        if args.command == "info":
            print(info(args.store))
        elif args.command == "prune":
            print(f"deleted {prune(args.store, KEY_VERSION)} models of a key version below {KEY_VERSION}")
        elif args.command == "pack":
            n = pack(args.store, args.archive, args.profile, args.seed)
            print(f"packed {n} models into {args.archive}")
        elif args.command == "unpack":
            written, kept = unpack(args.archive, args.store)
            print(f"unpacked {written} models into {args.store}" + (f"; {kept} were already there" if kept else ""))
            CheckpointStore(args.store).write_manifest()
        else:
            path = pathlib.Path(args.path)
            n = verify_store(path) if path.is_dir() else len(verify_archive(path))
            print(f"{path}: {n} models, every hash as recorded")
    except (ArchiveError, WriteFailed, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
