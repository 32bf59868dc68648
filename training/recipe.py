"""The training recipe shared by the original model and the retrained references.

SGD with momentum, weight decay and a per-step cosine schedule, crop + flip
augmentation; the loop itself is the engine's (``training.engine``), which trains
one model or several at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainRecipe:
    """The starter kit's recipe; epochs and batch size come from the profile."""

    epochs: int
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True  # random crop (padding 4) + horizontal flip

    def to_json(self) -> dict:
        return asdict(self)


def cosine_factor(step: int, total_steps: int) -> float:
    """The recipe's per-step cosine schedule: the fraction of the base lr at ``step`` (0-based)."""
    return 0.5 * (1 + math.cos(math.pi * step / total_steps))
