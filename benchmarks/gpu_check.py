"""One command that measures, on a CUDA GPU, everything the kit claims there.

    python benchmarks/gpu_check.py --data .device/part0.npz          # on the GPU machine: about 5 minutes
    python benchmarks/gpu_check.py --only workers,fp16 --data ...    # some parts again
    python benchmarks/gpu_check.py --dry-run                         # the same parts on CPU at tiny sizes

Parts run in order, each in its own process with its own limit (``part_runner.py``: a CUDA
error is sticky and a signal cannot interrupt a native CUDA or gloo call); ``PARTS`` below,
and ``--help``, give what each measures and its budget on an H100/H200 (they add up to 5
minutes) and in a dry run.

After every part it rewrites ``OUT/gpu_check.json`` (every figure), ``OUT/gpu_check.md``
(the same as tables, and the extrapolation to the ``dev`` and ``full`` profiles with its
arithmetic) and ``OUT/gpu_check.log`` (every part's output). ``OUT`` is ``--out``, else
``$OUT``, else ``results/gpu_check``. ``--size KEY=VALUE`` changes a size (see ``Sizes``);
``--scratch DIR`` keeps the stores between calls, so a part run again reuses the models
the end-to-end part trained. Exit code 0 when every part ran through, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from _checkout import REPO
from benchmarks.part_runner import Part, format_value, load_module, run_parts

NAME = "gpu_check"
HERE = pathlib.Path(__file__).resolve()
# The full profile's references: 30 epochs over 45,000 retain images (as train_speed.py).
EPOCHS, DEV_TRAIN, DEV_TEST, FORGET_SHARE = 30, 50_000, 10_000, 0.1
DEV_MODELS, FULL_MODELS = 32, 512
METRIC_MODELS, METRIC_EXAMPLES = 512, 5_000  # the full profile's metric: N x forget examples
GOALS_S = {"reference": 3.0, "dev_warm": 300.0, "full": 3600.0}
PYTEST_EXITS = {0: "all passed", 1: "tests failed", 2: "interrupted", 3: "internal error", 4: "usage error",
                5: "no tests collected"}
MISSING_PACKAGES_TO_CHECK = ("nbformat", "nbclient", "ipykernel", "optuna", "pytest_timeout")


# ------------------------------------------------------------------------------------------ sizes
@dataclass(frozen=True)
class Sizes:
    """What each part measures; the defaults fit 5 minutes on an H100/H200 (``--size KEY=VALUE``)."""

    tests: tuple[str, ...] = ("-m", "cuda", "tests")  # pytest's arguments for cuda_tests
    engine_models: tuple[int, ...] = (16, 32)  # models trained at once; the first is the zoo's group size
    engine_batch: int = 256  # the references' batch
    engine_steps: int = 60  # timed steps per rate (after the fixed costs cancel, train_speed.engine)
    engine_images: int = 0  # training images on the device (0: all the data has)
    engine_compile: bool = True  # also time compile=True at the zoo's group size
    inference_models: int = 16
    inference_images: int = 0  # test images scored (0: all the data has)
    metric_models: int = METRIC_MODELS
    metric_examples: int = METRIC_EXAMPLES
    profile: str = "dev"  # the recipe of end_to_end, workers and fp16 (on whatever --data holds)
    e2e_models: int = 4
    e2e_settings: tuple[str, ...] = ()  # finetune's --set for the end-to-end runs (its defaults)
    workers: tuple[int, ...] = (1, 4, 8)
    workers_models: int = 4  # N = the larger of this and K: every worker has a run, and K = 1 trains nothing new
    workers_settings: tuple[str, ...] = ("epochs=1",)  # finetune's --set for the workers' runs
    mps: bool = True  # try the best K again under NVIDIA's Multi-Process Service
    fp16_models: int = 3
    fp16_settings: tuple[str, ...] = ("epochs=1",)


# CPU, tiny: proves every part and the runner work (CI runs it), measures nothing of a GPU.
DRY = Sizes(tests=("tests/evaluation/test_mia.py",), engine_models=(2,), engine_batch=32, engine_steps=3,
            engine_images=512, engine_compile=False, inference_models=2, inference_images=256, metric_models=16,
            metric_examples=100, profile="smoke", e2e_models=3, e2e_settings=("epochs=1",), workers=(2,),
            workers_models=3, mps=False)


# name, budget in seconds on an H100/H200 and in a dry run, what it measures
PARTS = (
    ("environment", 10, 30, "GPU, driver, torch, CUDA, cuDNN, CPU, the packages present"),
    ("cuda_tests", 40, 60, "the tests marked cuda (CUDA-only tests and the cuda cases of device-parametrised ones), "
                           "UNLEARN_DATA at --data; files that import a package missing there (nbformat: "
                           "e2e/test_notebooks_run.py) are left out and named"),
    ("engine", 55, 60, "training images/s at 1 model (eager and CUDA graph), at the zoo's group size and at 32 "
                       "models (batch 256), the small-input convolutions as matrix products, inference "
                       "model-images/s, the metric at 512 x 5,000, then compile=True at the zoo's group size"),
    ("end_to_end", 95, 90, "main.py -m finetune --workers 1 on --data (dev recipe, N = 4) from an empty store, by "
                           "phase, with the original's and finetune's accuracies"),
    ("workers", 70, 120, "finetune's runs (one epoch each; N = 4, or K when larger) at --workers 1, 4 and 8 on the "
                         "end-to-end store, then at the best K under NVIDIA's Multi-Process Service if it starts"),
    # On a CPU fp16 trains far slower than fp32 (no fast fp16 convolutions): 46 s in a dry run on a
    # 2-core AMD EPYC with AVX512, 91 to 110 s on a 2-core Intel Xeon with AVX512-BF16, whose fp16
    # convolution backward took 0.9 s where bf16's took 6 ms (torch 2.14).
    ("fp16", 30, 150, "--precision fp16 (Kaggle's T4 path), N = 3: its own original and references (precision is "
                      "in the store key)"),
)


def parts(dry: bool) -> list[Part]:
    """The parts in order with their limits: on a GPU its budget, in a dry run the CPU's."""
    return [Part(name, f"{HERE}:part_{name}", dry_s if dry else gpu_s,
                 cleanup=f"{HERE}:stop_mps" if name == "workers" else None)
            for name, gpu_s, dry_s, _ in PARTS]


def parts_help() -> str:
    return "parts (budget on an H100/H200, in a dry run):\n" + "\n".join(
        f"  {name} ({gpu_s} s, {dry_s} s): {what}" for name, gpu_s, dry_s, what in PARTS)


def _sizes(ctx) -> Sizes:
    raw = ctx.settings["sizes"]
    return Sizes(**{f.name: tuple(raw[f.name]) if isinstance(raw[f.name], list) else raw[f.name]
                    for f in dataclasses.fields(Sizes)})


# ------------------------------------------------------------------------------------------ parts
def part_environment(ctx) -> None:
    import torch

    from evaluation.report import environment
    from evaluation.retrain_clock import machine_name

    device = torch.device(ctx.settings["device"])
    ctx.record("environment", environment(device))
    ctx.record("machine", machine_name(device))
    ctx.record("cpu_cores", os.cpu_count())
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        ctx.record("gpu_memory_gib", round(props.total_memory / 2**30, 1))
        ctx.record("gpu_count", torch.cuda.device_count())
        ctx.record("driver", _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]))
        ctx.record("mps_control", shutil.which("nvidia-cuda-mps-control") or "not found")
    ctx.record("packages_missing", [p for p in MISSING_PACKAGES_TO_CHECK if importlib.util.find_spec(p) is None])


def part_cuda_tests(ctx) -> None:
    sizes = _sizes(ctx)
    junit = pathlib.Path(ctx.settings["scratch"]) / "cuda_tests.xml"
    left_out = left_out_test_files()
    ctx.record("left_out", {str(path.relative_to(REPO)): need for path, need in left_out.items()} or "none")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
               *(f"--ignore={path}" for path in left_out), *sizes.tests]
    ctx.record("command", " ".join(command[1:]))
    env = os.environ | {"UNLEARN_DATA": ctx.settings["data"]}
    code = subprocess.run(command, cwd=REPO, env=env).returncode
    counts, failures = read_junit(junit)
    ctx.record("tests", counts)
    if failures:
        ctx.record("failures", failures)
    if code != 0 or not counts.get("passed"):
        raise RuntimeError(f"pytest exit code {code} ({PYTEST_EXITS.get(code, 'unknown')}): {counts.get('passed', 0)} "
                           f"passed, {len(failures)} failed or errors: {', '.join(failures) or '-'}")


def part_engine(ctx) -> None:
    """Each measurement is tried on its own: one that raises (a variant never run on this GPU,
    say) is recorded under ``errors`` and the others still run; the part then fails."""
    import numpy as np
    import torch

    from data import load_cifar10, to_tensors
    from evaluation.metric import per_example_epsilons
    from training.model import make_model

    sizes, device = _sizes(ctx), torch.device(ctx.settings["device"])
    cuda = device.type == "cuda"
    train_speed, inference_speed, metric_speed = (load_module(REPO / "benchmarks" / f"{name}.py")
                                                  for name in ("train_speed", "inference_speed", "metric_speed"))
    if cuda:
        torch.backends.cudnn.benchmark = True
    data = load_cifar10(ctx.settings["data"], download=False)
    count = sizes.engine_images or len(data.y_train)
    images, labels = to_tensors(data.x_train[:count], data.y_train[:count], device)
    group = sizes.engine_models[0]
    ctx.record("batch", sizes.engine_batch)
    ctx.record("zoo_group_size", group)
    train, per_reference, by_group, errors = {}, {}, {}, {}

    def attempt(label, measurement, *args, **kwargs):
        try:
            measurement(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - recorded; the part fails after the other measurements
            traceback.print_exc()
            errors[label] = f"{type(e).__name__}: {e}"
            ctx.record("errors", errors)

    def training(label, models, plain=False, **options):
        rate = train_speed.engine(images, labels, sizes.engine_batch, sizes.engine_steps, models, **options)
        train[label] = rate
        per_reference[label] = EPOCHS * DEV_TRAIN * (1 - FORGET_SHARE) / rate
        ctx.record("train_images_per_s", train)
        ctx.record("seconds_per_reference", per_reference)  # 30 epochs x 45,000 images, amortised
        if plain:  # the zoo's own way at this group size
            by_group[str(models)] = per_reference[label]
            ctx.record("seconds_per_reference_by_group", by_group)

    def inference():
        count = sizes.inference_images or len(data.y_test)
        test_images, _ = to_tensors(data.x_test[:count], data.y_test[:count], device)
        states = []
        for seed in range(sizes.inference_models):  # BatchNorm statistics from real images, as inference_speed.py
            model = make_model(seed=seed).to(device).train()
            with torch.no_grad():
                model(test_images[:256])
            states.append(model.state_dict())
        ctx.record("inference_images", count)
        ctx.record("inference_model_images_per_s", {
            "one model at a time": inference_speed.rate(states, test_images, 1, 3),
            f"one at a time, {toggled}": inference_speed.rate(states, test_images, 1, 3, small_convs=cuda)})

    def metric():
        unlearned, retrained = metric_speed.make_confidences(sizes.metric_models, sizes.metric_examples)
        per_example_epsilons(unlearned[:, :64], retrained[:, :64], device=device)  # kernels and allocator warmed
        started = time.perf_counter()
        eps = per_example_epsilons(unlearned, retrained, device=device)  # numpy out: the device has finished
        metric_s = time.perf_counter() - started
        started = time.perf_counter()
        metric_speed.time_intervals(eps, unlearned, retrained, device, 0)
        ctx.record("metric", {"models": sizes.metric_models, "examples": sizes.metric_examples, "seconds": metric_s,
                              "intervals_seconds": time.perf_counter() - started, "mean_epsilon": float(np.mean(eps))})

    toggled = "small convs as matmuls" if cuda else "every conv a convolution"
    attempt("1 model, eager", training, "1 model, eager", 1, graphs=False)
    label = "1 model, graph" if cuda else "1 model, engine default"
    attempt(label, training, label, 1)
    for k in sizes.engine_models:
        label = f"{k} models, graph" if cuda else f"{k} models"
        attempt(label, training, label, k, plain=True)
    label = f"{group} models, {toggled}"
    attempt(label, training, label, group, small_convs=cuda)
    attempt("inference", inference)
    attempt("metric", metric)
    if sizes.engine_compile:  # last: its compilation is the dearest item
        label = f"{group} models, compiled"
        attempt(label, training, label, group, compile=True)
    if errors:
        raise RuntimeError(f"{len(errors)} measurement(s) failed: {', '.join(errors)} (see errors)")


def part_end_to_end(ctx) -> None:
    sizes = _sizes(ctx)
    # One process: on a GPU main.py would start several (--workers), and its phases would mix them.
    report, wall = _main_py(ctx, "end_to_end", "--profile", sizes.profile, "--num-models", str(sizes.e2e_models),
                            "--workers", "1", *_settings(sizes.e2e_settings))
    _record_evaluation(ctx, report, wall)


def part_workers(ctx) -> None:
    sizes = _sizes(ctx)
    common = ["--profile", sizes.profile, *_settings(sizes.workers_settings)]

    def models(k) -> list[str]:
        return ["--num-models", str(max(sizes.workers_models, int(k)))]

    ctx.record("runs", f"finetune {' '.join(sizes.workers_settings)}, N = the larger of {sizes.workers_models} and K")
    rows = {}
    for k in sizes.workers:
        report, wall = _main_py(ctx, f"workers_{k}", *common, *models(k), "--workers", str(k))
        rows[str(k)] = _workers_row(report, wall)
        ctx.record("by_workers", rows)
    best = max(rows, key=lambda k: rows[k]["runs_per_hour"])
    ctx.record("best_workers", int(best))
    ctx.record("speedup_best", rows[best]["runs_per_hour"] / rows[str(sizes.workers[0])]["runs_per_hour"])
    ctx.record("speedup_over_workers", sizes.workers[0])
    control = shutil.which("nvidia-cuda-mps-control")
    if not sizes.mps or ctx.settings["device"] == "cpu":
        ctx.record("mps", "not tried (no GPU, or --size mps=false)")
        return
    if control is None:
        ctx.record("mps", "not tried: nvidia-cuda-mps-control not found")
        return
    env = _mps_env(ctx)
    started = subprocess.run([control, "-d"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        ctx.record("mps", f"did not start: {(started.stderr or started.stdout).strip()[-300:]}")
        return
    try:  # optional: a run that fails under MPS is a finding, not a failed part
        report, wall = _main_py(ctx, f"workers_{best}_mps", *common, *models(best), "--workers", best, env=env)
        ctx.record("mps", _workers_row(report, wall) | {"workers": int(best)})
    except RuntimeError as e:
        ctx.record("mps", f"started, but the run failed: {e}")
    finally:
        stop_mps(ctx)


def stop_mps(ctx) -> None:
    """Quit the MPS daemon the workers part started (the runner calls it after the part too)."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control and ctx.settings["device"] != "cpu":
        subprocess.run([control], input="quit\n", env=_mps_env(ctx), capture_output=True, text=True, timeout=20)


def part_fp16(ctx) -> None:
    sizes = _sizes(ctx)
    report, wall = _main_py(ctx, "fp16", "--profile", sizes.profile, "--num-models", str(sizes.fp16_models),
                            "--precision", "fp16", "--workers", "1", *_settings(sizes.fp16_settings))
    if report["environment"].get("precision") != "fp16":
        raise RuntimeError(f"the report says precision {report['environment'].get('precision')!r}, not fp16")
    _record_evaluation(ctx, report, wall)


# ------------------------------------------------------------------------------------------ helpers
def _settings(items) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _command_output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _mps_env(ctx) -> dict:
    root = pathlib.Path(ctx.settings["scratch"]) / "mps"
    (root / "pipe").mkdir(parents=True, exist_ok=True)
    (root / "log").mkdir(parents=True, exist_ok=True)
    return os.environ | {"CUDA_MPS_PIPE_DIRECTORY": str(root / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(root / "log")}


def _main_py(ctx, tag: str, *args: str, env: dict | None = None) -> tuple[dict, float]:
    """``main.py -m finetune ARGS`` on the settings' data, device and shared store; returns its
    report and the process's wall seconds. Its output streams into the part's log as it comes
    (a part killed at its limit keeps it); a failure raises with its last line."""
    scratch = pathlib.Path(ctx.settings["scratch"])
    command = [sys.executable, str(REPO / "main.py"), "-m", "finetune", *args, "--device", ctx.settings["device"],
               "--store", str(scratch / "store"), "--out", str(scratch / tag), "--no-progress",
               "--data", ctx.settings["data"]]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    last = collections.deque(["no output"], maxlen=1)
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.strip():
                last.append(line.strip())
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{tag}: main.py exit code {process.returncode}: {last[0]}")
    return json.loads((scratch / tag / "finetune" / "report.json").read_text()), wall


def _record_evaluation(ctx, report: dict, wall: float) -> None:
    """What an end-to-end evaluation says of the GPU path: phases, accuracies, scores."""
    timing, sizes, original = report["timing"], report["sizes"], report["original"]
    train_images = sizes["retain"] + sizes["forget"]
    ctx.record("sizes", sizes)
    ctx.record("num_models", report["num_models"])
    ctx.record("precision", report["environment"].get("precision"))
    ctx.record("phases_seconds", {"startup": wall - report["wall_seconds"], **timing["phases"], "whole": wall})
    ctx.record("seconds_per_run", timing["runs_wall_seconds"] / report["num_models"])
    ctx.record("unlearn_seconds_mean", timing["unlearn_seconds_mean"])
    ctx.record("original_seconds", original["train_seconds"])
    ctx.record("original_accuracy", {
        "train": (original["retain_acc"] * sizes["retain"] + original["forget_acc"] * sizes["forget"]) / train_images,
        "test": original["test_acc"]})
    ctx.record("finetune_accuracy", {"retain": report["unlearned"]["retain_acc"],
                                     "test": report["unlearned"]["test_acc"]})
    ctx.record("retrained_accuracy", {"retain": report["retrained"]["retain_acc"],
                                      "test": report["retrained"]["test_acc"]})
    ctx.record("scores", {name: report["intervals"][name] for name in ("forget_quality", "final_score")
                          if name in report["intervals"]})
    ctx.record("retrain_clock_seconds", timing["retrain_seconds"])
    ctx.record("time_ratio", timing["time_ratio"])


def _workers_row(report: dict, wall: float) -> dict:
    timing, n = report["timing"], report["num_models"]
    return {"num_models": n, "runs_wall_seconds": timing["runs_wall_seconds"],
            "runs_per_hour": 3600 * n / timing["runs_wall_seconds"],
            "one_run_seconds": timing["unlearn_seconds_mean"], "command_seconds": wall,
            "threads": report["environment"]["threads"], "forget_quality": report["forget_quality"]}


def left_out_test_files() -> dict:
    """Test files whose top-level imports name a package this Python lacks: ``{path: package}``."""
    import ast

    left_out = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            missing = [n for n in names if importlib.util.find_spec(n.split(".")[0]) is None]
            if missing:
                left_out[path] = missing[0]
                break
    return left_out


def read_junit(path: pathlib.Path) -> tuple[dict, list[str]]:
    """``({tests, passed, failed, errors, skipped}, [failed test ids])`` from pytest's JUnit XML."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}, []
    counts = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), None)
        key = {"failure": "failed", "error": "errors", "skipped": "skipped"}.get(outcome, "passed")
        counts[key] += 1
        if key in ("failed", "errors"):
            failures.append(f"{case.get('classname')}::{case.get('name')}")
    return counts, failures


# ------------------------------------------------------------------------------------------ extrapolation
def extrapolate(parts: dict) -> tuple[dict, list[str]]:
    """The ``dev`` and ``full`` profiles' times from what the parts measured, each term with its
    arithmetic; what is missing is named. Pure: figures in, numbers and lines out."""
    figures = {name: part.get("figures", {}) for name, part in parts.items()}
    engine, e2e, workers, fp16 = (figures.get(n, {}) for n in ("engine", "end_to_end", "workers", "fp16"))
    derived, lines = {}, ["## Extrapolated to the `dev` and `full` profiles", ""]
    group = engine.get("zoo_group_size")
    per_reference, by_group = engine.get("seconds_per_reference", {}), engine.get("seconds_per_reference_by_group", {})
    if str(group) in by_group:
        reference_s = by_group[str(group)]
        best_label = min(per_reference, key=per_reference.get)
        derived["reference_seconds"] = {"zoo_group": reference_s, "best": per_reference[best_label],
                                        "best_variant": best_label, "goal": GOALS_S["reference"]}
        lines.append(f"- A reference (30 epochs x 45,000 images) amortised at the zoo's group of {group}: "
                     f"{reference_s:.2f} s (goal {GOALS_S['reference']:g} s); the fastest variant, {best_label}: "
                     f"{per_reference[best_label]:.2f} s.")
    else:
        reference_s = None
        lines.append("- References: not available (the engine part measured no rate at the zoo's group size).")

    speedup, best_k = workers.get("speedup_best", 1.0), workers.get("best_workers", 1)
    if not workers.get("by_workers"):
        lines.append("- `--workers`: not measured; runs are taken one at a time.")
    if "seconds_per_run" not in e2e:
        lines.append("- Runs and phases: not available (the end_to_end part did not finish).")
        return derived, lines
    sizes, phases = e2e["sizes"], e2e["phases_seconds"]
    retain_scale = DEV_TRAIN * (1 - FORGET_SHARE) / sizes["retain"]
    run_s = e2e["seconds_per_run"] * retain_scale  # a finetune run passes over the retain set; so does its scoring
    lines.append(f"- One finetune run on `dev` (45,000 retain images), inference included: "
                 f"{e2e['seconds_per_run']:.2f} s x 45,000 / {sizes['retain']:,} = {run_s:.1f} s; "
                 f"with --workers {best_k} (x{speedup:.2f} the runs per hour of --workers "
                 f"{workers.get('speedup_over_workers', 1)}): {run_s / speedup:.1f} s a run.")
    metric = engine.get("metric")
    if metric:
        scale = DEV_MODELS * DEV_TRAIN * FORGET_SHARE / (metric["models"] * metric["examples"])
        dev_metric = (metric["seconds"] + metric["intervals_seconds"]) * scale
        full_scale = FULL_MODELS * DEV_TRAIN * FORGET_SHARE / (metric["models"] * metric["examples"])
        full_metric = (metric["seconds"] + metric["intervals_seconds"]) * full_scale
        metric_text = (f"({metric['seconds']:.2f} + {metric['intervals_seconds']:.2f}) s at {metric['models']} x "
                       f"{metric['examples']:,}")
    else:
        dev_metric = full_metric = phases["scoring"]
        metric_text = f"the end-to-end scoring phase, {phases['scoring']:.1f} s, unscaled"
    dev_runs = DEV_MODELS * run_s / speedup
    dev_warm = phases["startup"] + dev_runs + dev_metric
    derived["dev_warm_seconds"] = dev_warm
    lines.append(f"- `-m finetune --profile dev` from a warm store: startup {phases['startup']:.1f} s + "
                 f"{DEV_MODELS} runs x {run_s:.1f} s / {speedup:.2f} = {dev_runs:.0f} s + metric and intervals "
                 f"{metric_text}, scaled to {DEV_MODELS} x 5,000: {dev_metric:.1f} s; **{dev_warm:.0f} s** "
                 f"(goal {GOALS_S['dev_warm']:.0f} s).")
    original_s = phases["original"] * DEV_TRAIN / (sizes["retain"] + sizes["forget"])
    if reference_s is not None:
        dev_cold = dev_warm + original_s + DEV_MODELS * reference_s + phases["retrain_clock"]
        derived["dev_cold_seconds"] = dev_cold
        lines.append(f"- The same from an empty store adds the original ({phases['original']:.1f} s x 50,000 / "
                     f"{sizes['retain'] + sizes['forget']:,} = {original_s:.0f} s), {DEV_MODELS} references x "
                     f"{reference_s:.2f} s = {DEV_MODELS * reference_s:.0f} s and the retrain clock "
                     f"{phases['retrain_clock']:.0f} s: **{dev_cold:.0f} s**.")
        inference = engine.get("inference_model_images_per_s", {}).get("one model at a time")
        reference_inference = FULL_MODELS * (DEV_TRAIN + DEV_TEST / 2) / inference if inference else 0.0
        terms = {"references": FULL_MODELS * reference_s, "their inference": reference_inference,
                 "runs": FULL_MODELS * run_s / speedup, "metric and intervals": full_metric,
                 "original, clock, startup": original_s + phases["retrain_clock"] + phases["startup"]}
        full = sum(terms.values())
        derived["full_seconds"] = full
        derived["full_terms_seconds"] = terms
        lines.append(f"- The full profile (N = 512): {FULL_MODELS} references x {reference_s:.2f} s = "
                     f"{terms['references'] / 60:.1f} min; their inference 512 x 55,000 model-images at "
                     f"{inference or 0:,.0f}/s = {reference_inference / 60:.1f} min; {FULL_MODELS} runs x "
                     f"{run_s:.1f} s / {speedup:.2f} = {terms['runs'] / 60:.1f} min; metric and intervals "
                     f"{full_metric / 60:.1f} min; "
                     f"the rest {terms['original, clock, startup'] / 60:.1f} min: **{full / 60:.0f} min** "
                     f"(goal {GOALS_S['full'] / 60:.0f} min).")
        if full > GOALS_S["full"]:
            largest = max(terms, key=terms.get)
            room = GOALS_S["full"] - (full - terms[largest])
            need = f"{terms[largest] / room:.1f}x faster" if room > 0 else "gone entirely, and still more"
            derived["full_needs"] = {"term": largest, "factor": terms[largest] / room if room > 0 else None}
            lines.append(f"- To reach {GOALS_S['full'] / 60:.0f} min with the rest unchanged, {largest} "
                         f"({terms[largest] / 60:.1f} min) would have to be {need}.")
    if fp16.get("original_accuracy") and e2e.get("original_accuracy"):
        derived["fp16_vs_default"] = {"original_test": [fp16["original_accuracy"]["test"],
                                                        e2e["original_accuracy"]["test"]],
                                      "original_seconds": [fp16["original_seconds"], e2e["original_seconds"]]}
        lines.append(f"- fp16 against {e2e.get('precision')}: the original's test accuracy "
                     f"{fp16['original_accuracy']['test']:.3f} against {e2e['original_accuracy']['test']:.3f}, trained "
                     f"in {fp16['original_seconds']:.1f} s against {e2e['original_seconds']:.1f} s.")
    mps = workers.get("mps")
    if isinstance(mps, dict) and workers.get("by_workers", {}).get(str(best_k)):
        plain = workers["by_workers"][str(best_k)]["runs_per_hour"]
        derived["mps_gain"] = mps["runs_per_hour"] / plain
        lines.append(f"- Under MPS, --workers {best_k}: {mps['runs_per_hour']:,.0f} runs per hour against {plain:,.0f} "
                     f"without (x{derived['mps_gain']:.2f}).")
    derived["suggested_cuda_defaults"] = {
        "workers": best_k,
        "zoo_group_size": int(min(by_group, key=by_group.get)) if by_group else None,
        "compile": bool(derived.get("reference_seconds", {}).get("best_variant", "").endswith("compiled")),
    }
    lines.append("- Suggested CUDA defaults from these figures: " + ", ".join(
        f"{k} {format_value(v)}" for k, v in derived["suggested_cuda_defaults"].items()) + ".")
    return derived, lines


# ------------------------------------------------------------------------------------------ command
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=parts_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 .npz or torchvision root (default: as main.py finds it)")
    p.add_argument("--out", help="where gpu_check.json, .md and .log go (default: $OUT, else results/gpu_check)")
    p.add_argument("--only", help="comma-separated parts to run (in their usual order)")
    p.add_argument("--dry-run", action="store_true", help="the same parts on CPU at tiny sizes (CI)")
    p.add_argument("--size", action="append", default=[], metavar="KEY=VALUE", help="change a size (see Sizes)")
    p.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS",
                   help="another time limit for a part (repeatable), e.g. with the full data set")
    p.add_argument("--scratch", help="folder for the parts' stores and outputs, kept (default: a temporary one)")
    return p.parse_args(argv)


class UsageError(Exception):
    """Bad input: one line, exit code 2, nothing run or written."""


def resolve(args) -> tuple[list[Part], Sizes, pathlib.Path]:
    """The parts to run (with their limits), the sizes and the data, checked before anything runs."""
    from methods.hyperparameters import SettingError, parse_settings

    chosen = parts(args.dry_run)
    names = [p.name for p in chosen]
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown or not wanted:
            raise UsageError(f"--only: unknown part {', '.join(unknown) or '(none given)'}; the parts are "
                             f"{', '.join(names)}")
        chosen = [p for p in chosen if p.name in wanted]
    size_names = [f.name for f in dataclasses.fields(Sizes)]
    unknown = [item.partition("=")[0] for item in args.size if item.partition("=")[0] not in size_names]
    if unknown:
        raise UsageError(f"--size: no size {unknown[0]!r}; the sizes are {', '.join(size_names)}")
    try:  # typed from the declarations, as main.py's --set
        sizes = dataclasses.replace(DRY if args.dry_run else Sizes(), **parse_settings(Sizes, args.size))
    except SettingError as e:
        raise UsageError(f"--size {e}") from None
    limits = {}
    for item in args.limit:
        name, _, seconds = item.partition("=")
        try:
            limits[name] = float(seconds)
        except ValueError:
            limits[name] = 0.0
        if name not in names or limits[name] <= 0:
            raise UsageError(f"--limit {item}: expected PART=SECONDS with a part of {', '.join(names)} and a "
                             "positive number")
    if not args.dry_run and not _has_cuda():
        raise UsageError("no CUDA device here; pass --dry-run to run the parts on CPU at tiny sizes")
    data = _data_path(args.data)
    if not data.exists():
        raise UsageError(f"{'--data ' + args.data if args.data else f'no CIFAR-10 at {data}'} does not exist: pass "
                         "--data PATH (an .npz or a torchvision root) or set UNLEARN_DATA")
    return [dataclasses.replace(p, limit_s=limits.get(p.name, p.limit_s)) for p in chosen], sizes, data


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        chosen, sizes, data = resolve(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out or os.environ.get("OUT") or REPO / "results" / NAME)
    scratch = pathlib.Path(args.scratch) if args.scratch else pathlib.Path(tempfile.mkdtemp(prefix=f"{NAME}_"))
    scratch.mkdir(parents=True, exist_ok=True)
    settings = {"dry": args.dry_run, "device": "cpu" if args.dry_run else "cuda", "data": str(data.resolve()),
                "scratch": str(scratch), "sizes": dataclasses.asdict(sizes)}
    title = "GPU check: dry run on CPU (tiny sizes; no GPU figure)" if args.dry_run else "GPU check"
    try:
        report = run_parts(chosen, settings, out, NAME, derive=extrapolate, title=title)
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    statuses = {name: part["status"] for name, part in report["parts"].items()}
    print(f"{NAME}: " + ", ".join(f"{name} {status}" for name, status in statuses.items()) + f"; {out / NAME}.md")
    return 0 if all(s == "ok" for s in statuses.values()) else 1


def _data_path(given: str | None) -> pathlib.Path:
    """Where main.py finds CIFAR-10 (``--data``, ``UNLEARN_DATA``, ``data/``); failing those,
    the shared copy beside the checkout, where the tests look too."""
    from data.cifar10 import ENV_VAR, resolve_source

    found = pathlib.Path(resolve_source(given)).expanduser()
    if given or os.environ.get(ENV_VAR) or found.exists():
        return found
    shared = REPO.parent / "shared" / "data" / "cifar10_jpeg.npz"
    return shared if shared.exists() else found


def _has_cuda() -> bool:
    """Asked in a child process: the runner itself never touches CUDA, so no CUDA error can stop it."""
    probe = subprocess.run([sys.executable, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"],
                           capture_output=True)
    return probe.returncode == 0


if __name__ == "__main__":
    sys.exit(main())
