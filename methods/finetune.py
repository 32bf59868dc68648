"""Baseline: fine-tune on the retain set (the CIFAR-10 starter kit, methods.md section 0).

5 epochs of cross-entropy on the retain set; SGD lr 0.1, momentum 0.9, weight
decay 5e-4; CosineAnnealingLR(T_max=epochs) stepped per epoch. (The Kaggle notebook
variant is ``Finetune(epochs=1, lr=1e-3)``.)
"""

from dataclasses import dataclass

import torch

from . import register
from .BaseMethod import BaseMethod
from .common import sgd, train_epochs
from .hyperparameters import tuned


@register("finetune")
@dataclass(kw_only=True, eq=False)
class Finetune(BaseMethod):
    epochs: int = tuned(5, 1, 10)  # starter kit 5, its Kaggle notebook 1
    lr: float = tuned(0.1, 1e-3, 0.3, log=True)  # wide: the starter kit's 0.1 and its notebook's 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def run(self, net, retain_loader, forget_loader, val_loader):
        optimizer = sgd(net, self.lr, self.momentum, self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        train_epochs(net, retain_loader, optimizer, self.epochs, scheduler)
        net.eval()
