"""Team "Forget" (9th place): stochastic re-initialisation + knowledge preserving.
methods.md section 8 ([KW-458715], [JB]). No public port; unconfirmed choices are
constructor arguments.

Cycles of: Forget, re-initialise 6 conv layers drawn with replacement from all
but fc and the downsample convs; Remember, train on retain images with noise added
(N(0, 0.01^2)) to match the frozen original's logits by MSE. Labels are never used.
Algorithm 1: 3 cycles of 1, 2, 2 epochs, cosine lr from 1e-3 (T_max 2, restarting
each cycle). Algorithm 2: 4 cycles of 2, 1, 1, 1 epochs with per-epoch lrs
5e-4, 1e-3, 1e-3, 1e-3, 1e-3.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .hyperparameters import tuned
from .common import conv_layers, frozen_copy, reset_module, set_lr, sgd, train_epoch

ALGORITHM_CYCLES = {1: (1, 2, 2), 2: (2, 1, 1, 1)}
ALGORITHM_2_LRS = (5e-4, 1e-3, 1e-3, 1e-3, 1e-3)


@register("forget")
@dataclass(kw_only=True, eq=False)
class Forget(BaseMethod):
    algorithm: int = 1  # which went into the final submission is unconfirmed
    layers_per_cycle: int = tuned(6, 2, 12)
    input_noise_std: float = 0.01
    lr: float = tuned(1e-3, 1e-4, 1e-2, log=True)
    cosine_t_max: int = 2
    momentum: float = 0.9  # (U)
    weight_decay: float = 5e-4  # (U)

    def __post_init__(self):
        super().__post_init__()
        if self.algorithm not in ALGORITHM_CYCLES:
            raise ValueError(f"algorithm must be one of {sorted(ALGORITHM_CYCLES)}")

    def run(self, net, retain_loader, forget_loader, val_loader):
        teacher = frozen_copy(net)
        pool = [conv for name, conv in conv_layers(net) if "downsample" not in name]

        def remember_loss(n, x, y):
            noisy = x + self.input_noise_std * torch.randn_like(x)
            with torch.no_grad():
                target = teacher(noisy)
            return F.mse_loss(n(noisy), target)

        epoch = 0
        for cycle_epochs in ALGORITHM_CYCLES[self.algorithm]:
            for i in torch.randint(len(pool), (self.layers_per_cycle,)).tolist():
                reset_module(pool[i])
            optimizer = sgd(net, self.lr, self.momentum, self.weight_decay)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.cosine_t_max)
            for _ in range(cycle_epochs):
                if self.algorithm == 2:
                    set_lr(optimizer, ALGORITHM_2_LRS[epoch])
                train_epoch(net, retain_loader, optimizer, loss_fn=remember_loss)
                if self.algorithm == 1:
                    schedule.step()
                epoch += 1
        net.eval()
