"""Model scores: one inference per trained group, kept in the store and read back."""

import dataclasses

import numpy as np
import pytest
import torch

from evaluation import scoring
from evaluation.session import gather_references
from evaluation.scoring import ModelScores, score_model


@pytest.fixture
def tiny_zoo(cifar, tmp_path):
    from data import SplitTensors, make_splits
    from evaluation.profiles import Profile
    from evaluation.store import CheckpointStore
    from evaluation.zoo import Zoo

    profile = Profile("tiny", 200, 100, 1, 1, 64, 3, clock_steps=2, train_lr=0.01, augment=False)
    splits = make_splits(len(cifar.y_train), len(cifar.y_test), seed=0, train_subset=200, test_subset=100)
    tensors = SplitTensors.build(cifar, splits, torch.device("cpu"))
    return Zoo(cifar, splits, profile, tensors, CheckpointStore(tmp_path), progress=False, group_size=3)


@pytest.fixture
def inference_calls(monkeypatch):
    """Every ``predict_logits_many`` call, as (number of models, number of images)."""
    calls = []
    real = scoring.predict_logits_many

    def counting(states, images, *args, **kwargs):
        calls.append((len(states), images.shape[0]))
        return real(states, images, *args, **kwargs)

    monkeypatch.setattr("evaluation.scoring.predict_logits_many", counting)
    return calls


def _assert_same(a: ModelScores, b: ModelScores):
    for name, value in a.to_arrays().items():
        np.testing.assert_array_equal(value, b.to_arrays()[name], err_msg=name)


@pytest.mark.slow
def test_training_scores_each_group_once_and_evaluations_read_them_back(tiny_zoo, inference_calls, monkeypatch):
    first = gather_references(tiny_zoo)
    sizes = {"retain": 180, "forget": 20, "test": 50}
    # The original, then the 3 references as one group: one call per split each, none afterwards.
    assert inference_calls == [(1, n) for n in sizes.values()] + [(3, n) for n in sizes.values()]
    record = tiny_zoo.retrained_scores(2)[1]
    assert record["accuracy"] == {"retain": first.retrained[2].retain_acc, "forget": first.retrained[2].forget_acc,
                                  "test": first.retrained[2].test_acc}

    # A later evaluation (a new process: nothing held in memory) reads every score back
    # without loading a single model.
    def no_weights(key):
        raise AssertionError("a model's weights were loaded")

    monkeypatch.setattr(tiny_zoo.store, "load", no_weights)
    tiny_zoo._original = None
    inference_calls.clear()
    again = gather_references(tiny_zoo)
    assert inference_calls == []
    _assert_same(first.original, again.original)
    for a, b in zip(first.retrained, again.retrained):
        _assert_same(a, b)


def test_stored_scores_are_the_models_scores(tiny_zoo):
    stored, _ = tiny_zoo.retrained_scores(0)
    model, _ = tiny_zoo.retrained(0)
    _assert_same(stored, score_model(model, tiny_zoo.tensors))
    assert stored.forget_confs.shape == (20,) and stored.forget_confs.dtype == np.float64
    assert 0 <= stored.test_acc <= 1 and isinstance(stored.test_acc, float)


def test_a_damaged_scores_file_is_computed_again(tiny_zoo, inference_calls):
    stored, _ = tiny_zoo.retrained_scores(0)
    (path,) = (tiny_zoo.store.root / "arrays").glob("*.npz")
    path.write_bytes(b"not a zip archive")
    inference_calls.clear()
    again, _ = tiny_zoo.retrained_scores(0)
    assert len(inference_calls) == 3
    _assert_same(stored, again)
    assert tiny_zoo.store.arrays(path.stem) is not None, "the recomputed scores are stored again"


def test_scores_belong_to_their_evaluation(tiny_zoo):
    """Another test split (same models) gets its own scores, not the stored ones."""
    stored, record = tiny_zoo.retrained_scores(0)
    from data import SplitTensors

    splits = dataclasses.replace(tiny_zoo.splits, test=tiny_zoo.splits.test[:30])
    other = dataclasses.replace(tiny_zoo, splits=splits,
                                tensors=SplitTensors.build(tiny_zoo.data, splits, torch.device("cpu")))
    scores, other_record = other.retrained_scores(0)
    assert other_record["sha256"] == record["sha256"], "the same model, not retrained"
    assert scores.test_losses.shape == (30,) and stored.test_losses.shape == (50,)
    np.testing.assert_array_equal(scores.forget_confs, stored.forget_confs)
    assert len(list((tiny_zoo.store.root / "arrays").glob("*.npz"))) == 2


def test_the_engines_precision_is_part_of_a_reference_key(tiny_zoo, monkeypatch):
    """bf16 and fp16 references are other models than fp32's, and each trains in its own
    precision; the key names the precision and the key version whatever the precision."""
    from evaluation.store import config_key

    fp32 = tiny_zoo.retrained_config(0)
    assert fp32["precision"] == "fp32" and fp32["key_version"] == 2
    keys = {config_key(dataclasses.replace(tiny_zoo, precision=p).retrained_config(0)) for p in ("bf16", "fp16")}
    assert len(keys | {config_key(fp32)}) == 3
    class Asked(Exception):
        pass

    def training(*args, precision, **kwargs):
        raise Asked(precision)

    monkeypatch.setattr("evaluation.zoo.train_models", training)
    with pytest.raises(Asked, match="bf16"):
        dataclasses.replace(tiny_zoo, precision="bf16").ensure_retrained([0])
