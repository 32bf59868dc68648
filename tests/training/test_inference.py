"""training/inference.py: many models' logits at once equal one model's at a time, on each device."""

import pytest
import torch
import torchvision

from tests.helpers import DEVICES, structured_data
from training.inference import predict_logits, predict_logits_many

TOLERANCE = {"cpu": 1e-4, "cuda": 1e-2}  # CUDA: TF32 convolutions


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("group_size", [2, 1])  # 1 (the CPU default): with the small convs as matmuls
def test_batched_inference_equals_one_model_at_a_time(group_size, device):
    x, _ = structured_data(40, device=device)
    models = [torchvision.models.resnet18(weights=None, num_classes=10).to(device) for _ in range(3)]
    for m in models:  # non-trivial running statistics
        m.train()
        with torch.no_grad():
            m(x)
        m.eval()
    states = [m.state_dict() for m in models]
    together = predict_logits_many(states, x, batch_size=16, group_size=group_size)
    assert together.shape == (3, 40, 10)
    for k, m in enumerate(models):
        tolerance = TOLERANCE[device]
        torch.testing.assert_close(together[k], predict_logits(m, x), rtol=tolerance, atol=tolerance)
