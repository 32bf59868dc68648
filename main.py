"""Score an unlearning method with the competition's metric on CIFAR-10.

    python main.py -m finetune                      # quick profile on CPU, dev on GPU
    python main.py -m finetune --profile smoke      # seconds
    python main.py --list                           # registered methods and profiles

Results: ``OUT/NAME/report.json`` (every number), ``report.png`` and ``splits.json``
(the forget/retain/validation/test indices). Models are cached in ``--store``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run an unlearning method against the local evaluation.")
    p.add_argument("-m", "--method", help="registered method name (see --list)")
    p.add_argument("--list", action="store_true", help="list methods and profiles, then exit")
    p.add_argument("--profile", help="smoke | quick | dev | full (default: quick on CPU, dev on GPU)")
    p.add_argument("--num-models", type=int, help="N: unlearning runs and retrained references (>= 3)")
    p.add_argument("--seed", type=int, default=0, help="split seed: forget set, val/test halves, subsets")
    p.add_argument("--data", help="CIFAR-10 .npz or torchvision root (default: $UNLEARN_DATA, then data/cifar10)")
    p.add_argument("--out", default=str(REPO / "results"), help="results folder (default: results/)")
    p.add_argument("--store", default=str(REPO / "checkpoints"), help="checkpoint store (default: checkpoints/)")
    p.add_argument("--device", help="cpu | cuda (default: cuda when present)")
    p.add_argument("--gate", type=float, default=0.2, help="efficiency gate: max unlearn/retrain time ratio")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p.parse_args(argv)


def list_everything() -> str:
    from evaluation.profiles import PROFILES
    from methods import all_method_handlers

    lines = ["methods:"] + [f"  {name}" for name in all_method_handlers()]
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
    from methods import all_method_handlers

    if not args.method:
        raise UsageError("no method given: pass -m NAME (see --list)")
    handlers = all_method_handlers()
    if args.method not in handlers:
        raise UsageError(f"unknown method {args.method!r}; available: {', '.join(handlers)}")
    try:
        device = pick_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    profile_name = args.profile or default_profile_name(device.type)
    if profile_name not in PROFILES:
        raise UsageError(f"unknown profile {profile_name!r}; choose one of {', '.join(PROFILES)}")
    if args.num_models is not None and args.num_models < 3:
        raise UsageError(f"--num-models must be at least 3 (the metric needs ln(N-1) >= 0.5), got {args.num_models}")
    if not 0 < args.gate:
        raise UsageError(f"--gate must be positive, got {args.gate}")
    return handlers[args.method], device, PROFILES[profile_name].with_models(args.num_models)


def run(args) -> dict:
    from data import DataError, load_cifar10, make_splits
    from evaluation.report import environment, summary_table, write_report
    from evaluation.runner import evaluate
    from evaluation.store import CheckpointStore
    from evaluation.zoo import SplitTensors, Zoo

    method_cls, device, profile = resolve_run(args)
    try:
        data = load_cifar10(args.data)
    except DataError as e:
        raise UsageError(str(e)) from None
    splits = make_splits(
        len(data.y_train), len(data.y_test), args.seed, train_subset=profile.train_subset, test_subset=profile.test_subset
    )
    progress = not args.no_progress
    zoo = Zoo(data, splits, profile, SplitTensors.build(data, splits, device), CheckpointStore(args.store), progress)

    started = time.perf_counter()
    result = evaluate(method_cls, args.method, zoo, gate=args.gate, progress=progress)
    out_dir = pathlib.Path(args.out) / args.method
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "splits.json").write_text(json.dumps(splits.to_json()))
    context = {
        "profile": profile.to_json(),
        "seed": args.seed,
        "run_seeds": list(range(profile.num_models)),
        "data": {"source": data.source, "fingerprint": data.fingerprint(), "splits_file": "splits.json"},
        "sizes": {name: int(getattr(splits, name).size) for name in ("forget", "retain", "val", "test")},
        "environment": environment(device),
        "wall_seconds": time.perf_counter() - started,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = write_report(result, out_dir, context)
    print(f"\n{args.method} on profile {profile.name} ({device}):\n{summary_table(result)}")
    print(f"\nreport: {path}  plot: {path.with_suffix('.png')}")
    return result.to_json() | context


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.list:
            print(list_everything())
            return 0
        run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
