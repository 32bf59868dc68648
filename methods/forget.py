"""Team "Forget" (9th place): stochastic re-initialisation + knowledge preserving.
methods.md section 8 ([KW-458715], [JB]). No public port; unconfirmed choices are
constructor arguments.

Cycles of: Forget, re-initialise ``layers_per_cycle`` = 6 draws, with replacement, from a
pool; Remember, train on retain images with noise added (N(0, 0.01^2)) to match the
frozen original's logits by MSE. Labels are never used. Algorithm 1: 3 cycles of 1, 2, 2
epochs, cosine lr from 1e-3 (T_max 2); algorithm 2: 4 cycles of 2, 1, 1, 1 epochs with
per-epoch lrs 5e-4, 1e-3, 1e-3, 1e-3, 1e-3.

**The pool.** The team's ablation reports selection ratios of 10%, about 20% and about 30%
after one, two and three cycles, and a worse score at 20% than at 10% per cycle. That is
what six draws per cycle give from the 51 parameter tensors outside ``fc`` and the
projection shortcuts (17 convolution weights, 17 BatchNorm weights and 17 biases: 11%,
21%, 30% of them), not from the 17 convolution modules (30%, 52%, 66%). So ``pool =
"tensors"`` is the default; ``"conv_modules"`` is the earlier reading. A drawn convolution
weight gets a fresh initialisation (``init``: PyTorch's default, ``"pytorch"``, or
torchvision's ResNet rule, ``"torchvision"``: Kaiming normal, fan out); a drawn BatchNorm
weight becomes 1 and a drawn bias 0, as a fresh layer's. The running statistics are left
as they are: the Remember epochs that follow re-estimate them (train mode, momentum 0.1).
Each cycle's draw and the ratios so far (share of the pool's tensors, share of the
network's parameters) go into ``round_log``.

**The schedule.** Unstated in the sources: a cosine that restarts with every cycle
(``schedule = "per_cycle"``, T_max ``cosine_t_max``, the default) or one cosine over all
the epochs (``"whole"``).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import conv_layers, frozen_copy, reset_module, set_lr, sgd, train_epoch
from .hyperparameters import tuned

ALGORITHM_CYCLES = {1: (1, 2, 2), 2: (2, 1, 1, 1)}
ALGORITHM_2_LRS = (5e-4, 1e-3, 1e-3, 1e-3, 1e-3)
CHOICES = {"pool": ("tensors", "conv_modules"), "init": ("pytorch", "torchvision"),
           "schedule": ("per_cycle", "whole")}


def is_shortcut_or_head(name: str) -> bool:
    return name.startswith("fc.") or "downsample" in name


@torch.no_grad()
def reinitialise(name: str, tensor: torch.Tensor, init: str) -> None:
    """A fresh layer's value for one parameter tensor: a convolution weight drawn anew, a
    BatchNorm weight 1 and bias 0."""
    if tensor.dim() == 1:  # BatchNorm (the pool holds no other 1-D tensor)
        tensor.fill_(1.0 if name.endswith("weight") else 0.0)
    elif init == "torchvision":
        torch.nn.init.kaiming_normal_(tensor, mode="fan_out", nonlinearity="relu")
    else:  # torch.nn.Conv2d.reset_parameters' rule for its weight
        torch.nn.init.kaiming_uniform_(tensor, a=5**0.5)


@register("forget")
@dataclass(kw_only=True, eq=False)
class Forget(BaseMethod):
    algorithm: int = 1  # which went into the final submission is unconfirmed
    pool: str = "tensors"  # the source's selection ratios (module docstring)
    init: str = "pytorch"
    schedule: str = "per_cycle"
    layers_per_cycle: int = tuned(6, 2, 12)
    input_noise_std: float = 0.01
    lr: float = tuned(1e-3, 1e-4, 1e-2, log=True)
    cosine_t_max: int = 2
    momentum: float = 0.9  # (U)
    weight_decay: float = 5e-4  # (U)
    round_log: list = field(default_factory=list, init=False)

    def __post_init__(self):
        super().__post_init__()
        if self.algorithm not in ALGORITHM_CYCLES:
            raise ValueError(f"algorithm must be one of {sorted(ALGORITHM_CYCLES)}")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}")

    def run(self, net, retain_loader, forget_loader, val_loader):
        teacher = frozen_copy(net)
        pool = self.pool_of(net)
        total = sum(p.numel() for p in net.parameters())

        def remember_loss(n, x, y):
            noisy = x + self.input_noise_std * torch.randn_like(x)
            with torch.no_grad():
                target = teacher(noisy)
            return F.mse_loss(n(noisy), target)

        cycles = ALGORITHM_CYCLES[self.algorithm]
        optimizer = scheduler = None
        epoch, touched, self.round_log = 0, set(), []
        for cycle, cycle_epochs in enumerate(cycles):
            drawn = [pool[i][0] for i in torch.randint(len(pool), (self.layers_per_cycle,)).tolist()]
            self.forget_step(net, pool, drawn)
            touched.update(drawn)
            self.round_log.append({
                "cycle": cycle, "drawn": drawn, "tensor_share": len(touched) / len(pool),
                "parameter_share": sum(dict(pool)[n].numel() for n in touched) / total})
            if scheduler is None or self.schedule == "per_cycle":  # per cycle: momentum restarts too
                optimizer = sgd(net, self.lr, self.momentum, self.weight_decay)
                t_max = self.cosine_t_max if self.schedule == "per_cycle" else sum(cycles)
                scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max)
            for _ in range(cycle_epochs):
                if self.algorithm == 2:
                    set_lr(optimizer, ALGORITHM_2_LRS[epoch])
                train_epoch(net, retain_loader, optimizer, loss_fn=remember_loss)
                if self.algorithm == 1:
                    scheduler.step()
                epoch += 1
        net.eval()

    def pool_of(self, net) -> list[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` of what a draw picks from: the parameter tensors outside ``fc`` and
        the shortcuts, or the convolution modules outside the shortcuts (as their weights)."""
        if self.pool == "tensors":
            return [(n, p) for n, p in net.named_parameters() if not is_shortcut_or_head(n)]
        return [(f"{n}.weight", m.weight) for n, m in conv_layers(net) if "downsample" not in n]

    def forget_step(self, net, pool, drawn: list[str]) -> None:
        tensors = dict(pool)
        modules = dict(conv_layers(net))
        for name in drawn:
            if self.pool == "conv_modules" and self.init == "pytorch":
                reset_module(modules[name.removesuffix(".weight")])
            else:
                reinitialise(name, tensors[name], self.init)
