"""Tune a registered method against the competition's score, with Optuna.

    python tune.py -m finetune --trials 12 --profile cpu --num-models 8 --seed 0     # a study, resumable
    python tune.py -m finetune --confirm 3 --profile cpu --num-models 8 --seed 0     # its best, on split seed 3
    python tune.py -m salun --space lr=1e-3:5e-2:log --space freeze=restore|gradients --trials 8
    python tune.py -m finetune --look 2 --try lr=0.01 --try lr=0.03                  # a minute's first look

Each trial builds the method with values drawn from its search space (declared with its
hyperparameters, ``methods/hyperparameters.py``; ``--space`` adds or replaces ranges), runs
it N times (run seeds 0..N-1) from the cached original and scores the N models against the
cached references exactly as ``main.py -m NAME`` does: the objective is the final score, so
the differences between trials are paired. The efficiency gate is a constraint the sampler
knows (``time_ratio - gate <= 0``): an infeasible trial is kept and marked, and the best
trial is the best feasible one. A trial whose first run breaks the model (retain accuracy
below ``--prune-below`` of the original's, or NaN weights) is pruned, with the reason.

The study lives in a journal file (``OUT/tune/NAME/study.journal``, Optuna's storage for
several processes on one machine), or in ``--storage``: a database URL shared by several
machines (``postgresql://user@host/db``) or another journal file's path. Running the same
command again adds ``--trials`` more trials to the same study; several processes on one
storage share it. A one-process study repeats from its sampler's seed; parallel ones do
not (which process draws which trial depends on timing), and parallel processes share
the CPU or GPU, which inflates every run's seconds: ``--confirm`` times the best trials
again, one run at a time.

Files in ``OUT/tune/NAME/``: ``trials.json`` and ``trials.csv`` (every trial: values, score
and interval, F, accuracies, seconds, time ratio, feasibility, state, reason),
``tuning.md`` (the table, the baselines and the best trial as a ready ``--set`` line),
``history.png``, ``slices.png`` and, with enough complete trials, ``importances.png``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import pathlib
import subprocess
import sys
import time
import warnings

from main import REPO, UsageError, contestant

PRUNE_BELOW = 0.25  # of the original's retain accuracy, after run 0: the model is broken, not unlearned
STARTUP_TRIALS = 5  # random trials before the sampler models the others
IMPORTANCE_MIN_TRIALS = 5  # complete trials before parameter importances mean anything
RESULT_FIELDS = ("final_score_low", "final_score_high", "forget_quality", "retain_acc", "test_acc", "forget_acc",
                 "seconds_per_run", "time_ratio")  # a complete trial's numbers besides its score
TRIAL_FIELDS = ("number", "state", "feasible", "final_score", *RESULT_FIELDS, "reason", "params", "commit")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--method", required=True, help="registered method (see main.py --list)")
    p.add_argument("--trials", type=int, default=0, help="trials this process adds to the study")
    p.add_argument("--until", type=int, metavar="T",
                   help="instead of --trials: add trials until the study holds T finished ones (a fixed budget that "
                        "the same command resumes)")
    p.add_argument("--space", action="append", default=[], metavar="KEY=LOW:HIGH[:log] | KEY=a|b|c",
                   help="a range to search (adds to, or replaces, the method's declared space; repeatable)")
    p.add_argument("--try", dest="tries", action="append", default=[], metavar="KEY=VALUE,...",
                   help="a configuration to try first (repeatable): the method's defaults with these values, "
                        "those outside the search space held fixed for that trial")
    p.add_argument("--baselines", default="", help="methods scored at their defaults beside the study (a,b)")
    p.add_argument("--look", type=int, metavar="RUNS",
                   help="only run the defaults and each --try RUNS times and print their accuracies")
    p.add_argument("--confirm", type=int, metavar="SEED",
                   help="rerun the best trials and the defaults on split seed SEED at the profile's N, one run at a "
                        "time, as a leaderboard with paired intervals (the study is named by the other options)")
    p.add_argument("--top", type=int, default=1, help="with --confirm: how many of the best trials")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--num-models", type=int, help="N (default: the profile's)")
    p.add_argument("--seed", type=int, default=0, help="split seed of the study")
    p.add_argument("--gate", type=float, default=None, help="the efficiency gate (default: the competition's 0.2)")
    p.add_argument("--prune-below", type=float, default=PRUNE_BELOW,
                   help=f"prune a trial whose run 0 keeps less than this share of the original's retain accuracy "
                        f"(default {PRUNE_BELOW})")
    p.add_argument("--storage", help="database URL, or a journal file's path (default: OUT/tune/NAME/study.journal)")
    p.add_argument("--study", help="study name (default: method, profile, N, seed and the search space's fingerprint)")
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--data")
    p.add_argument("--store", default=str(REPO / "checkpoints"))
    p.add_argument("--out", default=str(REPO / "results"))
    p.add_argument("--device")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------ the search space
def search_space(cls, items: list[str]) -> dict:
    """The method's declared spaces, with ``--space`` items added or replacing them."""
    from methods.hyperparameters import SettingError, parse_space, spaces

    try:
        space = spaces(cls) | parse_space(cls, items)
    except SettingError as e:
        raise UsageError(str(e)) from None
    if not space:
        raise UsageError(f"{cls.__name__} declares no search space; pass --space KEY=LOW:HIGH[:log] or KEY=a|b|c")
    return space


def fingerprint(space: dict) -> str:
    return hashlib.sha256(json.dumps({k: str(v) for k, v in sorted(space.items())}).encode()).hexdigest()[:8]


def parse_tries(cls, tries: list[str]) -> list[dict]:
    """Each ``--try`` as typed values."""
    from methods.hyperparameters import SettingError, parse_settings

    rows = []
    for row in tries:
        try:
            rows.append(parse_settings(cls, [item for item in row.split(",") if item]))
        except SettingError as e:
            raise UsageError(f"--try {row!r}: {e}") from None
    return rows


def enqueue(study, tries: list[dict], space: dict, defaults: dict) -> None:
    """Each ``--try`` as the next trial, exactly the method's ``defaults`` with the try's values
    (none of the search space's left to the sampler): values inside the space as its
    parameters, the rest held fixed for that trial (``fixed``). A row already in the study,
    queued or run, is not queued again."""
    from optuna.trial import TrialState

    # a queued trial holds its values as fixed parameters until it runs
    seen = [(t.system_attrs.get("fixed_params", {}) if t.state == TrialState.WAITING else t.params,
             t.user_attrs.get("fixed", {})) for t in study.get_trials(deepcopy=False)]
    for values in tries:
        full = {k: values.get(k, defaults[k]) for k in space} | values
        inside = {k: v for k, v in full.items() if k in space and space[k].holds(v)}
        fixed = {k: v for k, v in full.items() if k not in inside}
        if (inside, fixed) not in seen:
            study.enqueue_trial(inside, user_attrs={"fixed": fixed})
            seen.append((inside, fixed))


def storage_for(argument: str | None, default: pathlib.Path):
    """A database URL as it is; a path (or nothing: ``default``) as a journal file."""
    if argument and "://" in argument:
        return argument
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = pathlib.Path(argument) if argument else default
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ------------------------------------------------------------------------------------------ the objective
@dataclasses.dataclass
class Objective:
    """One trial: the method built from drawn values, N runs, the kit's judge."""

    cls: type
    method: str
    space: dict
    zoo: object
    references: object
    gate: float
    prune_below: float
    commit: str

    def __call__(self, trial) -> float:
        from evaluation.judge import judge
        from evaluation.runner import MethodFailed, Sandbox, run_method
        from methods.hyperparameters import build

        values = {name: space.suggest(trial, name) for name, space in self.space.items()}
        values |= trial.user_attrs.get("fixed", {})  # a --try's values outside the search space
        trial.set_user_attr("commit", self.commit)
        try:
            build(self.cls, self.method, values)
        except (TypeError, ValueError) as e:
            return self._pruned(trial, f"cannot be built with these values: {e}")
        make = functools.partial(build, self.cls, self.method, values)
        sandbox = Sandbox(tuple(self.zoo.all_originals()), self.zoo.tensors, self.zoo.profile.loader_batch_size)
        floor = self.prune_below * self.references.original_side.retain_acc
        scores, seconds = [], []
        for run_seed in range(self.zoo.profile.num_models):
            try:
                run = run_method(make, sandbox, run_seed)
            except MethodFailed as e:
                return self._pruned(trial, str(e))
            trial.report(run.scores.retain_acc, step=run_seed)
            if run_seed == 0 and run.scores.retain_acc < floor:
                return self._pruned(trial, f"run 0 kept retain accuracy {run.scores.retain_acc:.3f}, below "
                                           f"{self.prune_below:g} of the original's ({floor:.3f})")
            scores.append(run.scores)
            seconds.append(run.seconds)
        result = judge(self.method, scores, seconds, self.references, self.gate, hyperparameters=values)
        trial.set_constraint("gate", result.timing.time_ratio - self.gate)
        interval = result.intervals["final_score"]
        trial.set_user_attr("result", {
            "final_score_low": interval.low, "final_score_high": interval.high,
            "forget_quality": result.forget_quality, "retain_acc": result.unlearned.retain_acc,
            "test_acc": result.unlearned.test_acc, "forget_acc": result.unlearned.forget_acc,
            "seconds_per_run": result.timing.unlearn_seconds_mean, "time_ratio": result.timing.time_ratio})
        return result.final_score

    @staticmethod
    def _pruned(trial, reason: str):
        import optuna

        trial.set_user_attr("reason", reason)
        raise optuna.TrialPruned(reason)


# ------------------------------------------------------------------------------------------ what a study found
def is_feasible(trial) -> bool | None:
    constraints = trial.constraints
    return None if not constraints else all(v <= 0 for v in constraints.values())


def best_trials(study, k: int = 1) -> list:
    """The ``k`` best complete feasible trials, best first (none: an empty list)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]
    return sorted(done, key=lambda t: t.value, reverse=True)[:k]


def confirmable(study, k: int) -> list:
    """The ``k`` best feasible trials, filled up with the best infeasible ones where fewer are
    feasible: a study's seconds are inflated whenever processes share the machine, and the
    confirmation times the runs one at a time (each one said on stdout)."""
    from optuna.trial import TrialState

    best = best_trials(study, k)
    if len(best) < k:
        taken = {t.number for t in best}
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number not in taken]
        for t in sorted(done, key=lambda t: t.value, reverse=True)[: k - len(best)]:
            print(f"trial {t.number} failed the gate in the study; its time is measured again here, one run at a time")
            best.append(t)
    return best


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        result = t.user_attrs.get("result", {})
        rows.append({"number": t.number, "state": t.state.name.lower(), "feasible": is_feasible(t),
                     "final_score": t.value, **{k: result.get(k) for k in RESULT_FIELDS},
                     "reason": t.user_attrs.get("reason"), "params": dict(t.params) | t.user_attrs.get("fixed", {}),
                     "commit": t.user_attrs.get("commit")})
    return rows


def set_line(method: str, params: dict) -> str:
    return f"python main.py -m {method} " + " ".join(f"--set {k}={v}" for k, v in params.items())


def markdown(method: str, study, rows: list[dict], baselines: dict) -> str:
    def num(v, spec=".4f"):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    lines = [f"# Tuning {method}: study {study.study_name}", "",
             "| trial | state | gate | final score [95%] | F | retain | test | s per run | time ratio | values |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ordered = sorted(rows, key=lambda r: (r["final_score"] is None, -(r["final_score"] or 0)))
    for r in ordered:
        gate = {True: "pass", False: "FAIL", None: "-"}[r["feasible"]]
        score = "-" if r["final_score"] is None else (
            f"{r['final_score']:.4f} [{num(r['final_score_low'])}, {num(r['final_score_high'])}]")
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        if r["reason"]:
            values += f" ({r['state']}: {r['reason']})"
        lines.append(f"| {r['number']} | {r['state']} | {gate} | {score} | {num(r['forget_quality'])} | "
                     f"{num(r['retain_acc'], '.3f')} | {num(r['test_acc'], '.3f')} | {num(r['seconds_per_run'], '.1f')}"
                     f" | {num(r['time_ratio'], '.3f')} | {values} |")
    if baselines:
        lines += ["", "Baselines at their defaults, on the same references:", ""]
        for name, result in baselines.items():
            lines.append(f"- {name}: final score {result.intervals['final_score']:.4f}, F {result.forget_quality:.4f}, "
                         f"time ratio {result.timing.time_ratio:.3f}")
    best = best_trials(study)
    if best:
        t = best[0]
        lines += ["", f"Best feasible trial: {t.number}, final score {t.value:.4f} "
                      f"[{t.user_attrs['result']['final_score_low']:.4f}, "
                      f"{t.user_attrs['result']['final_score_high']:.4f}]:", "",
                  f"    {set_line(method, t.params | t.user_attrs.get('fixed', {}))}"]
    else:
        lines += ["", "No feasible trial yet: every complete trial failed the gate (or none completed)."]
    return "\n".join(lines) + "\n"


def write_files(method: str, study, out: pathlib.Path, baselines: dict) -> None:
    from evaluation.files import write_atomically

    rows = trial_rows(study)
    write_atomically(out / "trials.json", json.dumps({"study": study.study_name, "trials": rows}, indent=1))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=TRIAL_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "params": json.dumps(r["params"])} for r in rows)
    write_atomically(out / "trials.csv", text.getvalue())
    table = markdown(method, study, rows, baselines)
    write_atomically(out / "tuning.md", table)
    print(table)
    plots(study, out)


def plots(study, out: pathlib.Path) -> None:
    """History, one slice per parameter and, with enough complete trials, importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    from evaluation.files import write_atomically

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not complete:
        print("no plots: no complete trial yet")
        return
    wanted = [("history.png", optuna_plots.plot_optimization_history), ("slices.png", optuna_plots.plot_slice)]
    if complete >= IMPORTANCE_MIN_TRIALS:
        wanted.append(("importances.png", optuna_plots.plot_param_importances))
    else:
        print(f"no importances.png: {complete} complete trials, importances need {IMPORTANCE_MIN_TRIALS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, plot in wanted:
            axes = plot(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            write_atomically(out / name, lambda f, fig=figure: fig.savefig(f, format="png", dpi=100,
                                                                           bbox_inches="tight"))
            plt.close(figure)


# ------------------------------------------------------------------------------------------ the commands
def look(cls, method: str, configurations: list[dict], zoo, runs: int, out: pathlib.Path) -> None:
    """Each configuration ``runs`` times from the original: accuracies and seconds, no score."""
    from evaluation.files import write_atomically
    from evaluation.runner import Sandbox, run_method
    from methods.hyperparameters import build

    sandbox = Sandbox(tuple(zoo.all_originals()), zoo.tensors, zoo.profile.loader_batch_size)
    rows = {}
    for values in configurations:
        label = ",".join([method, *(f"{k}={v}" for k, v in values.items())])
        rows[label] = []
        for seed in range(runs):
            run = run_method(functools.partial(build, cls, method, values), sandbox, seed)
            end = {k: run.log[-1].get(k) for k in ("round", "auc", "stop")} if run.log else {}
            rows[label].append({"retain_acc": run.scores.retain_acc, "forget_acc": run.scores.forget_acc,
                                "test_acc": run.scores.test_acc, "seconds": run.seconds} | end)
        print(f"{label}\n  " + "\n  ".join(
            f"run {i}: retain {r['retain_acc']:.3f} forget {r['forget_acc']:.3f} test {r['test_acc']:.3f} "
            f"{r['seconds']:.1f} s" + (f", round {r['round']}: AUC {r['auc']:.2f}, {r['stop']}" if "stop" in r else "")
            for i, r in enumerate(rows[label])), flush=True)
    write_atomically(out / "look.json", json.dumps(rows, indent=1))


def scored_baselines(names: list[str], handlers: dict, zoo, references, gate: float, out: pathlib.Path,
                     context: dict, progress: bool) -> dict:
    """Each baseline at its defaults against the study's references; a report kept from an
    earlier run under the same conditions is read back instead."""
    from evaluation.report import reusable_result, write_result
    from evaluation.session import evaluate_method
    from methods.hyperparameters import build

    results = {}
    for name in names:
        entrant = contestant(functools.partial(build, handlers[name], name, None))
        path = out / "baselines" / name
        result = reusable_result(path / "report.json", context, entrant.hyperparameters)
        if result is None:
            result = evaluate_method(entrant, name, zoo, references, gate, progress)
            write_result(result, path, zoo.splits, context)
        results[name] = result
    return results


def confirm(args, cls, handlers: dict, study, profile, device, data, groups) -> dict:
    """The best ``--top`` trials and the defaults, on split seed ``--confirm`` at the profile's N."""
    from evaluation.distributed import World
    from evaluation.session import Session
    from methods.hyperparameters import build

    best = confirmable(study, args.top)
    if not best:
        raise UsageError(f"study {study.study_name} has no complete trial to confirm")
    contestants = {args.method: contestant(functools.partial(build, cls, args.method, None))}
    for t in best:
        values = t.params | t.user_attrs.get("fixed", {})
        contestants[f"{args.method}-trial{t.number}"] = contestant(functools.partial(build, cls, args.method, values))
    out = pathlib.Path(args.out) / "tune" / args.method / f"confirm_seed{args.confirm}"
    session = Session(contestants, True, device, profile, out, pathlib.Path(args.store), seed=args.confirm,
                      progress=not args.no_progress, resume=True, **({"gate": args.gate} if args.gate else {}))
    return session.run(data, groups, World())


def run(args) -> int:
    import optuna
    from optuna.trial import TrialState

    from data import DataError
    from evaluation.data_cache import load_dataset_cached
    from evaluation.distributed import World
    from evaluation.files import PathUnusable, check_writable
    from evaluation.profiles import PROFILES
    from evaluation.retrain_clock import GATE
    from evaluation.session import Session, gather_references
    from methods import all_method_handlers
    from methods.hyperparameters import build
    from methods.hyperparameters import values as default_values
    from training.devices import pick_device

    handlers = all_method_handlers()
    baselines = [b for b in args.baselines.split(",") if b]
    for name in [args.method, *baselines]:
        if name not in handlers:
            raise UsageError(f"unknown method {name!r}; available: {', '.join(handlers)}")
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    for flag in ("trials", "until", "top", "seed", "look"):
        value, least = getattr(args, flag), 1 if flag in ("top", "look") else 0
        if value is not None and value < least:
            raise UsageError(f"--{flag} must be at least {least}, got {value}")
    if args.num_models is not None and args.num_models < 3:
        raise UsageError(f"--num-models must be at least 3, got {args.num_models}")
    if not 0 < args.prune_below < 1:
        raise UsageError(f"--prune-below is a share of the original's retain accuracy (0 to 1), got {args.prune_below}")
    cls = handlers[args.method]
    space = search_space(cls, args.space)
    tries = parse_tries(cls, args.tries)
    try:
        device = pick_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    gate = args.gate or GATE
    profile = PROFILES[args.profile].with_models(args.num_models)
    out = pathlib.Path(args.out) / "tune" / args.method
    written = [("--out", out), ("--store", args.store)]
    if args.storage and "://" not in args.storage:
        written.append(("--storage", pathlib.Path(args.storage).parent))
    try:
        for flag, path in written:
            check_writable(path, flag)
    except PathUnusable as e:
        raise UsageError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    name = args.study or f"{args.method}-{profile.name}-N{profile.num_models}-seed{args.seed}-{fingerprint(space)}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        data, groups = load_dataset_cached("cifar10", args.data)
    except DataError as e:
        raise UsageError(str(e)) from None
    session = Session({}, False, device, profile, out, pathlib.Path(args.store), seed=args.seed, gate=gate,
                      progress=not args.no_progress)
    zoo = session.zoo(data, groups, World())
    if args.look is not None:
        look(cls, args.method, [{}] + tries, zoo, args.look, out)
        return 0
    study = optuna.create_study(study_name=name, storage=storage_for(args.storage, out / "study.journal"),
                                direction="maximize", load_if_exists=True)
    study.sampler = sampler_for(args.sampler_seed, len(study.trials))
    if args.confirm is not None:
        confirm(args, cls, handlers, study, PROFILES[args.profile], device, data, groups)
        return 0
    enqueue(study, tries, space, default_values(build(cls, args.method)))
    references = gather_references(zoo)
    started = time.perf_counter()
    trials = args.trials
    if args.until is not None:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        trials = max(0, args.until - len(finished))
    if trials:
        objective = Objective(cls, args.method, space, zoo, references, gate, args.prune_below, commit())
        study.optimize(objective, n_trials=trials, show_progress_bar=not args.no_progress)
    results = scored_baselines(baselines, handlers, zoo, references, gate, out, session.context(zoo),
                               not args.no_progress)
    write_files(args.method, study, out, results)
    print(f"{trials} trials added in {time.perf_counter() - started:.0f} s; study {name} holds "
          f"{len(study.trials)}; files in {out}")
    return 0


def sampler_for(seed: int, held: int):
    """The sampler of a process that finds ``held`` trials in its study. Seeded by both: a
    resumed study seeded as it began would draw its first random points again."""
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([seed, held]).generate_state(1)[0]) if held else seed
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
