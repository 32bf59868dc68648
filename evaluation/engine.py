"""The training engine: several ResNet-18s trained (and evaluated) at once.

The data stays on the device as one normalised tensor; each step every model takes
its own batch (its own permutation) and its own crop/flip, drawn from its own
generator in exactly the order a model trained alone draws them, so model k of a
group is the model that seed k gives alone. The K models' parameters and
BatchNorm buffers are stacked (``torch.func.stack_module_state``) and the forward
pass is ``vmap``-ed over them: every convolution runs once for all K models as a
grouped convolution, which is what lets small models fill a big GPU. One SGD
optimiser updates the stacked parameters; SGD is elementwise, so this equals K
optimisers. On CUDA: bf16 autocast.

With one model the plain module runs (no vmap), channels-last (faster on CPU and
GPU); it is also the reference the tests compare the grouped path against.
"""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from data.tensors import random_crop_flip

from .model import make_model


class ModelGroup:
    """K same-architecture models as stacked parameters and buffers."""

    def __init__(self, models: list[torch.nn.Module]):
        self.size = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        self.params, self.buffers = stack_module_state(models)
        self.single = models[0] if self.size == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``[K, B, C, H, W]`` (one batch per model); returns ``[K, B, classes]``."""
        if self.single is not None:
            return self.single(x[0].contiguous(memory_format=torch.channels_last))[None]
        return vmap(self._call, in_dims=(0, 0, 0), randomness="different")(self.params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """One batch ``[B, C, H, W]`` through every model: ``[K, B, classes]``."""
        if self.single is not None:
            return self.single(x)[None]
        return vmap(self._call, in_dims=(0, 0, None), randomness="different")(self.params, self.buffers, x)

    def _call(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def parameters(self):
        return list(self.single.parameters()) if self.single is not None else list(self.params.values())

    def train(self, mode: bool = True) -> "ModelGroup":
        (self.single or self.base).train(mode)
        return self

    def state_dicts(self) -> list[dict]:
        """One ``resnet18`` state dict per model, detached, on the device."""
        if self.single is not None:
            return [{k: v.detach() for k, v in self.single.state_dict().items()}]
        names = list(self.base.state_dict().keys())
        merged = {**self.params, **self.buffers}
        return [{n: merged[n][k].detach() for n in names} for k in range(self.size)]

    @classmethod
    def from_state_dicts(cls, states: list[dict], num_classes: int, device) -> "ModelGroup":
        models = []
        for state in states:
            model = make_model(num_classes)
            model.load_state_dict(state)
            models.append(model.to(device).eval())
        return cls(models)


def train_models(images, labels, recipe, seeds: list[int], num_classes: int = 10, progress: bool = True,
                 desc: str = "train", record_losses: bool = False):
    """Train ``len(seeds)`` fresh ResNet-18s together on ``images`` (already on the device).

    Returns ``(state_dicts, seconds, losses)``; ``losses`` is ``[steps, K]`` when
    ``record_losses`` (it synchronises every step, so only tests ask for it).
    """
    device = images.device
    models = [make_model(num_classes, seed=s).to(device) for s in seeds]
    if device.type == "cuda" or len(models) == 1:  # measured faster on CPU too, for one model
        models = [m.to(memory_format=torch.channels_last) for m in models]
    group = ModelGroup(models).train()
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    optimizer = torch.optim.SGD(group.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = max(1, recipe.epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))

    losses = []
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False, unit="step")
    for _ in range(recipe.epochs):
        orders = [torch.randperm(n, generator=g, device=device) for g in generators]
        for s in range(steps_per_epoch):
            xs, ys = [], []
            for order, generator in zip(orders, generators):
                idx = order[s * recipe.batch_size : (s + 1) * recipe.batch_size]
                x = images[idx]
                xs.append(random_crop_flip(x, generator) if recipe.augment else x)
                ys.append(labels[idx])
            loss = _step(group, optimizer, torch.stack(xs), torch.stack(ys))
            schedule.step()
            bar.update(1)
            if record_losses:
                losses.append(loss.detach().cpu())
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return group.state_dicts(), seconds, (torch.stack(losses) if losses else None)


def _step(group: ModelGroup, optimizer, x, y) -> torch.Tensor:
    """One SGD step for every model; returns the K per-model losses."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=x.is_cuda):
        logits = group.forward(x)  # [K, B, classes]
        losses = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none").view(y.shape).mean(1)
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()  # models share no parameter: each gets its own gradient
    optimizer.step()
    return losses


@torch.no_grad()
def predict_logits_many(states: list[dict], images: torch.Tensor, num_classes: int = 10, batch_size: int = 1024,
                        group_size: int = 8) -> torch.Tensor:
    """float32 logits ``[K, n, classes]`` of several models (eval mode) over the same images."""
    outs = []
    for g in range(0, len(states), group_size):
        group = ModelGroup.from_state_dicts(states[g : g + group_size], num_classes, images.device).train(False)
        chunks = [group.forward_shared(images[s : s + batch_size]).float() for s in range(0, images.shape[0], batch_size)]
        outs.append(torch.cat(chunks, dim=1))
    return torch.cat(outs)
