"""main.py end to end on real CIFAR-10 (and faces) with the smoke profile, in process: reports,
the ceiling, failures."""

import json

import pytest

import main
from data.faces import write_synthetic_faces
from evaluation.report import REPORT_VERSION
from evaluation.runner import RETURNED_MODEL_NOTE
from tests.fixtures.starter_kit_method import TrainsACopy
from tests.fixtures.stub_methods import LeavesInf, OneEpochFinetune, Raises, RecordsItsOriginal
from tests.helpers import cifar_path


def test_smoke_profile_end_to_end(tmp_path, smoke_store, capsys):
    argv = ["-m", "finetune", "--profile", "smoke", "--data", cifar_path(), "--out", str(tmp_path / "out"),
            "--store", str(smoke_store), "--no-progress", "--ceiling", "--set", "lr=0.05", "--set", "epochs=1"]
    assert main.main(argv) == 0
    report = json.loads((tmp_path / "out" / "finetune" / "report.json").read_text())
    assert report["hyperparameters"] == {"epochs": 1, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    assert report["num_models"] == 3 and len(report["epsilons"]) == report["sizes"]["forget"] == 30
    assert 0 <= report["forget_quality"] <= 1 and report["final_score"] >= 0
    assert (tmp_path / "out" / "finetune" / "report.png").stat().st_size > 10_000
    splits = json.loads((tmp_path / "out" / "finetune" / "splits.json").read_text())
    assert len(splits["forget"]) == 30 and not set(splits["forget"]) & set(splits["retain"])
    # the store holds N more references (the ceiling): the report places F against retraining's.
    assert len(list(smoke_store.glob("*.pt"))) == 1 + 3 + 3
    ceiling = report["ceiling"]
    assert ceiling["normalised_forget_quality"]["value"] == pytest.approx(
        report["forget_quality"] / ceiling["forget_quality"]["value"])
    f = report["intervals"]["forget_quality"]
    assert f["low"] <= report["forget_quality"] <= f["high"] and report["report_version"] == REPORT_VERSION
    out = capsys.readouterr().out
    assert "forget quality F" in out and "F / F_retrain" in out and f"[{f['low']:.4f}, {f['high']:.4f}]" in out


def test_single_method_failure_is_written_to_the_report(tmp_path, smoke_store, monkeypatch, capsys):
    import methods

    monkeypatch.setitem(methods.METHODS, "broken", LeavesInf)  # the starter kit's way to register
    out = tmp_path / "out"
    code = main.main(["-m", "broken", "--profile", "smoke", "--data", cifar_path(), "--out", str(out),
                      "--store", str(smoke_store), "--no-progress"])
    assert code == 1
    # one error line (a busy machine may add the retrain clock's warning before it)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(err) == 1 and err[0].startswith("error: ") and "NaN or infinite weights" in err[0]
    report = json.loads((out / "broken" / "report.json").read_text())
    assert report["status"] == "failed" and "NaN or infinite" in report["reason"]


def test_a_leaderboard_exits_1_naming_the_failed_methods_and_no_old_success_survives(tmp_path, smoke_store,
                                                                                    monkeypatch, capsys):
    import methods

    monkeypatch.setitem(methods.METHODS, "raises", Raises)
    monkeypatch.setitem(methods.METHODS, "finetune", OneEpochFinetune)  # METHODS overrides the decorated
    out = tmp_path / "out"
    # an older successful run of "raises" left its report and plot
    (out / "raises").mkdir(parents=True)
    (out / "raises" / "report.json").write_text(json.dumps({"method": "raises", "status": "ok"}))
    (out / "raises" / "report.png").write_bytes(b"old plot")
    argv = ["-m", "raises,finetune", "--profile", "smoke", "--data", cifar_path(), "--out", str(out),
            "--store", str(smoke_store), "--no-progress"]
    assert main.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 1 of 4 rows failed: raises ")
    report = json.loads((out / "raises" / "report.json").read_text())
    assert report["status"] == "failed" and "boom" in report["reason"] and not (out / "raises" / "report.png").exists()
    board = json.loads((out / "leaderboard.json").read_text())
    assert {r["method"]: r["status"] for r in board["rows"]} == {"retrain": "ok", "original": "ok", "finetune": "ok",
                                                                 "raises": "failed"}
    assert next(r for r in board["rows"] if r["method"] == "finetune")["hyperparameters"]["epochs"] == 1


def test_main_runs_on_a_faces_directory(tmp_path, capsys):
    faces = write_synthetic_faces(tmp_path / "faces", n_persons=30, images_per_person=5)
    argv = ["-m", "finetune", "--dataset", "faces", "--data", str(faces), "--profile", "smoke",
            "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"), "--no-progress", "--set", "epochs=1"]
    assert main.main(argv) == 0
    assert (tmp_path / "out" / "finetune" / "report.json").exists()
    assert main.main(["-m", "finetune", "--dataset", "faces", "--out", str(tmp_path / "o2")]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_the_starter_kits_own_example_returns_its_model_and_is_scored(tmp_path, smoke_store, monkeypatch, capsys):
    """A method of the starter kit's ``MyMethod`` shape, registered in its dictionary, runs
    unchanged: the models it returns are scored, with one note for the whole evaluation."""
    import methods

    monkeypatch.setitem(methods.METHODS, "trains_a_copy", TrainsACopy)
    out = tmp_path / "out"
    assert main.main(["-m", "trains_a_copy", "--profile", "smoke", "--data", cifar_path(), "--out", str(out),
                      "--store", str(smoke_store), "--no-progress"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: trains_a_copy's {RETURNED_MODEL_NOTE}"]
    report = json.loads((out / "trains_a_copy" / "report.json").read_text())
    assert report["method"] == "trains_a_copy" and report.get("status") != "failed" and report["num_models"] == 3


def test_runs_alternate_between_k_originals_and_k_1_keeps_the_competitions_original(tmp_path, smoke_store,
                                                                                    monkeypatch):
    """--originals 2: a second original of its own seed in the store; run i starts from original
    i mod 2; the first original is the one K = 1 uses."""
    import methods

    monkeypatch.setitem(methods.METHODS, "records_its_original", RecordsItsOriginal)
    argv = ["-m", "records_its_original", "--profile", "smoke", "--data", cifar_path(), "--out", str(tmp_path),
            "--store", str(smoke_store), "--no-progress"]
    assert main.main(argv + ["--originals", "2"]) == 0
    two = json.loads((tmp_path / "records_its_original" / "report.json").read_text())
    started_from = [log[0]["fc_bias_0"] for log in two["round_log"]]
    assert started_from[0] == started_from[2] != started_from[1]  # originals 0, 1, 0
    configs = [json.loads(p.read_text()).get("config", {}) for p in smoke_store.glob("*.json")]
    seeds = {c["model_seed"] for c in configs if c.get("role") == "original" and c.get("split_seed") == 0}
    assert {0, 100_000} <= seeds  # split seed 0, and + 100,000 for the second (never a reference's 1000 + i)
    assert two["originals"] == 2 and len(two["original"]["retain_acc_per_model"]) == 2
    assert main.main(argv) == 0
    one = json.loads((tmp_path / "records_its_original" / "report.json").read_text())
    assert [log[0]["fc_bias_0"] for log in one["round_log"]] == [started_from[0]] * 3  # K = 1: original 0 only
