"""The efficiency gate's yardstick: how long retraining from scratch takes, the starter kit's way.

The organisers rejected methods slower than about 20% of retraining, where
retraining meant their starter kit's loop (``evaluation.starter_kit``: PIL
transforms in 2 DataLoader workers, fp32, one model). This harness trains its
references far faster (``evaluation.engine``: many at once, bf16, CUDA graphs), so
their training time would make every method fail the gate on a GPU. Instead the
starter kit's loop is timed for a few steps on this machine and extrapolated to the
retrain recipe.
"""

from __future__ import annotations

import math
import platform
from dataclasses import replace

import numpy as np
import torch

from data import NORMALISED, Pixels

from . import starter_kit
from .training import TrainRecipe

CLOCK_VERSION = 1  # bump when the measurement changes, so cached clocks are re-measured


def extrapolate(images_per_second: float, recipe: TrainRecipe, n_images: int) -> float:
    """Seconds for the whole recipe on ``n_images`` at a measured rate."""
    return recipe.epochs * n_images / images_per_second


def measure(images: np.ndarray, labels: np.ndarray, recipe: TrainRecipe, device, num_classes: int,
            timed_steps: int = 8, warmup: int = 2, pixels: Pixels = NORMALISED) -> float:
    """Images/s of the starter-kit loop on uint8 ``images``: ``timed_steps`` steps after ``warmup``."""
    steps_per_epoch = math.ceil(len(labels) / recipe.batch_size)
    epochs = math.ceil((warmup + timed_steps) / steps_per_epoch)  # enough loader passes for every step
    _, rate = starter_kit.train(images, labels, replace(recipe, epochs=epochs), seed=0, device=device,
                                max_steps=warmup + timed_steps, warmup=warmup, num_classes=num_classes,
                                pixels=pixels)
    return rate


def machine_name(device) -> str:
    """What the clock's speed depends on: the device, and the CPU that feeds it."""
    device = torch.device(device)
    cpu = f"{_cpu_model()}, {torch.get_num_threads()} threads"
    return f"{torch.cuda.get_device_name(device)}; {cpu}" if device.type == "cuda" else cpu


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
