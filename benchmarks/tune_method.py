"""Tune a method with the kit's own leaderboard: one row per setting, against baselines.

Every configuration is the method built with ``--set``-style values (``KEY=VALUE,...``),
run N times on the profile's zoo for one split seed and scored like any method, with the
ceiling (retraining) first and the baselines beside it; every row gets its interval and
every pair its paired difference (``leaderboard.md``). With ``--resume`` (on by default)
a configuration whose report is already in ``--out`` is not run again, so an interrupted
search goes on where it stopped. Tune on one split seed, then check the chosen values on
another (``--seed``), so they are not fitted to one forget set.

    python benchmarks/tune_method.py -m saliency_guided --profile cpu --num-models 8 --seed 0 \\
        --try noise=0.3 --try mask_fraction=0.3,noise=0 --grid impair_lr=0.01,0.03 \\
        --baselines finetune,sebastian --out results/tune_saliency_guided_seed0

Rows are named ``METHOD,KEY=VALUE,...`` (``METHOD`` alone: its defaults); the table is
printed and written to ``OUT/leaderboard.md`` and ``OUT/leaderboard.json``.

``--look RUNS`` is the quick first pass: each row runs RUNS times (run seeds 0, 1, ...)
from the original, with no references and no score, and prints its retain, forget and
test accuracy per run, the seconds, and how its ``round_log`` ended (``OUT/look.json``).
It shows in a minute whether a setting breaks the model or forgets nothing at all.
"""

import argparse
import functools
import itertools
import json
import pathlib
import sys
import time

import _checkout  # noqa: F401 - the kit's checkout on sys.path
from data import load_dataset
from evaluation.distributed import close_world, init_world
from evaluation.profiles import PROFILES
from evaluation.runner import Sandbox, run_method
from evaluation.session import Session
from main import contestant
from methods import all_method_handlers
from methods.hyperparameters import build, parse_settings
from training.devices import pick_device


def configurations(tries: list[str], grids: list[str]) -> list[list[str]]:
    """The settings of every row: the defaults, each ``--try``, and the product of the
    ``--grid`` axes (``KEY=V1,V2,...`` each); duplicates once."""
    rows = [[]] + [[item for item in t.split(",") if item] for t in tries]
    axes = []
    for grid in grids:
        key, _, values = grid.partition("=")
        axes.append([f"{key}={v}" for v in values.split(",")])
    if axes:
        rows += [list(combo) for combo in itertools.product(*axes)]
    unique = []
    for row in rows:
        if sorted(row) not in [sorted(u) for u in unique]:
            unique.append(row)
    return unique


def row_name(method: str, settings: list[str]) -> str:
    return ",".join([method, *settings])


def look(factories: dict, zoo, runs: int) -> dict:
    """Each row ``runs`` times from the original: accuracies, seconds, the log's last round."""
    rows = {}
    sandbox = Sandbox(zoo.original()[0], zoo.tensors, zoo.profile.loader_batch_size)
    for name, make in factories.items():
        rows[name] = []
        for seed in range(runs):
            run = run_method(make, sandbox, seed)
            end = {k: run.log[-1].get(k) for k in ("round", "auc", "stop")} if run.log else {}
            rows[name].append({"retain_acc": run.scores.retain_acc, "forget_acc": run.scores.forget_acc,
                               "test_acc": run.scores.test_acc, "seconds": run.seconds} | end)
        print(name + "\n  " + "\n  ".join(
            f"run {i}: retain {r['retain_acc']:.3f} forget {r['forget_acc']:.3f} test {r['test_acc']:.3f} "
            f"{r['seconds']:.1f} s" + (f", round {r['round']}: AUC {r['auc']:.2f}, {r['stop']}" if "stop" in r else "")
            for i, r in enumerate(rows[name])), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--method", required=True)
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    p.add_argument("--num-models", type=int, default=None, help="N (default: the profile's)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--try", dest="tries", action="append", default=[], metavar="KEY=VALUE,...",
                   help="one configuration (repeatable)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="an axis; the rows are the product of the axes (repeatable)")
    p.add_argument("--baselines", default="finetune", help="comma-separated methods run with their defaults")
    p.add_argument("--data", default=None)
    p.add_argument("--store", default="checkpoints")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--no-resume", action="store_true", help="run every row again")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--look", type=int, default=None, metavar="RUNS",
                   help="only run each row RUNS times and print its accuracies (no references, no score)")
    args = p.parse_args(argv)
    if args.look is not None and args.look < 1:
        p.error(f"--look needs at least 1 run, got {args.look}")

    handlers = all_method_handlers()
    baselines = [b for b in args.baselines.split(",") if b]
    for name in [args.method, *baselines]:
        if name not in handlers:
            p.error(f"unknown method {name!r}")
    cls = handlers[args.method]
    factories = {}
    for settings in configurations(args.tries, args.grid):
        try:
            values = parse_settings(cls, settings)
            build(cls, args.method, values)  # the method's own checks, before any work
        except (ValueError, TypeError) as e:
            p.error(f"{row_name(args.method, settings)}: {e}")
        factories[row_name(args.method, settings)] = functools.partial(build, cls, args.method, values)
    factories |= {b: functools.partial(build, handlers[b], b, None) for b in baselines}

    device = pick_device(args.device)
    profile = PROFILES[args.profile].with_models(args.num_models)
    print(f"{len(factories) - len(baselines)} configurations of {args.method} and {len(baselines)} baselines, "
          f"profile {profile.name}, N = {profile.num_models}, split seed {args.seed}")
    started = time.perf_counter()
    contestants = {name: contestant(make) for name, make in factories.items()}
    session = Session(contestants, True, device, profile, pathlib.Path(args.out), pathlib.Path(args.store),
                      seed=args.seed, progress=not args.no_progress, resume=not args.no_resume)
    data, groups = load_dataset("cifar10", args.data)
    world = init_world(device)
    try:
        if args.look is not None:
            rows = look(factories, session.zoo(data, groups, world), args.look)
            pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(args.out) / "look.json").write_text(json.dumps(rows, indent=1))
            return 0
        board = session.run(data, groups, world)
    except Exception as e:  # noqa: BLE001 - a failed row is in the table; say so in one line
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        close_world(world)
    print(f"{len(board['rows'])} rows in {time.perf_counter() - started:.0f} s; table: {args.out}/leaderboard.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
