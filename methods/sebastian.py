"""Sebastian Oleszko (5th place): prune 99%, re-initialise, regularised fine-tune (PRMQ).
methods.md section 4 ([DU/k4], [KW-459148]).

1. Teacher: a frozen copy of the original. 2. Class weights n_c^-0.1. 3. Global L1
pruning of 99% of all conv and linear weights and fc.bias. 4. Pruned weights get
fresh uniform values (biases stay 0). 5. Fine-tune int(3.2 * len(retain)) + 1 steps
(the reference loop's off-by-one) with weighted CE + MSE between the entropies of
student and teacher predictions. 6. "Quantise": eval mode, fp16 and back.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from . import register
from .BaseMethod import BaseMethod
from .common import class_counts, entropy, frozen_copy, num_classes_of, sgd, train_steps
from .hyperparameters import tuned


@register("sebastian")
@dataclass(kw_only=True, eq=False)
class Sebastian(BaseMethod):
    amount: float = tuned(0.99, 0.9, 0.999)
    lr: float = tuned(5e-4, 1e-4, 5e-3, log=True)
    epochs: float = tuned(3.2, 1.0, 6.0)
    class_weight_power: float = -0.1

    def run(self, net, retain_loader, forget_loader, val_loader):
        teacher = frozen_copy(net)
        counts = class_counts(retain_loader, num_classes_of(net))
        weights = torch.where(counts > 0, counts.clamp(min=1) ** self.class_weight_power, 0.0).float()
        weights = weights.to(net.fc.weight.device)

        self.prune_and_reinitialise(net)

        def loss_fn(n, x, y):
            logits = n(x)
            with torch.no_grad():
                teacher_logits = teacher(x)
            return F.cross_entropy(logits, y, weight=weights) + F.mse_loss(entropy(logits), entropy(teacher_logits))

        steps = int(self.epochs * len(retain_loader)) + 1
        train_steps(net, retain_loader, sgd(net, self.lr), steps, loss_fn=loss_fn)
        net.eval()
        net.half()
        net.float()

    @torch.no_grad()
    def prune_and_reinitialise(self, net) -> None:
        targets = [(m, "weight") for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        targets.append((net.fc, "bias"))
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=self.amount)
        for module, name in targets:
            pruned = getattr(module, f"{name}_mask") == 0
            prune.remove(module, name)
            if name == "bias":
                continue  # pruned biases stay 0
            fan_in = module.weight[0].numel()  # C_in * kh * kw, or in_features
            bound = 1.0 / math.sqrt(fan_in)
            fresh = torch.empty_like(module.weight).uniform_(-bound, bound)
            module.weight.copy_(torch.where(pruned, fresh, module.weight))
