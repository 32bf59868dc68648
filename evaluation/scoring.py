"""What the score needs of a model, from its float32 logits over the splits
(``training.inference``): accuracies, per-example confidences (the margins KLOM reads, on
every split) and losses on forget and test.

References and unlearned models go through the same inference path
(``predict_logits_sets``), so the metric never compares numbers computed two ways.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from training.inference import predict_logits_sets

from . import metric

SPLITS = ("retain", "forget", "test")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean().item()) if labels.numel() else float("nan")


def per_example_losses(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return F.cross_entropy(logits.double(), labels, reduction="none").cpu().numpy()


@dataclass
class ModelScores:
    retain_acc: float
    forget_acc: float
    test_acc: float
    forget_confs: np.ndarray
    forget_losses: np.ndarray
    test_losses: np.ndarray
    retain_confs: np.ndarray
    test_confs: np.ndarray

    def confs(self, split: str) -> np.ndarray:
        """The per-example confidences (margins) on ``split``: forget, retain or test."""
        return getattr(self, f"{split}_confs")

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
        retain_confs=metric.logit_scaled_confidence(logits["retain"], tensors.retain[1]),
        test_confs=metric.logit_scaled_confidence(logits["test"], test_y),
    )


def score_states(states: list[dict], tensors, num_classes: int) -> list[ModelScores]:
    """Scores of several models given as ``resnet18`` state dicts, batched over models."""
    logits = predict_logits_sets(states, {name: getattr(tensors, name)[0] for name in SPLITS}, num_classes)
    return [scores_from_logits({name: logits[name][k] for name in SPLITS}, tensors) for k in range(len(states))]


def score_model(model: torch.nn.Module, tensors) -> ModelScores:
    """Scores of one model (left unchanged)."""
    num_classes = model.fc.out_features
    return score_states([model.state_dict()], tensors, num_classes)[0]
