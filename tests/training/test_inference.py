"""training/inference.py: many models' logits at once equal one model's at a time, on each device."""

import pytest
import torch
import torchvision

from tests.helpers import DEVICES, structured_data
from training.engine import ModelGroup
from training.inference import predict_logits, predict_logits_many, predict_logits_sets

TOLERANCE = {"cpu": 1e-4, "cuda": 1e-2}  # CUDA: TF32 convolutions


def _models(x, device, n=3):
    models = [torchvision.models.resnet18(weights=None, num_classes=10).to(device) for _ in range(n)]
    for m in models:  # non-trivial running statistics
        m.train()
        with torch.no_grad():
            m(x)
        m.eval()
    return models, [m.state_dict() for m in models]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("group_size", [2, 1])  # 1 (the CPU default): with the small convs as matmuls
def test_batched_inference_equals_one_model_at_a_time(group_size, device):
    x, _ = structured_data(40, device=device)
    models, states = _models(x, device)
    together = predict_logits_many(states, x, batch_size=16, group_size=group_size)
    assert together.shape == (3, 40, 10)
    for k, m in enumerate(models):
        tolerance = TOLERANCE[device]
        torch.testing.assert_close(together[k], predict_logits(m, x), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("group_size", [1, 2])
def test_several_image_sets_build_each_model_once_and_give_each_sets_own_logits(group_size, monkeypatch):
    """The splits share one build of each model; each set's logits are bit for bit those of
    ``predict_logits_many`` on that set alone (its own batches: 37 images at 16 a batch)."""
    x, _ = structured_data(77)
    sets = {"a": x[:37], "b": x[37:], "empty": x[:0]}
    _, states = _models(x, "cpu")
    builds = []
    build = ModelGroup.from_state_dicts
    monkeypatch.setattr(ModelGroup, "from_state_dicts", lambda *a, **k: builds.append(1) or build(*a, **k))
    logits = predict_logits_sets(states, sets, batch_size=16, group_size=group_size)
    assert len(builds) == -(-3 // group_size)
    monkeypatch.setattr(ModelGroup, "from_state_dicts", build)
    for name, images in sets.items():
        assert logits[name].shape == (3, len(images), 10)
        assert torch.equal(logits[name], predict_logits_many(states, images, batch_size=16, group_size=group_size))
    with pytest.raises(ValueError, match="one image shape"):
        predict_logits_sets(states, {"a": x, "small": x[:, :, :16, :16]})
