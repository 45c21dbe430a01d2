"""ISCN (Interactive Semantic Capture Network, DFIMat): encoder + prompt decoder.

``ISCN`` is the trainable whole; the service runs its two halves separately
(``iscn_encoder`` once per session, ``iscn_decoder`` every round) through
:class:`ISCNEncoderExport` / :class:`ISCNDecoderExport`, whose signatures are the exported
I/O of ``models/io_spec.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common.wire import from_wire
from models.iscn.config import PRESETS, ISCNConfig
from models.iscn.decoder import ISCNDecoder
from models.iscn.image_encoder import ISCNImageEncoder


class ISCN(nn.Module):
    """``image [B,3,S,S]`` + prompt tensors (see :class:`ISCNDecoder`) -> the decoder's dict of logits."""

    def __init__(self, cfg: ISCNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ISCNImageEncoder(cfg)
        self.decoder = ISCNDecoder(cfg)

    def forward(
        self,
        image: torch.Tensor,
        prompt_maps: torch.Tensor,
        prompt_kinds: torch.Tensor,
        text_embedding: torch.Tensor,
        has_text: torch.Tensor,
        conflict_map: torch.Tensor,
        prev_mask: torch.Tensor,
        has_prev: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        features, mask_features = self.image_encoder(image)
        return self.decoder(
            features,
            mask_features,
            prompt_maps,
            prompt_kinds,
            text_embedding,
            has_text,
            conflict_map,
            prev_mask,
            has_prev,
        )


class ISCNEncoderExport(nn.Module):
    """Exported ``iscn_encoder``: ``image [B,3,S,S]`` -> ``(features [B,dim,S/16,S/16], mask_features
    [B,mask_dim,S/4,S/4])``.
    """

    def __init__(self, model: ISCN) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image_encoder(from_wire(image))


class ISCNDecoderExport(nn.Module):
    """Exported ``iscn_decoder``: cached features + prompt tensors -> ``(mask_logits, class_score,
    instance_logits, instance_scores)``; scores are softmax probabilities of "human" ``[B,1]``/``[B,Nq]``.
    """

    def __init__(self, model: ISCN) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(
        self,
        features: torch.Tensor,
        mask_features: torch.Tensor,
        prompt_maps: torch.Tensor,
        prompt_kinds: torch.Tensor,
        text_embedding: torch.Tensor,
        has_text: torch.Tensor,
        conflict_map: torch.Tensor,
        prev_mask: torch.Tensor,
        has_prev: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.decoder(
            from_wire(features),
            from_wire(mask_features),
            prompt_maps,
            prompt_kinds,
            text_embedding,
            has_text,
            conflict_map,
            prev_mask,
            has_prev,
        )
        class_score = out["class_logits"].softmax(dim=-1)[:, 1:2]
        instance_scores = out["instance_class_logits"].softmax(dim=-1)[..., 1]
        return out["mask_logits"], class_score, out["instance_logits"], instance_scores


def build_iscn(preset: str = "tiny") -> ISCN:
    """ISCN at a size preset (``tiny`` or ``paper``)."""
    return ISCN(PRESETS[preset])
