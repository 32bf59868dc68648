"""data/cifar10.py: where CIFAR-10 is found, what it must hold, and its fingerprint."""

import numpy as np
import pytest

from data import DataError, load_cifar10
from data.cifar10 import ENV_VAR


def _write_npz(path, n_train=20, n_test=10, max_label=9):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, max_label + 1, n_train),
        x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, max_label + 1, n_test),
    )
    return path


def test_npz_source_and_env_var(tmp_path, monkeypatch):
    path = _write_npz(tmp_path / "tiny.npz")
    assert load_cifar10(path).x_train.shape == (20, 32, 32, 3)
    monkeypatch.setenv(ENV_VAR, str(path))
    data = load_cifar10()
    assert data.source == str(path) and data.y_test.dtype == np.int64


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="--data"):
        load_cifar10(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "no_such_dir")


def test_labels_must_match_the_model(tmp_path):
    with pytest.raises(DataError, match="0..9"):
        load_cifar10(_write_npz(tmp_path / "bad.npz", max_label=12))


def test_real_cifar_is_the_expected_one(cifar):
    assert cifar.x_train.shape == (50000, 32, 32, 3) and cifar.x_test.shape == (10000, 32, 32, 3)
    assert cifar.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


def test_the_representation_is_part_of_the_data_fingerprint(cifar):
    from dataclasses import replace

    from data import NORMALISED, RAW

    assert cifar.pixels == NORMALISED  # CIFAR-10 runs are normalised, as the starter kit's
    assert replace(cifar, pixels=RAW).fingerprint() != cifar.fingerprint()
    assert replace(cifar, pixels=NORMALISED).fingerprint() == cifar.fingerprint()


def test_the_tests_look_for_cifar_where_main_looks_without_data(monkeypatch, tmp_path):
    from tests.helpers import cifar_path

    monkeypatch.delenv("UNLEARN_DATA", raising=False)
    default = tmp_path / "cifar10.npz"
    default.write_bytes(b"")
    monkeypatch.setattr("data.cifar10.DEFAULT_NPZ", default)
    assert cifar_path() == str(default)
    monkeypatch.setenv("UNLEARN_DATA", str(tmp_path / "elsewhere.npz"))
    with pytest.raises(pytest.fail.Exception, match="UNLEARN_DATA=.*elsewhere.npz holds no CIFAR-10"):
        cifar_path()
