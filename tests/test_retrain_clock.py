"""The gate's yardstick: the starter kit's retrain time, measured once per store and machine."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from evaluation import retrain_clock, starter_kit
from evaluation.runner import evaluate_retraining, measured_ceiling, score_references, score_unlearned
from evaluation.training import TrainRecipe


def test_extrapolate_scales_the_rate_to_the_whole_recipe():
    recipe = TrainRecipe(epochs=30, batch_size=256)
    assert retrain_clock.extrapolate(1000.0, recipe, 45_000) == pytest.approx(1350.0)


def test_measure_runs_warmup_plus_timed_starter_kit_steps(cifar, monkeypatch):
    steps = []
    real_step = torch.optim.SGD.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", counting_step)
    images, labels = cifar.x_train[:100], cifar.y_train[:100]
    # 4 steps per epoch at batch 32: warm-up 2 + 3 timed steps need a second pass over the data
    rate = retrain_clock.measure(images, labels, TrainRecipe(epochs=1, batch_size=32), "cpu", 10, timed_steps=3, warmup=2)
    assert len(steps) == 5
    assert np.isfinite(rate) and 1 < rate < 1e6


def test_starter_kit_refuses_a_run_with_nothing_to_time(cifar):
    with pytest.raises(ValueError, match="nothing to time"):
        starter_kit.train(cifar.x_train[:64], cifar.y_train[:64], TrainRecipe(epochs=1, batch_size=32), 0, "cpu",
                          warmup=2, workers=0)


def test_zoo_measures_the_clock_once_per_store(mini_zoo, monkeypatch):
    first = mini_zoo.retrain_clock()
    recipe = mini_zoo.profile.retrain_recipe()
    assert first["seconds"] == pytest.approx(
        retrain_clock.extrapolate(first["images_per_second"], recipe, len(mini_zoo.splits.retain)))
    assert first["recipe"] == recipe.to_json() and first["timed_steps"] == mini_zoo.profile.clock_steps
    assert len(list((mini_zoo.store.root / "notes").glob("retrain_clock_*.json"))) == 1

    def must_not_measure(*args, **kwargs):
        raise AssertionError("the clock was measured again")

    monkeypatch.setattr("evaluation.zoo.measure", must_not_measure)
    assert mini_zoo.retrain_clock() == first
    manifest = json.loads(mini_zoo.store.write_manifest().read_text())
    assert not any(key.startswith("retrain_clock") for key in manifest), "notes are not models"


def test_gate_divides_by_the_clock_and_retraining_costs_one_retrain(mini_zoo):
    references = score_references(mini_zoo)
    clock = references.retrain_clock["seconds"]
    as_if_unlearned = score_unlearned("x", references.retrained, [2.0, 4.0, 6.0], references, gate=0.2)
    assert as_if_unlearned.timing["time_ratio"] == pytest.approx(4.0 / clock)
    assert as_if_unlearned.timing["retrain_seconds"] == clock
    assert as_if_unlearned.timing["passes_gate"] == (4.0 / clock <= 0.2)

    retrain = evaluate_retraining(mini_zoo, references=references)
    assert retrain.timing["time_ratio"] == pytest.approx(1.0)
    assert len(retrain.timing["reference_seconds"]) == 3 and min(retrain.timing["reference_seconds"]) > 0


def test_ceiling_comes_from_the_store_only_when_every_extra_reference_is_there(mini_zoo):
    """-m NAME places a method against retraining when the store holds references N..2N-1."""
    references = score_references(mini_zoo)
    wider = dataclasses.replace(mini_zoo, profile=mini_zoo.profile.with_models(4))
    assert not wider.has_retrained(range(4, 8))
    assert measured_ceiling(wider, 0.2, references) is None  # nothing trained
    assert not wider.has_retrained(range(4, 8))
    ceiling = measured_ceiling(mini_zoo, 0.2, references, train=True)
    assert mini_zoo.has_retrained(range(3, 6)) and ceiling.method == "retrain"
    again = measured_ceiling(mini_zoo, 0.2, references)
    assert again.forget_quality == ceiling.forget_quality and again.intervals == ceiling.intervals
