"""A Kaggle submission, read as the organisers read it: ``submission.zip``'s checkpoints.

The zip holds ``unlearned_checkpoint_<i>.pth`` for i = 0..N-1 (under any folder, as
``zip submission.zip /kaggle/tmp/*.pth`` stores them), each a ResNet-18 state dict. At
N = 512 it is about 23 GB, so it is never extracted: each checkpoint is read from the
archive when it is scored, with ``weights_only=True``. Beside it the notebook leaves what
the organisers never saw and the kit's scorer uses: ``submission_runs.json`` (each run's
seconds and device) and, when its input came from ``main.py --write-competition-input``,
that input's ``unlearn_kit.json`` (which references it belongs to).

Everything that can be checked before the work is checked when the zip is opened
(``Submission.open``): the archive, the names, the indices, their count, the first
checkpoint's weights. A bad input is a ``SubmissionError``: one line, nothing written.
"""

from __future__ import annotations

import io
import json
import pathlib
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .competition_input import KIT_FILE

RUNS_FILE = "submission_runs.json"
CHECKPOINT = re.compile(r"(?:.*/)?unlearned_checkpoint_(\d+)\.pth")
MIN_CHECKPOINTS = 3  # the metric's own minimum (ln(N - 1) >= 0.5)
COMPETITION_RUNS, COMPETITION_SECONDS = 512, 8 * 3600  # the competition's N, and its notebook's time limit
# What a kit file must agree on with the references it is scored against, and how to say so.
ORIGIN_FIELDS = {"profile": "profile", "split_seed": "split seed", "data_fingerprint": "data (fingerprint)",
                 "device": "device class", "precision": "precision", "original_key": "original model (store key)"}


class SubmissionError(Exception):
    """The zip cannot be scored; the message says why (one line)."""


@dataclass(frozen=True)
class Submission:
    """An opened submission: its checkpoints in index order, and the files found beside it."""

    path: pathlib.Path
    members: tuple[str, ...]  # the archive's checkpoint names, checkpoint i at position i
    kit: dict | None  # unlearn_kit.json beside the zip
    runs: dict | None  # submission_runs.json beside the zip

    @property
    def num_models(self) -> int:
        return len(self.members)

    @classmethod
    def open(cls, path, num_classes: int) -> "Submission":
        """Checks the archive, its names and the first checkpoint (a ResNet-18 with
        ``num_classes`` outputs) and reads the files beside it."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise SubmissionError(f"{path} is not a file")
        if not zipfile.is_zipfile(path):
            raise SubmissionError(f"{path} is not a zip archive")
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
        indexed = {}
        for name in names:
            match = CHECKPOINT.fullmatch(name)
            if match is None:
                raise SubmissionError(f"{path}: {name!r} is not named unlearned_checkpoint_<i>.pth")
            index = int(match.group(1))
            if index in indexed:
                raise SubmissionError(f"{path}: checkpoint {index} appears twice ({indexed[index]!r}, {name!r})")
            indexed[index] = name
        if len(indexed) < MIN_CHECKPOINTS:
            raise SubmissionError(f"{path} holds {len(indexed)} checkpoints; scoring needs at least "
                                  f"{MIN_CHECKPOINTS} (the metric's minimum N)")
        missing = sorted(set(range(len(indexed))) - set(indexed))
        if missing:
            raise SubmissionError(f"{path}: the checkpoints must be numbered 0..{len(indexed) - 1}; "
                                  f"{', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''} missing")
        submission = cls(path, tuple(indexed[i] for i in range(len(indexed))), _beside(path, KIT_FILE),
                         _beside(path, RUNS_FILE))
        next(submission.state_dicts(num_classes))  # the first one, before any model is trained
        return submission

    def state_dicts(self, num_classes: int, device="cpu") -> Iterator[dict]:
        """Each checkpoint's state dict in index order, read from the archive one at a time and
        checked (a ResNet-18 with ``num_classes`` outputs, finite weights)."""
        from training.model import empty_model

        expected = {k: v.shape for k, v in empty_model(num_classes, "meta").state_dict().items()}
        with zipfile.ZipFile(self.path) as archive:
            for name in self.members:
                try:
                    state = torch.load(io.BytesIO(archive.read(name)), map_location=device, weights_only=True)
                except Exception as e:  # noqa: BLE001 - pickle, zip and torch each raise their own
                    raise SubmissionError(f"{self.path}: {name} is not a state dict torch can load with "
                                          f"weights_only=True ({type(e).__name__}: {e})") from None
                _check_state(state, expected, num_classes, f"{self.path}: {name}")
                yield state

    def check_origin(self, expected: dict) -> str:
        """Refuses a kit file that names other references than ``expected``
        (``competition_input.kit_description``); says what was checked."""
        if self.kit is None:
            return (f"not checked: no {KIT_FILE} beside the zip, so the submission's origin cannot be checked; "
                    "scored against the profile and seed given")
        for key, what in ORIGIN_FIELDS.items():
            if self.kit.get(key) != expected[key]:
                raise SubmissionError(f"{self.path} was made from another {what} than the references here: its "
                                      f"{KIT_FILE} says {self.kit.get(key)!r}, these references {expected[key]!r}")
        return f"checked: {KIT_FILE} names these references' profile, seed, data, device class, precision and original"

    def recorded_seconds(self) -> tuple[tuple[float, ...] | None, str | None, str | None]:
        """``(seconds per run in index order, device class, machine)`` from the runs file, or
        Nones where it is missing or does not cover every checkpoint."""
        runs = (self.runs or {}).get("runs")
        try:
            by_index = {int(r["index"]): float(r["seconds"]) for r in runs}
        except (TypeError, KeyError, ValueError):
            return None, None, None
        if sorted(by_index) != list(range(self.num_models)):
            return None, None, None
        return tuple(by_index[i] for i in range(self.num_models)), self.runs.get("device"), self.runs.get("machine")


def _beside(path: pathlib.Path, name: str) -> dict | None:
    other = path.parent / name
    if not other.is_file():
        return None
    try:
        return json.loads(other.read_text())
    except (OSError, ValueError) as e:
        raise SubmissionError(f"{other} cannot be read as JSON: {e}") from None


def _check_state(state, expected: dict, num_classes: int, where: str) -> None:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SubmissionError(f"{where} is not a state dict (a dict of tensors)")
    if set(state) != set(expected):
        odd = sorted(set(state) ^ set(expected))
        raise SubmissionError(f"{where} is not a ResNet-18 state dict: {', '.join(odd[:3])}"
                              f"{' ...' if len(odd) > 3 else ''} differ")
    if state["fc.weight"].shape[0] != num_classes:
        raise SubmissionError(f"{where} has {state['fc.weight'].shape[0]} classes; this data set has {num_classes}")
    wrong = [k for k in expected if state[k].shape != expected[k]]
    if wrong:
        raise SubmissionError(f"{where}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, a ResNet-18's is "
                              f"{tuple(expected[wrong[0]])}")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise SubmissionError(f"{where} holds NaN or infinite weights")
