"""The competitor's loop on smoke: the kit writes the competition's input, the exported notebook
runs on it in a real kernel, and main.py scores its submission.zip as it scores -m NAME."""

import json

import nbformat
import torch
from nbclient import NotebookClient

import main
import notebook_utils as nu
from evaluation.competition_input import KIT_FILE
from tests.helpers import cifar_path

N = 3
SETTINGS = ["epochs=1"]


def test_a_notebooks_submission_is_scored_against_the_references_of_minus_m(tmp_path, smoke_store, capsys,
                                                                             monkeypatch):
    common = ["--profile", "smoke", "--data", cifar_path(), "--store", str(smoke_store), "--no-progress"]
    assert main.main(["--write-competition-input", str(tmp_path / "input"), *common]) == 0
    notebook = nbformat.read(str(nu.write_notebook("finetune", tmp_path / "finetune.ipynb", settings=SETTINGS)),
                             as_version=4)
    for name, value in {"UNLEARN_INPUT_DIR": tmp_path / "input", "UNLEARN_CHECKPOINT_DIR": tmp_path / "tmp",
                        "UNLEARN_OUTPUT_DIR": tmp_path / "working", "UNLEARN_N_CHECKPOINTS": N,
                        "OMP_NUM_THREADS": torch.get_num_threads()}.items():
        monkeypatch.setenv(name, str(value))
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    submission = tmp_path / "working" / "submission.zip"
    assert (tmp_path / "working" / KIT_FILE).read_text() == (tmp_path / "input" / KIT_FILE).read_text()

    out = tmp_path / "out"
    assert main.main(["--score-submission", str(submission), "--out", str(out), *common[2:]]) == 0
    assert main.main(["-m", "finetune", *[f"--set={s}" for s in SETTINGS], "--out", str(out), *common]) == 0
    scored = json.loads((out / "submission" / "report.json").read_text())
    minus_m = json.loads((out / "finetune" / "report.json").read_text())
    assert scored["num_models"] == N and scored["submission"]["origin"].startswith("checked")
    for key in ("profile", "seed", "data", "retrained", "original"):  # the same references
        assert scored[key] == minus_m[key], key
    # finetune is deterministic on CPU: the notebook's runs are the kit's runs
    assert scored["epsilons"] == minus_m["epsilons"]
    assert scored["unlearned"]["retain_acc_per_model"] == minus_m["unlearned"]["retain_acc_per_model"]
    timing = scored["timing"]  # recorded on this device class: compared with the gate
    assert len(timing["unlearn_seconds"]) == N and timing["time_ratio"] > 0 and "note" not in timing
    assert scored["submission"]["projected_seconds"] == sum(timing["unlearn_seconds"]) / N * 512
    assert "competition time  512 runs at" in capsys.readouterr().out

    # Without the kit file beside it: scored against the profile and seed given, with a warning.
    (tmp_path / "working" / KIT_FILE).unlink()
    code = main.main(["--score-submission", str(submission), "--name", "unchecked", "--out", str(out), *common])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and [line for line in err if KIT_FILE in line] == [
        f"warning: {submission} has no unlearn_kit.json beside it: its origin cannot be checked; scoring it against "
        "the profile and seed given"]
    unchecked = json.loads((out / "unchecked" / "report.json").read_text())
    assert unchecked["submission"]["origin"].startswith("not checked") and unchecked["epsilons"] == scored["epsilons"]
