"""Running models over the splits and keeping what the score needs: float32 logits
(one model, or several over the same images), accuracies, and per-example confidences
and losses on forget and test.

References and unlearned models go through the same inference path
(``predict_logits_many``), so the metric never compares numbers computed two ways.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from training.engine import ModelGroup, device_scope, small_convs_by_default

from . import metric

SPLITS = ("retain", "forget", "test")


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
    if small_convs is None:
        small_convs = small_convs_by_default(images.device)
    small_convs_for = tuple(images.shape[1:]) if small_convs else None
    with device_scope(images.device):
        return _predict_groups(states, images, num_classes, batch_size, group_size, small_convs_for)


def _predict_groups(states, images, num_classes, batch_size, group_size, small_convs_for) -> torch.Tensor:
    outs = []
    for g in range(0, len(states), group_size):
        group = ModelGroup.from_state_dicts(states[g : g + group_size], num_classes, images.device,
                                            small_convs_for).train(False)
        if group.single is not None:
            outs.append(predict_logits(group.single, images, batch_size)[None])
            continue
        chunks = [group.forward_shared(images[s : s + batch_size]).float()
                  for s in range(0, images.shape[0], batch_size)]
        outs.append(torch.cat(chunks, dim=1))
    return torch.cat(outs) if outs else torch.empty(0, images.shape[0], num_classes, device=images.device)


@dataclass
class ModelScores:
    retain_acc: float
    forget_acc: float
    test_acc: float
    forget_confs: np.ndarray
    forget_losses: np.ndarray
    test_losses: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> "ModelScores":
        """The inverse of ``to_arrays`` (accepts an open ``np.load`` archive)."""
        values = {f.name: arrays[f.name] for f in fields(cls)}
        return cls(**{k: float(v) if v.ndim == 0 else np.array(v) for k, v in values.items()})


def scores_from_logits(logits: dict[str, torch.Tensor], tensors) -> ModelScores:
    """``logits`` maps each of SPLITS to ``[n, classes]``; ``tensors`` holds the labels (SplitTensors)."""
    forget_y, test_y = tensors.forget[1], tensors.test[1]
    return ModelScores(
        retain_acc=accuracy(logits["retain"], tensors.retain[1]),
        forget_acc=accuracy(logits["forget"], forget_y),
        test_acc=accuracy(logits["test"], test_y),
        forget_confs=metric.logit_scaled_confidence(logits["forget"], forget_y),
        forget_losses=per_example_losses(logits["forget"], forget_y),
        test_losses=per_example_losses(logits["test"], test_y),
    )


def score_states(states: list[dict], tensors, num_classes: int) -> list[ModelScores]:
    """Scores of several models given as ``resnet18`` state dicts, batched over models."""
    logits = {name: predict_logits_many(states, getattr(tensors, name)[0], num_classes) for name in SPLITS}
    return [scores_from_logits({name: logits[name][k] for name in SPLITS}, tensors) for k in range(len(states))]


def score_model(model: torch.nn.Module, tensors) -> ModelScores:
    """Scores of one model (left unchanged)."""
    num_classes = model.fc.out_features
    return score_states([model.state_dict()], tensors, num_classes)[0]
