"""Wall time of the forget-quality metric at the competition's scale.

Generates seeded logit-scaled confidences for N models x n forget examples with a
mix of column kinds (overlapping, shifted, peaky unlearned, discrete/tied) and
times ``per_example_epsilons``, then the 95% intervals of one method's scores
(``evaluation.intervals``: the models' shared offsets, which score a subset of the
examples again, then the resampling plan and its replicates from the epsilons already
computed). Targets: the metric at most 30 s for 512 x 5,000 on a
2-core CPU; the intervals at most 5 times the metric's own time.

    python benchmarks/metric_speed.py [--models 512] [--examples 5000] [--device cpu|cuda]
"""

import argparse
import time

import numpy as np
import torch

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from evaluation import shared_shift
from evaluation.intervals import ACCURACIES, Bootstrap, SideScores, score_intervals
from evaluation.metric import epsilon_points, per_example_epsilons

TARGET_SECONDS_CPU = 30.0
TARGET_INTERVAL_RATIO = 5.0  # the intervals may cost at most this many times the metric


def make_confidences(n_models: int, n_examples: int, seed: int = 0):
    """Unlearned and retrained confidences with four kinds of columns, in equal parts."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(2.0, 2.0, size=n_examples)
    spread = rng.uniform(0.5, 2.5, size=n_examples)
    retrained = centre + spread * rng.normal(size=(n_models, n_examples))
    unlearned = centre + spread * rng.normal(size=(n_models, n_examples))  # overlapping
    kind = np.arange(n_examples) % 4
    shifted = kind == 1
    unlearned[:, shifted] += rng.uniform(0.5, 4.0, size=shifted.sum()) * spread[shifted]
    peaky = kind == 2
    unlearned[:, peaky] = centre[peaky] + 0.005 * spread[peaky] * rng.normal(size=(n_models, peaky.sum()))
    tied = kind == 3
    unlearned[:, tied] = np.round(unlearned[:, tied] * 4) / 4
    # Runs that move together, as real ones do, so the intervals also answer a shared shift.
    unlearned += 0.2 * spread * rng.normal(size=(n_models, 1))
    retrained[:, tied] = np.round(retrained[:, tied] * 4) / 4
    return unlearned, retrained


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=512)
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    unlearned, retrained = make_confidences(args.models, args.examples, args.seed)
    if args.device.startswith("cuda"):  # warm up kernels and the allocator
        per_example_epsilons(unlearned[:, :64], retrained[:, :64], device=args.device)
        torch.cuda.synchronize()
    start = time.perf_counter()
    eps = per_example_epsilons(unlearned, retrained, device=args.device)
    seconds = time.perf_counter() - start

    start = time.perf_counter()
    intervals = time_intervals(eps, unlearned, retrained, args.device, args.seed)
    interval_seconds = time.perf_counter() - start

    print(f"device={args.device} threads={torch.get_num_threads()} models={args.models} examples={args.examples}")
    print(f"per_example_epsilons: {seconds:.2f} s  ({args.examples / seconds:.0f} examples/s)")
    print(f"forget quality F = {intervals['forget_quality']:.4f}; mean epsilon = {eps.mean():.3f}")
    if args.device == "cpu":
        print(f"ratio to the {TARGET_SECONDS_CPU:.0f} s CPU target: {seconds / TARGET_SECONDS_CPU:.2f}")
    print(f"intervals of one method: {interval_seconds:.2f} s, {interval_seconds / seconds:.3f} x the metric's time "
          f"(target: at most {TARGET_INTERVAL_RATIO:g} x)")
    return {"metric_seconds": seconds, "interval_seconds": interval_seconds,
            "forget_quality": intervals["forget_quality"].value}


def time_intervals(eps, unlearned, retrained, device, seed: int) -> dict:
    """A method's 95% intervals from its epsilons, with made-up accuracies: the models' shared
    offsets (a metric call on a subset of examples), the plan and the replicates."""
    rng = np.random.default_rng(seed)
    n_models = len(unlearned)
    accuracies = lambda: {k: rng.uniform(0.80, 0.90, n_models) for k in ACCURACIES}  # noqa: E731
    shift = shared_shift.measure(unlearned, retrained, device=device, epsilons=eps)
    method = SideScores(epsilon_points(eps, n_models), accuracies(), shift)
    references = SideScores(None, accuracies())
    replicates = Bootstrap(len(eps), n_models).replicates("method", method, references)
    score = float(method.points.mean())
    return score_intervals(method, references, replicates, score, score)


if __name__ == "__main__":
    main()
