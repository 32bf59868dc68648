"""training/starter_kit.py: the starter kit's own loop, which the retrain clock times."""

import pytest

from training import starter_kit
from training.recipe import TrainRecipe


def test_starter_kit_refuses_a_run_with_nothing_to_time(cifar):
    with pytest.raises(ValueError, match="nothing to time"):
        starter_kit.train(cifar.x_train[:64], cifar.y_train[:64], TrainRecipe(epochs=1, batch_size=32), 0, "cpu",
                          warmup=2, workers=0)
