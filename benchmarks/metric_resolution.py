"""How many models does it take to see a difference? F against N for shifted methods.

A perfect unlearner's N models are draws from the retrained models' distribution, not
the same draws, and the per-example epsilon is a maximum over thousands of rules of an
empirical ratio: sampling noise alone keeps F well below 1 (the ceiling, shift 0). A
method whose models sit ``shift`` standard deviations away on every forget example
scores less, and how much less depends on N.

Each forget example has its own centre and spread (as in ``metric_speed.py``). For
every N and shift this prints F (the mean over ``--evaluations`` evaluations of
``--examples`` examples) and the share of those evaluations in which the paired 95%
interval of ``F(shift) - F(0)`` (both against the same references and examples, as two
methods of one leaderboard are) excludes 0: the chance of seeing that shift at that N.
With ``--plot FILE`` it draws both.

    python benchmarks/metric_resolution.py [--models 3,8,16,32,64,128,512] [--shifts 0.25,0.5,1]
        [--examples 200] [--evaluations 10] [--plot benchmarks/metric_resolution.png]
"""

import argparse
import time

import numpy as np

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from evaluation.intervals import Bootstrap, difference_interval
from evaluation.metric import epsilon_points, per_example_epsilons


def side(rng, centre, spread, n_models: int, shift: float) -> np.ndarray:
    """``[N, n]`` confidences: every example's own centre and spread, shifted by ``shift`` spreads."""
    return centre + spread * (shift + rng.standard_normal((n_models, centre.size)))


def resolution(rng, n_models: int, shifts, n_examples: int, evaluations: int) -> dict:
    """F per shift (shift 0 first) and, per nonzero shift, the share of evaluations separated from 0."""
    total = n_examples * evaluations
    centre, spread = rng.normal(2.0, 2.0, total), rng.uniform(0.5, 2.5, total)
    retrained = side(rng, centre, spread, n_models, 0.0)
    points = {}
    for shift in [0.0] + list(shifts):
        eps = per_example_epsilons(side(rng, centre, spread, n_models, shift), retrained, device="cpu")
        points[shift] = epsilon_points(eps, n_models).reshape(evaluations, n_examples)
    bootstrap = Bootstrap(n_examples, n_models)
    null_reps = [bootstrap.forget_quality(p) for p in points[0.0]]
    out = {"F": {s: float(p.mean()) for s, p in points.items()}, "separated": {}}
    for shift in shifts:
        separated = 0
        for e in range(evaluations):
            p, q = points[shift][e], points[0.0][e]
            d = difference_interval(p.mean(), q.mean(), bootstrap.forget_quality(p), null_reps[e])
            separated += d.excludes(0.0)
        out["separated"][shift] = separated / evaluations
    return out


def plot(results: dict, shifts, n_examples: int, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, shift in enumerate([0.0] + list(shifts)):
        label = "shift 0 (the ceiling)" if shift == 0 else f"shift {shift:g} sd"
        left.plot(models, [results[n]["F"][shift] for n in models], "o-", color=f"C{i}", label=label)
        if shift:
            right.plot(models, [results[n]["separated"][shift] for n in models], "o-", color=f"C{i}", label=label)
    left.set(xscale="log", xlabel="N (models per side)", ylabel="forget quality F", title="F against N")
    right.set(xscale="log", xlabel="N (models per side)", ylabel="share separated from shift 0",
              title=f"Seen at 95% (paired, {n_examples} forget examples)", ylim=(-0.03, 1.03))
    for ax in (left, right):
        ax.set_xticks(models, [str(n) for n in models])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="3,8,16,32,64,128,512", help="values of N")
    parser.add_argument("--shifts", default="0.25,0.5,1", help="shifts in standard deviations")
    parser.add_argument("--examples", type=int, default=200, help="forget examples per evaluation")
    parser.add_argument("--evaluations", type=int, default=10, help="evaluations per N")
    parser.add_argument("--plot", help="write the figure here (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    shifts = [float(v) for v in args.shifts.split(",")]
    started = time.perf_counter()
    print(f"F (mean of {args.evaluations} evaluations of {args.examples} forget examples) and, in brackets, "
          f"the share of evaluations where the paired 95% interval separates the shift from 0")
    print(f"{'N':>5s}{'shift 0':>10s}" + "".join(f"{f'shift {s:g}':>18s}" for s in shifts))
    results = {}
    for n in (int(v) for v in args.models.split(",")):
        r = results[n] = resolution(rng, n, shifts, args.examples, args.evaluations)
        print(f"{n:5d}{r['F'][0.0]:10.3f}" + "".join(f"{r['F'][s]:11.3f} ({r['separated'][s]:.2f})" for s in shifts),
              flush=True)
    print(f"{time.perf_counter() - started:.0f} s")
    if args.plot:
        plot(results, shifts, args.examples, args.plot)
        print(f"plot: {args.plot}")
    return results


if __name__ == "__main__":
    main()
