"""The input contract MGMatting and InstMatt share: reflect padding to a multiple of 32 with a
32-pixel border, ImageNet normalisation of RGB in [0,1], and the crop back.

Written to reproduce the official ``generator_tensor_dict`` / ``transform`` operation for
operation (numpy's ``reflect`` padding, float32 ``/255`` then ``(x - mean) / std``), so a
network imported from the authors' checkpoint sees exactly the tensors it was trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from models.common.norm import IMAGENET_MEAN, IMAGENET_STD

BORDER = 32


def capped_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """InstMatt's ``max_side`` rule: ``(h, w)`` scaled so the long side is ``max_side`` when it is
    longer (``int()`` truncation, as ``infer.py``), else unchanged."""
    if max(height, width) <= max_side:
        return height, width
    ratio = max_side / max(height, width)
    return max(1, int(ratio * height)), max(1, int(ratio * width))


def padding_for(height: int, width: int) -> tuple[int, int]:
    """Extra bottom/right padding (beyond the 32-px border) that makes ``height x width`` a
    multiple of 32."""
    return (-height) % 32, (-width) % 32


def pad_to_multiple_of_32(array: np.ndarray) -> np.ndarray:
    """``[H,W]`` or ``[H,W,C]`` -> reflect-padded by 32 top/left and 32 + round-up-to-32
    bottom/right (numpy ``reflect``: the edge pixel is not repeated)."""
    h, w = array.shape[:2]
    pad_h, pad_w = padding_for(h, w)
    widths = [(BORDER, BORDER + pad_h), (BORDER, BORDER + pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="reflect")


def imagenet_normalise(image_rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``[H,W,3]`` -> float32 ``[3,H,W]``: ``/255``, then ``(x - mean) / std``."""
    image = image_rgb.transpose(2, 0, 1).astype(np.float32)
    image /= 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return torch.from_numpy(image).sub_(mean).div_(std)


def unpad(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[..., Hp, Wp]`` -> ``[..., h, w]``: the crop ``[32:h+32, 32:w+32]``."""
    h, w = size
    return array[..., BORDER : BORDER + h, BORDER : BORDER + w]
