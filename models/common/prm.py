"""Progressive Refinement Module (PRM) of MGMatting, inference version, in torch.

``α ← α_os8``; pixels with ``1/255 ≤ α ≤ 1 − 1/255`` (any channel) are dilated with the
15×15 OpenCV ellipse and take ``α_os4``; the uncertain set of the updated α is dilated
with the 7×7 ellipse and takes ``α_os1``. InstMatt runs the same procedure on its
3-channel tri-mattes, gating all channels with one mask.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common.morphology import Dilation, ellipse_kernel

PRM_WIDTHS = (15, 7)


def uncertain_region(alpha: torch.Tensor) -> torch.Tensor:
    """``alpha [B,C,H,W]`` -> bool ``[B,1,H,W]``: any channel strictly between 0 and 1 (±1/255)."""
    u = (alpha >= 1.0 / 255.0) & (alpha <= 1.0 - 1.0 / 255.0)
    return u.any(dim=1, keepdim=True)


class ProgressiveRefinement(nn.Module):
    """PRM over three alphas of the same shape ``[B,C,H,W]`` -> refined ``[B,C,H,W]``.

    ``widths`` are the ellipse sizes of the two steps (inference uses 15 then 7).
    """

    def __init__(self, widths: tuple[int, int] = PRM_WIDTHS) -> None:
        super().__init__()
        self.widths = widths
        self.dilate4 = Dilation(ellipse_kernel(widths[0]))
        self.dilate1 = Dilation(ellipse_kernel(widths[1]))

    def refine(
        self, os1: torch.Tensor, os4: torch.Tensor, os8: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the refined alpha and the final (OS1) region ``[B,1,H,W]`` bool that took ``os1``."""
        alpha = os8
        region4 = self.dilate4(uncertain_region(alpha))
        alpha = torch.where(region4, os4, alpha)
        region1 = self.dilate1(uncertain_region(alpha))
        return torch.where(region1, os1, alpha), region1

    def forward(self, os1: torch.Tensor, os4: torch.Tensor, os8: torch.Tensor) -> torch.Tensor:
        return self.refine(os1, os4, os8)[0]
