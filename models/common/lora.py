"""Low-rank adaptation (LoRA) layers with peft-compatible parameter names and an exact ``merge()``.

Parameter names follow peft >= 0.7 (``base_layer.*``, ``lora_A.default.weight``,
``lora_B.default.weight``) so that SEMat's released checkpoint maps onto them after
stripping peft's ``base_model.model.`` prefix. For export, :func:`merge_lora` folds every
adapter into its base layer, leaving plain ``nn.Linear``/``nn.Conv2d`` modules.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ADAPTER = "default"


class LoRALinear(nn.Module):
    """``y = base(x) + scaling · B(A(dropout(x)))``; ``[..., in] -> [..., out]``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.ModuleDict({ADAPTER: nn.Linear(base.in_features, rank, bias=False)})
        self.lora_B = nn.ModuleDict({ADAPTER: nn.Linear(rank, base.out_features, bias=False)})
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = alpha / rank
        # peft's "gaussian" init: A ~ N(0, 1/r), B = 0, so the adapter starts as the identity.
        nn.init.normal_(self.lora_A[ADAPTER].weight, std=1.0 / rank)
        nn.init.zeros_(self.lora_B[ADAPTER].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.lora_B[ADAPTER](self.lora_A[ADAPTER](self.lora_dropout(x)))
        return self.base_layer(x) + delta * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W' = W + scaling · B·A`` (identical outputs in eval mode)."""
        base = self.base_layer
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        merged = merged.to(device=base.weight.device, dtype=base.weight.dtype)
        delta = self.lora_B[ADAPTER].weight @ self.lora_A[ADAPTER].weight
        merged.weight.copy_(base.weight + self.scaling * delta)
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged


class LoRAConv2d(nn.Module):
    """Conv LoRA as peft builds it: A is a conv with the base kernel/stride/padding, B a 1x1 conv.

    ``[B,in,H,W] -> [B,out,H',W']`` with the base layer's geometry.
    """

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if base.groups != 1:
            raise ValueError("grouped convolutions are not supported")
        self.base_layer = base
        a = nn.Conv2d(
            base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation, bias=False
        )
        self.lora_A = nn.ModuleDict({ADAPTER: a})
        self.lora_B = nn.ModuleDict({ADAPTER: nn.Conv2d(rank, base.out_channels, 1, bias=False)})
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = alpha / rank
        nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B[ADAPTER].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.lora_B[ADAPTER](self.lora_A[ADAPTER](self.lora_dropout(x)))
        return self.base_layer(x) + delta * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with ``W'[o,i] = W[o,i] + scaling · Σ_r B[o,r] A[r,i]``."""
        base = self.base_layer
        merged = nn.Conv2d(
            base.in_channels,
            base.out_channels,
            base.kernel_size,
            base.stride,
            base.padding,
            base.dilation,
            bias=base.bias is not None,
        ).to(device=base.weight.device, dtype=base.weight.dtype)
        b = self.lora_B[ADAPTER].weight[:, :, 0, 0]
        delta = torch.einsum("or,rikl->oikl", b, self.lora_A[ADAPTER].weight)
        merged.weight.copy_(base.weight + self.scaling * delta)
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged


def merge_lora(module: nn.Module) -> nn.Module:
    """Replace, in place, every LoRA layer below ``module`` by its merged plain layer; returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, LoRALinear | LoRAConv2d):
            setattr(module, name, child.merge())
        else:
            merge_lora(child)
    return module


def has_lora(module: nn.Module) -> bool:
    """Whether any LoRA layer remains below ``module``."""
    return any(isinstance(m, LoRALinear | LoRAConv2d) for m in module.modules())
