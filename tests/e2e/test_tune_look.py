"""benchmarks/tune_method.py --look on real CIFAR-10."""

import importlib.util
import json

import pytest

from tests.helpers import REPO, cifar_path


def _tool():
    spec = importlib.util.spec_from_file_location("tune_method", REPO / "benchmarks" / "tune_method.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_look_runs_each_row_from_the_original_and_refuses_no_runs(tmp_path, smoke_store, capsys):
    tool = _tool()
    common = ["-m", "saliency_guided", "--profile", "smoke", "--try", "max_steps=2", "--data", cifar_path(),
              "--store", str(smoke_store), "--out", str(tmp_path), "--no-progress"]
    with pytest.raises(SystemExit) as exit_:
        tool.main(common + ["--look", "0"])
    assert exit_.value.code == 2 and "--look needs at least 1 run" in capsys.readouterr().err
    assert tool.main(common + ["--look", "1", "--baselines", ""]) == 0
    rows = json.loads((tmp_path / "look.json").read_text())
    assert list(rows) == ["saliency_guided", "saliency_guided,max_steps=2"]
    for runs in rows.values():
        assert len(runs) == 1 and all(0 <= r[k] <= 1 for r in runs for k in ("retain_acc", "forget_acc", "test_acc"))
        assert all(r["stop"] and r["round"] >= 1 for r in runs)
    assert all(r["stop"] == "steps" for r in rows["saliency_guided,max_steps=2"])  # 2 steps end round 1
    assert "run 0: retain" in capsys.readouterr().out
    assert not (tmp_path / "leaderboard.md").exists(), "a look scores nothing"
