"""evaluation/session.py on a small real zoo: one evaluation's numbers in range and consistent,
the gate and the ceiling, a leaderboard's failures contained, --resume."""

import dataclasses
import json
import math
import time

import numpy as np
import pytest
import scipy.stats

from evaluation import klom, metric, session
from evaluation.judge import judge, placed
from evaluation.report import REPORT_VERSION, reusable_result, summary_table
from evaluation.session import gather_references, score_retraining
from tests.fixtures.stub_methods import Hangs, LeavesNaN, Raises, Shrinks, gentle, gentle_then_raises
from tests.helpers import contestants


@pytest.fixture(scope="module")
def result(trained_mini_zoo):
    return session.evaluate_method(contestants(finetune=gentle)["finetune"], "finetune", trained_mini_zoo,
                                   session.gather_references(trained_mini_zoo), gate=0.2, progress=False)


def test_report_numbers_are_in_range(result, mini_zoo):
    assert result.num_models == 3 and mini_zoo.splits.forget.size == 60  # 10% of 600
    assert 0.0 <= result.forget_quality <= 1.0
    eps = np.asarray(result.epsilons)
    assert eps.shape == (60,) and eps.min() >= 0 and eps.max() <= 50
    assert result.forget_quality == pytest.approx(metric.epsilon_points(eps, 3).mean())
    for side in (result.unlearned, result.retrained, result.original):
        for key in ("retain_acc", "forget_acc", "test_acc"):
            assert 0.0 <= getattr(side, key) <= 1.0
            assert getattr(side, key) == pytest.approx(np.mean(side.per_model(key)))
    for value in (result.mia.unlearned, result.mia.retrained, result.mia.original):
        assert 0.0 <= value <= 1.0
    assert result.timing.time_ratio > 0
    assert result.timing.passes_gate == (result.timing.time_ratio <= 0.2)
    phases = result.timing.phases  # wall seconds of the command's stages, in their order
    assert list(phases) == ["original", "references", "retrain_clock", "runs", "scoring"]
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["runs"] == result.timing.runs_wall_seconds >= sum(result.timing.unlearn_seconds)
    assert result.hyperparameters == {"epochs": 1, "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4}


def test_klom_reads_every_set_of_the_same_models_and_places_against_retraining(result, mini_zoo):
    sizes = {"forget": 60, "retain": 540, "test": 200}
    for name, s in result.klom.sets.items():
        assert s.values.shape == (sizes[name],) and 0 <= s.values.min() and s.values.max() <= math.log(1e5) + 1e-9
        p95 = s.statistics["p95"]
        assert p95.value == pytest.approx(np.quantile(s.values, 0.95)) and p95.low <= p95.value <= p95.high
        assert s.statistics["mean"].value == pytest.approx(s.values.mean())
    # the forget set's KLOM is the KLOM of the very confidences F is computed from
    np.testing.assert_array_equal(result.klom.sets["forget"].values, klom.per_example_klom(
        result.unlearned.forget_confs, result.retrained.forget_confs))
    placed_result = placed(result, score_retraining(mini_zoo, gather_references(mini_zoo), 0.2, train=False))
    a = placed_result.ceiling.agreement
    assert a.both + a.f_only + a.klom_only + a.neither == 60
    eps, values = result.epsilons, result.klom.sets["forget"].values
    if np.ptp(eps) and np.ptp(values):  # Spearman's, as scipy computes it
        assert a.rank_correlation == pytest.approx(scipy.stats.spearmanr(eps, values).statistic)
    else:  # every forget example at epsilon's cap, as on some CPUs: no order to correlate, said so
        assert math.isnan(a.rank_correlation)
    assert set(placed_result.ceiling.klom_difference) == {"forget", "retain", "test"}
    table = summary_table(placed_result)
    assert "KLOM p95" in table and "indistinguishable by both" in table
    assert ("undefined (one side" in table) == math.isnan(a.rank_correlation)
    for value, words in ((math.nan, "rank correlation undefined (one side"), (0.25, "rank correlation 0.25 over")):
        ceiling = dataclasses.replace(placed_result.ceiling, agreement=dataclasses.replace(a, rank_correlation=value))
        assert words in summary_table(dataclasses.replace(placed_result, ceiling=ceiling))


def test_references_behave_like_retrained_models(result):
    r, o = result.retrained, result.original
    assert r.test_acc > 0.2, "references should learn something"
    assert r.forget_acc < r.retain_acc, "retrained models never saw the forget set"
    assert o.forget_acc > r.forget_acc, "the original saw the forget set"


def test_final_score_is_f_times_the_ratios(result):
    u, r = result.unlearned, result.retrained
    expected = result.forget_quality * (u.retain_acc / r.retain_acc) * (u.test_acc / r.test_acc)
    assert result.final_score == pytest.approx(expected)


def test_gate_divides_by_the_clock_and_retraining_costs_one_retrain(mini_zoo):
    references = gather_references(mini_zoo)
    clock = references.retrain_clock["seconds"]
    as_if_unlearned = judge("x", references.retrained, [2.0, 4.0, 6.0], references, gate=0.2)
    assert as_if_unlearned.timing.time_ratio == pytest.approx(4.0 / clock)
    assert as_if_unlearned.timing.retrain_seconds == clock
    assert as_if_unlearned.timing.passes_gate == (4.0 / clock <= 0.2)

    retrain = score_retraining(mini_zoo, references, gate=0.2)
    assert retrain.timing.time_ratio == pytest.approx(1.0)
    assert len(retrain.timing.reference_seconds) == 3 and min(retrain.timing.reference_seconds) > 0


def test_ceiling_comes_from_the_store_only_when_every_extra_reference_is_there(mini_zoo):
    """-m NAME places a method against retraining when the store holds references N..2N-1."""
    references = gather_references(mini_zoo)
    wider = dataclasses.replace(mini_zoo, profile=mini_zoo.profile.with_models(4))
    assert not wider.has_retrained(range(4, 8))
    assert score_retraining(wider, references, 0.2, train=False) is None  # nothing trained
    assert not wider.has_retrained(range(4, 8))
    ceiling = score_retraining(mini_zoo, references, 0.2, train=True)
    assert mini_zoo.has_retrained(range(3, 6)) and ceiling.method == "retrain"
    again = score_retraining(mini_zoo, references, 0.2, train=False)
    assert again.forget_quality == ceiling.forget_quality and again.intervals == ceiling.intervals


def test_failing_methods_get_failed_rows_and_the_rest_go_on(mini_zoo, tmp_path):
    methods = contestants(raises=Raises, leaves_nan=LeavesNaN, finetune=gentle)
    context = {"profile": mini_zoo.profile.to_json(), "gate": 0.2, "environment": {"device": "cpu"}}
    result = session.run_leaderboard(methods, mini_zoo, tmp_path, context, gate=0.2, progress=False)
    rows = {r.method: r for r in result["rows"]}
    assert rows["raises"].status == "failed" and "boom" in rows["raises"].error
    assert rows["leaves_nan"].status == "failed" and "NaN" in rows["leaves_nan"].error
    assert rows["finetune"].status == "ok" and 0 <= rows["finetune"].forget_quality <= 1
    assert rows["retrain"].status == "ok" and not math.isnan(rows["retrain"].time_ratio)
    assert rows["original"].status == "ok" and rows["original"].time_ratio == 0  # no unlearning, at no cost
    text = (tmp_path / "leaderboard.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert saved["rows"][-1]["time_ratio"] is None  # strict JSON: a failed row's NaN is null
    assert [r["method"] for r in saved["rows"]][-2:] == ["raises", "leaves_nan"]
    assert (tmp_path / "leaderboard.png").stat().st_size > 5_000
    board = (tmp_path / "leaderboard.md").read_text()
    assert "FAILED" in board
    # KLOM beside F: the forget 95th percentile of each row, paired against retraining's
    assert "| KLOM p95 | KLOM - retrain |" in board and rows["finetune"].klom is not None
    assert rows["retrain"].klom_versus_ceiling.value == 0
    assert saved["orders_agree_f_klom"] is None  # one method: no order to compare (retrain and original left out)
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
    assert report["report_version"] == 4 and "shared_shift" in report["metric_info"] and "klom" in report

    def reused(saved: dict, make=raising, conditions=context) -> bool:
        """What the leaderboard asks before it runs finetune (asked directly: the rows' runs
        and scoring add nothing to the decision)."""
        report_path.write_text(json.dumps(saved))
        return reusable_result(report_path, conditions, contestants(finetune=make)["finetune"].hyperparameters) \
            is not None

    assert reused(report)
    # A report of an older format is never patched up: its method runs again.
    for version in (3, 2, 1):  # 3: made before KLOM
        assert not reused(report | {"report_version": version})
    assert not reused({k: v for k, v in report.items() if k not in ("intervals", "ceiling")})
    # A report made with other values (as after a change of a default) is not reused,
    assert not reused(report, make=Raises)
    # nor one made under other conditions (here: other run seeds).
    assert not reused(report, conditions=context | {"run_seeds": [0]})


def test_hanging_method_fails_after_its_time_limit_and_the_run_goes_on(mini_zoo, tmp_path):
    context = {"profile": mini_zoo.profile.to_json(), "gate": 0.2, "environment": {"device": "cpu"}}
    started = time.time()
    result = session.run_leaderboard(contestants(hangs=Hangs, shrinks=Shrinks), mini_zoo, tmp_path, context, gate=0.2,
                                     progress=False, time_limit_s=1.0)
    rows = {r.method: r for r in result["rows"]}
    assert rows["hangs"].status == "failed" and "time limit of 1 s" in rows["hangs"].error
    assert rows["shrinks"].status == "ok" and (tmp_path / "shrinks" / "report.json").exists()
    assert time.time() - started < 600
