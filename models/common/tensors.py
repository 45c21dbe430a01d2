"""Device-agnostic tensor construction for traced graphs.

``torch.jit.trace`` records ``torch.arange(..., device=x.device)`` and ``t.to(x)`` with the
*trace-time* device as a constant, so a model traced on the CPU would build those tensors on
the CPU when Triton runs it on a GPU. Deriving new tensors from an existing one
(``x.new_ones``, ``*_like``) keeps the device dynamic; use these helpers in forward code.
"""

from __future__ import annotations

import torch


def arange_like(n: int, like: torch.Tensor) -> torch.Tensor:
    """``[0, 1, ..., n-1]`` with ``like``'s float dtype and device (exact for n < 2^24)."""
    return like.new_ones(n).cumsum(0) - 1.0
