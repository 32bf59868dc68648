"""Do the score intervals cover the truth at their nominal rate?

Synthetic confidences with a known shift: every forget example has its own centre and
spread; a method's N models are shifted from the N references by ``shift`` standard
deviations. With ``rho`` > 0 a share ``rho`` of each model's deviation is common to all
examples (a model more or less confident everywhere), the correlation that resampling
examples could miss. The truth, the expected F at that N and shift, does not depend on
``rho`` (it only correlates examples) and is estimated from an independent sample of
``--truth-examples`` examples.

For each setting, ``--draws`` evaluations of ``--examples`` examples are drawn; each
gets its 95% interval (``evaluation.intervals``: examples resampled, plus the models'
shared offsets of ``evaluation.shared_shift``), and the table shows how often the
interval holds the truth, and its mean width. Also printed: the paired difference
between a shifted method and an unshifted one that share references and examples; the
coverage of an interval that resamples examples alone; and, for contrast, what a
bootstrap over models (with replacement) does to F: its resamples' mean against the
full-sample F.

    python benchmarks/interval_coverage.py [--models 8,16,32] [--shifts 0,0.5] [--rho 0,0.2]
"""

import argparse
import time

import numpy as np

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from evaluation import shared_shift
from evaluation.intervals import Bootstrap, difference_interval, percentile_interval
from evaluation.metric import epsilon_points, per_example_epsilons


def draw_confidences(rng, n_models: int, n_examples: int, shift: float, rho: float, draws: int = 1):
    """``(unlearned, unshifted, retrained)``, each ``[draws, N, n]``: per-example centres and
    spreads shared by the three; every model's deviation has a common part of share ``rho``."""
    centre = rng.normal(2.0, 2.0, size=(draws, 1, n_examples))
    spread = rng.uniform(0.5, 2.5, size=(draws, 1, n_examples))

    def side(offset):
        common = rng.standard_normal((draws, n_models, 1))
        own = rng.standard_normal((draws, n_models, n_examples))
        return centre + spread * (offset + np.sqrt(rho) * common + np.sqrt(1 - rho) * own)

    return side(shift), side(0.0), side(0.0)


def points(unlearned, retrained) -> np.ndarray:
    """Per-example points ``[draws, n]``: one metric call for every draw at once."""
    draws, n_models, n_examples = unlearned.shape
    flat = lambda x: x.transpose(1, 0, 2).reshape(n_models, draws * n_examples)  # noqa: E731
    eps = per_example_epsilons(flat(unlearned), flat(retrained), device="cpu")
    return epsilon_points(eps, n_models).reshape(draws, n_examples)


def true_forget_quality(rng, n_models: int, shift: float, n_examples: int) -> float:
    """Expected F at this N and shift, from ``n_examples`` independent examples."""
    unlearned, _, retrained = draw_confidences(rng, n_models, n_examples, shift, rho=0.0)
    return float(points(unlearned, retrained).mean())


def coverage(rng, n_models: int, shift: float, rho: float, n_examples: int, draws: int, truth: float,
             truth_unshifted: float, resamples: int) -> dict:
    """How often the F interval and the paired-difference interval hold their truths: the
    kit's (examples and shared offsets resampled) and, for contrast, examples alone."""
    unlearned, unshifted, retrained = draw_confidences(rng, n_models, n_examples, shift, rho, draws)
    shifted_points, null_points = points(unlearned, retrained), points(unshifted, retrained)
    bootstrap = Bootstrap(n_examples, n_models, resamples=resamples)
    held = {"coverage": 0, "difference_coverage": 0, "examples_only": 0}
    widths = []
    for d in range(draws):
        reps, null_reps = bootstrap.forget_quality(shifted_points[d]), bootstrap.forget_quality(null_points[d])
        f, f_null = shifted_points[d].mean(), null_points[d].mean()
        held["examples_only"] += not percentile_interval(f, reps).excludes(truth)
        reps = reps + bootstrap.shared_shift("shifted", shared_shift.measure(unlearned[d], retrained[d], "cpu"))
        null_shift = shared_shift.measure(unshifted[d], retrained[d], "cpu")
        null_reps = null_reps + bootstrap.shared_shift("unshifted", null_shift)
        interval = percentile_interval(f, reps)
        held["coverage"] += not interval.excludes(truth)
        widths.append(interval.high - interval.low)
        difference = difference_interval(f, f_null, reps, null_reps)
        held["difference_coverage"] += not difference.excludes(truth - truth_unshifted)
    return {k: v / draws for k, v in held.items()} | {"width": float(np.mean(widths))}


def model_bootstrap_bias(rng, n_models: int, n_examples: int, resamples: int) -> tuple[float, float]:
    """Full-sample F and the mean F of ``resamples`` bootstraps over models with replacement."""
    unlearned, _, retrained = draw_confidences(rng, n_models, n_examples, 0.0, 0.0)
    full = float(points(unlearned, retrained).mean())
    picks = [(rng.integers(0, n_models, n_models), rng.integers(0, n_models, n_models)) for _ in range(resamples)]
    stacked_u = np.concatenate([unlearned[:, u] for u, _ in picks])
    stacked_r = np.concatenate([retrained[:, r] for _, r in picks])
    return full, float(points(stacked_u, stacked_r).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="8,16,32", help="values of N")
    parser.add_argument("--shifts", default="0,0.5", help="shifts of the method, in standard deviations")
    parser.add_argument("--rho", default="0,0.2", help="shares of a model's deviation common to all examples")
    parser.add_argument("--examples", type=int, default=200, help="forget examples per evaluation")
    parser.add_argument("--draws", type=int, default=100, help="evaluations per setting")
    parser.add_argument("--truth-examples", type=int, default=20000, help="examples behind each true value")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--model-bootstraps", type=int, default=20, help="0 skips the model-bootstrap contrast")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    models = [int(v) for v in args.models.split(",")]
    shifts = [float(v) for v in args.shifts.split(",")]
    print(f"{args.draws} evaluations of {args.examples} examples per row; truth from {args.truth_examples} examples")
    print(f"{'N':>4s}{'shift':>7s}{'rho':>6s}{'true F':>9s}{'coverage':>10s}{'mean width':>12s}{'diff. coverage':>16s}"
          f"{'examples only':>15s}")
    rows = []
    for n in models:
        truths = {s: true_forget_quality(rng, n, s, args.truth_examples) for s in sorted(set(shifts) | {0.0})}
        for shift in shifts:
            for rho in (float(v) for v in args.rho.split(",")):
                row = coverage(rng, n, shift, rho, args.examples, args.draws, truths[shift], truths[0.0],
                               args.resamples)
                rows.append({"models": n, "shift": shift, "rho": rho, "truth": truths[shift]} | row)
                print(f"{n:4d}{shift:7.2f}{rho:6.2f}{truths[shift]:9.3f}{row['coverage']:10.2f}{row['width']:12.3f}"
                      f"{row['difference_coverage']:16.2f}{row['examples_only']:15.2f}", flush=True)
    if args.model_bootstraps:
        print(f"\nbootstrap over models with replacement ({args.model_bootstraps} resamples, no shift):")
        for n in models:
            full, resampled = model_bootstrap_bias(rng, n, args.examples, args.model_bootstraps)
            print(f"  N = {n:3d}: full-sample F {full:.3f}, mean of resamples {resampled:.3f}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    return rows


if __name__ == "__main__":
    main()
