"""A zoo in one file: the models of a store packed with a manifest, unpacked and verified.

``pack`` writes an uncompressed tar (the weights do not compress) holding ``manifest.json``
(every model's key, sha256, config and record) and each model's ``<key>.pt`` and
``<key>.json``, selected by profile and split seed. ``unpack`` checks every model against
the manifest before it writes anything, and refuses an archive with a tampered, missing or
truncated file, naming it; ``verify`` checks a store or an archive the same way. The
weights are never unpickled here, only hashed.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import tarfile

from .files import write_atomically

MANIFEST = "manifest.json"


class ArchiveError(Exception):
    """An archive or store that does not match its manifest or records; the message names the file."""


def models(store) -> dict[str, dict]:
    """``{key: record}`` of every complete model in ``store`` (its weights beside its record)."""
    out = {}
    for path in sorted(pathlib.Path(store).glob("*.json")):
        if path.name == MANIFEST or not path.with_suffix(".pt").is_file():
            continue
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


def selected(records: dict[str, dict], profile: str | None = None, seed: int | None = None) -> dict[str, dict]:
    """The records of ``profile`` (as recorded, or inferred: ``profile_of``) and split ``seed``."""
    return {k: r for k, r in records.items()
            if (profile is None or profile in profile_of(r).split(" or "))
            and (seed is None or r.get("config", {}).get("split_seed") == seed)}


def profile_of(record: dict) -> str:
    """The profile a model was trained for: recorded since the kit records it; before that,
    the profiles whose recipe it was trained with ("quick or cpu": they share one)."""
    if record.get("profile"):
        return record["profile"]
    from .profiles import PROFILES

    config = record.get("config", {})
    recipe = config.get("recipe")
    role = config.get("role")
    names = [p.name for p in PROFILES.values()
             if recipe in ((p.original_recipe() if role == "original" else p.retrain_recipe()).to_json(),)]
    return " or ".join(names) or "unknown"


def pack(store, archive, profile: str | None = None, seed: int | None = None) -> int:
    """The chosen models of ``store`` into ``archive`` (written whole or not at all); how many."""
    store = pathlib.Path(store)
    chosen = selected(models(store), profile, seed)
    if not chosen:
        raise ArchiveError(f"{store} holds no model of profile {profile or 'any'} and split seed "
                           f"{'any' if seed is None else seed}")
    manifest = {key: {"sha256": record["sha256"], "record": record} for key, record in chosen.items()}

    def write(f):
        with tarfile.open(fileobj=f, mode="w") as tar:
            _add(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
            for key in chosen:
                for suffix in (".pt", ".json"):
                    tar.add(store / f"{key}{suffix}", arcname=f"{key}{suffix}")

    write_atomically(archive, write)
    return len(chosen)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def verify_archive(archive) -> dict[str, dict]:
    """The manifest of ``archive``, every model in it checked; ArchiveError names the first bad file."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            manifest = json.loads(_read(tar, MANIFEST))
            for key, entry in manifest.items():
                weights = _read(tar, f"{key}.pt")
                if hashlib.sha256(weights).hexdigest() != entry["sha256"]:
                    raise ArchiveError(f"{archive}: {key}.pt does not match the manifest's hash (tampered or damaged)")
                if json.loads(_read(tar, f"{key}.json")).get("sha256") != entry["sha256"]:
                    raise ArchiveError(f"{archive}: {key}.json does not match the manifest")
    except (tarfile.TarError, OSError, ValueError, KeyError, EOFError) as e:
        raise ArchiveError(f"{archive} is not a complete zoo archive ({type(e).__name__}: {e})") from None
    return manifest


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ArchiveError(f"{tar.name}: {name} is missing") from None
    f = tar.extractfile(member)
    data = f.read() if f is not None else b""
    if len(data) != member.size:
        raise ArchiveError(f"{tar.name}: {name} is truncated")
    return data


def unpack(archive, folder) -> tuple[int, int]:
    """Every model of a verified ``archive`` into ``folder`` (a store), each file written whole;
    a model the folder already holds with the same hash is left as it is. How many were
    written, and how many were already there."""
    manifest = verify_archive(archive)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    held = models(folder)
    kept = {key for key, entry in manifest.items() if held.get(key, {}).get("sha256") == entry["sha256"]}
    with tarfile.open(archive, mode="r:") as tar:
        for key in manifest.keys() - kept:
            for suffix in (".pt", ".json"):  # the weights first: a model exists once its record does
                write_atomically(folder / f"{key}{suffix}", _read(tar, f"{key}{suffix}"))
    return len(manifest) - len(kept), len(kept)


def verify_store(store) -> int:
    """Every model of ``store`` against its record's hash; ArchiveError names the first bad file."""
    records = models(store)
    for key, record in records.items():
        weights = pathlib.Path(store) / f"{key}.pt"
        if hashlib.sha256(weights.read_bytes()).hexdigest() != record.get("sha256"):
            raise ArchiveError(f"{weights} does not match its record's hash (tampered or damaged)")
    return len(records)
