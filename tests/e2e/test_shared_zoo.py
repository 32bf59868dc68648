"""A zoo a team shares, read-only, and a write that fails in the middle of a run (smoke, in process)."""

import json

import main
from tests.helpers import cifar_path


def _listing(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def test_scoring_against_a_reference_store_trains_nothing_and_writes_nothing_into_it(tmp_path, smoke_store, capsys):
    argv = ["-m", "finetune", "--profile", "smoke", "--data", cifar_path(), "--set", "epochs=1", "--no-progress"]
    assert main.main(argv + ["--out", str(tmp_path / "team"), "--store", str(smoke_store)]) == 0  # the team's zoo
    before = _listing(smoke_store)
    mine = tmp_path / "mine"
    assert main.main(argv + ["--out", str(tmp_path / "out"), "--store", str(mine), "--reference-store",
                             str(smoke_store)]) == 0
    assert _listing(smoke_store) == before  # not a file added, changed or touched
    assert not list(mine.glob("*.pt")), "every model came from the reference store"
    assert list((mine / "notes").glob("retrain_clock_*.json")), "the clock belongs to this machine: measured here"
    team = json.loads((tmp_path / "team" / "finetune" / "report.json").read_text())
    ours = json.loads((tmp_path / "out" / "finetune" / "report.json").read_text())
    assert ours["retrained"] == team["retrained"] and ours["epsilons"] == team["epsilons"]


def test_a_write_failing_in_the_middle_is_one_line_and_keeps_what_was_finished(tmp_path, capsys, monkeypatch):
    from evaluation import files

    argv = ["-m", "finetune", "--profile", "smoke", "--data", cifar_path(), "--set", "epochs=1", "--no-progress",
            "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")]
    real, writes = files.os.replace, []

    def full_after_the_original(src, dst):
        writes.append(dst)
        if str(dst).endswith(".pt") and sum(str(w).endswith(".pt") for w in writes) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", full_after_the_original)
    assert main.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot write {tmp_path / 'store'}") and \
        ".pt: No space left on device; free space" in err[0] and "kept and reused" in err[0]
    store = tmp_path / "store"
    kept = {p.stem for p in store.glob("*.pt")}
    assert len(kept) == 1 and (store / f"{kept.pop()}.json").exists()  # the original, whole
    assert not list(store.rglob("*.tmp")) and not (tmp_path / "out" / "finetune").exists()
    original = next(store.glob("*.pt"))
    stamp = original.stat().st_mtime_ns
    monkeypatch.setattr(files.os, "replace", real)
    assert main.main(argv) == 0  # the same command again: only what was missing is trained
    assert original.stat().st_mtime_ns == stamp and len(list(store.glob("*.pt"))) == 4
