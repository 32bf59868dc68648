"""evaluation/zoo_archive.py and python -m evaluation.store: a zoo packed, unpacked and verified."""

import json
import os
import stat

import pytest

from evaluation import store as store_cli
from evaluation.store import CheckpointStore
from evaluation.zoo_archive import ArchiveError, pack, unpack, verify_archive, verify_store
from training.model import make_model


@pytest.fixture
def zoo(tmp_path):
    s = CheckpointStore(tmp_path / "zoo")
    for seed, split_seed in ((0, 0), (1, 0), (2, 1)):
        s.save(f"k{seed}", make_model(seed=seed).state_dict(), {"role": "retrained", "split_seed": split_seed},
               profile="smoke")
    return s.root


def test_pack_unpack_and_verify_round_trip_by_profile_and_seed(zoo, tmp_path, capsys):
    assert pack(zoo, tmp_path / "zoo.tar", profile="smoke", seed=0) == 2
    assert set(verify_archive(tmp_path / "zoo.tar")) == {"k0", "k1"}
    assert unpack(tmp_path / "zoo.tar", tmp_path / "team") == (2, 0)
    assert verify_store(tmp_path / "team") == 2
    assert (tmp_path / "team" / "k0.pt").read_bytes() == (zoo / "k0.pt").read_bytes()
    # readable by the team: open()'s permissions (0666 less the umask), not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    for path in (tmp_path / "zoo.tar", tmp_path / "team" / "k0.pt", tmp_path / "team" / "k0.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    stamp = (tmp_path / "team" / "k0.pt").stat().st_mtime_ns
    assert store_cli.main(["unpack", str(tmp_path / "zoo.tar"), str(tmp_path / "team")]) == 0
    out = capsys.readouterr().out
    assert "unpacked 0 models" in out and "2 were already there" in out
    assert (tmp_path / "team" / "k0.pt").stat().st_mtime_ns == stamp
    with pytest.raises(ArchiveError, match="no model of profile smoke and split seed 5"):
        pack(zoo, tmp_path / "none.tar", profile="smoke", seed=5)
    assert store_cli.main(["info", str(zoo)]) == 0
    out = capsys.readouterr().out
    assert "3 models" in out and "profile smoke, split seed 0" in out and "prune would remove" in out


def test_a_tampered_or_truncated_archive_is_refused_naming_the_file(zoo, tmp_path, capsys):
    pack(zoo, tmp_path / "zoo.tar", seed=0)
    data = bytearray((tmp_path / "zoo.tar").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of a model's weights
    (tmp_path / "tampered.tar").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"k\d\.pt does not match the manifest's hash"):
        unpack(tmp_path / "tampered.tar", tmp_path / "team")
    assert not (tmp_path / "team").exists()  # refused before anything is written
    (tmp_path / "truncated.tar").write_bytes(bytes(data[: len(data) // 3]))
    assert store_cli.main(["verify", str(tmp_path / "truncated.tar")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "truncated" in err and len(err.splitlines()) == 1
    (zoo / "k2.pt").write_bytes(b"not the weights")
    with pytest.raises(ArchiveError, match=r"k2\.pt does not match its record's hash"):
        verify_store(zoo)
    assert json.loads((zoo / "k2.json").read_text())["sha256"]  # its record untouched
