"""Fanchuan (2nd place): forget-contrast-strengthen. methods.md section 1 ([DU/k1], [KW-458721]).

Stage 1: one pass over the forget set pulling predictions to uniform (KL(u || p)).
Stage 2, 8 epochs of: (a) a forget round that makes each forget example's logits
equally similar to every retain example of a batch (contrast against retain
"negatives"); (b) a retain round of cross-entropy. Three SGD optimisers, created
once, so momentum persists across rounds.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from training.devices import device_of

from . import register
from .BaseMethod import BaseMethod
from .common import kl_to_uniform, loader_over, sgd, train_epoch
from .hyperparameters import tuned


@register("fanchuan")
@dataclass(kw_only=True, eq=False)
class Fanchuan(BaseMethod):
    epochs: int = tuned(8, 2, 10)  # the write-up found 8 best
    stage1_lr: float = 5e-3
    retain_batch_size: int = 256  # [KW-458721]; an earlier notebook used 64
    retain_lr_per_64: float = tuned(1e-3, 1e-4, 1e-2, log=True)  # retain lr = 1e-3 * B / 64 = 4e-3 at B = 256
    retain_weight_decay: float = 1e-2
    forget_lr: float = tuned(3e-4, 1e-5, 3e-3, log=True)
    forget_eta_min: float = 1e-6
    temperature: float = tuned(1.15, 0.5, 3.0)
    retain_lr: float = field(init=False)  # retain_lr_per_64 * retain_batch_size / 64

    def __post_init__(self):
        super().__post_init__()
        self.retain_lr = self.retain_lr_per_64 * self.retain_batch_size / 64

    def run(self, net, retain_loader, forget_loader, val_loader):
        retain_round = loader_over(retain_loader, self.retain_batch_size)
        negatives = loader_over(retain_loader, self.retain_batch_size)
        stage1_opt = sgd(net, self.stage1_lr, weight_decay=0.0)
        retain_opt = sgd(net, self.retain_lr, weight_decay=self.retain_weight_decay)
        forget_opt = sgd(net, self.forget_lr, weight_decay=0.0)
        forget_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            forget_opt, T_max=self.epochs * len(forget_loader), eta_min=self.forget_eta_min
        )

        # Stage 1: forget predictions towards uniform (labels unused).
        train_epoch(net, forget_loader, stage1_opt, loss_fn=lambda n, x, y: kl_to_uniform(n(x)))

        # Stage 2: contrast, then strengthen.
        for _ in range(self.epochs):
            self.forget_round(net, forget_loader, negatives, forget_opt, forget_schedule)
            train_epoch(net, retain_round, retain_opt)
        net.eval()

    def forget_round(self, net, forget_loader, negatives, optimizer, schedule):
        """Each forget batch made equally similar, in logits, to every example of a retain batch."""
        device = device_of(net)
        net.train()  # the negatives' forward also updates BN statistics
        for (forget_x, _), (retain_x, _) in zip(forget_loader, negatives):
            forget_logits = net(forget_x.to(device))
            with torch.no_grad():
                retain_logits = net(retain_x.to(device))
            similarity = forget_logits @ retain_logits.T / self.temperature
            # Cross-entropy of each forget row against a uniform target over the batch.
            loss = -F.log_softmax(similarity, dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
