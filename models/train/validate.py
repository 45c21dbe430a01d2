"""Validation on the fixed synthetic set: IoU and SAD at the original resolution.

The targets are those of ``matteserve eval --data synthetic:N@SIZE`` (scenes of
``SceneGenerator(VALIDATION_SEED)``, the largest up to 3 instances of each), never seen in
training (training pools use other seeds). Each network runs at ``size`` (the export size
it would be served at): the photo is letterboxed with :class:`models.prompting.Letterbox`,
prompts are rasterised by :mod:`models.prompting`, and outputs are mapped back to the
photo, as the service does. Metrics: ``iou`` (alpha >= 0.5) and ``sad`` (thousands) per
target, averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.data.dev_sets import dev_generator
from models.data.synthetic import SceneGenerator
from models.eval.metrics import imq, iou, sad
from models.eval.simulator import UserSimulator, gt_box
from models.iscn.crm import compute_conflict_map
from models.prompting import Letterbox, iscn_prompt_tensors, semat_box, smat_prompt_mask
from models.text import TEXT_DIM
from models.train import prompts as P
from models.train.data import VALIDATION_SEED
from models.train.tasks import text_embeddings
from schemas.prompts import Prompt, TextPrompt


@dataclass
class ValTarget:
    """One validation target: ``image`` uint8 [H,W,3], all instance ``alphas`` [K,H,W], the
    target index ``k`` and its description."""

    name: str
    image: np.ndarray
    alphas: np.ndarray
    k: int
    text: str

    @property
    def alpha(self) -> np.ndarray:
        return self.alphas[self.k]


def validation_targets(count: int = 50, size: int = 512, max_per_scene: int = 3) -> list[ValTarget]:
    """The first ``count`` targets of ``synthetic:N@size`` (the eval harness's selection)."""
    return _targets(SceneGenerator(VALIDATION_SEED), count, size, max_per_scene)


def _targets(gen, count: int, size: int, max_per_scene: int) -> list[ValTarget]:
    """The largest ``max_per_scene`` instances of ``gen``'s scenes 0, 1, ... until ``count``."""
    out: list[ValTarget] = []
    index = 0
    while len(out) < count:
        scene = gen.scene(index, size=size)
        areas = scene.alphas.reshape(scene.num_instances, -1).sum(axis=1)
        for k in np.argsort(-areas)[:max_per_scene]:
            if areas[k] >= 16 and len(out) < count:
                out.append(
                    ValTarget(f"{scene.name}#{k}", scene.image, scene.alphas, int(k), scene.descriptions[k])
                )
        index += 1
    return out


def ccp_validation_targets(
    ccp_root, count: int = 50, size: int = 256, max_per_scene: int = 2
) -> list[ValTarget]:
    """``count`` targets of real-people scenes built from CCP's *validation* split (never trained
    on; ``ccp-scenes`` of :mod:`models.data.dev_sets`, seed 90210, long side ``size``)."""
    return _targets(dev_generator("ccp-scenes", ccp_root, VALIDATION_SEED), count, size, max_per_scene)


def ccp_closeup_validation_targets(ccp_root, count: int = 50, size: int = 256) -> list[ValTarget]:
    """``count`` close-ups (``ccp-closeups`` of :mod:`models.data.dev_sets`, seed 90210) of CCP's
    *validation* split, one target each."""
    return _targets(dev_generator("ccp-closeups", ccp_root, VALIDATION_SEED), count, size, 1)


def _image(box: Letterbox, image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(box.image(image))[None].to(device)


def _alpha_back(box: Letterbox, alpha: torch.Tensor) -> np.ndarray:
    """The first item of a network's ``[B,1,S,S]`` alpha at the photo's size, in [0, 1]."""
    return np.clip(box.to_original(alpha[0, 0].float().cpu().numpy()), 0.0, 1.0)


def _summary(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(float(np.mean(v)), 4) for k, v in values.items() if v}


@torch.no_grad()
def iscn_predict(
    model: nn.Module, image: np.ndarray, rounds: list[list[Prompt]], size: int, device: torch.device
) -> list[np.ndarray]:
    """Runs ISCN round by round as ``service/pipelines/dfimat.py`` does (every mark so far in
    the slots, the latest text, the conflict map of the round's new marks against the
    previous mask) -> the target probability [H, W] after each round."""
    h, w = image.shape[:2]
    box = Letterbox(h, w, size)
    feats, mfeats = model.image_encoder(_image(box, image, device))
    s4 = size // 4
    prev = torch.zeros(1, 1, s4, s4, device=device)
    has_prev = torch.zeros(1, 1, device=device)
    history: list[Prompt] = []
    outs = []
    for new in rounds:
        history.extend(new)
        maps, kinds = iscn_prompt_tensors(history, box, model.cfg.max_visual_prompts)
        maps_t, kinds_t = torch.from_numpy(maps)[None].to(device), torch.from_numpy(kinds)[None].to(device)
        texts = [p.text for p in history if isinstance(p, TextPrompt)]
        text, has_text = text_embeddings([texts[-1] if texts else None], device)
        new_maps, new_kinds = iscn_prompt_tensors(new, box, model.cfg.max_visual_prompts)
        conflict = compute_conflict_map(
            prev,
            torch.from_numpy(new_maps)[None].to(device),
            torch.from_numpy(new_kinds)[None].to(device),
            has_prev,
        )
        out = model.decoder(feats, mfeats, maps_t, kinds_t, text, has_text, conflict, prev, has_prev)
        prob = out["mask_logits"].float().sigmoid()
        outs.append(np.clip(box.to_original(prob[0, 0].cpu().numpy()), 0.0, 1.0))
        prev = prob
        has_prev = torch.ones(1, 1, device=device)
    return outs


def validate_iscn(
    model: nn.Module, targets: list[ValTarget], size: int, device: torch.device
) -> dict[str, float]:
    """Round-1 box / click (3 simulator clicks) / text, and the box protocol after 3 rounds."""
    vals: dict[str, list[float]] = {}
    for i, t in enumerate(targets):
        for protocol in ("box", "click", "text"):
            sim = UserSimulator(protocol, seed=i, rounds=3)
            rounds: list[list[Prompt]] = []
            previous = None
            n_rounds = 3 if protocol == "box" else 1
            for r in range(n_rounds):
                rounds.append(sim.round_prompts(r, t.alpha, previous, t.text))
                previous = iscn_predict(model, t.image, rounds, size, device)[-1]
                if r == 0:
                    vals.setdefault(f"{protocol}_iou", []).append(iou(previous, t.alpha))
                    if protocol == "box":
                        vals.setdefault("box_sad", []).append(sad(previous, t.alpha))
            if protocol == "box":
                vals.setdefault("box_3rounds_iou", []).append(iou(previous, t.alpha))
    return _summary(vals)


def perturbed_guidance(target: ValTarget, index: int, k: int | None = None) -> np.ndarray:
    """The fixed perturbed ground-truth mask used as validation guidance."""
    rng = np.random.default_rng([VALIDATION_SEED, index, 5])
    alpha = target.alphas[target.k if k is None else k]
    return P.perturb_mask(P.binary(alpha), rng, strength=0.7)


@torch.no_grad()
def mrn_predict(
    model: nn.Module, image: np.ndarray, mask: np.ndarray, size: int, device: torch.device
) -> np.ndarray:
    """MRN on a coarse mask [H, W] -> alpha [H, W]."""
    h, w = image.shape[:2]
    box = Letterbox(h, w, size)
    guide = torch.from_numpy(box.plane(mask))[None, None].to(device)
    alpha = model(_image(box, image, device), guide)["alpha"]
    return np.clip(box.to_original(alpha[0, 0].float().cpu().numpy()), 0.0, 1.0)


def _record(vals: dict[str, list[float]], name: str, alpha: np.ndarray, gt: np.ndarray) -> None:
    """Appends ``<name>_iou`` and ``<name>_sad`` of ``alpha`` [H, W] against ``gt`` [H, W]."""
    vals.setdefault(f"{name}_iou", []).append(iou(alpha, gt))
    vals.setdefault(f"{name}_sad", []).append(sad(alpha, gt))


def validate_mrn(
    model: nn.Module,
    targets: list[ValTarget],
    size: int,
    device: torch.device,
    iscn: nn.Module | None = None,
) -> dict[str, float]:
    """MRN on perturbed ground-truth masks and, with ``iscn``, on ISCN's round-1 box mask."""
    vals: dict[str, list[float]] = {}
    for i, t in enumerate(targets):
        guide = perturbed_guidance(t, i)
        alpha = mrn_predict(model, t.image, guide, size, device)
        _record(vals, "gtmask", alpha, t.alpha)
        vals.setdefault("gtmask_input_sad", []).append(sad(guide, t.alpha))
        if iscn is not None:
            box = gt_box(t.alpha)
            mask = iscn_predict(iscn, t.image, [[box] if box else []], size, device)[0]
            alpha = mrn_predict(model, t.image, mask, size, device)
            _record(vals, "iscn_box", alpha, t.alpha)
            vals.setdefault("iscn_box_input_sad", []).append(sad(mask, t.alpha))
    return _summary(vals)


def validate_semat(
    model: nn.Module, targets: list[ValTarget], size: int, device: torch.device
) -> dict[str, float]:
    """SEMat with the ground-truth box."""
    vals: dict[str, list[float]] = {}
    with torch.no_grad():
        for t in targets:
            h, w = t.image.shape[:2]
            lb = Letterbox(h, w, size)
            b = gt_box(t.alpha)
            xyxy = semat_box([b] if b else [], lb)
            xyxy = np.zeros(4, np.float32) if xyxy is None else xyxy
            out = model(_image(lb, t.image, device), torch.from_numpy(xyxy)[None].to(device))
            alpha = _alpha_back(lb, out["alpha"])
            _record(vals, "box", alpha, t.alpha)
    return _summary(vals)


def validate_smat(
    model: nn.Module, targets: list[ValTarget], size: int, device: torch.device
) -> dict[str, float]:
    """SMat with the ground-truth box, with 3 simulator clicks, and automatic (target: everyone)."""
    vals: dict[str, list[float]] = {}
    with torch.no_grad():
        for i, t in enumerate(targets):
            h, w = t.image.shape[:2]
            lb = Letterbox(h, w, size)
            b = gt_box(t.alpha)
            clicks = UserSimulator("click", seed=i).round_prompts(0, t.alpha)
            cases: dict[str, tuple[list[Prompt], np.ndarray]] = {
                "box": ([b] if b else [], t.alpha),
                "click": (clicks, t.alpha),
                "auto": ([], np.clip(t.alphas.sum(axis=0), 0.0, 1.0)),
            }
            image = _image(lb, t.image, device)
            tokens, cls = model.encode(image)
            for name, (prompts, gt) in cases.items():
                mask = torch.from_numpy(smat_prompt_mask(prompts, lb, model.cfg.patch_size))[None].to(device)
                out = model.decode(image, tokens, cls, mask)
                alpha = _alpha_back(lb, out["alpha"])
                _record(vals, name, alpha, gt)
    return _summary(vals)


@torch.no_grad()
def iscn_instances(
    model: nn.Module, image: np.ndarray, size: int, device: torch.device, score: float = 0.5
) -> np.ndarray:
    """Prompt-less ISCN: object-query masks with "is human" score >= ``score`` -> [N, H, W] probabilities."""
    h, w = image.shape[:2]
    lb = Letterbox(h, w, size)
    nv, s4 = model.cfg.max_visual_prompts, size // 4
    z = torch.zeros
    out = model(
        _image(lb, image, device),
        z(1, nv, s4, s4, device=device),
        z(1, nv, dtype=torch.long, device=device),
        z(1, TEXT_DIM, device=device),
        z(1, 1, device=device),
        z(1, 1, s4, s4, device=device),
        z(1, 1, s4, s4, device=device),
        z(1, 1, device=device),
    )
    scores = out["instance_class_logits"].float().softmax(-1)[0, :, 1]
    keep = (scores >= score).nonzero().flatten().tolist()
    probs = out["instance_logits"][0].float().sigmoid().cpu().numpy()
    return np.stack([lb.to_original(probs[q]) for q in keep]) if keep else np.zeros((0, h, w), np.float32)


@torch.no_grad()
def instmatt_predict(
    model: nn.Module, image: np.ndarray, masks: np.ndarray, size: int, device: torch.device
) -> np.ndarray:
    """InstMatt on instance masks [N, H, W] (N <= K) -> alphas [N, H, W]."""
    h, w = image.shape[:2]
    lb = Letterbox(h, w, size)
    k = model.cfg.max_instances
    n = min(len(masks), k)
    planes = np.zeros((1, k, size, size), np.float32)
    valid = np.zeros((1, k), np.float32)
    for j in range(n):
        planes[0, j] = lb.plane(masks[j])
        valid[0, j] = 1.0
    out = model(
        _image(lb, image, device),
        torch.from_numpy(planes).to(device),
        torch.from_numpy(valid).to(device),
        False,
    )["alpha"]
    return np.stack([np.clip(lb.to_original(out[0, j].float().cpu().numpy()), 0, 1) for j in range(n)])


def validate_instmatt(
    model: nn.Module,
    targets: list[ValTarget],
    size: int,
    device: torch.device,
    iscn: nn.Module | None = None,
) -> dict[str, float]:
    """Per instance of each validation scene: InstMatt on perturbed ground-truth masks (IoU, SAD);
    with ``iscn``, the automatic pipeline (ISCN instances -> InstMatt) scored by IMQ (MAD)."""
    vals: dict[str, list[float]] = {}
    seen: set[str] = set()
    auto = None
    for i, t in enumerate(targets):
        scene = t.name.split("#")[0]
        if scene in seen:
            continue
        seen.add(scene)
        masks = np.stack([perturbed_guidance(t, i, k) for k in range(len(t.alphas))])
        alphas = instmatt_predict(model, t.image, masks, size, device)
        for k in range(len(alphas)):
            _record(vals, "gtmask", alphas[k], t.alphas[k])
        if iscn is not None:
            inst = iscn_instances(iscn, t.image, size, device)
            preds = (
                instmatt_predict(model, t.image, (inst >= 0.5).astype(np.float32), size, device)
                if len(inst)
                else inst
            )
            result = imq(preds, t.alphas)
            auto = result if auto is None else auto.merge(result)
    out = _summary(vals)
    if auto is not None:
        out["auto_imq_mad"] = round(auto.imq["mad"], 4)
        out["auto_recognition"] = round(auto.recognition_quality, 4)
    return out


def validate(
    family: str,
    model: nn.Module,
    targets: list[ValTarget],
    size: int,
    device: torch.device,
    iscn: nn.Module | None = None,
) -> dict[str, float]:
    """The validation figures of ``family`` at network size ``size`` (model put in eval mode)."""
    model.eval()
    if family == "iscn":
        return validate_iscn(model, targets, size, device)
    if family == "mrn":
        return validate_mrn(model, targets, size, device, iscn)
    if family == "semat":
        return validate_semat(model, targets, size, device)
    if family == "smat":
        return validate_smat(model, targets, size, device)
    if family == "instmatt":
        return validate_instmatt(model, targets, size, device, iscn)
    raise KeyError(family)
