"""What a method scores through its Kaggle notebook against what ``main.py -m NAME`` gives it.

For each method: ``main.py -m NAME`` on the profile and split seed; the competition's input
written from the same store (``--write-competition-input``); the method's notebook exported
and executed on it in a real kernel, N checkpoints; its ``submission.zip`` scored
(``--score-submission``, as ``NAME_notebook``). Then F, the final score and the accuracies of
both paths side by side with their intervals, and the paired difference (notebook - kit),
as ``OUT/agreement.md`` and ``OUT/agreement.json``. Every step whose output exists is skipped,
so the same command resumes an interrupted measurement.

    python benchmarks/submission_agreement.py -m finetune,sebastian --profile cpu --seed 3 \\
        --store ../unlearn-store --out ../agreement --threads 1
    python benchmarks/submission_agreement.py -m finetune --dataset faces --data FACES_DIR --profile smoke \\
        --num-models 8 --store ../unlearn-store --out ../agreement-faces

A deterministic method (finetune on a CPU, at the same threads) gives the same models both
ways, so the same point values; the intervals differ by their bootstrap draws, which are
seeded by the method's name. Other methods agree within their intervals.
"""

import _checkout  # noqa: F401 - finds the kit from benchmarks/
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from _checkout import REPO

SCORES = ("forget_quality", "final_score", "retain_acc", "test_acc", "forget_acc")


def step(label: str, done: pathlib.Path, argv: list[str], env: dict | None = None) -> None:
    """Runs ``argv`` unless ``done`` exists (a finished step of an earlier, interrupted run)."""
    if done.exists():
        print(f"{label}: done before ({done})", flush=True)
        return
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0 or not done.exists():
        raise SystemExit(f"{label} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    print(f"{label}: {time.perf_counter() - started:.0f} s", flush=True)


def execute_notebook(notebook: pathlib.Path, input_dir: pathlib.Path, work: pathlib.Path, n: int,
                     threads: int | None) -> None:
    """Runs the notebook in a kernel, as a competitor runs it, writing into ``work``."""
    import nbformat
    from nbclient import NotebookClient

    env = {"UNLEARN_INPUT_DIR": str(input_dir), "UNLEARN_CHECKPOINT_DIR": str(work / "tmp"),
           "UNLEARN_OUTPUT_DIR": str(work / "working"), "UNLEARN_N_CHECKPOINTS": str(n)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    os.environ.update(env)
    NotebookClient(nbformat.read(str(notebook), as_version=4), timeout=None, kernel_name="python3").execute()


def agreement(out: pathlib.Path, names: list[str]) -> dict:
    from evaluation.comparison import difference, paired_differences
    from evaluation.report import read_report
    from evaluation.result import Result

    rows, pairs = {}, {}
    for name in names:
        kit = Result.from_json(read_report(out / "kit" / name / "report.json"))
        notebook = Result.from_json(read_report(out / "scored" / f"{name}_notebook" / "report.json"))
        diffs = paired_differences([notebook, kit])
        rows[name] = {path: {score: (r.intervals[score].to_json() if score in r.intervals else {"value": getattr(
            r, score)}) for score in SCORES} | {"seconds_per_run": r.timing.unlearn_seconds_mean}
            for path, r in (("kit", kit), ("notebook", notebook))}
        pairs[name] = {score: difference(diffs, notebook.method, kit.method, score).to_json()
                       for score in ("forget_quality", "final_score")}
        pairs[name]["same_epsilons"] = bool((kit.epsilons == notebook.epsilons).all())
    return {"rows": rows, "differences": pairs}


def markdown(result: dict, context: str) -> str:
    def cell(d):
        return f"{d['value']:.4f}" + (f" [{d['low']:.4f}, {d['high']:.4f}]" if "low" in d else "")

    lines = [context, "", "| method | path | F | final score | retain acc | test acc | forget acc | s per run |",
             "|---|---|---|---|---|---|---|---|"]
    for name, paths in result["rows"].items():
        for path, row in paths.items():
            lines.append(f"| {name} | {path} | " + " | ".join(cell(row[s]) for s in SCORES)
                         + f" | {row['seconds_per_run']:.1f} |")
    lines += ["", "| method | F: notebook - kit | final score: notebook - kit | same epsilons |", "|---|---|---|---|"]
    for name, d in result["differences"].items():
        lines.append(f"| {name} | {cell(d['forget_quality'])} | {cell(d['final_score'])} | "
                     f"{'yes' if d['same_epsilons'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--methods", required=True, help="comma-separated registered methods")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seed", type=int, default=3, help="split seed")
    p.add_argument("--num-models", type=int, help="N (default: the profile's)")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--data")
    p.add_argument("--store", required=True, help="checkpoint store, outside the checkout")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, help="CPU threads of every process and of the notebook's kernel")
    args = p.parse_args(argv)
    out, names = pathlib.Path(args.out), [m for m in args.methods.split(",") if m]
    common = ["--profile", args.profile, "--seed", str(args.seed), "--dataset", args.dataset, "--store", args.store,
              "--no-progress"] + (["--data", args.data] if args.data else []) + (
        ["--threads", str(args.threads)] if args.threads else [])
    n_models = ["--num-models", str(args.num_models)] if args.num_models else []
    main_py = [sys.executable, str(REPO / "main.py")]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    input_dir = out / "input"
    step("competition input", input_dir / "unlearn_kit.json",
         main_py + ["--write-competition-input", str(input_dir), *common], env)
    n = args.num_models or json.loads((input_dir / "unlearn_kit.json").read_text())["num_models"]
    for name in names:
        step(f"{name}: -m", out / "kit" / name / "report.json",
             main_py + ["-m", name, "--out", str(out / "kit"), *common, *n_models], env)
        notebook, work = out / "notebooks" / f"{name}.ipynb", out / "notebooks" / name
        step(f"{name}: export", notebook, [sys.executable, str(REPO / "notebook_utils.py"), "-m", name, "-o",
                                           str(notebook)], env)
        zip_path = work / "working" / "submission.zip"
        if zip_path.exists():
            print(f"{name}: notebook done before ({zip_path})", flush=True)
        else:
            started = time.perf_counter()
            execute_notebook(notebook, input_dir, work, n, args.threads)
            print(f"{name}: notebook, {n} checkpoints: {time.perf_counter() - started:.0f} s", flush=True)
        step(f"{name}: --score-submission", out / "scored" / f"{name}_notebook" / "report.json",
             main_py + ["--score-submission", str(zip_path), "--name", f"{name}_notebook", "--out",
                        str(out / "scored"), *common], env)
    result = agreement(out, names)
    machine = json.loads((out / "kit" / names[0] / "report.json").read_text())["timing"]["retrain_clock"]["machine"]
    context = (f"{', '.join(names)} on {args.dataset}, profile {args.profile}, split seed {args.seed}, N = {n}; "
               f"{machine}, {time.strftime('%Y-%m-%d')}; intervals 95%")
    (out / "agreement.json").write_text(json.dumps(result | {"context": context}, indent=1))
    (out / "agreement.md").write_text(markdown(result, context))
    print(markdown(result, context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
