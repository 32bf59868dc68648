"""Seif Eddine Achour (4th place): confuse, then class-weighted fine-tune.
methods.md section 3 ([DU/k3], [KW-459334]).

1. Confuse: Gaussian noise (std 0.6) on the stem conv. 2. Class weights from the
retain labels. 3. Loss: batch-mean CE times the batch's mean class weight (DU).
4. 4 epochs on retain, SGD lr 7e-4 with cosine (T_max 4) per epoch; before the last
epoch, confuse again with std 0.005.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import add_gaussian_noise, class_counts, conv_layers, num_classes_of, sgd, train_epoch
from .hyperparameters import tuned


@register("seif")
@dataclass(kw_only=True, eq=False)
class Seif(BaseMethod):
    noise_std: float = tuned(0.6, 0.1, 1.0)
    final_noise_std: float = 0.005
    lr: float = tuned(7e-4, 1e-4, 5e-3, log=True)
    epochs: int = tuned(4, 2, 8)
    noise_layers: str = "stem"  # DU: top-level convs = conv1 only; [KW-459334]: "all"
    class_weights: str = "balanced"  # CIFAR adaptation; "competition": [1, 0.05 x 9]

    def __post_init__(self):
        super().__post_init__()
        if self.noise_layers not in ("stem", "all") or self.class_weights not in ("balanced", "competition"):
            raise ValueError("noise_layers must be 'stem' or 'all'; class_weights 'balanced' or 'competition'")

    def run(self, net, retain_loader, forget_loader, val_loader):
        noisy = [net.conv1.weight] if self.noise_layers == "stem" else [c.weight for _, c in conv_layers(net)]
        add_gaussian_noise(noisy, self.noise_std)

        weights = self._weights(net, retain_loader).to(net.fc.weight.device)

        def weighted_ce(n, x, y):
            return F.cross_entropy(n(x), y) * weights[y].mean()

        optimizer = sgd(net, self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        for epoch in range(self.epochs):
            if epoch == self.epochs - 1:
                add_gaussian_noise(noisy, self.final_noise_std)
            train_epoch(net, retain_loader, optimizer, loss_fn=weighted_ce)
            schedule.step()
        net.eval()

    def _weights(self, net, retain_loader) -> torch.Tensor:
        n_classes = num_classes_of(net)
        if self.class_weights == "competition":
            return torch.tensor([1.0] + [0.05] * (n_classes - 1))
        counts = class_counts(retain_loader, n_classes)
        present = counts > 0  # sklearn's "balanced": n / (K * n_c) over the classes present
        weights = torch.zeros(n_classes, dtype=torch.float64)
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights.float()
