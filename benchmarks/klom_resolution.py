"""How many models does KLOM need? Its 95th percentile against N for identical and shifted samples.

KLOM bins each example's N unlearned and N retrained margins into 20 bins over their pooled
range (``evaluation/klom.py``). With few models per bin, two samples of one distribution
already differ bin by bin: that binning noise is the floor under KLOM. A method whose
models sit ``shift`` standard deviations away on every example adds to it; how much shows
above the floor depends on N.

Each example has its own centre and spread (as in ``metric_resolution.py``). For every N
and shift this prints KLOM's 95th percentile over ``--examples`` examples (the mean over
``--evaluations`` evaluations, and their spread), and the time of KLOM with its intervals
against the competition's metric at 512 x 5,000. With ``--plot FILE`` it draws the table.

    python benchmarks/klom_resolution.py [--models 8,16,32,64,128,512] [--shifts 0.5,1]
        [--examples 500] [--evaluations 5] [--plot benchmarks/klom_resolution.png] [--timing]
"""

import argparse
import time

import numpy as np

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from evaluation import klom
from evaluation.metric import per_example_epsilons

DISJOINT = float(np.log(1e5))  # every unlearned margin where no retrained one is


def side(rng, centre, spread, n_models: int, shift: float) -> np.ndarray:
    """``[N, n]`` margins: every example's own centre and spread, shifted by ``shift`` spreads."""
    return centre + spread * (shift + rng.standard_normal((n_models, centre.size)))


def p95s(rng, n_models: int, shifts, n_examples: int, evaluations: int) -> dict:
    """``{shift: [p95 of each evaluation]}``, shift 0 (identical distributions) first."""
    out = {}
    for shift in [0.0] + list(shifts):
        values = []
        for _ in range(evaluations):
            centre, spread = rng.normal(2.0, 2.0, n_examples), rng.uniform(0.5, 2.5, n_examples)
            retrained = side(rng, centre, spread, n_models, 0.0)
            values.append(float(np.quantile(klom.per_example_klom(side(rng, centre, spread, n_models, shift),
                                                                  retrained), 0.95)))
        out[shift] = values
    return out


def timing(rng, n_models: int = 512, n_examples: int = 5000) -> tuple[float, float]:
    """Seconds of KLOM with its intervals, and of the metric's epsilons, at ``n_models`` x ``n_examples``."""
    centre, spread = rng.normal(2.0, 2.0, n_examples), rng.uniform(0.5, 2.5, n_examples)
    u, r = side(rng, centre, spread, n_models, 0.5), side(rng, centre, spread, n_models, 0.0)
    started = time.perf_counter()
    klom.resampled(klom.per_example_klom(u, r), "forget")
    klom_seconds = time.perf_counter() - started
    started = time.perf_counter()
    per_example_epsilons(u, r, device="cpu")
    return klom_seconds, time.perf_counter() - started


def plot(results: dict, shifts, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    models = sorted(results)
    for shift in [0.0] + list(shifts):
        means = [np.mean(results[n][shift]) for n in models]
        ax.plot(models, means, marker="o", label="identical" if shift == 0 else f"shift {shift:g} sd")
    ax.axhline(DISJOINT, color="grey", ls=":", lw=1)
    ax.text(models[0], DISJOINT * 0.93, "disjoint: ln 1e5", fontsize=8, color="grey")
    ax.set(xscale="log", xlabel="N models per side", ylabel="KLOM, 95th percentile", ylim=(0, 12.5),
           title="KLOM's floor (identical samples) against N")
    ax.set_xticks(models, [str(n) for n in models])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="8,16,32,64,128,512")
    p.add_argument("--shifts", default="0.5,1")
    p.add_argument("--examples", type=int, default=500)
    p.add_argument("--evaluations", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="PNG of the table")
    p.add_argument("--timing", action="store_true", help="also time KLOM and the metric at 512 x 5,000")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    shifts = [float(s) for s in args.shifts.split(",") if s]
    results = {}
    started = time.perf_counter()
    print(f"KLOM p95 over {args.examples} examples, mean [min, max] of {args.evaluations} evaluations")
    print("| N | identical | " + " | ".join(f"shift {s:g} sd" for s in shifts) + " |")
    print("|---|" + "---|" * (1 + len(shifts)))
    for n in (int(m) for m in args.models.split(",")):
        results[n] = p95s(rng, n, shifts, args.examples, args.evaluations)
        print(f"| {n} | " + " | ".join(f"{np.mean(v):.2f} [{min(v):.2f}, {max(v):.2f}]"
                                       for v in results[n].values()) + " |", flush=True)
    print(f"({time.perf_counter() - started:.1f} s; disjoint samples give {DISJOINT:.2f})")
    if args.timing:
        klom_seconds, metric_seconds = timing(rng)
        print(f"512 x 5,000: KLOM with its intervals {klom_seconds:.1f} s, the metric's epsilons "
              f"{metric_seconds:.1f} s ({klom_seconds / metric_seconds:.2f}x)")
    if args.plot:
        plot(results, shifts, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
