"""evaluation/submission.py through main.py --score-submission: what cannot be scored is refused
in one line (exit 2) before anything is written; a kit file naming other references is refused."""

import io
import json
import zipfile

import pytest
import torch
import torchvision

import main
from evaluation.competition_input import KIT_FILE
from evaluation.submission import RUNS_FILE, Submission, SubmissionError
from tests.helpers import cifar_path


def resnet_bytes(num_classes: int = 10) -> bytes:
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18(weights=None, num_classes=num_classes).state_dict(), buffer)
    return buffer.getvalue()


def make_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def score(tmp_path, zip_path, capsys, *extra) -> tuple[int, list[str]]:
    out, store = tmp_path / "out", tmp_path / "store"
    code = main.main(["--score-submission", str(zip_path), "--data", cifar_path(), "--out", str(out), "--store",
                      str(store), "--no-progress", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


RESNET = resnet_bytes()
CHECKPOINT = "kaggle/tmp/unlearned_checkpoint_{}.pth"


@pytest.mark.parametrize("members,message", [
    (None, "is not a zip archive"),
    ({CHECKPOINT.format(i): RESNET for i in range(2)}, "holds 2 checkpoints; scoring needs at least 3"),
    ({CHECKPOINT.format(i): RESNET for i in (0, 1, 3)}, "numbered 0..2; 2 missing"),
    ({**{CHECKPOINT.format(i): RESNET for i in range(3)}, "notes.txt": b"x"}, "'notes.txt' is not named"),
    ({CHECKPOINT.format(i): b"junk" for i in range(3)}, "unlearned_checkpoint_0.pth is not a state dict torch can"),
    ({CHECKPOINT.format(0): resnet_bytes(5), **{CHECKPOINT.format(i): b"junk" for i in (1, 2)}},
     "has 5 classes; this data set has 10"),
])
def test_what_cannot_be_scored_is_one_line_and_exit_2_with_nothing_written(tmp_path, capsys, members, message):
    path = tmp_path / "submission.zip"
    if members is None:
        path.write_text("not a zip")
    else:
        make_zip(path, members)
    code, err = score(tmp_path, path, capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def test_a_kit_file_naming_other_references_is_refused(tmp_path, capsys):
    path = make_zip(tmp_path / "submission.zip", {CHECKPOINT.format(i): RESNET for i in range(3)})
    kit = {"profile": "smoke", "split_seed": 0, "data_fingerprint": "0" * 16, "device": "cpu", "precision": "fp32",
           "original_key": "0" * 24}
    (tmp_path / KIT_FILE).write_text(json.dumps(kit))
    code, err = score(tmp_path, path, capsys)
    assert code == 2 and len(err) == 1
    assert "was made from another data (fingerprint) than the references here" in err[0]
    code, err = score(tmp_path, path, capsys, "--profile", "quick")
    assert code == 2 and "another profile" in err[0] and "'smoke'" in err[0]
    assert not (tmp_path / "out").exists()


def test_recorded_seconds_cover_every_checkpoint_or_count_as_not_recorded(tmp_path):
    path = make_zip(tmp_path / "submission.zip", {CHECKPOINT.format(i): RESNET for i in range(3)})
    assert Submission.open(path, 10).recorded_seconds() == (None, None, None)  # no runs file
    runs = [{"index": i, "seconds": 1.5 + i, "device": "cuda"} for i in (2, 0, 1)]
    (tmp_path / RUNS_FILE).write_text(json.dumps({"device": "cuda", "machine": "H100", "runs": runs}))
    assert Submission.open(path, 10).recorded_seconds() == ((1.5, 2.5, 3.5), "cuda", "H100")
    (tmp_path / RUNS_FILE).write_text(json.dumps({"device": "cuda", "runs": runs[:2]}))
    assert Submission.open(path, 10).recorded_seconds() == (None, None, None)
    (tmp_path / RUNS_FILE).write_text("{")
    with pytest.raises(SubmissionError, match="cannot be read as JSON"):
        Submission.open(path, 10)
