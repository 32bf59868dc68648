"""Results as files: ``report.json``, its arrays in ``report.npz``, a readable summary
table, and a plot.

``report.json`` holds every number a reader looks at and stays small at any N; the
per-model confidences over the forget set (N x forget examples per side: 20 MB of
floats at the full profile) go to ``report.npz`` beside it, and ``read_report`` puts
them back. Both files are strict JSON/NumPy: a NaN (an unmeasured MIA) is written as null.
"""

from __future__ import annotations

import json
import math
import pathlib
import platform
import time
from collections import Counter

import numpy as np

from .comparison import CEILING
from .files import write_atomically
from .intervals import CONFIDENCE
from .result import Result, SubmissionOrigin

# Bump when reports gain fields a leaderboard needs: an older report is then run again, not reused
# (the references' scores are cached, so only the method's runs are redone).
REPORT_VERSION = 4  # 2: intervals and the ceiling; 3: written from the typed result, no migration; 4: KLOM
# What a reused report must share with this run to stand in for it.
RESUME_KEYS = ("report_version", "profile", "seed", "run_seeds", "originals", "gate", "sizes")


def environment(device) -> dict:
    from importlib.metadata import version

    import torch
    import torchvision

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "scikit-learn": version("scikit-learn"),  # its metadata: importing it costs 1.5 s
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if str(device).startswith("cuda"):
        # What decides whether a rerun on this GPU repeats the numbers bit for bit.
        info |= {
            "gpu": torch.cuda.get_device_name(device),
            "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        }
    return info


# What grows with N x forget examples (or with a set's examples), kept in report.npz as "side.key".
ARRAY_FIELDS = (("unlearned", "forget_confs"), ("retrained", "forget_confs"), ("klom", "forget_values"),
                ("klom", "retain_values"), ("klom", "test_values"))
ARRAYS_FILE = "report.npz"
# What a successful evaluation writes beside report.json (a failure removes them).
RESULT_FILES = ("report.png", ARRAYS_FILE, "splits.json")


def json_text(obj) -> str:
    """Strict JSON (``allow_nan=False``): NaN and infinities become null."""
    return json.dumps(_finite(obj), indent=1, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_report(result: Result, out_dir, context: dict) -> pathlib.Path:
    """Write ``report.json`` (every number, plus ``context``), ``report.npz`` (the per-model
    arrays) and ``report.png``. The arrays go first: a report.json always has its arrays."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = result.to_json() | context
    arrays = {f"{side}.{key}": np.asarray(report[side].pop(key), dtype=np.float64)
              for side, key in ARRAY_FIELDS if key in (report.get(side) or {})}
    write_atomically(out / ARRAYS_FILE, lambda f: np.savez_compressed(f, **arrays))
    report["arrays"] = {"file": ARRAYS_FILE, "keys": sorted(arrays)}
    path = out / "report.json"
    write_atomically(path, json_text(report))
    plot_report(result, out / "report.png")
    return path


def rewrite_report(result: Result, out_dir) -> pathlib.Path:
    """``write_report`` over an earlier report of the same run, keeping its context."""
    report = read_report(pathlib.Path(out_dir) / "report.json") or {}
    fields = result.to_json().keys()
    return write_report(result, out_dir, {k: v for k, v in report.items() if k not in fields})


def write_result(result: Result, out_dir: pathlib.Path, splits, context: dict) -> pathlib.Path:
    """A successful evaluation's files (report.json, report.npz, report.png, splits.json) and
    its summary table on stdout."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "splits.json", json.dumps(splits.to_json()))
    path = write_report(result, out_dir, context | {"created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"\n{result.method} on profile {context['profile']['name']} ({context['environment']['device']}):")
    print(summary_table(result))
    print(f"\nreport: {path}  plot: {path.with_suffix('.png')}")
    return path


def write_failure(out_dir, name: str, reason: str, context: dict) -> pathlib.Path:
    """A report that says the method failed, and why; an earlier run's results beside it go,
    so no successful plot or array outlives the failure."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in RESULT_FILES:
        (out / stale).unlink(missing_ok=True)
    path = out / "report.json"
    write_atomically(path, json_text({"method": name, "status": "failed", "reason": reason} | context))
    return path


def read_report(path) -> dict | None:
    """A ``report.json`` with its arrays put back (as lists, as the result holds them) and
    its nulls read as NaN where a number belongs (the MIA); None if it or its arrays are
    missing or unreadable."""
    path = pathlib.Path(path)
    try:
        report = json.loads(path.read_text())
        if "arrays" in report:
            with np.load(path.parent / report.pop("arrays")["file"]) as arrays:
                for name in arrays.files:
                    side, key = name.split(".", 1)
                    report[side][key] = arrays[name].tolist()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(report.get("mia"), dict):
        report["mia"] = {k: math.nan if v is None else v for k, v in report["mia"].items()}
    return report


def reusable_result(path: pathlib.Path, context: dict, hyperparameters: dict | None = None) -> Result | None:
    """The result saved in ``path`` if it was made under the same conditions as ``context``
    describes (and, given ``hyperparameters``, with those values), else None: what ``--resume``
    may reuse. A report of another format version is never reused; its method runs again."""
    report = read_report(path)
    if report is None or report.get("status") == "failed":
        return None
    same = all(report.get(k) == context.get(k) for k in RESUME_KEYS)
    if hyperparameters is not None:
        # compared as the report stores them (tuples as lists, NaN as null)
        same = same and report.get("hyperparameters") == json.loads(json_text(hyperparameters))
    same = same and report.get("data", {}).get("fingerprint") == context.get("data", {}).get("fingerprint")
    same = same and report.get("environment", {}).get("precision") == context.get("environment", {}).get("precision")
    # CPU and CUDA round differently; which GPU (cuda:0 on rank 0, cuda under one process) does not matter.
    same = same and _device_type(report) == _device_type(context)
    if not same:
        return None
    try:
        return Result.from_json(report)
    except (KeyError, TypeError, ValueError):
        return None


def _device_type(report: dict) -> str | None:
    device = report.get("environment", {}).get("device")
    return None if device is None else device.split(":")[0]


def summary_table(result: Result) -> str:
    """A small aligned table of the numbers a user looks at first, each with its 95% interval."""
    t = result.timing
    iv = result.intervals
    rows = [
        ("forget quality F", f"{iv['forget_quality']:.4f}"),
        ("final score", f"{iv['final_score']:.4f}"),
    ]
    if result.ceiling:
        c = result.ceiling
        rows.append((f"F / F_{c.method}", f"{c.normalised_forget_quality:.3f}  "
                     f"(the ceiling: {c.method} scores F = {c.forget_quality:.4f} at this N)"))
    elif result.method != CEILING:
        rows.append((f"F / F_{CEILING}",
                     "not measured: pass --ceiling to train N more references and score retraining"))
    rows += [
        ("N models",
         f"{result.num_models} (max measurable epsilon {result.metric_info['max_measurable_epsilon']:.0f})"),
        ("mean epsilon", f"{result.metric_info['mean_epsilon']:.3f}"),
    ]
    width = 27
    header = f"{'':18s}{'unlearned':>{width}s}{'retrained':>{width}s}{'original':>11s}"
    lines = [f"{name:18s}{value}" for name, value in rows] + ["", header]
    for label, key in (("retain accuracy", "retain_acc"), ("forget accuracy", "forget_acc"),
                       ("test accuracy", "test_acc")):
        lines.append(f"{label:18s}{format(iv[key], '.4f'):>{width}s}{format(iv['retrained_' + key], '.4f'):>{width}s}"
                     f"{getattr(result.original, key):11.4f}")
    mia = result.mia
    lines.append(f"{'MIA accuracy':18s}{mia.unlearned:{width}.4f}{mia.retrained:{width}.4f}{mia.original:11.4f}")
    if mia.note:
        lines.append(f"{'':18s}MIA {mia.note}")
    if result.klom is not None:
        lines += ["", *klom_lines(result)]
    if t.unlearn_seconds is None:
        time_line = f"{'time':18s}{t.note} (no gate verdict)"
    else:
        verdict = "passes" if t.passes_gate else "FAILS"
        time_line = (f"{'time':18s}unlearn {t.unlearn_seconds_mean:.2f} s / retrain {t.retrain_seconds:.2f} s"
                     f" = {t.time_ratio:.3f} ({verdict} the {t.gate:.0%} gate)"
                     + (" [retrain time measured on a busy machine]" if t.retrain_clock.get("busy") else ""))
    lines += ["", time_line]
    if result.submission is not None:
        lines += submission_lines(result.submission)
    lines.append(f"intervals: {CONFIDENCE:.0%}; F: forget examples and the models' shared offsets resampled; "
                 "accuracies: models")
    logged = round_log_line(result.round_log)
    if logged:
        lines.append(logged)
    return "\n".join(lines)


def klom_lines(result: Result) -> list[str]:
    """KLOM's 95th percentiles per set, against the ceiling's where it is known, and where
    KLOM's verdict and F's meet on the forget examples."""
    sets = result.klom.sets
    lines = [f"{'KLOM p95':18s}" + "   ".join(f"{name} {sets[name].statistics['p95']:.3f}" for name in sets)]
    c = result.ceiling
    if c is not None and c.klom_difference is not None:
        lines.append(f"{'KLOM - ' + c.method:18s}" + "   ".join(
            f"{name} {c.klom_difference[name]:+.3f}" for name in c.klom_difference))
        a = c.agreement
        lines.append(f"{'KLOM and F':18s}rank correlation {_correlation(a.rank_correlation)} over forget examples; "
                     f"indistinguishable by both {a.both}, by F only {a.f_only}, by KLOM only {a.klom_only}, "
                     f"by neither {a.neither}")
    return lines


def _correlation(value: float) -> str:
    # a run whose every forget example sits at epsilon's cap (or KLOM's) has no order to correlate
    return "undefined (one side is the same for every example)" if math.isnan(value) else f"{value:.2f}"


def submission_lines(origin: SubmissionOrigin) -> list[str]:
    """A scored submission's origin, and its recorded time against the competition's limit."""
    lines = [f"{'origin':18s}{origin.origin}"]
    projected = origin.projected_seconds
    if projected is not None:
        within = "within" if projected <= origin.competition_seconds else "OVER"
        per_run = projected / origin.competition_runs
        lines.append(f"{'competition time':18s}{origin.competition_runs} runs at {per_run:.2f} s = "
                     f"{projected / 3600:.2f} h on {origin.recorded_machine or origin.recorded_device} ({within} the "
                     f"{origin.competition_seconds / 3600:.0f} h limit)")
    return lines


def round_log_line(logs: list | None) -> str | None:
    """How the runs of a method that logs its rounds ended, in one line, or None."""
    ends = [log[-1] for log in logs or [] if log and isinstance(log[-1], dict)]
    if not ends:
        return None
    line = f"round log: {len(ends)} runs in report.json"
    rounds = sorted(e["round"] for e in ends if isinstance(e.get("round"), int))
    if rounds:
        line += f"; they ended after {rounds[0]} to {rounds[-1]} rounds" if rounds[0] != rounds[-1] else \
            f"; they ended after {rounds[0]} rounds"
    stops = Counter(str(e["stop"]) for e in ends if e.get("stop") is not None)
    if stops:
        line += " (" + ", ".join(f"{why} {n}" for why, n in stops.most_common()) + ")"
    return line


def plot_report(result: Result, path, n_examples: int = 4) -> None:
    """Histogram of per-example epsilons, unlearned vs retrained confidences of a few examples,
    and each forget example's KLOM against its epsilon (the two audits side by side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = result.epsilons
    u, r = result.unlearned.forget_confs, result.retrained.forget_confs
    # Examples spread over the epsilon range: the easiest, the hardest, and between.
    order = np.argsort(eps, kind="stable")
    picks = order[np.linspace(0, len(order) - 1, min(n_examples, len(order))).astype(int)]

    panels = 1 + len(picks) + (result.klom is not None)
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.2))
    axes = np.atleast_1d(axes)
    cap = result.metric_info["max_measurable_epsilon"]
    axes[0].hist(np.minimum(eps, cap + 0.5), bins=np.arange(0, cap + 1.01, 0.5), color="tab:purple")
    f = result.intervals["forget_quality"]
    axes[0].set(title=f"{result.method}: F = {f:.3f}", xlabel="per-example epsilon (capped)", ylabel="forget examples")
    for ax, i in zip(axes[1:], picks):
        bins = np.histogram_bin_edges(np.concatenate([u[:, i], r[:, i]]), bins=15)
        ax.hist(r[:, i], bins=bins, alpha=0.6, label="retrained", color="tab:blue")
        ax.hist(u[:, i], bins=bins, alpha=0.6, label="unlearned", color="tab:orange")
        ax.set(title=f"forget example {i}: eps = {eps[i]:.2f}", xlabel="logit-scaled confidence")
        ax.legend(fontsize=7)
    if result.klom is not None:
        ax = axes[-1]
        ax.scatter(eps, result.klom.sets["forget"].values, s=6, alpha=0.5, color="tab:green")
        ax.axvline(0.5, color="grey", lw=0.8, ls="--")  # F: bucket 0 below
        agreement = result.ceiling.agreement if result.ceiling is not None else None
        title = "forget examples"
        if agreement is not None:
            ax.axhline(agreement.klom_threshold, color="grey", lw=0.8, ls=":")  # KLOM: retrain's 95th percentile
            title += f": rank corr. {_correlation(agreement.rank_correlation)}"
        ax.set(title=title, xlabel="epsilon", ylabel="KLOM")
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
