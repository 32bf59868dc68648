"""evaluation/profiles.py: the CPU profiles' recipe memorises, and their sizes never end an epoch
on a sliver of a batch."""

import pytest

from data import make_splits, to_tensors
from evaluation.profiles import get_profile
from evaluation.scoring import accuracy
from training.engine import train_models
from training.inference import predict_logits_many


@pytest.mark.slow
def test_cpu_recipe_memorises_a_slice_of_real_cifar(cifar):
    """The cpu profile's original recipe on 512 real images: train accuracy at least 0.95
    (the competition's regime), and well above chance on unseen images."""
    recipe = get_profile("cpu").original_recipe()
    assert not recipe.augment
    images, labels = to_tensors(cifar.x_train[:512], cifar.y_train[:512], "cpu")
    states, _, _ = train_models(images, labels, recipe, [0], cifar.num_classes, progress=False)
    assert accuracy(predict_logits_many(states, images)[0], labels) >= 0.95
    test_images, test_labels = to_tensors(cifar.x_test[:500], cifar.y_test[:500], "cpu")
    assert accuracy(predict_logits_many(states, test_images)[0], test_labels) > 0.2


@pytest.mark.parametrize("name", ["quick", "cpu"])
def test_cpu_profiles_never_end_an_epoch_on_a_sliver_of_a_batch(name):
    """At these sizes an epoch ending on a batch of a few images kept models from
    memorising (evaluation/profiles.py): every last batch is full or at least half full."""
    profile = get_profile(name)
    splits = make_splits(50000, 10000, seed=0, train_subset=profile.train_subset, test_subset=profile.test_subset)
    for n, batch in ((profile.train_subset, profile.train_batch_size),
                     (splits.retain.size, profile.train_batch_size),
                     (splits.retain.size, profile.loader_batch_size),
                     (splits.forget.size, profile.loader_batch_size)):
        assert n % batch == 0 or n % batch >= batch // 2, (n, batch)
