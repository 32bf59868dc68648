"""Algorithmic Amnesiacs (7th place): reset the ends, distil back. methods.md section 6
([DU/k6], [DIG on KW-458740]).

1. Teacher: a frozen copy of the original. 2. Reset the stem conv and fc. 3. Warm-up:
3 epochs over the validation images distilling the teacher (KL at T = 5, lr 9e-4).
4. 3 epochs on retain: CE + soft CE + KL to the teacher at T = 5, lr 1e-3 with cosine
(T_max 3) per epoch.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import distillation_kl, frozen_copy, reset_module, sgd, soft_cross_entropy, train_epochs
from .hyperparameters import tuned


@register("amnesiacs")
@dataclass(kw_only=True, eq=False)
class Amnesiacs(BaseMethod):
    temperature: float = tuned(5.0, 1.0, 10.0)
    warmup_epochs: int = tuned(3, 1, 5)
    warmup_lr: float = 9e-4
    epochs: int = tuned(3, 1, 6)
    lr: float = tuned(1e-3, 1e-4, 1e-2, log=True)

    def run(self, net, retain_loader, forget_loader, val_loader):
        teacher = frozen_copy(net)
        reset_module(net.conv1)
        reset_module(net.fc)
        t = self.temperature

        def warmup_loss(n, x, y):  # validation labels are not used
            with torch.no_grad():
                target = teacher(x)
            return distillation_kl(n(x), target, t)

        def retain_loss(n, x, y):
            logits = n(x)
            with torch.no_grad():
                target = teacher(x)
            return (F.cross_entropy(logits, y) + soft_cross_entropy(logits, target, t)
                    + distillation_kl(logits, target, t))

        train_epochs(net, val_loader, sgd(net, self.warmup_lr), self.warmup_epochs, loss_fn=warmup_loss)
        optimizer = sgd(net, self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        train_epochs(net, retain_loader, optimizer, self.epochs, schedule, loss_fn=retain_loss)
        net.eval()
