"""Running trained models: float32 logits of one model, or of several over the same images.

Kept in float32 (no autocast): the metric's confidences are taken in float64 from these
logits, and bf16 would blur them. References and unlearned models go through the same path
(``evaluation/scoring.py``), so the metric never compares numbers computed two ways.
"""

from __future__ import annotations

import torch

from .devices import device_scope
from .engine import ModelGroup, small_convs_by_default


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


@torch.no_grad()
def predict_logits_many(states: list[dict], images: torch.Tensor, num_classes: int = 10, batch_size: int = 1024,
                        group_size: int = 1, small_convs: bool | None = None) -> torch.Tensor:
    """float32 logits ``[K, n, classes]`` of several models (eval mode) over the same images.

    By default one model at a time, as ``predict_logits`` runs it, with the small-input
    convolutions as matrix products on CPU (``small_convs`` overrides that, as in
    ``train_models``); ``group_size`` > 1 shares one vmapped forward among that many
    models. On the 2-core CPU one at a time ran 1,750 to 2,050 model-images/s, against
    1,100 to 1,300 for vmapped groups; the small convs made no difference beyond noise
    there (benchmarks/inference_speed.py, which times every choice on any device).
    """
    return predict_logits_sets(states, {"images": images}, num_classes, batch_size, group_size, small_convs)["images"]


@torch.no_grad()
def predict_logits_sets(states: list[dict], image_sets: dict[str, torch.Tensor], num_classes: int = 10,
                        batch_size: int = 1024, group_size: int = 1, small_convs: bool | None = None
                        ) -> dict[str, torch.Tensor]:
    """``predict_logits_many`` over several sets of images of one shape (the splits), each model
    built once for all of them (building one costs about as much as inferring 150 CIFAR images
    on a 2-core CPU); every set is batched on its own, so its logits are those of
    ``predict_logits_many`` alone, bit for bit."""
    first = next(iter(image_sets.values()))
    if any(x.shape[1:] != first.shape[1:] or x.device != first.device for x in image_sets.values()):
        raise ValueError("the image sets must share one image shape and one device")
    if small_convs is None:
        small_convs = small_convs_by_default(first.device)
    small_convs_for = tuple(first.shape[1:]) if small_convs else None
    outs = {name: [] for name in image_sets}
    with device_scope(first.device):
        for g in range(0, len(states), group_size):
            group = ModelGroup.from_state_dicts(states[g : g + group_size], num_classes, first.device,
                                                small_convs_for).train(False)
            for name, images in image_sets.items():
                outs[name].append(_predict_group(group, images, batch_size, num_classes))
    return {name: torch.cat(chunks) if chunks else torch.empty(0, images.shape[0], num_classes, device=images.device)
            for (name, chunks), images in zip(outs.items(), image_sets.values())}


def _predict_group(group: ModelGroup, images: torch.Tensor, batch_size: int, num_classes: int) -> torch.Tensor:
    """``[K, n, classes]`` logits of one group's models."""
    if group.single is not None:
        return predict_logits(group.single, images, batch_size)[None]
    if not images.shape[0]:
        return torch.empty(group.size, 0, num_classes, device=images.device)
    chunks = [group.forward_shared(images[s : s + batch_size]).float() for s in range(0, images.shape[0], batch_size)]
    return torch.cat(chunks, dim=1)
