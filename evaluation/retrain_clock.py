"""The efficiency gate's yardstick: how long retraining from scratch takes, the starter kit's way.

The organisers rejected methods slower than about 20% of retraining, where
retraining meant their starter kit's loop (``training.starter_kit``: PIL
transforms in 2 DataLoader workers, fp32, one model, batch 128). This harness trains
its references far faster (``training.engine``: many at once, bf16, CUDA graphs), so
their training time would make every method fail the gate on a GPU. Instead the
starter kit's loop is timed on this machine and extrapolated to the retrain recipe.

Every later gate divides by this one figure, so the measurement guards against noise:
it times several windows of steps and keeps the median window's rate, and it measures
how much CPU other processes took meanwhile (``/proc/stat`` against this process and
its loader workers). A reading taken while others used more than ``BUSY_CORES`` is
flagged ``busy``: ``stored_clock`` warns, records it, and times the clock again at its next use.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from data import NORMALISED, Pixels
from training import starter_kit
from training.recipe import TrainRecipe

from .distributed import World
from .store import config_key

GATE = 0.2  # the organisers' efficiency gate: a method's run may take at most this share of one retraining
CLOCK_VERSION = 2  # bump when the measurement changes, so cached clocks are re-measured (2: batch 128, windows)
STARTER_KIT_BATCH = 128  # the batch the starter kit retrained at, whatever the profile's engine uses
WINDOWS = 5  # timed windows; the median's rate is the clock's
BUSY_CORES = 0.5  # CPU cores others may use while the clock runs before the reading is flagged


@dataclass(frozen=True)
class ClockReading:
    images_per_second: float  # the median window's rate
    window_rates: tuple[float, ...]
    timed_steps: int
    others_cores: float | None  # CPU cores other processes used meanwhile; None where unknown (not Linux)

    @property
    def busy(self) -> bool:
        return self.others_cores is not None and self.others_cores > BUSY_CORES

    def to_json(self) -> dict:
        return asdict(self) | {"window_rates": list(self.window_rates), "busy": self.busy}


def extrapolate(images_per_second: float, recipe: TrainRecipe, n_images: int) -> float:
    """Seconds for the whole recipe on ``n_images`` at a measured rate."""
    return recipe.epochs * n_images / images_per_second


def measure(images: np.ndarray, labels: np.ndarray, recipe: TrainRecipe, device, num_classes: int,
            timed_steps: int = 20, warmup: int = 2, pixels: Pixels = NORMALISED) -> ClockReading:
    """The starter-kit loop's rate on uint8 ``images`` at batch 128: ``timed_steps`` steps
    after ``warmup``, in up to ``WINDOWS`` windows; the median window's rate."""
    recipe = replace(recipe, batch_size=STARTER_KIT_BATCH)
    windows = max(1, min(WINDOWS, timed_steps))
    window = max(1, timed_steps // windows)
    steps_per_epoch = math.ceil(len(labels) / recipe.batch_size)
    epochs = math.ceil((warmup + window * windows) / steps_per_epoch)  # enough loader passes for every step
    marks = []

    def mark(seen: int) -> None:
        marks.append((time.perf_counter(), seen, _cpu_seconds()))

    starter_kit.train(images, labels, replace(recipe, epochs=epochs), seed=0, device=device,
                      max_steps=warmup + window * windows, warmup=warmup, num_classes=num_classes, pixels=pixels,
                      window=window, on_window=mark)
    rates = tuple((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(marks, marks[1:]))
    (t0, _, cpu0), (t1, _, cpu1) = marks[0], marks[-1]
    others = None
    if cpu0 is not None and cpu1 is not None:
        others = max(0.0, ((cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1])) / (t1 - t0))
    return ClockReading(statistics.median(rates), rates, window * windows, others)


def stored_clock(store, data, splits, profile, device, world: World = World(), progress: bool = True,
                 remeasure: bool = False) -> dict:
    """How long one retraining from scratch takes the starter kit's way on this machine, for
    ``profile``'s recipe on ``splits``' retain images: measured once per ``store`` and machine
    (its note in ``STORE/notes/``), then read back. A reading flagged busy (other processes took
    CPU meanwhile) is timed again at the next use and kept only if faster; ``remeasure`` times
    it again, whatever is stored. Under torchrun the first rank measures, for all."""
    recipe = profile.retrain_recipe()
    images, labels = data.x_train[splits.retain], data.y_train[splits.retain]
    what = {"version": CLOCK_VERSION, "machine": machine_name(device), "torch": torch.__version__,
            "recipe": recipe.to_json(), "batch_size": STARTER_KIT_BATCH, "images": list(images.shape),
            "timed_steps": profile.clock_steps}
    name = f"retrain_clock_{config_key(what)}"
    with world.together():
        stored = store.note(name) if world.is_main else None
        if world.is_main and (stored is None or stored.get("busy") or remeasure):
            if progress:
                tqdm.write(f"timing the starter kit's loop ({profile.clock_steps} steps) for the gate's retrain time")
            reading = measure(images, labels, recipe, device, data.num_classes, profile.clock_steps,
                              pixels=data.pixels)
            if stored is None or remeasure or reading.images_per_second > stored["images_per_second"]:
                store.save_note(name, what | reading.to_json() | {
                    "seconds": extrapolate(reading.images_per_second, recipe, len(labels)),
                    "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
            if reading.busy:
                tqdm.write(f"warning: other processes used {reading.others_cores:.1f} CPU cores while the gate's "
                           "retrain time was measured, so it may be too long; it is measured again at the next "
                           "run (or pass --remeasure-clock on an idle machine)", file=sys.stderr)
    return store.note(name)


def _cpu_seconds() -> tuple[float, float] | None:
    """``(busy CPU seconds of the whole machine, of this process and its loader workers)``
    from ``/proc``; None where there is no ``/proc``. Steal time counts as busy: a VM's
    neighbours slow the clock as much as its own processes do."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        own = _process_ticks(os.getpid())
        me = open(f"/proc/{os.getpid()}/cmdline", "rb").read()
        for child in _children(os.getpid()):  # the loader's workers are forks: same command line
            if open(f"/proc/{child}/cmdline", "rb").read() == me:
                own += _process_ticks(child)
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / tick, own / tick


def _process_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _children(pid: int) -> list[int]:
    children = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.append(int(stat))
            except (OSError, ValueError, IndexError):
                pass
    return children


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
