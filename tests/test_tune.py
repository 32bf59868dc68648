"""tune.py: search spaces, its one-line errors, what a study reports as best, and studies on smoke."""

import csv
import json

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

import tune
from methods import all_method_handlers
from methods.hyperparameters import Space, build, spaces
from tests.fixtures.stub_methods import ScalesHead
from tests.helpers import cifar_path


def test_every_shipped_method_declares_a_space_whose_values_it_accepts():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for name, cls in all_method_handlers().items():
        space = spaces(cls)
        assert space, f"{name} declares no search space"
        defaults = build(cls, name)
        for key, s in space.items():  # the shipped default lies inside its own range
            default = getattr(defaults, key)
            assert default in s.choices if s.choices else s.low <= default <= s.high, (name, key)
        for _ in range(3):
            trial = study.ask()
            values = {key: s.suggest(trial, f"{name}.{key}") for key, s in space.items()}
            build(cls, name, values)  # the constructor's own checks pass
        for edge in ("low", "high"):
            build(cls, name, {k: getattr(s, edge) for k, s in space.items() if not s.choices})


@pytest.mark.parametrize("argv, message", [
    (["-m", "nope"], "unknown method 'nope'"),
    (["-m", "finetune", "--space", "nope=1:2"], "Finetune has no hyperparameter 'nope'"),
    (["-m", "finetune", "--space", "lr=0.5:0.01"], "a range needs low < high"),
    (["-m", "finetune", "--space", "lr=0:1:log"], "a log scale needs low > 0"),
    (["-m", "finetune", "--space", "lr=1:2:3"], "expected LOW:HIGH, LOW:HIGH:log or a|b|c"),
    (["-m", "finetune", "--try", "moment=0.5"], "--try 'moment=0.5': Finetune has no hyperparameter 'moment'"),
    (["-m", "finetune", "--until", "-1"], "--until must be at least 0"),
    (["-m", "finetune", "--profile", "huge"], "unknown profile 'huge'"),
    (["-m", "finetune", "--prune-below", "1.5"], "--prune-below is a share"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert tune.main(argv + ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def test_a_try_is_the_defaults_with_its_values_and_is_queued_once():
    """Nothing of a --try is left to the sampler: the space's other values are the method's
    defaults; a value outside the space is held fixed; rows differing only there are two rows."""
    study = optuna.create_study()
    space = {"factor": Space(0.0, 1.0), "nan": Space(choices=(False, True))}
    defaults = {"factor": 0.9, "nan": False, "other": 0}
    tries = [{"factor": 0.3}, {"factor": 0.3}, {"factor": 2.0}, {"factor": 0.3, "other": 1}]
    tune.enqueue(study, tries, space, defaults)
    tune.enqueue(study, tries[:1], space, defaults)  # a rerun queues nothing again
    queued = [(t.system_attrs["fixed_params"], t.user_attrs["fixed"]) for t in study.trials]
    assert queued == [({"factor": 0.3, "nan": False}, {}), ({"nan": False}, {"factor": 2.0}),
                      ({"factor": 0.3, "nan": False}, {"other": 1})]
    trial = study.ask()
    assert trial.suggest_float("factor", 0.0, 1.0) == 0.3 and trial.suggest_categorical("nan", [False, True]) is False


def _add(study, number_value, gate, factor):
    study.add_trial(create_trial(value=number_value, params={"factor": factor},
                                 distributions={"factor": FloatDistribution(0.0, 1.0)},
                                 system_attrs={"constraints:gate": gate},
                                 user_attrs={"result": {"final_score_low": 0.0, "final_score_high": 1.0}}))


def test_an_infeasible_trial_is_kept_and_marked_and_never_best():
    study = optuna.create_study(direction="maximize")
    _add(study, 0.9, 0.3, 0.1)  # the highest score, but 0.3 over the gate
    _add(study, 0.5, -0.1, 0.2)
    _add(study, 0.4, 0.0, 0.3)  # exactly at the gate: feasible
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"reason": "run 0 broke it"}))
    rows = {r["number"]: r for r in tune.trial_rows(study)}
    assert [rows[n]["feasible"] for n in range(4)] == [False, True, True, None]
    assert rows[3]["state"] == "pruned" and rows[3]["reason"] == "run 0 broke it"
    assert [t.number for t in tune.best_trials(study, 5)] == [1, 2] and study.best_trial.number == 1
    table = tune.markdown("scales_head", study, list(rows.values()), {})
    assert "| 0 | complete | FAIL | 0.9000" in table and "Best feasible trial: 1" in table
    assert "--set factor=0.2" in table

    none = optuna.create_study(direction="maximize")
    _add(none, 0.9, 0.3, 0.1)
    assert tune.best_trials(none) == [] and "No feasible trial yet" in tune.markdown("x", none, [], {})
    # confirming: the feasible best first, then the best of the rest to fill --top
    assert [t.number for t in tune.confirmable(study, 3)] == [1, 2, 0]
    assert [t.number for t in tune.confirmable(none, 1)] == [0]


@pytest.fixture
def scales_head(monkeypatch):
    import methods

    monkeypatch.setitem(methods.METHODS, "scales_head", ScalesHead)


def _common(tmp_path, smoke_store):
    return ["-m", "scales_head", "--profile", "smoke", "--data", cifar_path(), "--store", str(smoke_store), "--out",
            str(tmp_path), "--no-progress"]


def test_a_study_writes_its_files_a_rerun_adds_to_it_and_its_best_is_confirmed(tmp_path, smoke_store, scales_head):
    common = _common(tmp_path, smoke_store)
    assert tune.main(common + ["--trials", "2", "--try", "factor=0.5"]) == 0
    out = tmp_path / "tune" / "scales_head"
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 2 and trials[0]["params"] == {"factor": 0.5}  # --try first
    assert all(t["state"] == "complete" and t["feasible"] is not None and t["commit"] for t in trials)
    assert all(t["final_score_low"] <= t["final_score"] <= t["final_score_high"] for t in trials)
    with open(out / "trials.csv", newline="") as f:
        assert [int(r["number"]) for r in csv.DictReader(f)] == [0, 1]
    assert (out / "history.png").stat().st_size > 5000 and (out / "slices.png").stat().st_size > 5000
    assert "python main.py -m scales_head --set factor=" in (out / "tuning.md").read_text()

    assert tune.main(common + ["--trials", "1", "--try", "factor=0.5", "--try", "factor=0.7,nan=false"]) == 0
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 3 and [t["params"]["factor"] for t in trials].count(0.5) == 1  # not queued again
    assert trials[2]["params"] == {"factor": 0.7, "nan": False}  # nan, outside the space, held for that trial
    assert tune.main(common + ["--until", "4"]) == 0 and tune.main(common + ["--until", "4"]) == 0  # a fixed budget
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 4
    assert trials[3]["params"] != trials[1]["params"]  # a resumed study draws new points, not its first again

    assert tune.main(common + ["--confirm", "0"]) == 0
    board = json.loads((out / "confirm_seed0" / "leaderboard.json").read_text())
    best = max((t for t in trials if t["feasible"]), key=lambda t: t["final_score"])
    assert {r["method"] for r in board["rows"]} == {"retrain", "original", "scales_head",
                                                    f"scales_head-trial{best['number']}"}
    assert board["seed"] == 0 and board["profile"]["num_models"] == 3  # the profile's N


def test_a_trial_that_breaks_the_model_is_pruned_with_its_reason(tmp_path, smoke_store, scales_head):
    common = _common(tmp_path, smoke_store) + ["--space", "nan=false|true", "--prune-below", "0.99"]
    assert tune.main(common + ["--trials", "2", "--try", "factor=0.9,nan=true", "--try", "factor=0.0,nan=false"]) == 0
    trials = json.loads((tmp_path / "tune" / "scales_head" / "trials.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["pruned", "pruned"]
    assert "the method left NaN or infinite weights" in trials[0]["reason"]
    assert trials[1]["reason"].startswith("run 0 kept retain accuracy") and "below 0.99 of the original's" in \
        trials[1]["reason"]
    assert "No feasible trial yet" in (tmp_path / "tune" / "scales_head" / "tuning.md").read_text()


def test_look_runs_each_row_from_the_original(tmp_path, smoke_store, capsys):
    common = ["-m", "saliency_guided", "--profile", "smoke", "--try", "max_steps=2", "--data", cifar_path(),
              "--store", str(smoke_store), "--out", str(tmp_path), "--no-progress"]
    assert tune.main(common + ["--look", "0"]) == 2 and "--look must be at least 1" in capsys.readouterr().err
    assert tune.main(common + ["--look", "1"]) == 0
    rows = json.loads((tmp_path / "tune" / "saliency_guided" / "look.json").read_text())
    assert list(rows) == ["saliency_guided", "saliency_guided,max_steps=2"]
    for runs in rows.values():
        assert len(runs) == 1 and all(0 <= r[k] <= 1 for r in runs for k in ("retain_acc", "forget_acc", "test_acc"))
        assert all(r["stop"] and r["round"] >= 1 for r in runs)
    assert all(r["stop"] == "steps" for r in rows["saliency_guided,max_steps=2"])  # 2 steps end round 1
    assert "run 0: retain" in capsys.readouterr().out
    assert not (tmp_path / "tune" / "saliency_guided" / "trials.json").exists(), "a look scores nothing"
