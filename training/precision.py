"""The arithmetic the engine trains in.

* ``bf16``: autocast to bfloat16, where the GPU computes it natively (compute
  capability 8.0 and later: A100, H100, L4, RTX 30xx and newer). Its exponent range is
  float32's, so no loss scaling is needed.
* ``fp16``: autocast to float16 with dynamic loss scaling, for older GPUs (Kaggle's
  T4 is 7.5). ``torch.cuda.is_bf16_supported()`` answers True on a T4 because it counts
  emulation, which is slow, so the capability decides.
* ``fp32``: no autocast; the default on a CPU.

The choice changes the trained weights, so it is part of every reference's store key.
"""

from __future__ import annotations

import torch

PRECISIONS = ("bf16", "fp16", "fp32")
NATIVE_BF16 = (8, 0)  # the first compute capability with bf16 tensor cores


def choose_precision(device: torch.device, requested: str | None = None, capability: tuple | None = None) -> str:
    """``requested`` when given; else bf16 on a GPU that has it natively, fp16 on an older
    one, fp32 on a CPU. ``capability`` stands in for the GPU's (tests)."""
    if requested is not None:
        if requested not in PRECISIONS:
            raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
        return requested
    if device.type != "cuda":
        return "fp32"
    capability = capability or torch.cuda.get_device_capability(device)
    return "bf16" if tuple(capability) >= NATIVE_BF16 else "fp16"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (None: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def needs_loss_scaling(precision: str) -> bool:
    return precision == "fp16"
