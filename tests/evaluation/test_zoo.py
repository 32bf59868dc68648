"""evaluation/zoo.py: models trained once into the store, found again by key, their scores computed
once per group and read back."""

import dataclasses

import numpy as np
import pytest
import torch

from evaluation import scoring
from evaluation.scoring import ModelScores, score_model
from evaluation.session import gather_references
from evaluation.store import CheckpointStore, config_key
from training.model import make_model


def test_zoo_reuses_and_resumes(mini_zoo_copy, monkeypatch):
    """A second request trains nothing; a missing model (an interrupted run) is trained alone."""
    from evaluation import zoo as zoo_module

    zoo = mini_zoo_copy
    first, _ = zoo.original()
    list(zoo.retrained_models(3))
    trained = []
    real_train = zoo_module.train_models

    def counting_train(*args, **kwargs):
        trained.extend(args[3])  # the model seeds
        return real_train(*args, **kwargs)

    monkeypatch.setattr(zoo_module, "train_models", counting_train)
    zoo = dataclasses.replace(zoo)  # as a new process: nothing in memory
    again, _ = zoo.original()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    list(zoo.retrained_models(3))
    assert trained == []

    # Lose reference 1, as a run killed while training it would have.
    key = zoo.retrained(1)[1]["key"]
    zoo.store.discard(key)
    list(zoo.retrained_models(3))
    assert trained == [1001]


def test_keys_separate_device_class_and_precision_and_older_versions_are_named_once(mini_zoo, tmp_path, capsys,
                                                                                     monkeypatch):
    from evaluation.store import KEY_VERSION, prune

    config = mini_zoo.retrained_config(0)
    assert config["key_version"] == KEY_VERSION and config["device"] == "cpu" and config["precision"] == "fp32"
    on_gpu = config | {"device": "cuda", "precision": "bf16"}
    assert config_key(on_gpu) != config_key(config)
    # a store holding a model of an older key version: named once, with what to do, and kept
    old = CheckpointStore(tmp_path)
    old.save("old1", make_model(seed=0).state_dict(), {"role": "retrained"})  # version 1: no key_version
    zoo = dataclasses.replace(mini_zoo, store=old)
    # what is trained does not matter here, only that two models are missing
    monkeypatch.setattr("evaluation.zoo.train_models", lambda images, labels, recipe, seeds, *args, **kwargs: (
        [make_model(seed=s).state_dict() for s in seeds], 0.0, None))
    zoo.retrained(0)
    zoo.retrained(1)
    notes = [line for line in capsys.readouterr().err.splitlines() if "older version of the kit" in line]
    assert len(notes) == 1 and "holds 1 models" in notes[0] and "python -m evaluation.store prune" in notes[0]
    assert old.has("old1") and old.older_models(KEY_VERSION) == ["old1"]
    assert prune(tmp_path, KEY_VERSION) == 1 and not old.has("old1") and old.has(config_key(config))


def test_keys_and_score_names_stay_what_they_were(tmp_path):
    """Pinned: a change to what a model's key or a cached score's name covers would leave every
    store's models and scores unused (and retrain them); bump KEY_VERSION or SCORING_VERSION for
    that. Seeded images, so the pin does not depend on which copy of CIFAR-10 a machine has."""
    import numpy as np

    from data import ImageData, SplitTensors, make_splits
    from evaluation.profiles import PROFILES
    from evaluation.zoo import Zoo

    rng = np.random.default_rng(0)
    data = ImageData(rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 400),
                     rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 200), "seeded")
    profile = PROFILES["smoke"]
    splits = make_splits(400, 200, 0, train_subset=profile.train_subset, test_subset=profile.test_subset)
    zoo = Zoo(data, splits, profile, SplitTensors.build(data, splits, torch.device("cpu")), CheckpointStore(tmp_path),
              progress=False)
    assert config_key(zoo.original_config()) == "7e8ff7288b415ce2102a92a3"
    reference = config_key(zoo.retrained_config(0))
    assert reference == "41115c74fc8ba84bb345a087"
    record = {"sha256": "2bf66b87cd9a2154d2c318c5ce3efdac07c6e2166cf972678b094a60bbc55730"}
    assert zoo.scores_name(reference, record) == "scores_41115c74fc8ba84bb345a087_bf7b16e0006f2c0d66f06bdb"


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
    """Every inference call (``predict_logits_sets``), as (number of models, {split: number of images})."""
    calls = []
    real = scoring.predict_logits_sets

    def counting(states, image_sets, *args, **kwargs):
        calls.append((len(states), {name: images.shape[0] for name, images in image_sets.items()}))
        return real(states, image_sets, *args, **kwargs)

    monkeypatch.setattr("evaluation.scoring.predict_logits_sets", counting)
    return calls


def _assert_same(a: ModelScores, b: ModelScores):
    for name, value in a.to_arrays().items():
        np.testing.assert_array_equal(value, b.to_arrays()[name], err_msg=name)


@pytest.mark.slow
def test_training_scores_each_group_once_and_evaluations_read_them_back(tiny_zoo, inference_calls, monkeypatch):
    first = gather_references(tiny_zoo)
    sizes = {"retain": 180, "forget": 20, "test": 50}
    # The original, then the 3 references as one group: one call over the splits each, none afterwards.
    assert inference_calls == [(1, sizes), (3, sizes)]
    record = tiny_zoo.retrained_scores(2)[1]
    assert record["accuracy"] == {"retain": first.retrained[2].retain_acc, "forget": first.retrained[2].forget_acc,
                                  "test": first.retrained[2].test_acc}

    # A later evaluation (a new process: nothing held in memory) reads every score back
    # without loading a single model.
    def no_weights(key):
        raise AssertionError("a model's weights were loaded")

    monkeypatch.setattr(tiny_zoo.store, "load", no_weights)
    inference_calls.clear()
    again = gather_references(dataclasses.replace(tiny_zoo))
    assert inference_calls == []
    _assert_same(first.originals[0], again.originals[0])
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
    assert inference_calls == [(1, {"retain": 180, "forget": 20, "test": 50})]
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
