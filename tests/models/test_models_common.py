"""Shared blocks: OpenCV-exact morphology, PRM, LoRA merge, LayerNorm2d."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.common.lora import LoRAConv2d, LoRALinear, has_lora, merge_lora
from models.common.morphology import Dilation, dilate_conv, ellipse_kernel
from models.common.norm import LayerNorm2d
from models.common.prm import ProgressiveRefinement


@pytest.mark.parametrize("size", [1, 3, 4, 5, 7, 8, 15, 21, 30, 31])
def test_ellipse_kernel_matches_opencv(size: int) -> None:
    expected = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    np.testing.assert_array_equal(ellipse_kernel(size), expected)


@pytest.mark.parametrize("size", [3, 7, 15, 31])
def test_dilation_matches_cv2_dilate(size: int) -> None:
    g = torch.Generator().manual_seed(size)
    mask = torch.rand(3, 1, 53, 71, generator=g) > 0.97
    mask[0, 0, 0, 0] = True  # a corner pixel exercises the border rule
    kernel = ellipse_kernel(size)
    ours = Dilation(kernel)(mask)[:, 0].numpy()
    for i in range(3):
        expected = cv2.dilate(mask[i, 0].numpy().astype(np.uint8), kernel).astype(bool)
        np.testing.assert_array_equal(ours[i], expected)
    conv = dilate_conv(mask, torch.from_numpy(kernel).float()[None, None])[:, 0].numpy()
    np.testing.assert_array_equal(ours, conv)


def _prm_reference(os1: np.ndarray, os4: np.ndarray, os8: np.ndarray) -> np.ndarray:
    """MGMatting's inference PRM written with numpy + cv2, channel-max gating as in InstMatt."""

    def region(alpha: np.ndarray, width: int) -> np.ndarray:
        u = ((alpha >= 1 / 255) & (alpha <= 1 - 1 / 255)).any(axis=0).astype(np.uint8)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
        return cv2.dilate(u, k).astype(bool)

    alpha = os8.copy()
    r = region(alpha, 15)
    alpha[:, r] = os4[:, r]
    r = region(alpha, 7)
    alpha[:, r] = os1[:, r]
    return alpha


def test_prm_matches_mgmatting_reference() -> None:
    g = torch.Generator().manual_seed(0)
    shape = (2, 3, 48, 40)
    coarse = (torch.rand(shape, generator=g) > 0.5).float()
    os8 = coarse.clone()
    os8[:, :, 20:22, 10:30] = 0.5  # a thin uncertain band
    os4 = torch.rand(shape, generator=g)
    os1 = torch.rand(shape, generator=g)
    ours = ProgressiveRefinement()(os1, os4, os8).numpy()
    for i in range(shape[0]):
        ref = _prm_reference(os1[i].numpy(), os4[i].numpy(), os8[i].numpy())
        np.testing.assert_array_equal(ours[i], ref)


def test_lora_linear_and_conv_merge_exactly() -> None:
    lin = LoRALinear(torch.nn.Linear(12, 20), rank=4, alpha=8.0)
    conv = LoRAConv2d(torch.nn.Conv2d(3, 10, 4, 4), rank=4, alpha=4.0)
    for m in (lin, conv):
        torch.nn.init.normal_(m.lora_B["default"].weight)
        m.eval()
    x = torch.randn(5, 12)
    img = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(lin.merge()(x), lin(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv.merge()(img), conv(img), atol=1e-5, rtol=1e-5)
    parent = torch.nn.Sequential(lin, torch.nn.ReLU())
    merge_lora(parent)
    assert not has_lora(parent)
    assert isinstance(parent[0], torch.nn.Linear)


def test_layernorm2d_is_channel_layernorm() -> None:
    ln = LayerNorm2d(6)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    x = torch.randn(2, 6, 5, 7)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)
