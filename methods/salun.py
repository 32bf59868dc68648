"""SalUn (Fan et al., ICLR 2024): saliency-masked random-label unlearning.
methods.md section 9 ([SAL]).

1. Mask: the gradient of -CE over the forget set (eval mode), |G| ranked globally over
all parameters; the top 50% are trainable. 2. 10 epochs of: a forget pass with
uniformly random labels, then a retain pass with true labels, every step restricted
to the mask. SGD lr 0.013, momentum 0.9, weight decay 5e-4, batch 256. Entries
outside the mask are restored after every step and their momentum zeroed (the
current code); ``freeze="gradients"`` is the pre-2026 behaviour (mask gradients only).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import FrozenOutsideMask, gradient_saliency, loader_over, sgd, train_epoch
from .hyperparameters import tuned


def saliency_mask(net, forget_loader, fraction: float) -> dict:
    """Top ``fraction`` of all parameters by |gradient of the forget loss| (eval mode)."""
    return gradient_saliency(net, forget_loader, lambda n, x, y: -F.cross_entropy(n(x), y), fraction)


def random_label_loss(n, x, y):
    """CE against labels drawn uniformly per batch (they may equal the true ones)."""
    logits = n(x)
    return F.cross_entropy(logits, torch.randint(0, logits.shape[1], y.shape, device=y.device))


@register("salun")
@dataclass(kw_only=True, eq=False)
class SalUn(BaseMethod):
    mask_fraction: float = tuned(0.5, 0.1, 0.9)  # the SalUn paper's sweep
    lr: float = tuned(0.013, 1e-3, 0.05, log=True)  # current README; the first README used 0.1
    epochs: int = tuned(10, 3, 15)
    batch_size: int | None = 256  # None: the loaders as given
    freeze: str = "restore"

    def __post_init__(self):
        super().__post_init__()
        if self.freeze not in ("restore", "gradients"):
            raise ValueError("freeze must be 'restore' or 'gradients'")

    def run(self, net, retain_loader, forget_loader, val_loader):
        if self.batch_size:
            retain_loader = loader_over(retain_loader, self.batch_size)
            forget_loader = loader_over(forget_loader, self.batch_size)
        masks = saliency_mask(net, forget_loader, self.mask_fraction)
        optimizer = sgd(net, self.lr)
        frozen = FrozenOutsideMask(net, masks, optimizer)
        after_step = frozen.restore if self.freeze == "restore" else None
        for _ in range(self.epochs):
            for loader, loss_fn in ((forget_loader, random_label_loss), (retain_loader, None)):
                kwargs = {"loss_fn": loss_fn} if loss_fn else {}
                train_epoch(net, loader, optimizer, after_backward=frozen.mask_gradients, after_step=after_step,
                            **kwargs)
        net.eval()
