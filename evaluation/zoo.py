"""The original model and the retrained references, trained once and cached.

Every model's store key is derived from all that determines it: the data
fingerprint, the split seed and indices, the recipe and the model seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from data import ImageData, Splits, to_tensors

from .inference import accuracy, predict_logits
from .model import make_model
from .profiles import Profile
from .store import CheckpointStore, CorruptCheckpoint, config_key
from .training import TrainRecipe, train_model

ORIGINAL_SEED_OFFSET = 0
RETRAINED_SEED_OFFSET = 1000


@dataclass
class SplitTensors:
    """The four splits as normalised tensors on the device."""

    retain: tuple
    forget: tuple
    val: tuple
    test: tuple

    @classmethod
    def build(cls, data: ImageData, splits: Splits, device) -> "SplitTensors":
        return cls(
            retain=to_tensors(data.x_train[splits.retain], data.y_train[splits.retain], device),
            forget=to_tensors(data.x_train[splits.forget], data.y_train[splits.forget], device),
            val=to_tensors(data.x_test[splits.val], data.y_test[splits.val], device),
            test=to_tensors(data.x_test[splits.test], data.y_test[splits.test], device),
        )


@dataclass
class Zoo:
    data: ImageData
    splits: Splits
    profile: Profile
    tensors: SplitTensors
    store: CheckpointStore
    progress: bool = True
    _original: tuple | None = None  # loaded once per process; every run copies it

    def _config(self, role: str, recipe: TrainRecipe, indices: np.ndarray, seed: int) -> dict:
        return {
            "role": role,
            "data": self.data.fingerprint(),
            "split_seed": self.splits.seed,
            "forget_hash": self.splits.forget_hash(),
            "train_indices": hashlib.sha256(np.sort(indices).tobytes()).hexdigest()[:16],
            "recipe": recipe.to_json(),
            "model_seed": seed,
            "arch": "torchvision.resnet18",
            "num_classes": self.data.num_classes,
        }

    def original(self) -> tuple[torch.nn.Module, dict]:
        """The model trained on all training data (forget + retain)."""
        if self._original is not None:
            return self._original
        images = torch.cat([self.tensors.retain[0], self.tensors.forget[0]])
        labels = torch.cat([self.tensors.retain[1], self.tensors.forget[1]])
        indices = np.concatenate([self.splits.retain, self.splits.forget])
        seed = ORIGINAL_SEED_OFFSET + self.splits.seed
        config = self._config("original", self.profile.original_recipe(), indices, seed)
        self._original = self._get_or_train(config, images, labels, "original model")
        return self._original

    def retrained(self, index: int) -> tuple[torch.nn.Module, dict]:
        """Reference ``index``: trained from scratch on the retain set only."""
        seed = RETRAINED_SEED_OFFSET + index
        config = self._config("retrained", self.profile.retrain_recipe(), self.splits.retain, seed)
        return self._get_or_train(config, *self.tensors.retain, f"retrained {index}")

    def retrained_models(self, count: int):
        """Yield ``(model, record)`` for references 0..count-1, training the missing ones."""
        for i in tqdm(range(count), desc="retrained references", disable=not self.progress, unit="model"):
            yield self.retrained(i)

    def _get_or_train(self, config, images, labels, desc):
        key = config_key(config)
        device = images.device
        if self.store.has(key):
            try:
                model = make_model(self.data.num_classes)
                model.load_state_dict(self.store.load(key))
                return model.to(device).eval(), self.store.record(key)
            except CorruptCheckpoint as e:
                tqdm.write(f"warning: {e}; retraining it")
                self.store.discard(key)
        recipe = TrainRecipe(**config["recipe"])
        model, seconds = train_model(
            images, labels, recipe, config["model_seed"], self.data.num_classes, self.progress, desc
        )
        accs = {
            name: accuracy(predict_logits(model, x), y)
            for name, (x, y) in (("retain", self.tensors.retain), ("forget", self.tensors.forget), ("test", self.tensors.test))
        }
        record = self.store.save(
            key, model.state_dict(), config, train_seconds=seconds, device=str(device), accuracy=accs
        )
        return model, record
