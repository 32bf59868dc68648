"""benchmarks/rank_stability.py on a leaderboard folder with a known ranking."""

import json

import numpy as np

from benchmarks import rank_stability


def _write_leaderboard(out, shifts: dict, n_models: int = 12, n_examples: int = 20):
    """Reports shaped like main.py's: methods whose models sit ``shift`` sd from the shared references."""
    rng = np.random.default_rng(0)
    centre, spread = rng.normal(2, 1, n_examples), rng.uniform(0.5, 1.5, n_examples)
    draw = lambda shift: centre + spread * (shift + rng.standard_normal((n_models, n_examples)))  # noqa: E731
    accs = {f"{k}_per_model": [0.9] * n_models for k in ("retain_acc", "test_acc", "forget_acc")}
    retrained = {"forget_confs": draw(0.0).tolist()} | accs
    for name, shift in shifts.items():
        report = {"num_models": n_models, "unlearned": {"forget_confs": draw(shift).tolist()} | accs,
                  "retrained": retrained}
        (out / name).mkdir()
        (out / name / "report.json").write_text(json.dumps(report))
    rows = [{"method": name, "status": "ok"} for name in shifts] + [{"method": "broken", "status": "failed"}]
    (out / "leaderboard.json").write_text(json.dumps({"rows": rows}))


def test_well_separated_methods_keep_their_ranking_at_every_subsample(tmp_path, capsys):
    _write_leaderboard(tmp_path, {"far": 4.0, "retrain": 0.0, "near": 1.0, "mid": 2.0})
    taus = rank_stability.main([str(tmp_path), "--fractions", "2,8", "--subsets", "2", "--baseline", "far"])
    assert set(taus) == {2}, "N/8 = 1 model is below the metric's minimum"
    assert taus[2] == [1.0, 1.0]
    out = capsys.readouterr().out
    assert "ranked by final_score: retrain, near, mid, far" in out and "N/8 = 1: below" in out
    assert "near and far separated at 95% in 2 of 2" in out  # the best method (retrain aside) vs the baseline
