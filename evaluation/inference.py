"""Batched inference over tensors already on the device: logits, accuracy, losses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """float32 logits ``[n, classes]`` on the images' device, model in eval mode.

    Kept in float32 (no autocast): the metric's confidences are taken in float64
    from these logits and bf16 would blur them. (On CUDA, cuDNN's default TF32 still
    applies to the convolutions; every model of an evaluation is scored the same way.)
    """
    was_training = model.training
    model.eval()
    outs = []
    for s in range(0, images.shape[0], batch_size):
        x = images[s : s + batch_size]
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        outs.append(model(x).float())
    model.train(was_training)
    if not outs:
        return torch.empty(0, 10, device=images.device)
    return torch.cat(outs)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean().item()) if labels.numel() else float("nan")


def per_example_losses(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return F.cross_entropy(logits.double(), labels, reduction="none").cpu().numpy()
