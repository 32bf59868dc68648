"""evaluation/report.py: report.json small at any N with its arrays in report.npz, strict JSON, and
an MIA that a tiny forget set leaves unmeasured."""

import dataclasses
import json
import math

import numpy as np
import pytest

from evaluation.judge import References, judge
from evaluation.report import read_report, summary_table, write_report
from evaluation.result import Klom, KlomSet, Result, Side
from evaluation.scoring import ModelScores


def _scores(rng, forget: int, test: int = 40, retain: int = 50) -> ModelScores:
    return ModelScores(retain_acc=float(rng.uniform(0.8, 1)), forget_acc=float(rng.uniform(0.5, 1)),
                       test_acc=float(rng.uniform(0.5, 0.9)), forget_confs=rng.normal(size=forget),
                       forget_losses=rng.exponential(size=forget), test_losses=rng.exponential(size=test),
                       retain_confs=rng.normal(size=retain), test_confs=rng.normal(size=test))


def _result(forget: int, n: int = 3):
    rng = np.random.default_rng(0)
    references = References([_scores(rng, forget)], 1.0, [_scores(rng, forget) for _ in range(n)],
                            {"seconds": 10.0, "machine": "test", "images_per_second": 1.0, "timed_steps": 2,
                             "version": 1})
    return judge("m", [_scores(rng, forget) for _ in range(n)], [0.5] * n, references, gate=0.2)


def test_a_forget_set_too_small_for_the_mia_gives_nan_with_a_note(tmp_path):
    result = _result(forget=6)
    assert math.isnan(result.mia.unlearned) and math.isnan(result.mia.original)
    assert "at least 10 examples on each side; forget has 6" in result.mia.note
    assert 0 <= result.forget_quality <= 1  # the evaluation itself is whole
    path = write_report(result, tmp_path, {"status": "ok"})
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["mia"]["unlearned"] is None  # strict JSON
    back = read_report(path)
    assert math.isnan(back["mia"]["unlearned"]) and back["mia"]["note"] == result.mia.note
    assert "MIA not measured" in summary_table(result)


def test_report_json_stays_small_at_the_full_scale_and_its_arrays_come_back(tmp_path):
    small = _result(forget=20)
    n, forget = 512, 1000  # as report.json held them before: 20 MB of JSON
    rng = np.random.default_rng(1)

    def side():
        return Side(*(tuple(rng.uniform(size=n).tolist()) for _ in range(3)), rng.normal(size=(n, forget)))

    klom = Klom({name: KlomSet(rng.uniform(0, 11.5, size=size), small.klom.sets[name].statistics)
                 for name, size in (("forget", forget), ("retain", 45_000), ("test", 5_000))})  # full's sets
    result = dataclasses.replace(small, unlearned=side(), retrained=side(), epsilons=rng.uniform(0, 3, size=forget),
                                 timing=dataclasses.replace(small.timing, unlearn_seconds=tuple(rng.uniform(size=n))),
                                 klom=klom)
    path = write_report(result, tmp_path, {"status": "ok"})
    assert path.stat().st_size < 1_000_000
    assert (tmp_path / "report.npz").exists() and (tmp_path / "report.png").exists()
    report = json.loads(path.read_text())
    assert "forget_confs" not in report["unlearned"] and report["arrays"]["file"] == "report.npz"
    assert set(report["klom"]) == {"forget", "retain", "test"} and set(report["klom"]["retain"]) == {"p95", "median",
                                                                                                   "mean"}
    back = read_report(path)
    assert back["unlearned"]["forget_confs"] == result.unlearned.forget_confs.tolist()
    assert back["retrained"]["forget_confs"] == result.retrained.forget_confs.tolist()
    assert back["klom"]["retain_values"] == klom.sets["retain"].values.tolist()
    again = Result.from_json(back)  # what --resume reads: every number as it was
    assert again.to_json() == result.to_json()
    (tmp_path / "report.npz").unlink()
    assert read_report(path) is None  # a report without its arrays cannot stand in for a run


def test_mia_is_measured_with_enough_examples():
    result = _result(forget=30)
    assert result.mia.note is None and 0 <= result.mia.unlearned <= 1 and "note" not in result.mia.to_json()


@pytest.mark.parametrize("bad", ["not json", '{"arrays": {"file": "missing.npz"}}'])
def test_an_unreadable_report_reads_as_none(tmp_path, bad):
    (tmp_path / "report.json").write_text(bad)
    assert read_report(tmp_path / "report.json") is None


def test_a_methods_round_log_is_in_the_report_and_its_summary(tmp_path):
    result = dataclasses.replace(_result(forget=12), round_log=[
        [{"round": 0}, {"round": 2, "stop": "forgotten", "auc": 0.51}],
        [{"round": 0}, {"round": 1, "stop": "overshoot", "auc": 0.31}],
        [{"round": 0}, {"round": 2, "stop": "forgotten", "auc": float("nan")}]])
    path = write_report(result, tmp_path, {"status": "ok"})
    report = json.loads(path.read_text())  # strict JSON: the NaN is a null
    assert report["round_log"][1] == [{"round": 0}, {"round": 1, "stop": "overshoot", "auc": 0.31}]
    assert report["round_log"][2][1]["auc"] is None
    assert summary_table(result).endswith(
        "round log: 3 runs in report.json; they ended after 1 to 2 rounds (forgotten 2, overshoot 1)")
    assert "round log" not in summary_table(_result(forget=12))
