"""main.py killed while it trains references: the store completes the zoo without loss."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import REPO, cifar_path

SMOKE = ["-m", "finetune", "--profile", "smoke", "--no-progress"]


def _env(**extra):
    env = dict(os.environ, UNLEARN_DATA=cifar_path(), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


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
