"""What forget quality does a perfect unlearner get? F for two samples of one distribution.

A perfect unlearner's N models are draws from the same distribution as the N
retrained ones, not the same draws. The per-example epsilon is a maximum over
thousands of threshold rules of an empirical log-ratio, so sampling noise alone gives
epsilons above 0, and F below 1. This prints that ceiling for several N (and, for
contrast, F when the unlearned sample is shifted by half a standard deviation), so a
leaderboard can be read against it.

    python benchmarks/metric_ceiling.py [--models 3,8,32,512] [--examples 300]
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from evaluation.metric import forget_quality  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="3,4,8,16,32,64,128,512", help="values of N")
    parser.add_argument("--examples", type=int, default=300, help="forget examples per N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"{'N':>5s}{'F, same distribution':>24s}{'F, shifted 0.5 sd':>20s}")
    results = {}
    for n in (int(v) for v in args.models.split(",")):
        same = forget_quality(rng.normal(size=(n, args.examples)), rng.normal(size=(n, args.examples)))
        shifted = forget_quality(rng.normal(size=(n, args.examples)) + 0.5, rng.normal(size=(n, args.examples)))
        results[n] = (same, shifted)
        print(f"{n:5d}{same:24.3f}{shifted:20.3f}", flush=True)
    return results


if __name__ == "__main__":
    main()
