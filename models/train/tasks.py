"""One training task per family: how a batch becomes model inputs and the papers' loss.

Each task has two halves:

* a **sampler** (``task.sampler``, picklable, no model) that runs in the data worker and
  draws round-1 wire prompts for an :class:`~models.train.data.Item`, rasterising them with
  :mod:`models.prompting` exactly as the service does;
* ``task.loss(batch, rng)`` in the training process, which runs whatever depends on a
  network (earlier rounds of ISCN, the frozen ISCN feeding MRN and InstMatt) and returns
  the loss of :mod:`models.losses` plus a few numbers to log.

DFIMat's schedule is decoupled: ISCN is trained first; MRN and InstMatt then take masks
from the frozen ISCN (mixed with perturbed ground-truth masks).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from models import losses
from models.common.efficientnet_lite import imagenet_state_dict
from models.iscn.crm import compute_conflict_map
from models.iscn.model import ISCN
from models.prompting import Letterbox, iscn_prompt_tensors, semat_box, smat_prompt_mask
from models.registry import build_model, config_for
from models.text import TEXT_DIM, shared_encoder
from models.train import prompts as P
from models.train.data import Item
from schemas.prompts import Prompt, TextPrompt

FAMILIES = ("iscn", "mrn", "semat", "smat", "instmatt")


# --------------------------------------------------------------------------- shared helpers


def pool_to(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Area-average ``[B,C,S,S]`` down to ``[B,C,size,size]`` (soft edges at the coarse grid)."""
    if mask.shape[-1] == size:
        return mask
    return F.adaptive_avg_pool2d(mask, (size, size))


def text_embeddings(texts: list[str | None], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM embeddings of ``texts`` (None = no text) -> ``([B,384], has_text [B,1])``.

    Uses the process-wide cached encoder the service uses (``models.text.shared_encoder``);
    the templated descriptions repeat, so after warm-up this is a dictionary lookup.
    """
    emb = np.zeros((len(texts), TEXT_DIM), np.float32)
    has = np.zeros((len(texts), 1), np.float32)
    present = [i for i, t in enumerate(texts) if t]
    if present:
        emb[present] = shared_encoder().encode([texts[i] for i in present])  # type: ignore[misc]
        has[present] = 1.0
    return torch.from_numpy(emb).to(device), torch.from_numpy(has).to(device)


def prompt_text(prompts: list[Prompt]) -> str | None:
    """The text of the last text prompt, if any."""
    texts = [p.text for p in prompts if isinstance(p, TextPrompt)]
    return texts[-1] if texts else None


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boolean masks ``[N,H,W]`` pairwise along the first axis -> ``[N]``."""
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(inter))


def load_frozen_iscn(path: str | None, preset: str, device: torch.device) -> ISCN:
    """ISCN in eval mode with weights from ``path`` (a ``<family>.pt`` state dict, fp16 or fp32,
    or a trainer checkpoint), all parameters frozen."""
    model = build_model("iscn", preset)
    if path is None:
        raise FileNotFoundError(
            "this task needs trained ISCN weights (train iscn first or pass iscn_weights)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device, memory_format=torch.channels_last).eval()  # as the trainer's model


def iscn_round_one_inputs(
    batch: dict[str, Any], device: torch.device, max_slots: int
) -> dict[str, torch.Tensor]:
    """Round-1 ISCN decoder inputs of a batch whose sampler stored ``prompt_maps``/``prompt_kinds``."""
    items: list[Item] = batch["items"]
    b, s4 = len(items), items[0].box.size // 4
    text, has_text = text_embeddings([prompt_text(it.prompts) for it in items], device)
    return {
        "prompt_maps": batch["prompt_maps"].to(device),
        "prompt_kinds": batch["prompt_kinds"].to(device),
        "text_embedding": text,
        "has_text": has_text,
        "conflict_map": torch.zeros(b, 1, s4, s4, device=device),
        "prev_mask": torch.zeros(b, 1, s4, s4, device=device),
        "has_prev": torch.zeros(b, 1, device=device),
    }


DECODER_ORDER = (
    "prompt_maps",
    "prompt_kinds",
    "text_embedding",
    "has_text",
    "conflict_map",
    "prev_mask",
    "has_prev",
)


class Task(ABC):
    """Base class: a model, a worker-side sampler and the loss."""

    family: str = ""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device

    @property
    @abstractmethod
    def sampler(self) -> Callable[[Item, np.random.Generator], None]:
        """Fills an item's prompts and inputs in the data worker."""

    def trainable(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates."""
        return [p for p in self.model.parameters() if p.requires_grad]

    @abstractmethod
    def loss(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The family's loss on a collated batch, and scalars to log."""

    def describe(self) -> dict[str, Any]:
        """What the provenance file records about the task (prompts, mixtures)."""
        return {}


# --------------------------------------------------------------------------- ISCN


@dataclass
class ISCNSampler:
    """Round-1 prompts of a random mixture (:data:`prompts.ROUND_ONE_MODES`), the number of
    rounds (1–3) and how later rounds are built; rasterised with ``iscn_prompt_tensors``."""

    max_slots: int
    round_probs: tuple[float, float, float] = (0.45, 0.35, 0.2)
    gt_previous: float = 0.3  # chance that round 1's "prediction" is a perturbed ground truth
    cumulative: float = 0.8  # chance that later rounds carry every mark so far (the service's way)

    def __call__(self, item: Item, rng: np.random.Generator) -> None:
        mode = P.choose_mode(rng)
        item.prompts = P.round_one_prompts(mode, item.alphas, item.target, item.text, rng)
        maps, kinds = iscn_prompt_tensors(item.prompts, item.box, self.max_slots)
        rounds = 1 + int(rng.choice(3, p=np.asarray(self.round_probs)))
        perturbed = None
        if rounds > 1 and rng.random() < self.gt_previous:
            perturbed = P.perturb_mask(P.binary(item.alphas[item.target]), rng)
        item.extra.update(
            mode=mode,
            prompt_maps=maps,
            prompt_kinds=kinds,
            rounds=rounds,
            cumulative=bool(rng.random() < self.cumulative),
            keep_text=bool(rng.random() < 0.5),
            perturbed=perturbed,
        )


class ISCNTask(Task):
    """ISCN: prompted target mask + object-query instances (CE + BCE + Dice, Hungarian-matched).

    Items with 2–3 rounds run the earlier rounds through the decoder without gradients (the
    image features are computed once), take the simulator's corrections from each round's
    errors, and train on the last round with the previous mask and the conflict map. Like
    the service (``service/pipelines/dfimat.py``), later rounds usually carry every mark so
    far plus the text in the slots, and the conflict map compares this round's new marks
    with the previous mask.
    """

    family = "iscn"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__(model, device)
        self.max_slots = model.cfg.max_visual_prompts
        self._sampler = ISCNSampler(self.max_slots)

    @property
    def sampler(self) -> ISCNSampler:
        return self._sampler

    def describe(self) -> dict[str, Any]:
        s = self._sampler
        return {
            "round_one_modes": P.ROUND_ONE_MODES,
            "rounds_1_2_3": list(s.round_probs),
            "previous_from_perturbed_gt": s.gt_previous,
            "later_rounds_cumulative": s.cumulative,
            "corrections": "simulator placement: 1-3 clicks (70 %) or 1-2 scribbles in the largest errors",
            "loss": "iscn_loss: CE+BCE+Dice 0.1:1:1 on the target and Hungarian-matched instances",
        }

    def later_rounds(
        self,
        batch: dict[str, Any],
        inputs: dict[str, torch.Tensor],
        features: tuple[torch.Tensor, torch.Tensor],
        rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        """Runs earlier rounds without gradients and returns the last round's decoder inputs."""
        items: list[Item] = batch["items"]
        rounds = [int(it.extra["rounds"]) for it in items]
        if max(rounds) == 1:
            return inputs
        inputs = {k: v.clone() for k, v in inputs.items()}
        history = [list(it.prompts) for it in items]
        text_of = [prompt_text(it.prompts) for it in items]
        feats, mfeats = (f.detach() for f in features)
        for t in range(1, max(rounds)):
            active = [i for i, r in enumerate(rounds) if r > t]
            with torch.no_grad():
                idx = torch.tensor(active, device=self.device)
                out = self.model.decoder(feats[idx], mfeats[idx], *(inputs[k][idx] for k in DECODER_ORDER))
                probs = out["mask_logits"].sigmoid().float().cpu().numpy()
            texts: list[str | None] = []
            for j, i in enumerate(active):
                it = items[i]
                box = it.box
                if t == 1 and it.extra["perturbed"] is not None:
                    prev_orig = it.extra["perturbed"]
                    prev4 = box.plane(prev_orig, stride=4)
                else:
                    prev4 = probs[j, 0]
                    prev_orig = box.to_original(prev4)
                new = P.correction_prompts(prev_orig, it.alphas[it.target], rng)
                history[i].extend(new)
                marks = history[i] if it.extra["cumulative"] else list(new)
                keep_text = it.extra["cumulative"] or it.extra["keep_text"]
                texts.append(text_of[i] if keep_text else None)
                maps, kinds = iscn_prompt_tensors(marks, box, self.max_slots)
                inputs["prompt_maps"][i] = torch.from_numpy(maps)
                inputs["prompt_kinds"][i] = torch.from_numpy(kinds)
                inputs["prev_mask"][i, 0] = torch.from_numpy(prev4)
                inputs["has_prev"][i] = 1.0
                # As the service does: the conflict map compares only this round's marks.
                new_maps, new_kinds = iscn_prompt_tensors(new, box, self.max_slots)
                conflict = compute_conflict_map(
                    torch.from_numpy(prev4)[None, None],
                    torch.from_numpy(new_maps)[None],
                    torch.from_numpy(new_kinds)[None],
                    torch.ones(1, 1),
                )
                inputs["conflict_map"][i] = conflict[0].to(self.device)
            emb, has = text_embeddings(texts, self.device)
            idx = torch.tensor(active, device=self.device)
            inputs["text_embedding"][idx] = emb
            inputs["has_text"][idx] = has
        return inputs

    def loss(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image = batch["image"].to(self.device)
        s4 = image.shape[-1] // 4
        features = self.model.image_encoder(image)
        inputs = iscn_round_one_inputs(batch, self.device, self.max_slots)
        inputs = self.later_rounds(batch, inputs, features, rng)
        out = self.model.decoder(*features, *(inputs[k] for k in DECODER_ORDER))
        target = pool_to((batch["alpha"] >= 0.5).float(), s4).to(self.device)
        instances = pool_to((batch["alphas"] >= 0.5).float(), s4).to(self.device)
        valid = batch["valid"].to(self.device)
        humans = torch.ones(image.shape[0], dtype=torch.long, device=self.device)
        loss = losses.iscn_loss(out, target, humans, instances, valid)
        with torch.no_grad():
            pred = out["mask_logits"].float() >= 0
            iou = mask_iou(pred[:, 0], target[:, 0] >= 0.5).mean()
        return loss, {"iou": float(iou), "multi_round": float((inputs["has_prev"] > 0).float().mean())}


# --------------------------------------------------------------------------- MRN


@dataclass
class MRNSampler:
    """Round-1 ISCN prompts (for the frozen ISCN), a perturbed ground-truth guidance mask and
    the loss weight of each pixel: ``real_band_weight`` inside the soft band of a real person's
    label (``ccp`` sources: the mask-to-matte recipe's closed-form band, not a measured
    alpha), 1 elsewhere."""

    max_slots: int
    real_band_weight: float = 1.0

    def __call__(self, item: Item, rng: np.random.Generator) -> None:
        mode = P.choose_mode(rng)
        item.prompts = P.round_one_prompts(mode, item.alphas, item.target, item.text, rng)
        maps, kinds = iscn_prompt_tensors(item.prompts, item.box, self.max_slots)
        perturbed = P.perturb_mask(P.binary(item.alphas[item.target]), rng)
        target = item.alphas[item.target]
        real = item.source.startswith("ccp")
        band = (target > 0.0) & (target < 1.0) if real else np.zeros(target.shape, bool)
        weight = 1.0 - (1.0 - self.real_band_weight) * item.box.plane(band.astype(np.float32))
        item.extra.update(
            prompt_maps=maps, prompt_kinds=kinds, perturbed=item.box.plane(perturbed), label_weight=weight
        )


class MRNTask(Task):
    """MRN on coarse masks: the frozen ISCN's prediction (upsampled from S/4, as the service
    does) for ``iscn_share`` of the items when it overlaps the target (IoU >= 0.5), otherwise
    a perturbed ground-truth mask; loss L1 + hard-30 % L1 on each side output, the soft band
    of real people's labels weighted by ``real_band_weight`` (:class:`MRNSampler`)."""

    family = "mrn"

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        iscn: ISCN | None,
        iscn_share: float = 0.5,
        real_band_weight: float = 1.0,
    ) -> None:
        super().__init__(model, device)
        self.iscn = iscn
        self.iscn_share = iscn_share if iscn is not None else 0.0
        self.real_band_weight = real_band_weight
        self._sampler = MRNSampler(config_for("iscn", "tiny").max_visual_prompts, real_band_weight)

    @property
    def sampler(self) -> MRNSampler:
        return self._sampler

    def describe(self) -> dict[str, Any]:
        return {
            "guidance": f"frozen ISCN prediction for {self.iscn_share:.0%} of items (IoU>=0.5), "
            "else perturbed GT mask (erode/dilate, blur, S/4 blockiness, shift, holes, blobs)",
            "iscn_prompts": P.ROUND_ONE_MODES,
            "loss": "mrn_loss: L1 + hard-30% L1 on OS1/OS4/OS8"
            + (
                f"; real people's soft label band (mask-to-matte) weighted {self.real_band_weight:g}"
                if self.real_band_weight != 1.0
                else ""
            ),
        }

    def guidance(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        """Coarse masks ``[B,1,S,S]`` and the share that came from ISCN."""
        guide = batch["perturbed"].unsqueeze(1).to(self.device)
        if self.iscn is None or self.iscn_share <= 0:
            return guide, 0.0
        use = torch.from_numpy(rng.random(guide.shape[0]) < self.iscn_share).to(self.device)
        if not use.any():
            return guide, 0.0
        image = batch["image"].to(self.device)
        with torch.no_grad():
            inputs = iscn_round_one_inputs(batch, self.device, self._sampler.max_slots)
            logits = self.iscn(image, *(inputs[k] for k in DECODER_ORDER))["mask_logits"]
            # The service upsamples the S/4 probability (not the logits) bilinearly.
            prob = F.interpolate(
                logits.float().sigmoid(), size=image.shape[-2:], mode="bilinear", align_corners=False
            )
        gt = batch["alpha"].to(self.device) >= 0.5
        ok = use & (mask_iou(prob[:, 0] >= 0.5, gt[:, 0]) >= 0.5)
        guide = torch.where(ok[:, None, None, None], prob, guide)
        return guide, float(ok.float().mean())

    def loss(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        guide, share = self.guidance(batch, rng)
        image = batch["image"].to(self.device)
        alpha = batch["alpha"].to(self.device)
        out = self.model(image, guide)
        weight = batch["label_weight"].unsqueeze(1).to(self.device) if self.real_band_weight != 1.0 else None
        loss = losses.mrn_loss(out, alpha, weight=weight)
        mad = (out["alpha"].detach() - alpha).abs().mean()
        return loss, {"mad": float(mad), "iscn_share": share}


# --------------------------------------------------------------------------- SEMat


@dataclass
class SEMatSampler:
    """A jittered ground-truth box (``semat_box``)."""

    jitter: float = 0.05

    def __call__(self, item: Item, rng: np.random.Generator) -> None:
        box = P.sample_box(item.alphas[item.target], rng, self.jitter)
        item.prompts = [box] if box is not None else []
        xyxy = semat_box(item.prompts, item.box)
        item.extra["box"] = xyxy if xyxy is not None else np.zeros(4, np.float32)


def trimap_from_alpha(alpha: torch.Tensor, band: int) -> torch.Tensor:
    """``alpha [B,1,S,S]`` -> trimap ``[B,1,S,S]`` (0 bg, 1 unknown, 2 fg): unknown = the soft
    pixels and a ``band``-px band around the 0.5 contour, dilated by ``band``."""
    k = 2 * band + 1
    fg = alpha >= 0.5
    soft = (alpha > 0.01) & (alpha < 0.99)
    grown = F.max_pool2d(fg.float(), k, 1, band) > 0.5
    shrunk = -F.max_pool2d(-fg.float(), k, 1, band) > 0.5
    unknown = (F.max_pool2d(soft.float(), k, 1, band) > 0.5) | (grown & ~shrunk)
    return torch.where(unknown, 1.0, torch.where(fg, 2.0, 0.0))


class SEMatTask(Task):
    """SEMat with jittered ground-truth boxes; loss: known/unknown L1 + gradient + Laplacian +
    trimap CE. Every parameter trains (there is no pretrained SAM to keep frozen here)."""

    family = "semat"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__(model, device)
        self._sampler = SEMatSampler()

    @property
    def sampler(self) -> SEMatSampler:
        return self._sampler

    def describe(self) -> dict[str, Any]:
        return {
            "prompts": "ground-truth box, half the time with edges jittered by N(0, 5% of the side)",
            "trimap": "unknown = soft pixels + band around the 0.5 contour (S/64 px), for the trimap CE",
            "loss": "semat_loss: known L1 + unknown L1 + gradient + Laplacian + trimap CE",
            "trainable": "all parameters (ViT base, LoRA, decoders)",
        }

    def loss(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image = batch["image"].to(self.device)
        alpha = batch["alpha"].to(self.device)
        out = self.model(image, batch["box"].to(self.device))
        trimap = trimap_from_alpha(alpha, max(2, image.shape[-1] // 64))
        loss = losses.semat_loss(out, alpha, trimap)
        return loss, {"mad": float((out["alpha"].detach() - alpha).abs().mean())}


# --------------------------------------------------------------------------- SMat

SMAT_MODES: dict[str, float] = {"none": 0.3, "click": 0.25, "scribble": 0.15, "box": 0.3}


@dataclass
class SMatSampler:
    """No prompt (automatic: the target is every person) or click/scribble/box for one instance;
    ``grid_stride``: the model's patch size (see ``smat_prompt_mask``)."""

    grid_stride: int | None = None

    def __call__(self, item: Item, rng: np.random.Generator) -> None:
        mode = P.choose_mode(rng, SMAT_MODES)
        item.prompts = P.round_one_prompts(mode, item.alphas, item.target, item.text, rng)
        item.extra["prompt_mask"] = smat_prompt_mask(item.prompts, item.box, grid_stride=self.grid_stride)
        item.extra["automatic"] = np.asarray(not item.extra["prompt_mask"].any(), np.float32)


class SMatTask(Task):
    """SMat, automatic and interactive in one model; loss L1 + Laplacian."""

    family = "smat"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__(model, device)
        self._sampler = SMatSampler(grid_stride=model.cfg.patch_size)

    @property
    def sampler(self) -> SMatSampler:
        return self._sampler

    def describe(self) -> dict[str, Any]:
        return {
            "prompt_modes": SMAT_MODES,
            "automatic_target": "union of all instances",
            "loss": "smat_loss: L1 + Laplacian",
        }

    def loss(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image = batch["image"].to(self.device)
        auto = batch["automatic"].to(self.device).view(-1, 1, 1, 1) > 0.5
        target = torch.where(auto, batch["everyone"].to(self.device), batch["alpha"].to(self.device))
        out = self.model(image, batch["prompt_mask"].to(self.device))
        loss = losses.smat_loss(out, target)
        return loss, {"mad": float((out["alpha"].detach() - target).abs().mean())}


# --------------------------------------------------------------------------- InstMatt


@dataclass
class InstMattSampler:
    """A perturbed ground-truth mask per instance (letterboxed ``[K,S,S]``)."""

    def __call__(self, item: Item, rng: np.random.Generator) -> None:
        masks = [item.box.plane(P.perturb_mask(P.binary(a), rng)) for a in item.alphas]
        item.extra["instance_masks"] = (
            np.stack(masks) if masks else np.zeros((0, item.box.size, item.box.size))
        )


class InstMattTask(Task):
    """InstMatt on instance masks: perturbed ground truth, or for ``iscn_share`` of the images the
    frozen ISCN's object-query masks matched to the instances (Hungarian on IoU >= 0.3; others
    keep the perturbed mask). K slots = the most instances in the batch (the network is
    permutation-equivariant and slot-count agnostic; the export fixes K = 8).
    Loss: alpha L1 + Laplacian + alpha-sum + side tri-mattes (no composition term: the
    synthetic scenes do not keep per-instance foreground colours)."""

    family = "instmatt"

    def __init__(
        self, model: nn.Module, device: torch.device, iscn: ISCN | None, iscn_share: float = 0.3
    ) -> None:
        super().__init__(model, device)
        self.iscn = iscn
        self.iscn_share = iscn_share if iscn is not None else 0.0
        self._sampler = InstMattSampler()

    @property
    def sampler(self) -> InstMattSampler:
        return self._sampler

    def describe(self) -> dict[str, Any]:
        return {
            "guidance": f"perturbed GT instance masks; ISCN instance masks matched to GT for "
            f"{self.iscn_share:.0%} of images",
            "loss": "instmatt_loss: alpha L1 + Laplacian + alpha-sum + side tri-mattes",
        }

    def iscn_instances(self, image: torch.Tensor) -> torch.Tensor:
        """Object-query mask probabilities of the frozen ISCN, upsampled: ``[B,Nq,S,S]``."""
        assert self.iscn is not None
        b, s = image.shape[0], image.shape[-1]
        nv, s4 = self.iscn.cfg.max_visual_prompts, s // 4
        z = image.new_zeros
        with torch.no_grad():
            out = self.iscn(
                image,
                z(b, nv, s4, s4),
                torch.zeros(b, nv, dtype=torch.long, device=image.device),
                z(b, TEXT_DIM),
                z(b, 1),
                z(b, 1, s4, s4),
                z(b, 1, s4, s4),
                z(b, 1),
            )
            # As the service does: upsample the S/4 probabilities bilinearly.
            probs = out["instance_logits"].float().sigmoid()
            return F.interpolate(probs, size=(s, s), mode="bilinear", align_corners=False)

    def masks(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        items: list[Item] = batch["items"]
        valid = batch["valid"]
        b, k = valid.shape
        s = items[0].box.size
        masks = torch.zeros(b, k, s, s)
        for i, it in enumerate(items):
            m = it.extra["instance_masks"]
            masks[i, : len(m)] = torch.from_numpy(m)
        masks = masks.to(self.device)
        use = rng.random(b) < self.iscn_share
        if self.iscn is None or not use.any():
            return masks, 0.0
        rows = np.nonzero(use)[0]
        image = batch["image"][rows].to(self.device)
        pred = self.iscn_instances(image) >= 0.5  # [r,Nq,S,S]
        gt = batch["alphas"][rows].to(self.device) >= 0.5
        replaced = 0
        for j, i in enumerate(rows):
            n = int(valid[i].sum())
            inter = torch.einsum("qhw,ghw->qg", pred[j].float(), gt[j, :n].float())
            union = pred[j].flatten(1).sum(1)[:, None] + gt[j, :n].flatten(1).sum(1)[None, :] - inter
            iou = (inter / union.clamp_min(1.0)).cpu().numpy()
            qs, gs = linear_sum_assignment(-iou)
            for q, g in zip(qs, gs, strict=True):
                if iou[q, g] >= 0.3:
                    masks[i, g] = pred[j, q].float()
                    replaced += 1
        return masks, replaced / max(1.0, float(valid.sum()))

    def loss(self, batch: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image = batch["image"].to(self.device)
        gt = batch["alphas"].to(self.device)
        valid = batch["valid"].to(self.device)
        masks, share = self.masks(batch, rng)
        out = self.model(image, masks, valid)
        loss = losses.instmatt_loss(out, gt, valid)
        v = valid[:, :, None, None]
        mad = ((out["alpha"].detach() - gt).abs() * v).sum() / (v.sum() * gt.shape[-1] * gt.shape[-2])
        return loss, {"mad": float(mad), "iscn_share": share}


BACKGROUND_PRIOR = -2.0  # output logit at initialisation: sigmoid(-2) = 0.12, most pixels are background


def init_output_priors(family: str, model: nn.Module) -> None:
    """Starts alpha heads near background (the RetinaNet prior trick) instead of at 0.5.

    Adam moves a bias by about the learning rate per step, so a head that starts at 0.5 spends
    its first thousand steps learning that most pixels are 0. MGMatting heads compute
    ``sigmoid(2x)``, so their bias is half the logit; InstMatt's three channels are (target,
    others, background) and start as background.
    """
    with torch.no_grad():
        if family == "smat":
            model.decoder.matting_head.matting_convs[-1].bias.fill_(BACKGROUND_PRIOR)
        elif family == "semat":
            model.matting_decoder.matting_head.bias.fill_(BACKGROUND_PRIOR)
        elif family == "mrn":
            for head in (model.backbone.head_os1, model.backbone.head_os4, model.backbone.head_os8):
                head.out.bias.fill_(BACKGROUND_PRIOR / 2)
        elif family == "instmatt":
            tri = torch.tensor([1.0, 1.0, -1.0]) * (BACKGROUND_PRIOR / 2)
            for head in (model.head_os4, model.head_os8):
                head.out.bias.copy_(tri)
            model.head_os1.out.bias[:3].copy_(tri)


def init_pretrained_backbones(family: str, model: nn.Module) -> list[str]:
    """Loads ImageNet weights into the pretrained CNNs of ``model`` (ISCN's EfficientNet-Lite0
    backbone); returns the prefixes it loaded (empty for a from-scratch architecture)."""
    if family != "iscn" or model.cfg.backbone != "efficientnet_lite0":
        return []
    model.image_encoder.backbone.load_state_dict(imagenet_state_dict())
    return ["image_encoder.backbone"]


def load_matching_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Loads the entries of ``state`` whose name and shape ``model`` has (fine-tuning across an
    architecture change, e.g. a new backbone); returns the names of ``model``'s parameters and
    buffers that kept their current values."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return sorted(k for k in own if k not in matching)


def make_task(
    family: str,
    model: nn.Module,
    device: torch.device,
    iscn: ISCN | None = None,
    real_band_weight: float = 1.0,
) -> Task:
    """The task of ``family`` around a built ``model`` (``iscn``: the frozen ISCN for MRN/InstMatt;
    ``real_band_weight``: MRN's loss weight in the soft band of real people's labels)."""
    if family == "iscn":
        return ISCNTask(model, device)
    if family == "mrn":
        return MRNTask(model, device, iscn, real_band_weight=real_band_weight)
    if family == "semat":
        return SEMatTask(model, device)
    if family == "smat":
        return SMatTask(model, device)
    if family == "instmatt":
        return InstMattTask(model, device, iscn)
    raise KeyError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


__all__ = ["FAMILIES", "Letterbox", "Task", "make_task"]
