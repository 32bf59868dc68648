"""evaluation/data_cache.py: a compressed .npz decoded once, then memory-mapped."""

import os

import numpy as np

from data.cifar10 import ARRAYS, from_arrays
from evaluation.data_cache import cache_root, load_dataset_cached


def _npz(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez_compressed(path, x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
                        y_train=rng.integers(0, 10, 20), x_test=rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
                        y_test=rng.integers(0, 10, 6))
    return path


def test_the_second_load_maps_the_decoded_copy_and_gives_the_same_data(tmp_path):
    source, root = _npz(tmp_path / "set.npz"), tmp_path / "cache"
    first, groups = load_dataset_cached("cifar10", source, root)
    assert groups is None and first.x_train.flags.writeable
    (folder,) = (root / "decoded").iterdir()
    assert sorted(f.name for f in folder.iterdir()) == ["fingerprint.txt", "x_test.npy", "x_train.npy", "y_test.npy",
                                                         "y_train.npy"]
    second, _ = load_dataset_cached("cifar10", source, root)
    assert not second.x_train.flags.writeable, "read from the mapped copy"
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, k), getattr(first, k))
        assert getattr(second, k).dtype == getattr(first, k).dtype
    assert second.source == first.source == str(source)
    # the fingerprint comes from the cache, and is the one the arrays hash to
    assert second.fingerprint() == (folder / "fingerprint.txt").read_text() == first.fingerprint()
    assert second.fingerprint() == from_arrays({k: getattr(second, k) for k in ARRAYS}, "x").fingerprint()
    (folder / "fingerprint.txt").unlink()  # a copy without it is decoded again, and gets one
    load_dataset_cached("cifar10", source, root)
    assert (folder / "fingerprint.txt").read_text() == first.fingerprint()


def test_a_changed_source_or_a_damaged_copy_is_decoded_again(tmp_path):
    source, root = _npz(tmp_path / "set.npz"), tmp_path / "cache"
    load_dataset_cached("cifar10", source, root)
    (folder,) = (root / "decoded").iterdir()
    (folder / "x_test.npy").write_bytes(b"not an array")
    again, _ = load_dataset_cached("cifar10", source, root)
    assert again.x_test.shape == (6, 32, 32, 3) and np.load(folder / "x_test.npy").shape == (6, 32, 32, 3)
    _npz(source, seed=1)
    os.utime(source, ns=(1, 1))  # another file at the same path
    changed, _ = load_dataset_cached("cifar10", source, root)
    assert len(list((root / "decoded").iterdir())) == 2
    assert not np.array_equal(changed.x_train, again.x_train)


def test_without_a_writable_cache_the_data_still_loads(tmp_path):
    source = _npz(tmp_path / "set.npz")
    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    data, _ = load_dataset_cached("cifar10", source, tmp_path / "blocked")
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_train.flags.writeable


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("UNLEARN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "unlearn-kit"
