"""Jiaxi Sun (8th place): repeated noise injection (RNI). methods.md section 7
([DU/k7], [KW-459095]).

Reset fc. Epochs 0-4: train 9 random "selectable" tensors plus every BN tensor at
lr 2e-4; from epoch 1, 6 of the 9 get N(0, 0.04^2) noise unless they were trainable
in an earlier epoch. Epochs 5-8: the whole model at lr 2e-4, 2e-4, 2e-4, 1e-3. A new
SGD optimiser every epoch, so momentum resets.

``first_epoch``: the public port trains epoch 0 like the other selection epochs
(``"selected"``, the default); the write-up resets ``fc`` and fine-tunes the entire model
in its first stage (``"all"``, at the selection lr). Counted as "trainable in an earlier
epoch", that whole-model epoch would leave no tensor unseen and silence every later noise
step, so under ``"all"`` only the selection epochs count: a tensor gets noise unless a
selection epoch trained it before.
"""

from dataclasses import dataclass

import torch

from . import register
from .BaseMethod import BaseMethod
from .common import add_gaussian_noise, reset_module, sgd, train_epoch
from .hyperparameters import tuned


@register("sun")
@dataclass(kw_only=True, eq=False)
class Sun(BaseMethod):
    epochs: int = 9
    select_epochs: int = 5
    tensors_per_epoch: int = 9
    noise_share: float = 0.7
    noise_std: float = tuned(0.04, 0.01, 0.2, log=True)
    select_lr: float = tuned(2e-4, 5e-5, 1e-3, log=True)
    full_lrs: tuple[float, ...] = (2e-4, 2e-4, 2e-4, 1e-3, 1e-3, 1e-4)  # only the first 4 are used at 9 epochs
    first_epoch: str = "selected"  # "all": the write-up's first stage (module docstring)

    def __post_init__(self):
        super().__post_init__()
        if self.first_epoch not in ("selected", "all"):
            raise ValueError(f"first_epoch must be selected or all, got {self.first_epoch!r}")
        if not 0 < self.select_epochs <= self.epochs:
            raise ValueError(f"select_epochs must be between 1 and epochs ({self.epochs}), got {self.select_epochs}")
        full_epochs = self.epochs - self.select_epochs
        if len(self.full_lrs) < full_epochs:
            raise ValueError(f"full_lrs gives {len(self.full_lrs)} learning rates for the {full_epochs} epochs after "
                             f"the {self.select_epochs} selection epochs; give at least {full_epochs}")

    def run(self, net, retain_loader, forget_loader, val_loader):
        reset_module(net.fc)
        params = dict(net.named_parameters())
        bn_keys = [n for n in params if "bn" in n]
        selectable = [n for n in params if "bn" not in n]  # convs, downsample BN, fc
        seen: set[str] = set()
        try:
            for epoch in range(self.epochs):
                whole_first = epoch == 0 and self.first_epoch == "all"
                if whole_first:
                    trainable, lr = list(params), self.select_lr
                elif epoch < self.select_epochs:
                    chosen = [selectable[i] for i in torch.randperm(len(selectable))[: self.tensors_per_epoch].tolist()]
                    trainable, lr = chosen + bn_keys, self.select_lr
                    if epoch >= 1:
                        n_noisy = int(self.noise_share * self.tensors_per_epoch)
                        noisy = [chosen[i] for i in torch.randperm(len(chosen))[:n_noisy].tolist()]
                        add_gaussian_noise([params[n] for n in noisy if n not in seen], self.noise_std)
                else:
                    trainable, lr = list(params), self.full_lrs[epoch - self.select_epochs]
                for name, p in params.items():
                    p.requires_grad_(name in trainable)
                if not whole_first:  # only selection epochs count as seen (module docstring)
                    seen.update(trainable)
                train_epoch(net, retain_loader, sgd(net, lr, params=[params[n] for n in trainable]))
        finally:
            for p in params.values():
                p.requires_grad_(True)
        net.eval()
