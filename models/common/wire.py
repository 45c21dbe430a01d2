"""The exported networks' inputs as they travel to the inference server (``models/io_spec.py``)."""

from __future__ import annotations

import torch


def from_wire(x: torch.Tensor) -> torch.Tensor:
    """An exported network's input as it travels -> float32 as the network computes: a uint8 image
    0-255 -> [0, 1], float16 features widened; float32 passes unchanged (eager callers). Decided by
    the dtype when traced, so the exported graph holds the cast."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float()
