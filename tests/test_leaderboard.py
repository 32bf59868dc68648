import dataclasses
import json
import math

import pytest
import torch

import main
from evaluation import session
from evaluation.report import REPORT_VERSION
from evaluation.leaderboard import Row, markdown_table, ranked
from methods import BaseMethod
from methods.finetune import Finetune
from tests.conftest import contestants


class Raises(BaseMethod):
    def __init__(self):
        super().__init__("raises")

    def run(self, net, retain_loader, forget_loader, val_loader):
        raise RuntimeError("boom")


class LeavesNaN(BaseMethod):
    def __init__(self):
        super().__init__("leaves_nan")

    def run(self, net, retain_loader, forget_loader, val_loader):
        with torch.no_grad():
            net.fc.weight.fill_(float("nan"))


def gentle():
    return Finetune(epochs=1, lr=1e-3)


def gentle_then_raises():
    """gentle's values, but a run that raises."""
    method = gentle()
    method.run = Raises.run.__get__(method)
    return method


@dataclasses.dataclass(kw_only=True, eq=False)
class OneEpochFinetune(Finetune):
    epochs: int = 1


def test_ranking_puts_failures_last():
    rows = [Row.failed("bad", "ValueError: x\nmore"), Row("a", final_score=0.2), Row("b", final_score=0.5)]
    assert [r.method for r in ranked(rows)] == ["b", "a", "bad"]
    table = markdown_table(rows)
    assert "| bad | FAILED: ValueError: x |" in table and "more" not in table
    assert table.splitlines()[2].startswith("| b | ")


def test_failing_methods_get_failed_rows_and_the_rest_go_on(mini_zoo, tmp_path):
    methods = contestants(raises=Raises, leaves_nan=LeavesNaN, finetune=gentle)
    context = {"profile": mini_zoo.profile.to_json(), "gate": 0.2, "environment": {"device": "cpu"}}
    result = session.run_leaderboard(methods, mini_zoo, tmp_path, context, gate=0.2, progress=False)
    rows = {r.method: r for r in result["rows"]}
    assert rows["raises"].status == "failed" and "boom" in rows["raises"].error
    assert rows["leaves_nan"].status == "failed" and "NaN" in rows["leaves_nan"].error
    assert rows["finetune"].status == "ok" and 0 <= rows["finetune"].forget_quality <= 1
    assert rows["retrain"].status == "ok" and not math.isnan(rows["retrain"].time_ratio)
    text = (tmp_path / "leaderboard.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert saved["rows"][-1]["time_ratio"] is None  # strict JSON: a failed row's NaN is null
    assert [r["method"] for r in saved["rows"]][-2:] == ["raises", "leaves_nan"]
    assert (tmp_path / "leaderboard.png").stat().st_size > 5_000
    board = (tmp_path / "leaderboard.md").read_text()
    assert "FAILED" in board
    finetune = rows["finetune"]
    assert finetune.time_ratio == pytest.approx(finetune.unlearn_seconds / finetune.retrain_seconds)
    assert f"seconds per run / {rows['retrain'].unlearn_seconds:.1f} s" in board
    assert (tmp_path / "finetune" / "report.json").exists() and result["failures"].keys() == {"raises", "leaves_nan"}
    failed = json.loads((tmp_path / "raises" / "report.json").read_text())
    assert failed["status"] == "failed" and "boom" in failed["reason"]
    assert not (tmp_path / "raises" / "report.png").exists()
    ran_with = next(r for r in saved["rows"] if r["method"] == "finetune")["hyperparameters"]
    assert ran_with == {k: getattr(gentle(), k) for k in ("epochs", "lr", "momentum", "weight_decay")}

    # Every score has its interval, every row its place against the ceiling, and the
    # comparison with finetune is the paired one.
    for row in (finetune, rows["retrain"]):
        for key in ("forget_quality", "final_score", "retain_acc", "test_acc", "forget_acc"):
            interval = row.intervals[key]
            assert interval.low <= interval.high and interval.value == pytest.approx(getattr(row, key))
    assert rows["retrain"].normalised_forget_quality.value == pytest.approx(1.0)
    assert finetune.normalised_forget_quality.value == pytest.approx(
        finetune.forget_quality / rows["retrain"].forget_quality)
    assert rows["retrain"].versus_baseline.value == pytest.approx(rows["retrain"].final_score - finetune.final_score)
    assert finetune.versus_baseline is None and rows["raises"].intervals == {}
    pair = next(p for p in saved["pairs"] if {p["a"], p["b"]} == {"finetune", "retrain"})
    assert pair["final_score"]["low"] <= pair["final_score"]["value"] <= pair["final_score"]["high"]
    assert saved["rows"][0]["intervals"]["final_score"]["high"] >= saved["rows"][0]["final_score"]
    assert "F / F_retrain" in board and "final - finetune" in board and "Paired comparisons" in board
    report = json.loads((tmp_path / "finetune" / "report.json").read_text())
    assert report["ceiling"]["method"] == "retrain"
    assert report["ceiling"]["normalised_forget_quality"]["value"] == pytest.approx(
        finetune.normalised_forget_quality.value)
    assert set(report["intervals"]) >= {"forget_quality", "final_score", "retain_acc", "retrained_test_acc"}


def test_resume_reuses_matching_reports_and_reruns_the_rest(mini_zoo, tmp_path, capsys):
    context = {"report_version": REPORT_VERSION, "profile": mini_zoo.profile.to_json(), "gate": 0.2, "seed": 0,
               "run_seeds": [0, 1, 2],
               "data": {"fingerprint": mini_zoo.data.fingerprint()}, "environment": {"device": "cpu"}}

    def board(make, conditions=context, **options):
        return session.run_leaderboard(contestants(finetune=make), mini_zoo, tmp_path, conditions, gate=0.2,
                                       progress=False, **options)

    first = {r.method: r for r in board(gentle)["rows"]}
    raising = gentle_then_raises
    # The method now raises (with gentle's values), so a finetune row that is still ok can
    # only come from the saved report.
    again = {r.method: r for r in board(raising, resume=True)["rows"]}
    assert again["finetune"] == first["finetune"] and again["retrain"] == first["retrain"]
    assert "finetune: reusing" in capsys.readouterr().out
    report_path, arrays_path = tmp_path / "finetune" / "report.json", tmp_path / "finetune" / "report.npz"
    report, arrays = json.loads(report_path.read_text()), arrays_path.read_bytes()

    def status(saved: dict, make=raising, conditions=context) -> str:
        """finetune's row when ``saved`` (with its arrays) is in the folder (a failed run removes them)."""
        report_path.write_text(json.dumps(saved))
        arrays_path.write_bytes(arrays)
        return {r.method: r.status for r in board(make, conditions, resume=True)["rows"]}["finetune"]

    assert status(report) == "ok"  # the saved report stands in for the raising runs
    # A report of an older format is never patched up: its method runs again (here it raises).
    assert report["report_version"] == 3 and "shared_shift" in report["metric_info"]
    assert status(report | {"report_version": 2}) == "failed"
    assert status(report | {"report_version": 1}) == "failed"
    assert status({k: v for k, v in report.items() if k not in ("intervals", "ceiling")}) == "failed"
    # A report made with other values (as after a change of a default) is not reused,
    assert status(report, make=Raises) == "failed"
    # nor one made under other conditions (here: other run seeds).
    assert status(report, conditions=context | {"run_seeds": [0]}) == "failed"


def test_all_exits_1_naming_the_failed_methods_and_no_old_success_survives(tmp_path, smoke_store, monkeypatch,
                                                                                 capsys):
    import methods
    from tests.conftest import cifar_path

    monkeypatch.setattr(methods, "_REGISTRY", {"raises": Raises, "finetune": OneEpochFinetune})
    monkeypatch.setattr(methods, "_import_all", lambda: None)
    out = tmp_path / "out"
    # an older successful run of "raises" left its report and plot
    (out / "raises").mkdir(parents=True)
    (out / "raises" / "report.json").write_text(json.dumps({"method": "raises", "status": "ok"}))
    (out / "raises" / "report.png").write_bytes(b"old plot")
    argv = ["-m", "all", "--profile", "smoke", "--data", cifar_path(), "--out", str(out),
            "--store", str(smoke_store), "--no-progress"]
    assert main.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 1 of 3 rows failed: raises ")
    report = json.loads((out / "raises" / "report.json").read_text())
    assert report["status"] == "failed" and "boom" in report["reason"] and not (out / "raises" / "report.png").exists()
    rows = {r["method"]: r["status"] for r in json.loads((out / "leaderboard.json").read_text())["rows"]}
    assert rows == {"retrain": "ok", "finetune": "ok", "raises": "failed"}
