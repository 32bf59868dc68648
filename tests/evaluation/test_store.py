"""evaluation/store.py: the checkpoint store's keys, whole writes and hash checks."""

import json

import pytest
import torch

from evaluation import store as store_module
from evaluation.store import CheckpointStore, CorruptCheckpoint, config_key
from training.model import empty_model, make_model


def test_key_is_stable_and_order_free():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_save_load_roundtrip_and_manifest(tmp_path):
    s = CheckpointStore(tmp_path)
    model = make_model(seed=0)
    record = s.save("k1", model.state_dict(), {"role": "x"}, train_seconds=1.5, accuracy={"test": 0.5})
    assert s.has("k1") and record["train_seconds"] == 1.5
    loaded = empty_model()  # what the zoo loads stored models into: no random initialisation
    assert not any(p.is_meta for p in loaded.parameters())
    loaded.load_state_dict(s.load("k1"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["k1"]["config"] == {"role": "x"} and manifest["k1"]["accuracy"]["test"] == 0.5
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    s = CheckpointStore(tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped mid-write

    monkeypatch.setattr(store_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        s.save("k2", make_model().state_dict(), {})
    assert not s.has("k2")
    assert list(tmp_path.iterdir()) == []


def test_corrupted_checkpoint_is_detected(tmp_path):
    s = CheckpointStore(tmp_path)
    s.save("k3", make_model(seed=1).state_dict(), {})
    weights = tmp_path / "k3.pt"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(CorruptCheckpoint, match="hash"):
        s.load("k3")


def test_arrays_roundtrip_and_unreadable_is_none(tmp_path):
    import numpy as np

    s = CheckpointStore(tmp_path)
    assert s.arrays("scores_a") is None
    s.save_arrays("scores_a", {"confs": np.arange(5, dtype=np.float64), "acc": np.float64(0.25)})
    back = s.arrays("scores_a")
    np.testing.assert_array_equal(back["confs"], np.arange(5.0))
    assert back["confs"].dtype == np.float64 and float(back["acc"]) == 0.25
    (tmp_path / "arrays" / "scores_a.npz").write_bytes(b"\x00" * 10)
    assert s.arrays("scores_a") is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_record_hashes_the_bytes_written_and_load_uses_the_bytes_checked(tmp_path, monkeypatch):
    s = CheckpointStore(tmp_path)
    ours, theirs = make_model(seed=0).state_dict(), make_model(seed=1).state_dict()
    write = store_module.write_atomically

    def raced(path, fill):
        write(path, fill)
        if path.suffix == ".pt":  # a second writer of the same key renames its file in right after ours
            write(path, lambda f: torch.save(theirs, f))

    monkeypatch.setattr(store_module, "write_atomically", raced)
    s.save("k", ours, {})
    monkeypatch.setattr(store_module, "write_atomically", write)
    # our record must not vouch for their file: the mismatch is caught, not loaded as ours
    with pytest.raises(CorruptCheckpoint, match="does not match its recorded hash"):
        s.load("k")
    s.save("k", ours, {})
    real_load = torch.load

    def replaced_after_the_check(source, *args, **kwargs):
        (tmp_path / "k.pt").write_bytes(b"replaced after the hash was checked")
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(store_module.torch, "load", replaced_after_the_check)
    loaded = s.load("k")
    assert torch.equal(loaded["fc.weight"], ours["fc.weight"])


def _listing(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_a_reference_store_is_read_never_written(tmp_path):
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    team = CheckpointStore(shared)
    model = make_model(seed=0)
    team.save("k1", model.state_dict(), {"role": "x"})
    team.save("bad", make_model(seed=1).state_dict(), {"role": "x"})
    team.save_arrays("scores_k1_e", {"a": torch.zeros(2).numpy()})
    (shared / "bad.pt").write_bytes(b"damaged")
    before = _listing(shared)
    s = CheckpointStore(mine, references=[shared])
    assert s.has("k1") and s.is_shared("k1") and s.record("k1")["config"] == {"role": "x"}
    assert torch.equal(s.load("k1")["fc.weight"], model.state_dict()["fc.weight"])  # checked by its hash
    assert s.arrays("scores_k1_e") is not None
    with pytest.raises(CorruptCheckpoint):
        s.load("bad")
    s.discard("bad")  # passed over, not deleted: retrained here
    assert not s.has("bad") and (shared / "bad.pt").exists()
    s.save("bad", make_model(seed=1).state_dict(), {"role": "x"})
    s.save_arrays("scores_bad_e", {"a": torch.zeros(2).numpy()})
    s.save_note("clock", {"seconds": 1.0})
    assert s.has("bad") and not s.is_shared("bad") and s.note("clock") == {"seconds": 1.0}
    assert _listing(shared) == before  # every file as it was: contents and modification times
    assert sorted(p.name for p in mine.iterdir()) == ["arrays", "bad.json", "bad.pt", "manifest.json", "notes"]


def test_a_failed_write_names_its_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from evaluation import files

    s = CheckpointStore(tmp_path)
    s.save("k1", make_model(seed=0).state_dict(), {"role": "x"})

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(files.WriteFailed, match=r"cannot write .*k2\.pt: No space left on device") as failure:
        s.save("k2", make_model(seed=1).state_dict(), {"role": "x"})
    assert isinstance(failure.value, OSError) and failure.value.path == tmp_path / "k2.pt"
    assert not list(tmp_path.glob(".*.tmp")) and not s.has("k2") and s.has("k1")
