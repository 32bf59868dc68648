"""Unlearning runs per hour with K processes on one device (``main.py --workers K``).

For each K, runs ``python main.py -m METHOD --workers K`` against one store (the first
call trains what the store lacks; run once beforehand to keep training out of the
timings) and reads from each report the wall time of its N runs
(``timing.runs_wall_seconds``) and each run's own time. Prints runs per hour, the
speed-up over K = 1 and the mean time of one run, and checks that every K gave the
same F (the numbers never depend on K at the same threads per process).

    python benchmarks/workers_throughput.py --method finetune --profile dev --workers 1,2,4,8,12 --store checkpoints
    python benchmarks/workers_throughput.py --profile quick --workers 1,2 --num-models 4 --threads 1   # 2-core CPU
"""

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(method: str, profile: str, workers: int, store: str, out: pathlib.Path, extra: list[str]) -> dict:
    argv = [sys.executable, str(REPO / "main.py"), "-m", method, "--profile", profile, "--workers", str(workers),
            "--store", store, "--out", str(out), "--no-progress", *extra]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"--workers {workers} failed:\n{done.stderr[-2000:]}")
    return json.loads((out / method / "report.json").read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="finetune")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--workers", default="1,2", help="comma-separated K values")
    p.add_argument("--store", default=str(REPO / "checkpoints"))
    p.add_argument("--num-models", type=int)
    p.add_argument("--threads", type=int, help="CPU threads per process (default: the cores split among K)")
    args = p.parse_args(argv)
    extra = (["--num-models", str(args.num_models)] if args.num_models else []) + (
        ["--threads", str(args.threads)] if args.threads else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(v) for v in args.workers.split(",")):
            report = run(args.method, args.profile, k, args.store, pathlib.Path(tmp) / f"k{k}", extra)
            timing = report["timing"]
            rows.append((k, report["num_models"], timing["runs_wall_seconds"], timing["unlearn_seconds_mean"],
                         report["forget_quality"], report["environment"]))
    env = rows[0][5]
    print(f"{args.method}, profile {args.profile}, N = {rows[0][1]}; device {env['device']} "
          f"{env.get('gpu', platform.processor() or platform.machine())}, torch {env['torch']}")
    print("| K | threads per process | runs wall (s) | runs per hour | speed-up | one run (s) | F |")
    print("|---|---|---|---|---|---|---|")
    base = rows[0][1] / rows[0][2]
    for k, n, wall, one, f, e in rows:
        print(f"| {k} | {e['threads']} | {wall:.1f} | {3600 * n / wall:.0f} | {n / wall / base:.2f}x | {one:.1f} | "
              f"{f:.4f} |")
    if len({round(r[4], 12) for r in rows}) > 1:
        print("note: F differs between K; compare at the same --threads")


if __name__ == "__main__":
    main()
