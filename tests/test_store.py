import json

import pytest
import torch

from evaluation import store as store_module
from evaluation.store import CheckpointStore, CorruptCheckpoint, config_key
from training.model import empty_model, make_model


def test_key_is_stable_and_order_free():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_save_load_roundtrip_and_manifest(tmp_path):
    s = CheckpointStore(tmp_path)
    model = make_model(seed=0)
    record = s.save("k1", model.state_dict(), {"role": "x"}, train_seconds=1.5, accuracy={"test": 0.5})
    assert s.has("k1") and record["train_seconds"] == 1.5
    loaded = empty_model()  # what the zoo loads stored models into: no random initialisation
    assert not any(p.is_meta for p in loaded.parameters())
    loaded.load_state_dict(s.load("k1"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["k1"]["config"] == {"role": "x"} and manifest["k1"]["accuracy"]["test"] == 0.5
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    s = CheckpointStore(tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped mid-write

    monkeypatch.setattr(store_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        s.save("k2", make_model().state_dict(), {})
    assert not s.has("k2")
    assert list(tmp_path.iterdir()) == []


def test_corrupted_checkpoint_is_detected(tmp_path):
    s = CheckpointStore(tmp_path)
    s.save("k3", make_model(seed=1).state_dict(), {})
    weights = tmp_path / "k3.pt"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(CorruptCheckpoint, match="hash"):
        s.load("k3")


def test_zoo_reuses_and_resumes(mini_zoo, monkeypatch):
    """A second request trains nothing; a missing model (an interrupted run) is trained alone."""
    from evaluation import zoo as zoo_module

    first, _ = mini_zoo.original()
    list(mini_zoo.retrained_models(3))
    trained = []
    real_train = zoo_module.train_models

    def counting_train(*args, **kwargs):
        trained.extend(args[3])  # the model seeds
        return real_train(*args, **kwargs)

    monkeypatch.setattr(zoo_module, "train_models", counting_train)
    mini_zoo._original = None
    again, _ = mini_zoo.original()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    list(mini_zoo.retrained_models(3))
    assert trained == []

    # Lose reference 1, as a run killed while training it would have.
    key = mini_zoo.retrained(1)[1]["key"]
    mini_zoo.store.discard(key)
    list(mini_zoo.retrained_models(3))
    assert trained == [1001]


def test_arrays_roundtrip_and_unreadable_is_none(tmp_path):
    import numpy as np

    s = CheckpointStore(tmp_path)
    assert s.arrays("scores_a") is None
    s.save_arrays("scores_a", {"confs": np.arange(5, dtype=np.float64), "acc": np.float64(0.25)})
    back = s.arrays("scores_a")
    np.testing.assert_array_equal(back["confs"], np.arange(5.0))
    assert back["confs"].dtype == np.float64 and float(back["acc"]) == 0.25
    (tmp_path / "arrays" / "scores_a.npz").write_bytes(b"\x00" * 10)
    assert s.arrays("scores_a") is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_record_hashes_the_bytes_written_and_load_uses_the_bytes_checked(tmp_path, monkeypatch):
    s = CheckpointStore(tmp_path)
    ours, theirs = make_model(seed=0).state_dict(), make_model(seed=1).state_dict()
    write = store_module.write_atomically

    def raced(path, fill):
        write(path, fill)
        if path.suffix == ".pt":  # a second writer of the same key renames its file in right after ours
            write(path, lambda f: torch.save(theirs, f))

    monkeypatch.setattr(store_module, "write_atomically", raced)
    s.save("k", ours, {})
    monkeypatch.setattr(store_module, "write_atomically", write)
    # our record must not vouch for their file: the mismatch is caught, not loaded as ours
    with pytest.raises(CorruptCheckpoint, match="does not match its recorded hash"):
        s.load("k")
    s.save("k", ours, {})
    real_load = torch.load

    def replaced_after_the_check(source, *args, **kwargs):
        (tmp_path / "k.pt").write_bytes(b"replaced after the hash was checked")
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(store_module.torch, "load", replaced_after_the_check)
    loaded = s.load("k")
    assert torch.equal(loaded["fc.weight"], ours["fc.weight"])


def test_keys_separate_device_class_and_precision_and_older_versions_are_named_once(mini_zoo, tmp_path, capsys,
                                                                                     monkeypatch):
    import dataclasses

    from evaluation.store import prune
    from evaluation.store import KEY_VERSION

    config = mini_zoo.retrained_config(0)
    assert config["key_version"] == KEY_VERSION and config["device"] == "cpu" and config["precision"] == "fp32"
    on_gpu = config | {"device": "cuda", "precision": "bf16"}
    assert config_key(on_gpu) != config_key(config)
    # a store holding a model of an older key version: named once, with what to do, and kept
    old = CheckpointStore(tmp_path)
    old.save("old1", make_model(seed=0).state_dict(), {"role": "retrained"})  # version 1: no key_version
    zoo = dataclasses.replace(mini_zoo, store=old, _original=None, _told_of_older=False)
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
    assert zoo.scores_name(reference, record) == "scores_41115c74fc8ba84bb345a087_1d92579f16d553a7c2afe7b5"
