"""Score an unlearning method with the competition's metric on CIFAR-10.

    python main.py -m finetune                      # quick profile on CPU, dev on GPU
    python main.py -m finetune --profile smoke      # seconds
    python main.py -m all                           # every method: OUT/leaderboard.md, .json, .png
    python main.py --list                           # registered methods and profiles
    python main.py --write-competition-input DIR    # the Kaggle notebook's input, from the kit's data and original
    python main.py --score-submission ZIP           # a notebook's submission.zip, scored as -m NAME scores

Results: ``OUT/NAME/report.json`` (every number), ``report.png`` and ``splits.json``
(the forget/retain/validation/test indices). Models are cached in ``--store``.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent
ALL = "all"  # -m all: every registered method, and a leaderboard (-m a,b: a leaderboard of those)


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


class WorkersExited(Exception):
    """A worker process ended with this exit code after printing its own error."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def parse_args(argv=None) -> argparse.Namespace:
    from evaluation.profiles import PROFILES
    from evaluation.retrain_clock import GATE
    from training.precision import PRECISIONS

    p = argparse.ArgumentParser(description="Run an unlearning method against the local evaluation.")
    p.add_argument("-m", "--method",
                   help="registered method name (see --list); 'all' or NAME,NAME,... for a leaderboard")
    p.add_argument("--list", action="store_true", help="list methods (with their hyperparameters) and profiles")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with -m NAME: a hyperparameter of the method, typed from its declaration (repeatable; "
                        "tuples as a,b,c; none for an optional value; see --list)")
    p.add_argument("--profile", help=f"{' | '.join(PROFILES)} (default: quick on CPU, dev on GPU)")
    p.add_argument("--num-models", type=int, help="N: unlearning runs and retrained references (>= 3)")
    p.add_argument("--originals", type=int, default=1, metavar="K",
                   help="K originals trained with different seeds; run i starts from original i mod K (default 1, "
                        "the competition's protocol; K = N also makes the 'original' row of a leaderboard vary)")
    p.add_argument("--seed", type=int, help="split seed: forget set, val/test halves, subsets (default: 0, or a "
                   "submission's kit file's)")
    p.add_argument("--dataset", default="cifar10", help="cifar10 | faces (the competition's CSV + images layout)")
    p.add_argument("--data", help="CIFAR-10 .npz or torchvision root (default: $UNLEARN_DATA, then data/cifar10); "
                   "with --dataset faces, the faces directory")
    p.add_argument("--out", default=str(REPO / "results"), help="results folder (default: results/)")
    p.add_argument("--store", default=str(REPO / "checkpoints"), help="checkpoint store (default: checkpoints/)")
    p.add_argument("--reference-store", action="append", default=[], metavar="DIR",
                   help="a store shared read-only (repeatable): its models are used, checked by their hash, and never "
                        "written; what it lacks is trained into --store")
    p.add_argument("--device", help="cpu | cuda (default: cuda when present)")
    p.add_argument("--gate", type=float, default=GATE, help=f"efficiency gate: max unlearn/retrain time ratio "
                   f"(default: {GATE:g}, the competition's)")
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
    p.add_argument("--write-competition-input", metavar="DIR",
                   help="write the Kaggle notebook's input (CSVs, images, original_model.pth, unlearn_kit.json) for "
                        "--profile and --seed, training the original if the store lacks it")
    p.add_argument("--score-submission", metavar="ZIP",
                   help="score a notebook's submission.zip (its checkpoints, one at a time) against N references, "
                        "N its number of checkpoints, into OUT/NAME (--name); profile, seed and precision default to "
                        "the unlearn_kit.json beside it")
    p.add_argument("--name", default="submission", help="with --score-submission: the report's folder name")
    p.add_argument("--resume", action="store_true",
                   help="with a leaderboard: reuse each method's report.json in --out made with the same profile, N, "
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


def resolve_setting(args, profile_name: str | None = None):
    """The device and the profile (``profile_name`` unless --profile says otherwise), the
    arguments every command shares checked, before anything is loaded or written."""
    from data import DATASETS
    from evaluation.profiles import PROFILES, default_profile_name
    from training.devices import pick_device

    try:
        device = pick_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    profile_name = args.profile or profile_name or default_profile_name(device.type)
    if profile_name not in PROFILES:
        raise UsageError(f"unknown profile {profile_name!r}; choose one of {', '.join(PROFILES)}")
    if args.num_models is not None and args.num_models < 3:
        raise UsageError(f"--num-models must be at least 3 (the metric needs ln(N-1) >= 0.5), got {args.num_models}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.originals < 1:
        raise UsageError(f"--originals must be at least 1, got {args.originals}")
    if args.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}; choose {' or '.join(DATASETS)}")
    if not 0 < args.gate:
        raise UsageError(f"--gate must be positive, got {args.gate}")
    for flag in ("workers", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    return device, PROFILES[profile_name].with_models(args.num_models)


def check_folders(args, *written: tuple[str, str]) -> None:
    """Every folder the command will write (``(flag, path)``) can be written, and every
    ``--reference-store`` can be read, before anything is loaded, trained or written."""
    from evaluation.files import PathUnusable, check_writable

    try:
        for flag, path in written:
            check_writable(path, flag)
    except PathUnusable as e:
        raise UsageError(str(e)) from None
    for path in args.reference_store:
        if not pathlib.Path(path).is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise UsageError(f"--reference-store {path} is not a folder this process can read")


def resolve_run(args):
    """Validate the arguments of a method's evaluation before anything is loaded or written."""
    from evaluation.session import Contestant
    from methods import all_method_handlers, broken_methods
    from methods.hyperparameters import build, parse_settings

    if not args.method:
        raise UsageError("no method given: pass -m NAME (see --list), --score-submission ZIP or "
                         "--write-competition-input DIR")
    handlers, broken = all_method_handlers(), broken_methods()
    names = list(handlers) if args.method == ALL else args.method.split(",")
    for name in names:
        if name not in handlers:
            path = f"methods/{name}.py"
            if path in broken:
                raise UsageError(f"{path} cannot be imported: {broken[path]}")
            raise UsageError(f"unknown method {name!r}; available: {', '.join(handlers)}")
    if len(set(names)) < len(names):
        raise UsageError(f"-m {args.method} names a method twice")
    if os.environ.get("RANK", "0") == "0":
        for path, error in broken.items():
            print(f"warning: {path} cannot be imported, its methods are left out: {error}", file=sys.stderr)
    device, profile = resolve_setting(args)
    if args.method_timeout is not None and args.method_timeout <= 0:
        raise UsageError(f"--method-timeout must be positive, got {args.method_timeout}")
    if args.set and len(names) > 1:
        raise UsageError("--set applies to one method: pass -m NAME")
    settings = {}
    if args.set:
        try:
            settings = parse_settings(handlers[args.method], args.set)
            build(handlers[args.method], args.method, settings)  # the method's own checks, before any work
        except (ValueError, TypeError) as e:
            raise UsageError(f"{args.method}: {e}") from None
    contestants = {name: contestant(functools.partial(build, handlers[name], name, settings or None))
                   for name in names}
    if args.method == ALL:  # a broken file is a failed row of the leaderboard
        contestants |= {pathlib.Path(path).stem: Contestant(broken_import(path, error))
                        for path, error in broken.items() if pathlib.Path(path).stem not in contestants}
    return contestants, device, profile


def contestant(make):
    """A method as the evaluation takes it: its factory and the values its runs use."""
    from evaluation.session import Contestant
    from methods.hyperparameters import values

    try:
        hyperparameters = values(make())
    except Exception:  # noqa: BLE001 - a method that cannot be built fails its row with the reason, in its runs
        hyperparameters = {}
    return Contestant(make, hyperparameters)


def competition_command(args) -> dict | pathlib.Path:
    """--write-competition-input and --score-submission: one process, no method to run."""
    from data import DataError
    from evaluation.data_cache import load_dataset_cached
    from evaluation.files import PathUnusable
    from evaluation.session import Session
    from evaluation.submission import Submission, SubmissionError

    if args.write_competition_input and args.score_submission:
        raise UsageError("--write-competition-input and --score-submission are two commands: pass one")
    mixed = [flag for flag, given in (("-m", args.method), ("--set", args.set), ("--resume", args.resume),
                                      ("--workers", args.workers and args.workers > 1),
                                      ("--originals", args.originals > 1)) if given]
    if mixed:
        raise UsageError(f"{' and '.join(mixed)} {'belongs' if len(mixed) == 1 else 'belong'} to a method's "
                         "evaluation, not to "
                         f"{'--score-submission' if args.score_submission else '--write-competition-input'}")
    written = [("--write-competition-input", args.write_competition_input), ("--store", args.store)] \
        if args.write_competition_input else [("--out", args.out), ("--store", args.store)]
    check_folders(args, *written)
    try:
        data, groups = load_dataset_cached(args.dataset, args.data)
        kit, submission = {}, None
        if args.score_submission:
            submission = Submission.open(args.score_submission, data.num_classes)
            kit = submission.kit or {}
            if submission.kit is None:
                print(f"warning: {submission.path} has no unlearn_kit.json beside it: its origin cannot be checked; "
                      "scoring it against the profile and seed given", file=sys.stderr)
            if args.num_models is not None and args.num_models != submission.num_models:
                raise UsageError(f"--num-models {args.num_models}, but {submission.path} holds "
                                 f"{submission.num_models} checkpoints (N is their number)")
            args.num_models = submission.num_models
        device, profile = resolve_setting(args, kit.get("profile"))
        seed = args.seed if args.seed is not None else kit.get("split_seed", 0)
        precision = args.precision or kit.get("precision")
        session = Session({}, False, device, profile, pathlib.Path(args.out), pathlib.Path(args.store), seed=seed,
                          gate=args.gate, progress=not args.no_progress, precision=precision,
                          remeasure_clock=args.remeasure_clock, ceiling=args.ceiling,
                          reference_stores=tuple(args.reference_store))
        if submission is None:
            path = session.write_competition_input(data, groups, args.write_competition_input)
            print(f"competition input for profile {profile.name}, split seed {seed}: {path}")
            return path
        return session.score_submission(data, groups, submission, args.name)
    except (DataError, SubmissionError, PathUnusable) as e:
        raise UsageError(str(e)) from None


def run(args, argv: list[str]) -> dict:
    import torch

    from data import DataError
    from evaluation.data_cache import load_dataset_cached
    from evaluation.distributed import close_world, init_world
    from evaluation.files import PathUnusable
    from evaluation.session import Session
    from evaluation.workers import default_workers, is_worker, launch, threads_per_worker

    methods, device, profile = resolve_run(args)
    check_folders(args, ("--out", args.out), ("--store", args.store))
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
    session = Session(methods, is_leaderboard(args), device, profile, pathlib.Path(args.out), pathlib.Path(args.store),
                      seed=args.seed or 0, gate=args.gate, progress=not args.no_progress, precision=args.precision,
                      remeasure_clock=args.remeasure_clock, method_timeout=args.method_timeout,
                      ceiling=args.ceiling, resume=args.resume, originals=args.originals,
                      reference_stores=tuple(args.reference_store))
    try:
        data, groups = load_dataset_cached(args.dataset, args.data)
        world = init_world(device)
        try:
            return session.run(data, groups, world)
        finally:
            close_world(world)
    except (DataError, PathUnusable) as e:
        raise UsageError(str(e)) from None


def is_leaderboard(args) -> bool:
    """-m all or -m a,b: the methods side by side, with the ceiling's row and leaderboard files."""
    return args.method == ALL or "," in args.method


def broken_import(path: str, error: str):
    """A factory that fails as the file did, so -m all shows it as a failed row."""
    def make():
        raise ImportError(f"{path} cannot be imported: {error}")

    return make


def main(argv=None) -> int:
    from evaluation.distributed import RankFailed
    from evaluation.files import WriteFailed
    from evaluation.session import RunFailed
    from evaluation.workers import WorkerFailed

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        if args.list:
            print(list_everything())
            return 0
        if args.write_competition_input or args.score_submission:
            competition_command(args)
        else:
            run(args, argv)
    except (UsageError, RunFailed, WorkerFailed, RankFailed) as e:
        # Under --workers every process meets the same error: the first rank says it.
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except WriteFailed as e:
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {e}; free space (or fix the folder) and run the same command again: the models and "
                  "reports finished before are kept and reused", file=sys.stderr)
        return 1
    except WorkersExited as e:
        return e.code
    return 0


def exit_now(code: int) -> None:
    """Ends the process once its output is flushed, without the interpreter's teardown: every
    file was written whole before (``evaluation/files.py``), and freeing torch's modules one by
    one took 0.6 to 1.2 s of every process (2-core CPU), workers and test subprocesses included.
    Under a profiler or a coverage tracer the usual exit, which lets them write their files."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
