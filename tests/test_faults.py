"""Scale-out and fault handling: torchrun, killed runs, corrupt checkpoints, bad methods, bad input."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import main
from evaluation import session
from evaluation.leaderboard import Row
from evaluation.report import read_report
from methods import BaseMethod
from tests.conftest import REPO, cifar_path, contestants

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


@pytest.mark.slow
def test_killed_zoo_training_resumes_without_loss(cifar, tmp_path):
    """main.py killed while it trains references; the same store then completes the zoo
    (here by the zoo directly, without the runs that would follow) reusing every model
    finished before the kill, and every stored model loads and matches its hash."""
    from data import SplitTensors, make_splits
    from evaluation.profiles import PROFILES
    from evaluation.store import CheckpointStore
    from evaluation.zoo import Zoo

    store = tmp_path / "store"
    argv = [sys.executable, "main.py", *SMOKE, "--num-models", "4", "--out", str(tmp_path / "out"),
            "--store", str(store)]
    proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len([p for p in store.glob("*.json") if p.name != "manifest.json"]) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.stem: json.loads(p.read_text())["sha256"] for p in store.glob("*.json") if p.name != "manifest.json"}
    assert 3 <= len(finished) < 1 + 4, "the kill should land while references are being trained"

    profile = PROFILES["smoke"].with_models(4)
    splits = make_splits(len(cifar.y_train), len(cifar.y_test), 0, train_subset=profile.train_subset,
                         test_subset=profile.test_subset)
    zoo = Zoo(cifar, splits, profile, SplitTensors.build(cifar, splits, torch.device("cpu")),
              CheckpointStore(store), progress=False)
    zoo.original()
    zoo.ensure_retrained(range(4))
    after = {p.stem: json.loads(p.read_text()) for p in store.glob("*.json") if p.name != "manifest.json"}
    assert len(after) == 1 + 4
    for key, sha in finished.items():  # every model finished before the kill was reused as it was
        assert after[key]["sha256"] == sha
    s = CheckpointStore(store)
    for key in after:  # nothing half-written: every stored model matches its hash and loads
        s.load(key)


def test_corrupt_checkpoint_is_reported_and_retrained(cifar, tmp_path, capsys):
    from data import SplitTensors, make_splits
    from evaluation.profiles import PROFILES
    from evaluation.store import CheckpointStore
    from evaluation.zoo import Zoo

    profile = PROFILES["smoke"]
    splits = make_splits(len(cifar.y_train), len(cifar.y_test), 0, train_subset=300, test_subset=200)
    zoo = Zoo(cifar, splits, profile, SplitTensors.build(cifar, splits, torch.device("cpu")),
              CheckpointStore(tmp_path), progress=False)
    _, record = zoo.retrained(0)
    weights = tmp_path / f"{record['key']}.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    _, again = zoo.retrained(0)
    assert "does not match its recorded hash" in capsys.readouterr().err
    assert again["sha256"] == record["sha256"]  # retrained deterministically, and stored whole again
    CheckpointStore(tmp_path).load(record["key"])


class Hangs(BaseMethod):
    def __init__(self):
        super().__init__("hangs")

    def run(self, net, retain_loader, forget_loader, val_loader):
        while True:
            time.sleep(0.01)


class Shrinks(BaseMethod):
    """Finishes at once: the method that must still run after one that hangs."""

    def __init__(self):
        super().__init__("shrinks")

    def run(self, net, retain_loader, forget_loader, val_loader):
        with torch.no_grad():
            net.fc.weight.mul_(0.9)


def test_hanging_method_fails_after_its_time_limit_and_the_run_goes_on(mini_zoo, tmp_path):
    context = {"profile": mini_zoo.profile.to_json(), "gate": 0.2, "environment": {"device": "cpu"}}
    started = time.time()
    result = session.run_leaderboard(contestants(hangs=Hangs, shrinks=Shrinks), mini_zoo, tmp_path, context, gate=0.2,
                                     progress=False, time_limit_s=5.0)
    rows = {r.method: r for r in result["rows"]}
    assert rows["hangs"].status == "failed" and "time limit of 5 s" in rows["hangs"].error
    assert rows["shrinks"].status == "ok" and (tmp_path / "shrinks" / "report.json").exists()
    assert time.time() - started < 600


def test_single_method_failure_is_written_to_the_report(tmp_path, smoke_store, monkeypatch, capsys):
    import methods

    class Broken(BaseMethod):
        def __init__(self):
            super().__init__("broken")

        def run(self, net, retain_loader, forget_loader, val_loader):
            with torch.no_grad():
                net.conv1.weight.fill_(float("inf"))

    monkeypatch.setitem(methods._REGISTRY, "broken", Broken)
    monkeypatch.setattr(methods, "_import_all", lambda: None)
    out = tmp_path / "out"
    code = main.main(["-m", "broken", "--profile", "smoke", "--data", cifar_path(), "--out", str(out),
                      "--store", str(smoke_store), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite weights" in err[0]
    report = json.loads((out / "broken" / "report.json").read_text())
    assert report["status"] == "failed" and "NaN or infinite" in report["reason"]


@pytest.mark.parametrize(
    "make_data, message",
    [
        (lambda p: p.write_bytes(b"not an npz at all"), "cannot read"),
        (lambda p: np.savez(p, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 2, 12]),
                            x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.array([0, 1])), "0..9"),
    ],
)
def test_bad_data_is_one_line_exit_2_and_nothing_written(make_data, message, tmp_path, capsys):
    path = tmp_path / "data.npz"
    make_data(path)
    out, store = tmp_path / "out", tmp_path / "store"
    assert main.main(["-m", "finetune", "--data", str(path), "--out", str(out), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not store.exists()


def test_checkpoints_are_only_loaded_with_weights_only():
    calls = []
    for path in list(REPO.glob("*.py")) + list(REPO.glob("*/*.py")) + list(REPO.glob("*.ipynb")):
        if path.parts[-2] == "tests":
            continue
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^\n]*)", text):
            calls.append((path.name, match.group(1)))
    assert calls, "no checkpoint loading found at all"
    for name, args in calls:
        assert "weights_only=True" in args, f"{name}: torch.load({args}"


def test_failed_row_keeps_the_first_line_of_the_reason():
    assert Row.failed("m", "run 0: boom\ntrace").error == "run 0: boom"
