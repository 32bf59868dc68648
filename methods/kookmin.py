"""Kookmin (3rd place): re-initialise the least important conv weights, fine-tune them
faster. methods.md section 2 ([DU/k2], [KW-459200]).

1. Gradient G of CE on a random retain subset (|forget| examples) plus -CE on the
   forget set; no step. 2. In every Conv2d, the 30% of entries with the smallest |G|
   get fresh He (fan_out) values. 3.+4. Fine-tune 5 epochs on retain with the loss
   gradient of kept conv entries scaled by 0.1 (weight decay unscaled), SGD lr 1e-3
   with warm-up then linear decay per epoch.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import accumulate_gradients, conv_layers, loader_over, sgd, train_epochs
from .hyperparameters import tuned


@register("kookmin")
@dataclass(kw_only=True, eq=False)
class Kookmin(BaseMethod):
    reinit_fraction: float = tuned(0.3, 0.1, 0.6)
    kept_grad_scale: float = tuned(0.1, 0.01, 1.0, log=True)  # wide: 1 is no scaling
    lr: float = tuned(1e-3, 1e-4, 1e-2, log=True)
    epochs: int = tuned(5, 2, 8)
    subset_batch_size: int = 64
    selection: str = "per_layer"  # DU; [KW-459200] says "global"

    def __post_init__(self):
        super().__post_init__()
        if self.selection not in ("per_layer", "global"):
            raise ValueError("selection must be 'per_layer' or 'global'")

    def run(self, net, retain_loader, forget_loader, val_loader):
        # Step 1: importance from retain (descent) and forget (ascent) gradients.
        subset = torch.randperm(len(retain_loader.dataset))[: len(forget_loader.dataset)]
        retain_subset = loader_over(retain_loader, self.subset_batch_size, indices=subset.tolist())
        g_retain = accumulate_gradients(net, retain_subset, lambda n, x, y: F.cross_entropy(n(x), y))
        g_forget = accumulate_gradients(net, forget_loader, lambda n, x, y: -F.cross_entropy(n(x), y))
        importance = {name: (g_retain[name] + g_forget[name]).abs() for name in g_retain}

        # Step 2: re-initialise the least important entries of every conv.
        scales = self.reinitialise(net, importance)

        # Steps 3-4: fine-tune with the kept entries' gradients scaled down.
        hooks = [conv.weight.register_hook(lambda g, s=s: g * s) for (_, conv), s in zip(conv_layers(net), scales)]
        optimizer = sgd(net, self.lr)
        # Per epoch: 1/3, 2/3, 1, 2/3, 1/3 of lr at 5 epochs (warm-up, then linear decay).
        peak = math.ceil(self.epochs / 2)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: min(e + 1, self.epochs - e) / peak)
        try:
            train_epochs(net, retain_loader, optimizer, self.epochs, schedule)
        finally:
            for h in hooks:
                h.remove()
        net.eval()

    @torch.no_grad()
    def reinitialise(self, net, importance) -> list[torch.Tensor]:
        """Re-init the least important conv entries; return each conv's gradient scale."""
        convs = conv_layers(net)
        scores = [importance[f"{name}.weight"] for name, _ in convs]
        if self.selection == "global":
            flat = torch.cat([s.reshape(-1) for s in scores])
            k = int(round(self.reinit_fraction * flat.numel()))
            cutoff = torch.kthvalue(flat.cpu(), k).values.item() if k else -1.0
            chosen = [s <= cutoff for s in scores]
        else:
            chosen = []
            for s in scores:
                k = int(round(self.reinit_fraction * s.numel()))
                mask = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
                mask[torch.topk(s.reshape(-1), k, largest=False).indices] = True
                chosen.append(mask.view_as(s))
        scales = []
        for (_, conv), mask in zip(convs, chosen):
            fresh = torch.empty_like(conv.weight)
            torch.nn.init.kaiming_normal_(fresh, mode="fan_out", nonlinearity="relu")
            conv.weight.copy_(torch.where(mask, fresh, conv.weight))
            scales.append(torch.where(mask, 1.0, self.kept_grad_scale).to(conv.weight.dtype))
        return scales
