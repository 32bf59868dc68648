"""The training engine: several ResNet-18s trained at once.

The data stays on the device as one normalised tensor (in the autocast dtype on
CUDA), padded once for cropping. At the start of each epoch every model draws, from
its own generator and in the same order as a model trained alone, its permutation and
one crop and flip per example; a step gathers every model's batch, crops and flips it in one
indexing op. Model k of a group is therefore the model that seed k gives alone.

On CUDA the step runs under autocast (bf16, or fp16 with loss scaling on GPUs without
native bf16: ``precision.py``) and is captured once as a CUDA graph (per
batch shape) and replayed: at 32x32 this ResNet is launch-bound, and a replay costs
one launch instead of hundreds. Each model runs its forward and backward on its own
stream, so the graph holds K independent branches that fill the GPU together; one
update then covers every model's parameters.

On CPU the convolutions whose input is no larger than their kernel (layer3 and
layer4 on 32x32 images) run as matrix products that skip the padded taps
(``small_convs.py``): the same layer, and whole steps 1.4x to 1.9x faster there.

Models can also be fused (``fuse``): their parameters and BatchNorm buffers stacked
(``torch.func.stack_module_state``) and the forward ``vmap``-ed, which turns every
convolution into one grouped convolution. On an H100 that measured half the speed
of parallel streams (benchmarks/RESULTS.md), so training defaults to plain modules,
and inference (``training.inference.predict_logits_many``) runs one model at a time
unless asked to fuse.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from data.tensors import CROP_PADDING, NORMALISED, Pixels, crop_flip, draw_crop_flip, pad_black

from .devices import device_scope
from .model import empty_model, make_model
from .precision import autocast_dtype, choose_precision, needs_loss_scaling
from .recipe import cosine_factor
from .small_convs import convs_as_matmuls


def small_convs_by_default(device: torch.device) -> bool:
    """Where the small-input convolutions run as matrix products unless asked otherwise:
    on CPU, where they measured faster; CUDA waits for a measurement (train_speed.py)."""
    return device.type == "cpu"


class _GlobalMeanPool(torch.nn.Module):
    """``AdaptiveAvgPool2d(1)`` as a mean: the same numbers, and vmap has a batching rule
    for it (adaptive pooling falls back to a slow per-model loop under vmap)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=True)


class ModelGroup:
    """K same-architecture models as stacked parameters and buffers (one model: the module itself)."""

    def __init__(self, models: list[torch.nn.Module], compile: bool | str = False):
        """``compile`` (one model only) runs its forward and backward as ``torch.compile``
        kernels, which fuse BatchNorm and ReLU passes; the module keeps its parameters. A
        string names the ``torch.compile`` backend (True: torch's default, inductor)."""
        self.size = len(models)
        self.single = models[0] if self.size == 1 else None
        if compile and self.single is None:
            raise ValueError("compile applies to a group of one model (fuse=1)")
        # compiled: one graph per batch shape
        backend = compile if isinstance(compile, str) else "inductor"
        self._single_call = torch.compile(self.single, dynamic=False, backend=backend) if compile else self.single
        if self.single is not None:  # nothing to stack: the module is trained as it is
            return
        self.base = copy.deepcopy(models[0]).to("meta")
        if isinstance(getattr(self.base, "avgpool", None), torch.nn.AdaptiveAvgPool2d):
            self.base.avgpool = _GlobalMeanPool()
        self.params, self.buffers_ = stack_module_state(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``[K, B, C, H, W]`` (one batch per model); returns ``[K, B, classes]``."""
        if self.single is not None:
            return self._single_call(x[0].contiguous(memory_format=torch.channels_last))[None]
        return vmap(self._call, in_dims=(0, 0, 0), randomness="different")(self.params, self.buffers_, x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """One batch ``[B, C, H, W]`` through every model: ``[K, B, classes]``."""
        if self.single is not None:
            return self.single(x)[None]
        return vmap(self._call, in_dims=(0, 0, None), randomness="different")(self.params, self.buffers_, x)

    def _call(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.single.parameters()) if self.single is not None else list(self.params.values())

    def buffers(self) -> list[torch.Tensor]:
        return list(self.single.buffers()) if self.single is not None else list(self.buffers_.values())

    def train(self, mode: bool = True) -> "ModelGroup":
        (self.single or self.base).train(mode)
        return self

    def state_dicts(self) -> list[dict]:
        """One ``resnet18`` state dict per model, detached, on the device."""
        if self.single is not None:
            return [{k: v.detach() for k, v in self.single.state_dict().items()}]
        names = list(self.base.state_dict().keys())
        merged = {**self.params, **self.buffers_}
        return [{n: merged[n][k].detach() for n in names} for k in range(self.size)]

    @classmethod
    def from_state_dicts(cls, states: list[dict], num_classes: int, device,
                         small_convs_for: tuple | None = None) -> "ModelGroup":
        """``small_convs_for``: an image shape for which to plan ``convs_as_matmuls``."""
        models = []
        for state in states:
            model = empty_model(num_classes, device)
            model.load_state_dict(state)
            model.eval()
            if small_convs_for is not None:
                convs_as_matmuls(model, small_convs_for)
            models.append(model)
        return cls(models)


# torch.amp.GradScaler's defaults
INITIAL_LOSS_SCALE, LOSS_SCALE_GROWTH, LOSS_SCALE_BACKOFF, LOSS_SCALE_INTERVAL = 2.0**16, 2.0, 0.5, 2000


class StackedSGD:
    """``torch.optim.SGD`` (momentum, weight decay; no dampening or Nesterov) over every model's
    parameters, with a learning rate that ``set_lr`` changes per step.

    On CUDA the update is four foreach ops reading the learning rate from a device tensor,
    so a captured graph uses the current value; momentum starts at zero, which equals
    torch's first step (buffer = gradient). On CPU (no graphs) torch's fused SGD, which
    measured 4 ms per step there against 60 ms for the foreach ops.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float, weight_decay: float,
                 graph_safe: bool | None = None, loss_scaling: bool = False):
        """``graph_safe`` picks the foreach update (default: on CUDA, and with ``loss_scaling``).

        ``loss_scaling`` (fp16) keeps a dynamic loss scale on the device, as
        ``torch.amp.GradScaler`` does, but without its host-side check: a step whose
        gradients hold inf or NaN is neutralised on the device (no change to weights or
        momentum) and the scale halves, so the step can live in a captured graph.
        """
        self.params = params
        self.momentum, self.weight_decay = momentum, weight_decay
        device = params[0].device
        self.lr = torch.tensor(lr, dtype=torch.float32, device=device)
        graph_safe = (params[0].is_cuda or loss_scaling) if graph_safe is None else graph_safe
        if loss_scaling and not graph_safe:
            raise ValueError("loss scaling needs the graph-safe update")
        self.momentum_buffers = [torch.zeros_like(p) for p in params] if graph_safe else []
        self._fused = None if graph_safe else torch.optim.SGD(params, lr=lr, momentum=momentum,
                                                              weight_decay=weight_decay, fused=True)
        self.loss_scale = torch.full((), INITIAL_LOSS_SCALE, device=device) if loss_scaling else None
        self._growth_tracker = torch.zeros((), dtype=torch.int32, device=device)
        self._found_inf = torch.zeros((), device=device)

    def scaler_state(self) -> list[torch.Tensor]:
        """The tensors a loss-scaled step changes besides weights and momentum."""
        return [self.loss_scale, self._growth_tracker, self._found_inf] if self.loss_scale is not None else []

    def set_lr(self, value: float) -> None:
        if self._fused is not None:
            self._fused.param_groups[0]["lr"] = value
        else:
            self.lr.fill_(value)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        if self._fused is not None:
            self._fused.step()
            return
        if self.loss_scale is not None:
            self._scaled_step()
            return
        grads = torch._foreach_add([p.grad for p in self.params], self.params, alpha=self.weight_decay)
        torch._foreach_mul_(self.momentum_buffers, self.momentum)
        torch._foreach_add_(self.momentum_buffers, grads)
        torch._foreach_sub_(self.params, torch._foreach_mul(self.momentum_buffers, self.lr))

    def _scaled_step(self) -> None:
        grads = [p.grad for p in self.params]
        self._found_inf.zero_()
        torch._amp_foreach_non_finite_check_and_unscale_(grads, self._found_inf, self.loss_scale.reciprocal())
        # keep is 1 for a finite step, 0 for one to skip: then the gradient is zeroed and
        # weight decay, momentum decay and the learning rate all act as the identity.
        keep = 1 - self._found_inf
        for g in grads:
            torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
        torch._foreach_mul_(grads, keep)
        torch._foreach_add_(grads, torch._foreach_mul(self.params, self.weight_decay * keep))
        torch._foreach_mul_(self.momentum_buffers, self.momentum * keep + self._found_inf)
        torch._foreach_add_(self.momentum_buffers, grads)
        torch._foreach_sub_(self.params, torch._foreach_mul(self.momentum_buffers, self.lr * keep))
        torch._amp_update_scale_(self.loss_scale, self._growth_tracker, self._found_inf, LOSS_SCALE_GROWTH,
                                 LOSS_SCALE_BACKOFF, LOSS_SCALE_INTERVAL)


class Batches:
    """Every model's epoch draws and the batches they select, from one padded copy of the data."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool, generators: list,
                 dtype: torch.dtype | None = None, pixels: Pixels = NORMALISED):
        """``dtype``: the images' dtype on the device (autocast would cast them to it anyway);
        ``pixels``: their representation, which sets the crop padding's black."""
        dtype = dtype or images.dtype
        self.images = pad_black(images.to(dtype), CROP_PADDING, pixels) if augment else images.to(dtype)
        self.labels, self.augment, self.generators = labels, augment, generators
        self.size = images.shape[-1]

    def draw_epoch(self) -> torch.Tensor:
        """``[4, K, n]`` int64: each model's order, then its row/column offsets and flips."""
        n, device = self.labels.shape[0], self.labels.device
        plans = []
        for g in self.generators:
            order = torch.randperm(n, generator=g, device=device)
            crops = (draw_crop_flip(n, g, CROP_PADDING) if self.augment
                     else torch.zeros(3, n, dtype=torch.long, device=device))
            plans.append(torch.cat([order[None], crops]))
        return torch.stack(plans, dim=1)

    def select(self, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of a plan slice ``[4, K, B]``: images ``[K, B, C, H, W]`` and labels ``[K, B]``."""
        index = plan[0]
        images = crop_flip(self.images, index, plan[1:], self.size) if self.augment else self.images[index]
        return images, self.labels[index]


class Trainer:
    """One SGD step for every model: eager, or as CUDA graphs (one per batch shape).

    The models come in ``groups`` (each a ``ModelGroup``: one plain module or several
    vmapped). On CUDA each group runs its forward and backward on its own stream, so
    independent models overlap on the GPU; captured in one graph, they become parallel
    branches of it.
    """

    def __init__(self, groups: list[ModelGroup], optimizer: StackedSGD, batches: Batches, graphs: bool,
                 precision: str = "fp32"):
        self.groups, self.optimizer, self.batches = groups, optimizer, batches
        self.autocast = autocast_dtype(precision)
        self.graphs = {} if graphs else None
        on_cuda = batches.labels.is_cuda
        self.streams = [torch.cuda.Stream() for _ in groups] if on_cuda and len(groups) > 1 else None

    def step(self, plan: torch.Tensor) -> torch.Tensor:
        """Train on the batch ``plan`` selects; returns the K per-model losses (on the device)."""
        if self.graphs is None:
            self.optimizer.zero_grad()
            return self._step(plan)
        if plan.shape[-1] not in self.graphs:
            self.graphs[plan.shape[-1]] = self._capture(plan)
        static_plan, losses, graph = self.graphs[plan.shape[-1]]
        static_plan.copy_(plan)
        graph.replay()
        return losses

    def _step(self, plan: torch.Tensor) -> torch.Tensor:
        x, y = self.batches.select(plan)
        main = torch.cuda.current_stream() if self.streams else None
        losses, start = [], 0
        for i, group in enumerate(self.groups):
            end = start + group.size
            if self.streams:
                self.streams[i].wait_stream(main)
            with torch.cuda.stream(self.streams[i]) if self.streams else contextlib.nullcontext():
                losses.append(self._forward_backward(group, x[start:end], y[start:end]))
            start = end
        for stream in self.streams or []:
            main.wait_stream(stream)
        self.optimizer.step()
        return torch.cat(losses)

    def _forward_backward(self, group: ModelGroup, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # no autocast cache: a captured graph must recast the weights on every replay
        with torch.autocast(device_type=x.device.type, dtype=self.autocast or torch.bfloat16,
                            enabled=self.autocast is not None, cache_enabled=False):
            logits = group.forward(x)  # [k, B, classes]
            losses = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none").view(y.shape).mean(1)
        total = losses.sum()  # models share no parameter: each gets its own gradient
        scale = self.optimizer.loss_scale
        (total if scale is None else total * scale).backward()
        return losses.detach()

    def _capture(self, plan: torch.Tensor):
        """Capture the step for this batch shape. cuDNN's autotuning and autograd's set-up must
        run before capture; that warm-up must not train, so it runs at lr 0 (weights stay put)
        and the BatchNorm statistics and momentum it touches are restored afterwards."""
        state = ([b for group in self.groups for b in group.buffers()] + self.optimizer.momentum_buffers
                 + self.optimizer.scaler_state())
        saved = [t.clone() for t in state]
        lr = self.optimizer.lr.clone()
        self.optimizer.lr.zero_()
        static_plan = plan.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.optimizer.zero_grad()
                self._step(static_plan)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad()  # the captured backward then writes (not adds) the gradients
        with torch.cuda.graph(graph):
            losses = self._step(static_plan)
        torch._foreach_copy_(state, saved)
        self.optimizer.lr.copy_(lr)
        return static_plan, losses, graph


def train_models(images, labels, recipe, seeds: list[int], num_classes: int = 10, progress: bool = True,
                 desc: str = "train", record_losses: bool = False, graphs: bool | None = None, fuse: int = 1,
                 compile: bool | str = False, small_convs: bool | None = None, precision: str | None = None,
                 pixels: Pixels = NORMALISED):
    """Train ``len(seeds)`` fresh ResNet-18s together on ``images`` (already on the device).

    ``graphs`` (default: on CUDA) replays each step as a CUDA graph. ``fuse`` models
    share one vmapped network (grouped convolutions); with 1 each model is its own
    module, and on CUDA the models run on parallel streams. ``compile`` (with ``fuse``
    1) trains each model through ``torch.compile`` (a string: that backend): the same
    numbers up to float noise (tested), off by default because on CPU it measured slower. ``small_convs``
    (default: on CPU, where it measured 1.4x to 1.9x faster; not yet measured on CUDA)
    runs the convolutions whose input is no larger than their kernel (layer3 and
    layer4 at 32x32) as matrix products that skip padded taps: the same function
    and gradients (``training/small_convs.py``). ``precision`` (``training/precision.py``;
    default: bf16 on a GPU that has it natively, fp16 with loss scaling on an older one,
    fp32 on CPU) sets the autocast and the images' dtype. ``pixels`` is the images'
    representation (``data.tensors.Pixels``): the crop pads with its black. Returns
    ``(state_dicts, seconds, losses)``; ``losses`` is ``[steps, K]`` when
    ``record_losses`` (it synchronises every step, so only tests ask for it).
    """
    with device_scope(images.device):
        return _train_models(images, labels, recipe, seeds, num_classes, progress, desc, record_losses, graphs, fuse,
                             compile, small_convs, precision, pixels)


def _train_models(images, labels, recipe, seeds, num_classes, progress, desc, record_losses, graphs, fuse, compile,
                  small_convs, precision, pixels):
    device = images.device
    models = [make_model(num_classes, seed=s).to(device) for s in seeds]
    if device.type == "cuda" or fuse == 1:  # measured faster on CPU too, for plain modules
        models = [m.to(memory_format=torch.channels_last) for m in models]
    if small_convs_by_default(device) if small_convs is None else small_convs:
        for model in models:
            convs_as_matmuls(model, tuple(images.shape[1:]))
    groups = [ModelGroup(models[g : g + fuse], compile).train() for g in range(0, len(models), fuse)]
    precision = choose_precision(device, precision)
    optimizer = StackedSGD([p for group in groups for p in group.parameters()], recipe.lr, recipe.momentum,
                           recipe.weight_decay, loss_scaling=needs_loss_scaling(precision))
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    # On CUDA the images are kept in the autocast dtype; on CPU autocast casts per batch.
    batches = Batches(images, labels, recipe.augment, generators, autocast_dtype(precision) if images.is_cuda else None,
                      pixels)
    trainer = Trainer(groups, optimizer, batches, graphs=device.type == "cuda" if graphs is None else graphs,
                      precision=precision)
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = max(1, recipe.epochs * steps_per_epoch)

    losses = []
    step = 0
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False, unit="step")
    for _ in range(recipe.epochs):
        plan = batches.draw_epoch()
        for s in range(steps_per_epoch):
            optimizer.set_lr(recipe.lr * cosine_factor(step, total_steps))
            loss = trainer.step(plan[:, :, s * recipe.batch_size : (s + 1) * recipe.batch_size])
            step += 1
            bar.update(1)
            if record_losses:
                losses.append(loss.float().cpu())
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    states = [state for group in groups for state in group.state_dicts()]
    return states, seconds, (torch.stack(losses) if losses else None)
