"""Training losses of the five networks, as their papers define them.

* ISCN (DFIMat): cross-entropy (class) + BCE + Dice (masks), weighted 0.1 : 1 : 1; object
  queries are matched to ground-truth instances by Hungarian matching on the same costs.
* MRN (DFIMat): L1 over all pixels + L1 over the hardest 30 % of pixels, on each side output.
* SEMat: L1 over known and over unknown (trimap) pixels + gradient + Laplacian, plus the
  trimap cross-entropy that supervises the matting tokens.
* InstMatt: alpha L1 + Laplacian + composition + alpha-sum consistency, on the final and
  side tri-mattes.
* SMat: L1 + Laplacian.

Shapes: alphas and masks are ``[B,C,H,W]`` floats in [0,1] unless stated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

# --------------------------------------------------------------------------- generic terms


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss per mask, averaged: ``logits, target [N,H,W]`` (or ``[N,1,H,W]``) -> scalar."""
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    num = 2 * (p * t).sum(1) + 1.0
    den = p.sum(1) + t.sum(1) + 1.0
    return (1 - num / den).mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-mean binary cross-entropy with logits."""
    return F.binary_cross_entropy_with_logits(logits, target)


def hard_l1(
    pred: torch.Tensor, target: torch.Tensor, fraction: float = 0.3, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error over the ``fraction`` of pixels with the largest error, per image,
    averaged; ``weight`` (broadcastable to ``pred``) scales each pixel's error first."""
    err = (pred - target).abs()
    err = (err if weight is None else err * weight).flatten(1)
    k = max(1, round(err.shape[1] * fraction))
    return err.topk(k, dim=1).values.mean()


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    c = x.shape[1]
    wx = kx.view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    wy = kx.t().reshape(1, 1, 3, 3).repeat(c, 1, 1, 1)
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(xp, wx, groups=c), F.conv2d(xp, wy, groups=c)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between Sobel gradients of ``pred`` and ``target``."""
    pgx, pgy = _sobel(pred)
    tgx, tgy = _sobel(target)
    return (pgx - tgx).abs().mean() + (pgy - tgy).abs().mean()


def _gauss_kernel(c: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    k = torch.outer(k1, k1)
    k = k / k.sum()
    return k.view(1, 1, 5, 5).repeat(c, 1, 1, 1)


def _laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    k = _gauss_kernel(x.shape[1], x.device, x.dtype)
    pyramid = []
    current = x
    for _ in range(levels):
        blurred = F.conv2d(F.pad(current, (2, 2, 2, 2), mode="reflect"), k, groups=x.shape[1])
        down = blurred[:, :, ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
        if min(current.shape[-2:]) < 4:
            break
    pyramid.append(current)
    return pyramid


def laplacian_loss(pred: torch.Tensor, target: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Laplacian-pyramid L1, level ``i`` weighted by ``2^i`` (the matting convention, e.g. GCA/ViTMatte)."""
    pp = _laplacian_pyramid(pred, levels)
    tp = _laplacian_pyramid(target, levels)
    return sum((2**i) * (a - b).abs().mean() for i, (a, b) in enumerate(zip(pp, tp, strict=True)))


def _resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------- ISCN

ISCN_WEIGHTS = (0.1, 1.0, 1.0)  # CE : BCE : Dice


def _pairwise_mask_costs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logits [Q,HW]``, ``targets [G,HW]`` -> BCE + Dice cost ``[Q,G]``."""
    hw = logits.shape[1]
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    bce = (pos @ targets.t() + neg @ (1 - targets).t()) / hw
    p = logits.sigmoid()
    dice = 1 - (2 * p @ targets.t() + 1) / (p.sum(1)[:, None] + targets.sum(1)[None, :] + 1)
    return bce + dice


def iscn_loss(
    out: dict[str, torch.Tensor],
    target_mask: torch.Tensor,
    target_is_human: torch.Tensor,
    instance_masks: torch.Tensor | None = None,
    instance_valid: torch.Tensor | None = None,
    instance_is_human: torch.Tensor | None = None,
    weights: tuple[float, float, float] = ISCN_WEIGHTS,
    no_object_weight: float = 0.1,
) -> torch.Tensor:
    """ISCN loss: CE + BCE + Dice (0.1 : 1 : 1) on the prompted target and, when given, the instances.

    ``out``: the dict of :class:`models.iscn.ISCN`. ``target_mask [B,1,H,W]`` (any resolution;
    resized to the logits), ``target_is_human [B]`` int64 (0/1). Instances: ``instance_masks
    [B,G,H,W]``, ``instance_valid [B,G]``, ``instance_is_human [B,G]`` int64 (default: all 1).
    Each ground-truth instance is matched to one object query (Hungarian, same cost terms);
    unmatched queries are trained towards class 0 with weight ``no_object_weight``.
    """
    w_ce, w_bce, w_dice = weights
    logits = out["mask_logits"]
    tgt = _resize_to(target_mask.float(), logits)
    loss = w_ce * F.cross_entropy(out["class_logits"], target_is_human.long())
    loss = loss + w_bce * bce_loss(logits, tgt) + w_dice * dice_loss(logits, tgt)
    if instance_masks is None:
        return loss

    inst_logits = out["instance_logits"]
    inst_cls = out["instance_class_logits"]
    b, q = inst_logits.shape[:2]
    gt = _resize_to(instance_masks.float(), inst_logits)
    if instance_valid is None:
        instance_valid = torch.ones(gt.shape[:2], device=gt.device)
    if instance_is_human is None:
        instance_is_human = torch.ones(gt.shape[:2], dtype=torch.long, device=gt.device)
    cls_target = torch.zeros(b, q, dtype=torch.long, device=gt.device)
    matched_logits, matched_gt = [], []
    for i in range(b):
        idx = torch.nonzero(instance_valid[i] > 0.5).flatten()
        if idx.numel() == 0:
            continue
        ql = inst_logits[i].flatten(1)
        tg = gt[i, idx].flatten(1)
        with torch.no_grad():
            prob = inst_cls[i].softmax(-1)
            cost = _pairwise_mask_costs(ql, tg) - w_ce * prob[:, instance_is_human[i, idx]]
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        rows_t = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=gt.device)
        cols_t = torch.as_tensor(np.asarray(cols), dtype=torch.long, device=gt.device)
        cls_target[i, rows_t] = instance_is_human[i, idx[cols_t]]
        matched_logits.append(ql[rows_t])
        matched_gt.append(tg[cols_t])
    class_weight = torch.ones(inst_cls.shape[-1], device=gt.device)
    class_weight[0] = no_object_weight
    loss = loss + w_ce * F.cross_entropy(
        inst_cls.reshape(b * q, -1), cls_target.flatten(), weight=class_weight
    )
    if matched_logits:
        ml, mg = torch.cat(matched_logits), torch.cat(matched_gt)
        loss = loss + w_bce * bce_loss(ml, mg) + w_dice * dice_loss(ml, mg)
    return loss


# --------------------------------------------------------------------------- MRN


def mrn_loss(
    out: dict[str, torch.Tensor],
    gt_alpha: torch.Tensor,
    hard_fraction: float = 0.3,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """MRN loss: ``L1 + hard-30 % L1`` on each side output (OS1, OS4, OS8; ``[B,1,S,S]``), summed.
    ``weight`` ``[B,1,S,S]`` in [0, 1] weighs each pixel (the L1 is then the weighted mean)."""
    loss = gt_alpha.new_zeros(())
    for key in ("alpha_os1", "alpha_os4", "alpha_os8"):
        pred = out[key]
        err = (pred - gt_alpha).abs()
        l1 = err.mean() if weight is None else (err * weight).sum() / weight.sum().clamp_min(1.0)
        loss = loss + l1 + hard_l1(pred, gt_alpha, hard_fraction, weight)
    return loss


# --------------------------------------------------------------------------- SEMat


def semat_loss(
    out: dict[str, torch.Tensor],
    gt_alpha: torch.Tensor,
    trimap: torch.Tensor,
    trimap_weight: float = 1.0,
) -> torch.Tensor:
    """SEMat loss on ``out["alpha"] [B,1,S,S]``: L1 over known + L1 over unknown pixels + gradient +
    Laplacian,
    plus cross-entropy of ``out["trimap_logits"] [B,3,S/4,S/4]`` against ``trimap [B,1,S,S]`` (0 bg, 1
    unknown,
    2 fg, int or float).
    """
    alpha = out["alpha"]
    unknown = (trimap.round() == 1).float()
    known = 1 - unknown
    l_known = ((alpha - gt_alpha).abs() * known).sum() / known.sum().clamp_min(1.0)
    l_unknown = ((alpha - gt_alpha).abs() * unknown).sum() / unknown.sum().clamp_min(1.0)
    loss = l_known + l_unknown + gradient_loss(alpha, gt_alpha) + laplacian_loss(alpha, gt_alpha)
    logits = out.get("trimap_logits")
    if logits is not None and trimap_weight > 0:
        small = F.interpolate(trimap.float(), size=logits.shape[-2:], mode="nearest").round().long()
        loss = loss + trimap_weight * F.cross_entropy(logits, small[:, 0].clamp(0, 2))
    return loss


# --------------------------------------------------------------------------- InstMatt


def instmatt_gt_trimatte(gt_alphas: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Ground-truth tri-mattes ``[B,K,3,H,W]`` (target, others, background) from ``gt_alphas [B,K,H,W]``."""
    a = gt_alphas * valid[:, :, None, None]
    total = a.sum(dim=1, keepdim=True)
    return torch.stack([a, total - a, (1 - total).expand_as(a)], dim=2)


def instmatt_loss(
    out: dict[str, torch.Tensor],
    gt_alphas: torch.Tensor,
    valid: torch.Tensor,
    image: torch.Tensor | None = None,
    fg: torch.Tensor | None = None,
    bg: torch.Tensor | None = None,
) -> torch.Tensor:
    """InstMatt loss: alpha L1 + Laplacian + composition + alpha-sum.

    ``out``: :class:`models.instmatt.InstMatt` outputs with ``full_outputs``; ``gt_alphas [B,K,S,S]``,
    ``valid [B,K]``. The composition term needs ``image [B,3,S,S]``, per-instance foregrounds
    ``fg [B,K,3,S,S]`` and the background ``bg [B,3,S,S]`` (skipped when any is missing):
    ``Σ_k α_k F_k + (1 − Σ_k α_k) B ≈ I``. Alpha-sum: ``Σ_k α_k ≈ Σ_k α_k^gt``. Side outputs
    (OS1/4/8 tri-mattes) get L1 on all three channels over valid slots.
    """
    b, k, h, w = gt_alphas.shape
    v = valid[:, :, None, None].float()
    n_valid = v.sum().clamp_min(1.0)
    pred = out["alpha"]
    l1 = ((pred - gt_alphas).abs() * v).sum() / (n_valid * h * w)
    lap = laplacian_loss((pred * v).reshape(b * k, 1, h, w), (gt_alphas * v).reshape(b * k, 1, h, w))
    loss = l1 + lap
    loss = loss + ((pred * v).sum(1) - (gt_alphas * v).sum(1)).abs().mean()
    if image is not None and fg is not None and bg is not None:
        a = (pred * v).unsqueeze(2)
        comp = (a * fg).sum(1) + (1 - a.sum(1)) * bg
        loss = loss + (comp - image).abs().mean()
    gt_tri = instmatt_gt_trimatte(gt_alphas, valid)
    v5 = v.unsqueeze(2)
    for key in ("trimatte_os1", "trimatte_os4", "trimatte_os8"):
        if key in out:
            loss = loss + ((out[key] - gt_tri).abs() * v5).sum() / (n_valid * 3 * h * w)
    return loss


# --------------------------------------------------------------------------- SMat


def smat_loss(out: dict[str, torch.Tensor], gt_alpha: torch.Tensor) -> torch.Tensor:
    """SMat loss on ``out["alpha"] [B,1,S,S]``: L1 + Laplacian."""
    alpha = out["alpha"]
    return (alpha - gt_alpha).abs().mean() + laplacian_loss(alpha, gt_alpha)
