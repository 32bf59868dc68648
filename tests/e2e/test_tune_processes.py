"""tune.py in two processes at once on one journal: the study ends with the trials of both."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO, cifar_path


def test_two_processes_share_one_study(tmp_path, smoke_store):
    argv = [sys.executable, "tune.py", "-m", "finetune", "--profile", "smoke", "--space", "epochs=1:2", "--data",
            cifar_path(), "--store", str(smoke_store), "--out", str(tmp_path), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    processes = [subprocess.Popen(argv + ["--trials", "1", "--sampler-seed", str(k)], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    out = tmp_path / "tune" / "finetune"
    assert [p.name for p in out.glob("*.journal")] == ["study.journal"]
    subprocess.run(argv + ["--trials", "0"], cwd=REPO, env=env, check=True, capture_output=True)  # files from both
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1] and all(t["state"] == "complete" for t in trials)
