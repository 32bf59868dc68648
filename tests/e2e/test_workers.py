"""main.py --workers: real processes over gloo give one process's numbers, and a worker past its
limit or killed stops them all."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from evaluation.report import read_report
from tests.helpers import REPO, cifar_path

SMOKE = ["-m", "finetune", "--profile", "smoke", "--no-progress"]


def _env(**extra):
    env = dict(os.environ, UNLEARN_DATA=cifar_path(), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _report(out):
    return read_report(pathlib.Path(out) / "saliency_guided" / "report.json")


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            pass
    return pids


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """The smoke evaluation of saliency_guided (4 steps a run; it keeps a round log) in one
    process and with ``--workers 2``, one thread each. The two evaluations run at the same
    time, each with its own store: nothing they report depends on the clock but the times."""
    tmp = tmp_path_factory.mktemp("workers")
    method = ["-m", "saliency_guided", "--profile", "smoke", "--no-progress", "--set", "max_steps=4",
              "--set", "check_examples=32"]
    started = {name: subprocess.Popen([sys.executable, "main.py", *method, "--threads", "1", *extra, "--out",
                                       str(tmp / name), "--store", str(tmp / f"store_{name}")],
                                      cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, extra in (("one", []), ("two", ["--workers", "2"]))}
    runs = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=600)
        runs[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return tmp, runs


@pytest.mark.slow
def test_two_workers_give_the_numbers_of_one_process(two_workers):
    """Each worker trains and runs its share; the report equals a single process's."""
    tmp, runs = two_workers
    assert runs["one"].returncode == 0, runs["one"].stderr[-2000:]
    assert runs["two"].returncode == 0, runs["two"].stderr[-3000:]
    one, two = _report(tmp / "one"), _report(tmp / "two")
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["environment"]["threads"] == two["environment"]["threads"] == 1
    for key in ("forget_quality", "final_score", "epsilons", "mia", "intervals"):
        assert one[key] == two[key], key
    for side in ("unlearned", "retrained", "original"):
        for key in ("retain_acc_per_model", "test_acc_per_model", "forget_acc_per_model"):
            assert one[side][key] == two[side][key], (side, key)
    assert one["unlearned"]["forget_confs"] == two["unlearned"]["forget_confs"]
    # every run's round log came back from the worker that ran it, in run order
    assert len(one["round_log"]) == 3 and all(log[0]["round"] == 0 and log[-1]["stop"] for log in one["round_log"])
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in log] for log in (one["round_log"])]
    assert untimed == [[{k: v for k, v in r.items() if k != "seconds"} for r in log] for log in two["round_log"]]
    # both workers wrote their models to the shared store; only the first wrote the report
    assert len(list((tmp / "store_two").glob("*.pt"))) == 1 + 3
    assert runs["two"].stdout.count("report:") == 1


@pytest.mark.slow
def test_a_worker_past_its_time_limit_fails_the_method_and_leaves_no_process(two_workers):
    tmp, _ = two_workers
    out = tmp / "timeout"
    run = subprocess.run([sys.executable, "main.py", *SMOKE, "--workers", "2", "--method-timeout", "0.2", "--out",
                          str(out), "--store", str(tmp / "store_two")], cwd=REPO, env=_env(), capture_output=True,
                         text=True, timeout=300)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1 and len(errors) == 1, run.stderr[-2000:]
    assert "finetune failed: run 0: ran past its time limit of 0.2 s" in errors[0]
    assert json.loads((out / "finetune" / "report.json").read_text())["status"] == "failed"
    assert _processes_mentioning(str(out)) == []


@pytest.mark.slow
def test_a_killed_worker_stops_the_others_with_a_one_line_reason(two_workers):
    tmp, _ = two_workers
    out = tmp / "killed"
    launcher = subprocess.Popen([sys.executable, "main.py", *SMOKE, "--workers", "2", "--out", str(out), "--store",
                                 str(tmp / "store_two")], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(workers := [p for p in _processes_mentioning(str(out))
                                                    if p != launcher.pid]) < 2:
        time.sleep(0.1)
    assert len(workers) == 2, "both workers should have started"
    os.kill(max(workers), signal.SIGKILL)
    _, err = launcher.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert launcher.returncode == 1 and len(errors) == 1, err[-2000:]
    assert "died (SIGKILL)" in errors[0]
    assert _processes_mentioning(str(out)) == []
