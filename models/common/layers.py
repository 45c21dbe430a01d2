"""Small convolution and MLP building blocks."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(
    in_ch: int,
    out_ch: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
    bias: bool = False,
) -> nn.Sequential:
    """Conv (no bias unless ``bias``) -> BatchNorm -> activation; 'same' padding for odd kernels."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=bias),
        nn.BatchNorm2d(out_ch),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (none when ``expand`` is 1) -> ``kernel`` depthwise (stride s)
    -> 1x1 project, residual when shapes match; EfficientNet-Lite's MBConv is the same block.

    ``[B,in_ch,H,W] -> [B,out_ch,H/s,W/s]``. Used by the light CNN encoders of the tiny presets.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expand: int = 2, kernel: int = 3) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_res = stride == 1 and in_ch == out_ch
        expansion = [conv_bn_act(in_ch, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        self.block = nn.Sequential(
            *expansion,
            conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, act=nn.ReLU6),
            conv_bn_act(hidden, out_ch, 1, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


class BasicBlock(nn.Module):
    """ResNet basic block (3x3, 3x3) with an AvgPool+1x1 shortcut when striding (ResNet-D style).

    ``[B,in_ch,H,W] -> [B,out_ch,H/s,W/s]``; MGMatting's encoder is built from these.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU()
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            pool: nn.Module = nn.AvgPool2d(stride) if stride != 1 else nn.Identity()
            self.downsample = nn.Sequential(
                pool, nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.downsample(x))


class MLP(nn.Module):
    """SAM-style MLP: ``num_layers`` linears named ``layers.{i}``, ReLU between, optional sigmoid.

    ``[..., in_dim] -> [..., out_dim]``.
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, sigmoid_output: bool = False
    ) -> None:
        super().__init__()
        dims_in = [in_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < n - 1:
                x = torch.relu(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


def tanh_alpha(logits: torch.Tensor) -> torch.Tensor:
    """MGMatting's output activation ``(tanh(x)+1)/2`` (computed as the identical ``sigmoid(2x)``)."""
    return torch.sigmoid(2.0 * logits)
