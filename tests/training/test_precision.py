"""training/precision.py: which arithmetic a device trains in."""

import pytest
import torch


def test_precision_is_bf16_only_where_the_gpu_has_it_natively():
    from training.precision import choose_precision

    cuda = torch.device("cuda")
    assert choose_precision(cuda, capability=(7, 5)) == "fp16"  # T4: bf16 only emulated
    assert choose_precision(cuda, capability=(8, 0)) == "bf16" and choose_precision(cuda, capability=(9, 0)) == "bf16"
    assert choose_precision(torch.device("cpu")) == "fp32"
    assert choose_precision(cuda, "fp32", capability=(9, 0)) == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        choose_precision(cuda, "fp8")
