"""Is a leaderboard's ranking stable? Kendall tau between the ranking at N and at N/2, N/4.

Reads a finished ``python main.py -m all`` run: every method's ``OUT/NAME/report.json``
holds its N unlearned models' forget confidences and accuracies and the N references'.
For each fraction it draws subsets of models without replacement (one subset of the
references shared by every method, as in a real leaderboard, and one of each method's
own models), scores every method again with the competition's metric at that smaller
N, ranks the methods and compares the ranking with the one at the full N. A tau of 1
means the same order; 0, no relation. With ``--baseline`` it also counts the subsets in
which the best method at N and the baseline are still separated at 95% (the paired
interval of their final scores' difference, ``evaluation.intervals``): how small an N
would have told them apart. Nothing is trained or run: only the metric.

    python benchmarks/rank_stability.py results/cpu [--fractions 2,4] [--subsets 5] [--by final_score]
        [--baseline finetune]
"""

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np
from scipy.stats import kendalltau

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from evaluation import shared_shift
from evaluation.comparison import bootstrap_plan
from evaluation.intervals import ACCURACIES, SideScores, difference_interval
from evaluation.metric import MIN_MODELS, epsilon_points, final_score, per_example_epsilons
from evaluation.report import read_report


def load_reports(out_dir: pathlib.Path) -> dict:
    """``{method: report}`` of the methods that ran, in the leaderboard's order."""
    board = json.loads((out_dir / "leaderboard.json").read_text())
    names = [r["method"] for r in board["rows"] if r["status"] == "ok"]
    return {name: read_report(out_dir / name / "report.json") for name in names}


def scores(report: dict, unlearned: np.ndarray, references: np.ndarray) -> dict:
    """F, the final score and the bootstrap's inputs of ``report``'s models ``unlearned``
    against the references ``references``."""
    u, r = report["unlearned"], report["retrained"]
    u_confs, r_confs = np.asarray(u["forget_confs"])[unlearned], np.asarray(r["forget_confs"])[references]
    eps = per_example_epsilons(u_confs, r_confs, device="cpu")
    points = epsilon_points(eps, len(unlearned))
    accs = {k: np.asarray(u[f"{k}_per_model"])[unlearned] for k in ACCURACIES}
    reference_accs = {k: np.asarray(r[f"{k}_per_model"])[references] for k in ACCURACIES}
    f = float(points.mean())
    final = final_score(f, accs["retain_acc"], accs["test_acc"], reference_accs["retain_acc"],
                        reference_accs["test_acc"])
    return {"forget_quality": f, "final_score": final, "method": SideScores(points, accs), "confs": (u_confs, r_confs),
            "references": SideScores(None, reference_accs)}


def with_shift(scored: dict) -> SideScores:
    """The method side with its models' shared offsets (measured only where an interval is needed)."""
    return dataclasses.replace(scored["method"], shift=shared_shift.measure(*scored["confs"], device="cpu"))


def separated(name: str, other: str, sub: dict) -> bool:
    """Whether ``name`` and ``other`` differ in final score at 95% (paired interval)."""
    a, b = sub[name], sub[other]
    plan = bootstrap_plan(len(a["method"].points), len(a["method"].accuracies["retain_acc"]))
    ra, rb = (plan.replicates(n, with_shift(x), x["references"]) for n, x in ((name, a), (other, b)))
    return difference_interval(a["final_score"], b["final_score"], ra.final_score, rb.final_score).excludes(0.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the --out folder of a `main.py -m all` run")
    parser.add_argument("--fractions", default="2,4", help="divide N by these")
    parser.add_argument("--subsets", type=int, default=5, help="random subsets per fraction")
    parser.add_argument("--by", default="final_score", choices=("final_score", "forget_quality"))
    parser.add_argument("--baseline", help="also count the subsets where the best method and this one are "
                        "separated at 95%% (paired)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    reports = load_reports(pathlib.Path(args.out))
    n_models = next(iter(reports.values()))["num_models"]
    everything = np.arange(n_models)
    full = {name: scores(rep, everything, everything)[args.by] for name, rep in reports.items()}
    names = sorted(full, key=lambda k: -full[k])
    print(f"{len(names)} methods at N = {n_models}, ranked by {args.by}: {', '.join(names)}")
    best = next(n for n in names if n != "retrain")  # the best method, retraining excluded
    compare = args.baseline if args.baseline in reports and args.baseline != best else None
    rng = np.random.default_rng(args.seed)
    results = {}
    for fraction in (int(v) for v in args.fractions.split(",")):
        m = n_models // fraction
        if m < MIN_MODELS:
            print(f"N/{fraction} = {m}: below the metric's {MIN_MODELS} models, skipped")
            continue
        taus, worst, apart = [], {}, 0
        for _ in range(args.subsets):
            references = np.sort(rng.choice(n_models, m, replace=False))
            subset = {name: scores(rep, np.sort(rng.choice(n_models, m, replace=False)), references)
                      for name, rep in reports.items()}
            sub = {name: v[args.by] for name, v in subset.items()}
            taus.append(kendalltau([full[n] for n in names], [sub[n] for n in names]).statistic)
            apart += bool(compare) and separated(best, compare, subset)
            order = sorted(sub, key=lambda k: -sub[k])
            for rank, name in enumerate(order):
                moved = abs(rank - names.index(name))
                worst[name] = max(worst.get(name, 0), moved)
        results[fraction] = taus
        print(f"N/{fraction} = {m:3d}: Kendall tau {np.mean(taus):.2f} (from {min(taus):.2f} to {max(taus):.2f} over "
              f"{len(taus)} subsets); largest move of a method: {max(worst.values())} places "
              f"({', '.join(f'{k} {v}' for k, v in sorted(worst.items(), key=lambda kv: -kv[1])[:3])})"
              + (f"; {best} and {compare} separated at 95% in {apart} of {len(taus)}" if compare else ""), flush=True)
    print(f"{time.perf_counter() - started:.0f} s")
    return results


if __name__ == "__main__":
    main()
