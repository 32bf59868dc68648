"""Progressive saliency-guided unlearning (this project's own method; methods.md section 10).

0. Teacher: a frozen copy of the original.
Rounds r = 1..R, until the forget set looks like held-out data or the budget is spent:
1. Saliency: |gradient of the forget loss| (eval mode) over every weight; mask the
   top ``mask_fraction``. Recomputed each round on what is left to forget.
2. Impair: one pass over the forget set updating only masked weights, pulling the
   forget predictions towards uniform (or random labels).
3. Repair: a short rehearsal on the retain set, CE plus distillation towards the
   original, all weights at a low rate.
4. Check: forget accuracy vs validation accuracy. A retrained model treats forget
   examples like unseen ones, so stop once |gap| <= ``tolerance``. The first round
   always runs, whatever the starting gap: returning the original unchanged makes
   every run identical, and the metric gives identical runs the worst epsilon.
Every round is logged in ``self.round_log`` (masked fraction, accuracies, gap, time).
"""

import time
from dataclasses import dataclass, field

import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import (
    FrozenOutsideMask,
    distillation_kl,
    frozen_copy,
    kl_to_uniform,
    loader_accuracy,
    sgd,
    train_epochs,
    train_epoch,
)
from .salun import random_label_loss, saliency_mask

IMPAIR_LOSSES = {"kl_uniform": lambda n, x, y: kl_to_uniform(n(x)), "random_labels": random_label_loss}


@register("saliency_guided")
@dataclass(kw_only=True, eq=False)
class SaliencyGuided(BaseMethod):
    mask_fraction: float = 0.1
    max_rounds: int = 4
    tolerance: float = 0.02
    time_budget: float | None = None  # seconds; None: rounds alone decide
    impair: str = "kl_uniform"
    impair_lr: float = 0.01
    repair_lr: float = 0.01
    repair_epochs: int = 1
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    round_log: list = field(default_factory=list, init=False)

    def __post_init__(self):
        super().__post_init__()
        if self.impair not in IMPAIR_LOSSES:
            raise ValueError(f"impair must be one of {sorted(IMPAIR_LOSSES)}")

    def run(self, net, retain_loader, forget_loader, val_loader):
        start = time.perf_counter()
        teacher = frozen_copy(net)
        self.round_log = [self._check(net, forget_loader, val_loader, 0, 0.0, start)]

        def repair_loss(n, x, y):
            logits = n(x)
            return F.cross_entropy(logits, y) + self.distill_weight * distillation_kl(
                logits, teacher(x).detach(), self.distill_temperature
            )

        for r in range(1, self.max_rounds + 1):
            if r > 1 and self._done(start):
                break
            masks = saliency_mask(net, forget_loader, self.mask_fraction)
            impair_opt = sgd(net, self.impair_lr, weight_decay=0.0)
            frozen = FrozenOutsideMask(net, masks, impair_opt)
            train_epoch(net, forget_loader, impair_opt, loss_fn=IMPAIR_LOSSES[self.impair],
                        after_backward=frozen.mask_gradients, after_step=frozen.restore)
            train_epochs(net, retain_loader, sgd(net, self.repair_lr), self.repair_epochs, loss_fn=repair_loss)
            self.round_log.append(self._check(net, forget_loader, val_loader, r, self.mask_fraction, start))
        net.eval()

    def _check(self, net, forget_loader, val_loader, round_index, masked_fraction, start) -> dict:
        forget_acc, val_acc = loader_accuracy(net, forget_loader), loader_accuracy(net, val_loader)
        return {
            "round": round_index,
            "masked_fraction": masked_fraction,
            "forget_acc": forget_acc,
            "val_acc": val_acc,
            "gap": forget_acc - val_acc,
            "seconds": time.perf_counter() - start,
        }

    def _done(self, start) -> bool:
        if abs(self.round_log[-1]["gap"]) <= self.tolerance:
            return True
        return self.time_budget is not None and time.perf_counter() - start >= self.time_budget
