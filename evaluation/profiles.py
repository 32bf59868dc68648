"""Evaluation profiles: how much data, how many epochs, how many models.

``quick`` is sized for a 2-core CPU (see the README for measured times); ``dev``
is the GPU default on full CIFAR-10; ``full`` is the competition's N = 512.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .training import TrainRecipe


@dataclass(frozen=True)
class Profile:
    name: str
    train_subset: int | None  # training images used (None: all 50,000); forget is 10% of them
    test_subset: int | None  # test images used (None: all 10,000), halved into val and test
    original_epochs: int
    retrain_epochs: int
    train_batch_size: int
    num_models: int  # N: unlearning runs and retrained references
    loader_batch_size: int = 64  # batch of the loaders handed to methods
    # Starter-kit steps timed for the gate's retrain time (evaluation.retrain_clock). On a
    # GPU its loop waits on 2 loader workers whose prefetched batches make the first
    # timed steps look fast, so the GPU profiles time more of them.
    clock_steps: int = 8
    description: str = ""
    # The starter kit's recipe; only tests change these (a few hundred steps on a
    # thousand images fit at lr 0.01 without augmentation, not at lr 0.1).
    train_lr: float = 0.1
    augment: bool = True

    def original_recipe(self) -> TrainRecipe:
        return self._recipe(self.original_epochs)

    def retrain_recipe(self) -> TrainRecipe:
        return self._recipe(self.retrain_epochs)

    def _recipe(self, epochs: int) -> TrainRecipe:
        return TrainRecipe(epochs=epochs, batch_size=self.train_batch_size, lr=self.train_lr, augment=self.augment)

    def with_models(self, num_models: int | None) -> "Profile":
        return self if num_models is None else replace(self, num_models=num_models)

    def to_json(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": Profile("smoke", 300, 200, 1, 1, 128, 3, clock_steps=2, description="seconds: tests and CI"),
    "quick": Profile("quick", 2500, 2000, 15, 15, 256, 3, description="CPU default: minutes"),
    "dev": Profile("dev", None, None, 30, 30, 256, 32, clock_steps=60, description="GPU default: full CIFAR-10"),
    "full": Profile("full", None, None, 30, 30, 256, 512, clock_steps=60, description="the competition's scale"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def default_profile_name(device_type: str) -> str:
    return "dev" if device_type == "cuda" else "quick"
