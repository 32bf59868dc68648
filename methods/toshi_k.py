"""toshi_k & marvelworld (6th place): convolution transpose. methods.md section 5
([DU/k5], [KW-458531]), approach A.

Every conv kernel is transposed spatially (W.swapaxes(2, 3), a new Parameter), then
3 epochs of CE on retain with SGD lr 1e-3 and cosine (T_max 3) per epoch; the
optimiser is created after the transpose.
"""

from dataclasses import dataclass

import torch

from . import register
from .BaseMethod import BaseMethod
from .common import conv_layers, sgd, train_epochs
from .hyperparameters import tuned


@register("toshi_k")
@dataclass(kw_only=True, eq=False)
class ToshiK(BaseMethod):
    lr: float = tuned(1e-3, 1e-4, 1e-2, log=True)
    epochs: int = tuned(3, 1, 6)

    def run(self, net, retain_loader, forget_loader, val_loader):
        for _, conv in conv_layers(net):
            conv.weight = torch.nn.Parameter(conv.weight.detach().transpose(2, 3).contiguous())
        optimizer = sgd(net, self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        train_epochs(net, retain_loader, optimizer, self.epochs, schedule)
        net.eval()
