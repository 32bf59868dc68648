"""Score an unlearning method with the competition's metric on CIFAR-10.

    python main.py -m finetune                      # quick profile on CPU, dev on GPU
    python main.py -m finetune --profile smoke      # seconds
    python main.py -m all                           # every method: OUT/leaderboard.md, .json, .png
    python main.py --list                           # registered methods and profiles

Results: ``OUT/NAME/report.json`` (every number), ``report.png`` and ``splits.json``
(the forget/retain/validation/test indices). Models are cached in ``--store``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent
ALL = "all"  # -m all: every registered method, and a leaderboard


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


class RunFailed(Exception):
    """The method failed (raised, or left NaN/inf weights): one line, exit code 1."""


class WorkersExited(Exception):
    """A worker process ended with this exit code after printing its own error."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def parse_args(argv=None) -> argparse.Namespace:
    from evaluation.precision import PRECISIONS

    p = argparse.ArgumentParser(description="Run an unlearning method against the local evaluation.")
    p.add_argument("-m", "--method", help="registered method name (see --list), or 'all' for a leaderboard")
    p.add_argument("--list", action="store_true", help="list methods (with their hyperparameters) and profiles")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with -m NAME: a hyperparameter of the method, typed from its declaration (repeatable; "
                        "tuples as a,b,c; none for an optional value; see --list)")
    p.add_argument("--profile", help="smoke | quick | dev | full (default: quick on CPU, dev on GPU)")
    p.add_argument("--num-models", type=int, help="N: unlearning runs and retrained references (>= 3)")
    p.add_argument("--seed", type=int, default=0, help="split seed: forget set, val/test halves, subsets")
    p.add_argument("--dataset", default="cifar10", help="cifar10 | faces (the competition's CSV + images layout)")
    p.add_argument("--data", help="CIFAR-10 .npz or torchvision root (default: $UNLEARN_DATA, then data/cifar10); "
                   "with --dataset faces, the faces directory")
    p.add_argument("--out", default=str(REPO / "results"), help="results folder (default: results/)")
    p.add_argument("--store", default=str(REPO / "checkpoints"), help="checkpoint store (default: checkpoints/)")
    p.add_argument("--device", help="cpu | cuda (default: cuda when present)")
    p.add_argument("--gate", type=float, default=0.2, help="efficiency gate: max unlearn/retrain time ratio")
    p.add_argument("--method-timeout", type=float, default=None,
                   help="seconds one unlearning run may take before the method is recorded as failed")
    p.add_argument("--workers", type=int,
                   help="K processes sharing the device, each taking every K-th run and reference (default: 1 on "
                        "CPU; on a GPU from its free memory and the CPU cores)")
    p.add_argument("--threads", type=int,
                   help="CPU threads per process (default: the cores split among the workers); results are "
                        "identical for any --workers at the same --threads")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="the engine's arithmetic for the original and the references (default: bf16 on GPUs that "
                        "have it natively, fp16 with loss scaling on older ones, fp32 on CPU)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--remeasure-clock", action="store_true",
                   help="time the starter kit's loop again for the gate's retrain time, even if the store has it "
                        "(it is measured once per store and machine, and again after a reading on a busy machine)")
    p.add_argument("--ceiling", action="store_true",
                   help="with -m NAME: also train N more references, if the store lacks them, and score retraining "
                        "as a method, the ceiling that F / F_retrain is measured against (-m all always does; "
                        "without the flag it is reported whenever the store already holds them)")
    p.add_argument("--resume", action="store_true",
                   help="with -m all: reuse each method's report.json in --out made with the same profile, N, "
                        "seeds, data and device (a rerun after an interruption redoes only the missing methods)")
    return p.parse_args(argv)


def list_everything() -> str:
    from evaluation.profiles import PROFILES
    from methods import all_method_handlers, broken_methods
    from methods.hyperparameters import describe

    lines = ["methods (name: hyperparameters and defaults, for --set):"] + [
        f"  {name}: {describe(cls)}" for name, cls in all_method_handlers().items()]
    broken = broken_methods()
    if broken:
        lines += ["method files that cannot be imported (fix them to list their methods):"] + [
            f"  {path}: {error}" for path, error in broken.items()]
    lines += ["profiles:"] + [
        f"  {p.name:6s} N={p.num_models:<4d} train images={p.train_subset or 50000:<6d} "
        f"epochs={p.original_epochs}  ({p.description})"
        for p in PROFILES.values()
    ]
    return "\n".join(lines)


def resolve_run(args):
    """Validate the arguments before anything is loaded or written."""
    from evaluation.model import pick_device
    from evaluation.profiles import PROFILES, default_profile_name
    from methods import all_method_handlers, broken_methods
    from methods.hyperparameters import build, parse_settings

    if not args.method:
        raise UsageError("no method given: pass -m NAME (see --list)")
    handlers, broken = all_method_handlers(), broken_methods()
    if args.method != ALL and args.method not in handlers:
        path = f"methods/{args.method}.py"
        if path in broken:
            raise UsageError(f"{path} cannot be imported: {broken[path]}")
        raise UsageError(f"unknown method {args.method!r}; available: {', '.join(handlers)}")
    if os.environ.get("RANK", "0") == "0":
        for path, error in broken.items():
            print(f"warning: {path} cannot be imported, its methods are left out: {error}", file=sys.stderr)
    try:
        device = pick_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    profile_name = args.profile or default_profile_name(device.type)
    if profile_name not in PROFILES:
        raise UsageError(f"unknown profile {profile_name!r}; choose one of {', '.join(PROFILES)}")
    if args.num_models is not None and args.num_models < 3:
        raise UsageError(f"--num-models must be at least 3 (the metric needs ln(N-1) >= 0.5), got {args.num_models}")
    if args.dataset not in ("cifar10", "faces"):
        raise UsageError(f"unknown dataset {args.dataset!r}; choose cifar10 or faces")
    if not 0 < args.gate:
        raise UsageError(f"--gate must be positive, got {args.gate}")
    for flag in ("workers", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.method_timeout is not None and args.method_timeout <= 0:
        raise UsageError(f"--method-timeout must be positive, got {args.method_timeout}")
    if args.set and args.method == ALL:
        raise UsageError("--set applies to one method: pass -m NAME")
    settings = {}
    if args.set:
        try:
            settings = parse_settings(handlers[args.method], args.set)
            build(handlers[args.method], args.method, settings)  # the method's own checks, before any work
        except (ValueError, TypeError) as e:
            raise UsageError(f"{args.method}: {e}") from None
    chosen = handlers if args.method == ALL else {args.method: handlers[args.method]}
    factories = {name: functools.partial(build, cls, name, settings if name == args.method else None)
                 for name, cls in chosen.items()}
    if args.method == ALL:  # a broken file is a failed row of the leaderboard
        factories |= {pathlib.Path(path).stem: broken_import(path, error) for path, error in broken.items()
                      if pathlib.Path(path).stem not in factories}
    return factories, device, PROFILES[profile_name].with_models(args.num_models)


def run(args, argv: list[str]) -> dict:
    import torch

    from data import DataError
    from evaluation.distributed import close_world, init_world
    from evaluation.workers import default_workers, is_worker, launch, threads_per_worker

    methods, device, profile = resolve_run(args)
    workers = args.workers or default_workers(device)
    threads = threads_per_worker(workers, args.threads)
    if workers > 1 and not is_worker():
        code = launch([str(REPO / "main.py"), *argv, "--workers", str(workers), "--threads", str(threads)], workers,
                      threads)
        if code:
            raise WorkersExited(code)
        return {}
    if args.threads or is_worker():
        torch.set_num_threads(threads)
    try:
        data, groups = load_dataset(args.dataset, args.data)
    except DataError as e:
        raise UsageError(str(e)) from None
    world = init_world(device)
    try:
        return _run(args, methods, device, profile, data, groups, world)
    finally:
        close_world(world)


def _run(args, methods, device, profile, data, groups, world) -> dict:
    from data import make_splits
    from evaluation.report import environment
    from evaluation.store import CheckpointStore
    from evaluation.zoo import SplitTensors, Zoo

    from evaluation.distributed import rank_device

    if world.size > 1:  # ranks may share a GPU: --workers, or torchrun with more processes than GPUs
        device = rank_device(device, world.local_rank)
    try:
        splits = make_splits(len(data.y_train), len(data.y_test), args.seed, train_subset=profile.train_subset,
                             test_subset=profile.test_subset, groups=groups)
    except ValueError as e:
        raise UsageError(str(e)) from None
    progress = not args.no_progress and world.is_main
    zoo = Zoo(data, splits, profile, SplitTensors.build(data, splits, device), CheckpointStore(args.store), progress,
              world=world, precision=args.precision, remeasure_clock=args.remeasure_clock)
    out = pathlib.Path(args.out)
    context = {
        "report_version": REPORT_VERSION,
        "profile": profile.to_json(),
        "seed": args.seed,
        "run_seeds": list(range(profile.num_models)),
        "gate": args.gate,
        "data": {"source": data.source, "fingerprint": data.fingerprint(), "splits_file": "splits.json"},
        "sizes": {name: int(getattr(splits, name).size) for name in ("forget", "retain", "val", "test")},
        "environment": environment(device) | {"precision": zoo.engine_precision()},
        "world_size": world.size,  # processes (--workers or torchrun); the numbers do not depend on it
    }
    if args.method == ALL:
        board = run_leaderboard(methods, zoo, out, context, args.gate, progress, args.method_timeout, args.resume)
        if board["failures"]:
            raise RunFailed(f"{len(board['failures'])} of {len(board['rows'])} rows failed: "
                            f"{', '.join(board['failures'])} (each reason in {out}/NAME/report.json)")
        return board
    (name, make_method), = methods.items()
    started = time.perf_counter()
    from evaluation.comparison import versus_ceiling
    from evaluation.runner import MethodFailed, evaluate, measured_ceiling, score_references

    references = score_references(zoo)
    try:
        result = evaluate(make_method, name, zoo, gate=args.gate, progress=progress, references=references,
                          time_limit_s=args.method_timeout)
        result.hyperparameters = hyperparameter_values(make_method)
    except MethodFailed as e:
        if world.is_main:
            from evaluation.report import write_failure

            write_failure(out / name, name, str(e), context)
        raise RunFailed(f"{name} failed: {e}") from None
    ceiling = measured_ceiling(zoo, args.gate, references, train=args.ceiling)
    if ceiling is not None:
        result.ceiling = versus_ceiling(result, ceiling)
    if world.is_main:
        write_result(result, out / name, splits, context | {"wall_seconds": time.perf_counter() - started})
    return result.to_json() | context


def broken_import(path: str, error: str):
    """A factory that fails as the file did, so -m all shows it as a failed row."""
    def make():
        raise ImportError(f"{path} cannot be imported: {error}")

    return make


def hyperparameter_values(make_method) -> dict:
    """What the method's runs were built with (for the report)."""
    from methods.hyperparameters import values

    return values(make_method())


def load_dataset(name: str, path):
    """``(ImageData, groups)``: groups are person ids for a per-person forget split, or None."""
    from data import load_cifar10
    from data.faces import load_faces

    if name == "cifar10":
        return load_cifar10(path), None
    if name == "faces":
        if not path:
            raise UsageError("--dataset faces needs --data DIR (retain.csv, forget.csv, validation.csv, images/)")
        return load_faces(path)
    raise UsageError(f"unknown dataset {name!r}; choose cifar10 or faces")


def write_result(result, out_dir: pathlib.Path, splits, context: dict) -> None:
    from evaluation.report import summary_table, write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "splits.json").write_text(json.dumps(splits.to_json()))
    path = write_report(result, out_dir, context | {"created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"\n{result.method} on profile {context['profile']['name']} ({context['environment']['device']}):")
    print(summary_table(result))
    print(f"\nreport: {path}  plot: {path.with_suffix('.png')}")


# What a reused report must share with this run to stand in for it.
RESUME_KEYS = ("report_version", "profile", "seed", "run_seeds", "gate", "sizes")
# Bump when reports gain fields a leaderboard needs: an older report is then run again, not reused.
REPORT_VERSION = 2  # 2: intervals and the ceiling


def reusable_result(path: pathlib.Path, context: dict):
    """The EvaluationResult saved in ``path`` if it was made under the same conditions, else None."""
    from evaluation.runner import EvaluationResult

    from evaluation.report import read_report

    report = read_report(path)
    if report is None:
        return None
    same = all(report.get(k) == context.get(k) for k in RESUME_KEYS)
    for section, key, default in (("data", "fingerprint", None), ("environment", "precision", "fp32")):
        # (reports from before precisions were a choice were fp32)
        same = same and report.get(section, {}).get(key, default) == context.get(section, {}).get(key, default)
    # CPU and CUDA round differently; which GPU (cuda:0 on rank 0, cuda under one process) does not matter.
    same = same and _device_type(report) == _device_type(context)
    if not same or report.get("status") == "failed" or not report.get("intervals"):
        return None
    try:
        # Fields added later with a default (hyperparameters) need not be in an older report.
        return EvaluationResult(**{f.name: report[f.name] for f in dataclasses.fields(EvaluationResult)
                                   if f.name in report or not _has_default(f)})
    except (KeyError, TypeError):
        return None


def _device_type(report: dict) -> str | None:
    device = report.get("environment", {}).get("device")
    return None if device is None else device.split(":")[0]


def _has_default(f) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def refresh_saved(result, ceiling, out_dir: pathlib.Path, write: bool) -> None:
    """Bring a reused result's derived numbers up to date (intervals from an older report,
    its place against this run's ceiling) and rewrite its report when they changed."""
    from evaluation.comparison import versus_ceiling
    from evaluation.report import read_report, write_report
    from evaluation.runner import refresh_intervals

    changed = refresh_intervals(result)
    if ceiling is not None:
        placed = versus_ceiling(result, ceiling)
        changed = changed or placed != result.ceiling
        result.ceiling = placed
    if changed and write:
        report = read_report(out_dir / "report.json")
        fields = {f.name for f in dataclasses.fields(result)}
        write_report(result, out_dir, {k: v for k, v in report.items() if k not in fields})


def run_leaderboard(methods: dict, zoo, out: pathlib.Path, context: dict, gate: float, progress: bool,
                    time_limit_s: float | None = None, resume: bool = False) -> dict:
    """Every method against the same cached references; a failing method gets a failed row.
    The first row scores retraining as a method: the ceiling every method's report is placed
    against. With ``resume``, a method whose report in ``out`` matches this run is not run again.
    """
    from evaluation.comparison import CEILING, versus_ceiling
    from evaluation.leaderboard import build, markdown_table, write_leaderboard
    from evaluation.report import write_failure
    from evaluation.runner import MethodFailed, evaluate, evaluate_retraining, score_references

    references = score_references(zoo)
    results, failures, ceiling = [], {}, None
    for name, make in [(CEILING, None)] + list(methods.items()):
        started = time.perf_counter()
        # Rank 0 decides, for every rank: ranks comparing their own devices would split.
        saved = zoo.world.from_main(lambda: reusable_result(out / name / "report.json", context)) if resume else None
        if saved is not None:
            if zoo.world.is_main:
                print(f"{name}: reusing {out / name / 'report.json'} (--resume)")
            refresh_saved(saved, None if name == CEILING else ceiling, out / name, zoo.world.is_main)
            results.append(saved)
            ceiling = saved if name == CEILING else ceiling
            continue
        try:
            if make is None:
                result = ceiling = evaluate_retraining(zoo, gate, references)
            else:
                result = evaluate(make, name, zoo, gate, progress, references, time_limit_s)
                result.hyperparameters = hyperparameter_values(make)
                if ceiling is not None:
                    result.ceiling = versus_ceiling(result, ceiling)
        except Exception as e:  # a broken method must not stop the others
            reason = str(e) if isinstance(e, MethodFailed) else f"{type(e).__name__}: {e}"
            if zoo.world.is_main:
                print(f"{name} failed: {reason}", file=sys.stderr)
                write_failure(out / name, name, reason, context)
            failures[name] = reason
            continue
        if zoo.world.is_main:
            write_result(result, out / name, zoo.splits, context | {"wall_seconds": time.perf_counter() - started})
        results.append(result)
    board = build(results, failures)
    if zoo.world.is_main:
        path = write_leaderboard(board, out, context)
        print(f"\n{markdown_table(board)}\n\nleaderboard: {path}")
    return {"rows": board.rows, "leaderboard": board, "failures": failures} | context


def main(argv=None) -> int:
    from evaluation.distributed import RankFailed
    from evaluation.workers import WorkerFailed

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        if args.list:
            print(list_everything())
            return 0
        run(args, argv)
    except (UsageError, RunFailed, WorkerFailed, RankFailed) as e:
        # Under --workers every process meets the same error: the first rank says it.
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except WorkersExited as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
