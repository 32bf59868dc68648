"""evaluation/retrain_clock.py: the gate's yardstick, the starter kit's retrain time, measured once
per store and machine."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from data import make_splits
from evaluation import retrain_clock
from evaluation.store import CheckpointStore
from tests.helpers import mini_profile
from training import starter_kit
from training.recipe import TrainRecipe


def test_extrapolate_scales_the_rate_to_the_whole_recipe():
    recipe = TrainRecipe(epochs=30, batch_size=256)
    assert retrain_clock.extrapolate(1000.0, recipe, 45_000) == pytest.approx(1350.0)


def test_measure_times_windows_at_the_starter_kits_batch_and_keeps_the_median(cifar, monkeypatch):
    steps, batches = [], []
    real_step, real_train = torch.optim.SGD.step, starter_kit.train

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    def recording_train(images, labels, recipe, *args, **kwargs):
        batches.append(recipe.batch_size)
        return real_train(images, labels, recipe, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", counting_step)
    monkeypatch.setattr(starter_kit, "train", recording_train)
    images, labels = cifar.x_train[:200], cifar.y_train[:200]
    # the profile's batch is 32, the clock's the starter kit's 128: 2 steps per epoch, so
    # warm-up 2 + 3 windows of 1 step need three passes over the data
    reading = retrain_clock.measure(images, labels, TrainRecipe(epochs=1, batch_size=32), "cpu", 10, timed_steps=3,
                                    warmup=2)
    assert batches == [128] and len(steps) == 5
    assert reading.timed_steps == 3 and len(reading.window_rates) == 3
    assert reading.images_per_second == pytest.approx(sorted(reading.window_rates)[1])
    assert all(np.isfinite(r) and 1 < r < 1e6 for r in reading.window_rates)
    assert reading.others_cores is not None and reading.others_cores >= 0  # Linux: /proc is read


@pytest.mark.slow
def test_a_reading_taken_while_another_process_computes_is_flagged_busy(cifar):
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 120: pass"])
    try:
        time.sleep(0.5)
        reading = retrain_clock.measure(cifar.x_train[:256], cifar.y_train[:256], TrainRecipe(epochs=1), "cpu", 10,
                                        timed_steps=3, warmup=1)
    finally:
        burner.kill()
        burner.wait()
    assert reading.others_cores > retrain_clock.BUSY_CORES and reading.busy  # about one core: the burner's
    assert reading.to_json()["busy"] is True


@pytest.fixture
def evaluation(cifar):
    """What the clock depends on: the data, the splits and a small profile."""
    profile = mini_profile()
    splits = make_splits(len(cifar.y_train), len(cifar.y_test), seed=0, train_subset=600, test_subset=400)
    return cifar, splits, profile


def test_a_busy_clock_is_measured_again_and_the_flag_forces_it(evaluation, tmp_path, monkeypatch, capsys):
    readings = iter([
        retrain_clock.ClockReading(100.0, (100.0,), 2, others_cores=1.2),  # busy
        retrain_clock.ClockReading(80.0, (80.0,), 2, others_cores=1.5),  # busy and slower: not kept
        retrain_clock.ClockReading(300.0, (300.0,), 2, others_cores=0.0),  # idle: kept
        retrain_clock.ClockReading(250.0, (250.0,), 2, others_cores=0.0),  # --remeasure-clock: kept, whatever it is
    ])
    measured = []

    def fake_measure(*args, **kwargs):
        measured.append(1)
        return next(readings)

    monkeypatch.setattr(retrain_clock, "measure", fake_measure)
    store, (data, splits, profile) = CheckpointStore(tmp_path), evaluation

    def clock(remeasure=False):  # one run's reading, on the same store
        return retrain_clock.stored_clock(store, data, splits, profile, "cpu", progress=False, remeasure=remeasure)

    first = clock()
    assert first["images_per_second"] == 100.0 and first["busy"] and len(measured) == 1
    assert "other processes used 1.2 CPU cores" in capsys.readouterr().err
    assert clock()["images_per_second"] == 100.0
    assert clock()["images_per_second"] == 300.0 and len(measured) == 3
    assert clock()["images_per_second"] == 300.0 and len(measured) == 3  # idle reading: kept
    again = clock(remeasure=True)
    assert again["images_per_second"] == 250.0 and again["seconds"] == pytest.approx(
        retrain_clock.extrapolate(250.0, profile.retrain_recipe(), len(splits.retain)))
    assert len(list((store.root / "notes").glob("retrain_clock_*.json"))) == 1


def test_the_clock_is_measured_once_per_store(evaluation, tmp_path, monkeypatch):
    monkeypatch.setattr(retrain_clock, "BUSY_CORES", float("inf"))  # a busy reading is measured again (above)
    store, (data, splits, profile) = CheckpointStore(tmp_path), evaluation

    def clock():
        return retrain_clock.stored_clock(store, data, splits, profile, "cpu", progress=False)

    first = clock()
    recipe = profile.retrain_recipe()
    assert first["seconds"] == pytest.approx(
        retrain_clock.extrapolate(first["images_per_second"], recipe, len(splits.retain)))
    assert first["recipe"] == recipe.to_json() and first["timed_steps"] == profile.clock_steps
    assert len(list((store.root / "notes").glob("retrain_clock_*.json"))) == 1

    def must_not_measure(*args, **kwargs):
        raise AssertionError("the clock was measured again")

    monkeypatch.setattr(retrain_clock, "measure", must_not_measure)
    assert clock() == first
    manifest = json.loads(store.write_manifest().read_text())
    assert not any(key.startswith("retrain_clock") for key in manifest), "notes are not models"
