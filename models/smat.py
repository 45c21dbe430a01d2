"""SMat ("Unifying Automatic and Interactive Matting with Pretrained ViTs"): one model, with or without
prompts.

* ``backbone``: a DINOv2-style ViT with a class token (``paper`` preset = ViT-S/14 with the
  official parameter names: ``cls_token``, ``pos_embed``, ``mask_token``, ``blocks.{i}.ls1.gamma``...).
* Candidate feature: the mask-average of the patch tokens under the prompt mask (nearest-
  downsampled to the token grid), or the class token when the prompt mask is empty
  (automatic mode); chosen per image with ``torch.where``.
* ``prompt_cross_attn``: a one-layer ``nn.TransformerDecoder`` (post-norm, ReLU) updates that
  single token against all patch tokens.
* Cosine similarity of the token with every patch token, min-max normalised per image (ε 1e-6).
* ``decoder``: ViTMatte-style detail capture on ``concat(patch grid, similarity)``: the image is
  resized to 16× the token grid, a ConvStream gives /2, /4, /8 details, four fusion blocks go
  back to full resolution, a small head and a sigmoid give alpha.
* ``prompt_channel`` (ours, the ``tiny`` preset; the official layout has none): the prompt mask
  also enters the decoder directly — its patch coverage beside the similarity and, at full
  resolution, as a fourth image channel of the ConvStream (as ViTMatte's trimap does). A ViT
  trained from scratch gives no similarity map sharp enough for the pooled token alone to
  localise a box's person; with the mask in the decoder's input it sees where the prompt is.

The service runs the backbone once per session (``smat_encoder``) and the rest every round
(``smat_decoder``). Letterbox padding is black in the [0,1] domain (the official code pads
after normalisation); for patch 14 the model pads to a multiple of 14 internally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.common.norm import ImageNormalizer
from models.common.wire import from_wire


@dataclass(frozen=True)
class SMatConfig:
    """``img_size``: size the position embedding is stored for (the grid is ``img_size // patch_size``)."""

    img_size: int = 512
    patch_size: int = 16
    embed_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    layerscale_init: float = 1.0
    prompt_heads: int = 4
    prompt_ffn: int = 128
    prompt_dropout: float = 0.1
    convstream: tuple[int, int, int] = (12, 24, 32)
    fusion: tuple[int, int, int, int] = (32, 16, 8, 8)
    head_hidden: int = 4
    decoder_stride: int = 16  # the token grid is treated as stride 16 by the detail decoder
    prompt_channel: bool = False  # the prompt mask into the decoder too (module docstring)


PRESETS: dict[str, SMatConfig] = {
    "tiny": SMatConfig(prompt_channel=True),
    # DINOv2 ViT-S/14 + the official prompt decoder and ViTMatte detail capture.
    "paper": SMatConfig(
        img_size=518,
        patch_size=14,
        embed_dim=384,
        depth=12,
        num_heads=6,
        prompt_heads=8,
        prompt_ffn=2048,
        convstream=(48, 96, 192),
        fusion=(256, 128, 64, 32),
        head_hidden=16,
    ),
    # The parity fixtures' reduced configuration (tests/fixtures/official/): official code paths,
    # ViT width 48 and depth 2; the official ConvStream widths are fixed in its code.
    "parity": SMatConfig(
        img_size=518,
        patch_size=14,
        embed_dim=48,
        depth=2,
        num_heads=2,
        prompt_heads=8,
        prompt_ffn=96,
        convstream=(48, 96, 192),
        fusion=(32, 16, 8, 4),
        head_hidden=16,
    ),
}


class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` (DINOv2's ``ls1``/``ls2``)."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class DinoAttention(nn.Module):
    """Plain multi-head self-attention with a fused ``qkv`` (``[B,N,C] -> [B,N,C]``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DinoMlp(nn.Module):
    """``fc1 -> GELU -> fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DinoBlock(nn.Module):
    """Pre-norm ViT block with LayerScale."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, ls_init: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DinoAttention(dim, num_heads)
        self.ls1 = LayerScale(dim, ls_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = DinoMlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, ls_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """``[B,3,H,W] -> [B,(H/p)(W/p),D]``."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoViT(nn.Module):
    """Normalised padded image ``[B,3,H,W]`` (multiple of the patch) -> ``(patch grid [B,D,H/p,W/p], class
    token [B,D])``.
    """

    def __init__(self, cfg: SMatConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.base_grid = cfg.img_size // cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.base_grid**2, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # kept for the checkpoint layout; unused
        self.blocks = nn.ModuleList(
            DinoBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.layerscale_init) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = self.patch_embed(x)
        pos = position_embedding(self.pos_embed, x, self.patch_size, self.base_grid)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1) + pos
        for blk in self.blocks:
            tokens = blk(tokens)
        tokens = self.norm(tokens)
        grid = tokens[:, 1:].transpose(1, 2).reshape(b, -1, h, w)
        return grid, tokens[:, 0]


@torch.jit.script_if_tracing
def position_embedding(pos_embed: torch.Tensor, x: torch.Tensor, patch: int, base: int) -> torch.Tensor:
    """DINOv2's position embedding for the token grid of ``x [B,3,H,W]``: the stored ``base x base``
    grid bicubically interpolated with scale factor ``(grid + 0.1) / base`` (no antialias), the
    class position unchanged. Scripted when traced, so an export keeps H and W dynamic."""
    h, w = x.shape[-2] // patch, x.shape[-1] // patch
    if h == base and w == base:
        return pos_embed
    grid = pos_embed[:, 1:].reshape(1, base, base, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((h + 0.1) / base, (w + 0.1) / base), mode="bicubic")
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)


class BasicConv(nn.Module):
    """``conv`` (3×3, no bias) -> ``bn`` -> ReLU, ViTMatte's ConvStream/fusion unit."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ConvStream(nn.Module):
    """``image [B,C,H,W]`` (C = ``in_ch``: RGB, or RGB + prompt) -> ``[D0=image, D1, D2, D3]`` (/1 to /8)."""

    def __init__(self, channels: tuple[int, int, int], in_ch: int = 3) -> None:
        super().__init__()
        ins = (in_ch, *channels[:-1])
        self.convs = nn.ModuleList(BasicConv(i, o, 2) for i, o in zip(ins, channels, strict=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for conv in self.convs:
            outs.append(conv(outs[-1]))
        return outs


class FusionBlock(nn.Module):
    """×2 bilinear upsample, concat the detail feature, conv-BN-ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = BasicConv(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([detail, x], dim=1))


class MattingHead(nn.Module):
    """``matting_convs``: conv3×3 -> BN -> ReLU -> conv1×1 to one logit."""

    def __init__(self, in_ch: int, hidden: int) -> None:
        super().__init__()
        self.matting_convs = nn.Sequential(
            nn.Conv2d(in_ch, hidden, 3, 1, 1), nn.BatchNorm2d(hidden), nn.ReLU(), nn.Conv2d(hidden, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.matting_convs(x)


class DetailCapture(nn.Module):
    """``features [B,in_ch,h,w]``, ``image [B,3,16h,16w]`` (normalised) -> alpha ``[B,1,16h,16w]``.

    With ``prompt_channel`` the features carry one more channel (the prompt's patch coverage)
    and the image a fourth (the prompt mask at full resolution)."""

    def __init__(
        self,
        in_ch: int,
        convstream: tuple[int, int, int],
        fusion: tuple[int, ...],
        head_hidden: int,
        prompt_channel: bool = False,
    ):
        super().__init__()
        self.prompt_channel = prompt_channel
        in_ch, image_ch = (in_ch + 1, 4) if prompt_channel else (in_ch, 3)
        self.convstream = ConvStream(convstream, image_ch)
        details = (convstream[2], convstream[1], convstream[0], image_ch)
        ins = (in_ch, *fusion[:-1])
        self.fusion_blks = nn.ModuleList(
            FusionBlock(i + d, o) for i, d, o in zip(ins, details, fusion, strict=True)
        )
        self.matting_head = MattingHead(fusion[-1], head_hidden)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        d = self.convstream(image)
        x = features
        for i, blk in enumerate(self.fusion_blks):
            x = blk(x, d[len(d) - 1 - i])
        return torch.sigmoid(self.matting_head(x))


def padding_for(height: int, width: int, patch: int) -> tuple[int, int]:
    """Bottom/right zero padding of the official SMat: none when both sides are multiples of
    ``patch``; otherwise each side grows by ``patch - side % patch`` — a side that already is a
    multiple still gets a whole ``patch`` (the official ``preprocess_inputs``)."""
    if height % patch == 0 and width % patch == 0:
        return 0, 0
    return patch - height % patch, patch - width % patch


def prepare_image(normalize: nn.Module, image: torch.Tensor, patch: int) -> torch.Tensor:
    """Normalise ``[B,3,H,W]`` and zero-pad bottom/right (:func:`padding_for`)."""
    x = normalize(image)
    ph, pw = padding_for(x.shape[-2], x.shape[-1], patch)
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


class SMatDecoderPart(nn.Module):
    """The prompt-dependent half: candidate token, cross-attention update, similarity, detail decoder.

    Holds references to SMat's ``normalize``, ``prompt_cross_attn`` and ``decoder`` (no copies).
    ``forward(image [B,3,S,S], patch_tokens [B,D,h,w], class_token [B,D], prompt [B,1,S,S])`` ->
    ``(alpha [B,1,S,S], similarity [B,1,h,w])``.
    """

    def __init__(self, model: SMat) -> None:
        super().__init__()
        self.normalize = model.normalize
        self.prompt_cross_attn = model.prompt_cross_attn
        self.decoder = model.decoder
        self.patch_size = model.cfg.patch_size
        self.stride = model.cfg.decoder_stride

    def forward(
        self, image: torch.Tensor, patch_tokens: torch.Tensor, class_token: torch.Tensor, prompt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s_h, s_w = image.shape[-2], image.shape[-1]
        x = prepare_image(self.normalize, from_wire(image), self.patch_size)
        patch_tokens, class_token = from_wire(patch_tokens), from_wire(class_token)
        prompt = F.pad(prompt, (0, x.shape[-1] - s_w, 0, x.shape[-2] - s_h))
        alpha, sim = decode_padded(
            self.prompt_cross_attn, self.decoder, self.stride, x, patch_tokens, class_token, prompt
        )
        return alpha[:, :, :s_h, :s_w], sim


def decode_padded(
    prompt_cross_attn: nn.Module,
    decoder: nn.Module,
    stride: int,
    x: torch.Tensor,
    patch_tokens: torch.Tensor,
    class_token: torch.Tensor,
    prompt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMat's prompt-dependent half on the normalised, padded image ``x [B,3,Hp,Wp]`` and prompt
    ``[B,1,Hp,Wp]`` -> ``(alpha [B,1,Hp,Wp], similarity [B,1,h,w])``."""
    b, h, w = patch_tokens.shape[0], patch_tokens.shape[2], patch_tokens.shape[3]
    weights = F.interpolate(prompt, size=(h, w), mode="nearest").flatten(1)  # [B, hw]
    tokens = patch_tokens.flatten(2).transpose(1, 2)  # [B, hw, D]
    area = weights.sum(dim=1, keepdim=True)
    pooled = (weights.unsqueeze(1) @ tokens).squeeze(1) / (area + 1e-6)
    # Prompted when the full-resolution prompt has any pixel (official), else the class token.
    prompted = prompt.flatten(1).ne(0).any(dim=1, keepdim=True)
    candidate = torch.where(prompted, pooled, class_token)
    candidate = prompt_cross_attn(candidate.unsqueeze(1), tokens)  # [B,1,D]
    sim = F.cosine_similarity(candidate, tokens, dim=-1)  # [B, hw]
    lo = sim.min(dim=1, keepdim=True).values
    hi = sim.max(dim=1, keepdim=True).values
    sim = ((sim - lo) / (hi - lo + 1e-6)).reshape(b, 1, h, w)
    # The detail decoder treats the token grid as stride 16 (official); resizing to the same
    # size is the identity, so it is always done and a trace stays valid at any size.
    img = F.interpolate(x, size=(stride * h, stride * w), mode="bilinear", align_corners=False)
    features = torch.cat([patch_tokens, sim], dim=1)
    if decoder.prompt_channel:
        coverage = F.interpolate(prompt, size=(h, w), mode="area")
        features = torch.cat([features, coverage], dim=1)
        full = F.interpolate(prompt, size=(stride * h, stride * w), mode="nearest")
        img = torch.cat([img, full], dim=1)
    alpha = decoder(features, img)
    alpha = F.interpolate(alpha, size=(x.shape[-2], x.shape[-1]), mode="bilinear", align_corners=False)
    return alpha, sim


class SMat(nn.Module):
    """``image [B,3,S,S]``, ``prompt [B,1,S,S]`` (all-zero = automatic) -> dict ``alpha [B,1,S,S]``,
    ``similarity [B,1,h,w]``. Use :meth:`encode` + :meth:`decode` to reuse the backbone across rounds.
    """

    def __init__(self, cfg: SMatConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalize = ImageNormalizer()
        self.backbone = DinoViT(cfg)
        layer = nn.TransformerDecoderLayer(
            cfg.embed_dim, cfg.prompt_heads, cfg.prompt_ffn, cfg.prompt_dropout, batch_first=True
        )
        self.prompt_cross_attn = nn.TransformerDecoder(layer, 1)
        self.decoder = DetailCapture(
            cfg.embed_dim + 1, cfg.convstream, cfg.fusion, cfg.head_hidden, cfg.prompt_channel
        )

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image [B,3,S,S]`` -> ``(patch_tokens [B,D,h,w], class_token [B,D])``."""
        return self.backbone(prepare_image(self.normalize, image, self.cfg.patch_size))

    def decode(
        self, image: torch.Tensor, patch_tokens: torch.Tensor, class_token: torch.Tensor, prompt: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Cached encoder outputs + ``prompt [B,1,S,S]`` -> ``alpha [B,1,S,S]``, ``similarity [B,1,h,w]``."""
        alpha, sim = SMatDecoderPart(self)(image, patch_tokens, class_token, prompt)
        return {"alpha": alpha, "similarity": sim}

    def forward(self, image: torch.Tensor, prompt: torch.Tensor) -> dict[str, torch.Tensor]:
        patch_tokens, class_token = self.encode(image)
        return self.decode(image, patch_tokens, class_token, prompt)


class SMatEncoderExport(nn.Module):
    """Exported ``smat_encoder``: ``image [B,3,S,S] -> (patch_tokens [B,D,h,w], class_token [B,D])``."""

    def __init__(self, model: SMat) -> None:
        super().__init__()
        self.normalize = model.normalize
        self.backbone = model.backbone
        self.patch_size = model.cfg.patch_size

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(prepare_image(self.normalize, from_wire(image), self.patch_size))


class SMatDecoderExport(SMatDecoderPart):
    """Exported ``smat_decoder``: ``(image, patch_tokens, class_token, prompt_mask) -> (alpha [B,1,S,S],
    similarity [B,1,h,w])``.
    """


def prepare_smat(
    image_rgb: np.ndarray, prompt: np.ndarray, patch: int = 14
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official input contract: RGB uint8 ``[H,W,3]`` and a binary prompt ``[H,W]`` ->
    ImageNet-normalised image ``[1,3,Hp,Wp]`` and prompt ``[1,1,Hp,Wp]``, both zero-padded
    bottom/right by :func:`padding_for` (after normalisation, as ``preprocess_inputs``)."""
    image = torch.from_numpy(np.ascontiguousarray(image_rgb.transpose(2, 0, 1))).float().div(255.0)[None]
    x = prepare_image(ImageNormalizer(), image, patch)
    mask = torch.from_numpy(np.ascontiguousarray(prompt, dtype=np.float32))[None, None]
    return x, F.pad(mask, (0, x.shape[-1] - mask.shape[-1], 0, x.shape[-2] - mask.shape[-2]))


class SMatPaddedEncoderExport(nn.Module):
    """Exported ``smat_official_encoder`` (native resolution): the normalised image, already
    padded by the official rule (``padding_for``), ``[B,3,H,W]`` -> ``(patch_tokens [B,D,H/p,W/p],
    class_token [B,D])``."""

    def __init__(self, model: SMat) -> None:
        super().__init__()
        self.backbone = model.backbone

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(image)


class SMatPaddedDecoderExport(nn.Module):
    """Exported ``smat_official_decoder`` (native resolution): :func:`decode_padded`."""

    def __init__(self, model: SMat) -> None:
        super().__init__()
        self.prompt_cross_attn = model.prompt_cross_attn
        self.decoder = model.decoder
        self.stride = model.cfg.decoder_stride

    def forward(
        self, image: torch.Tensor, patch_tokens: torch.Tensor, class_token: torch.Tensor, prompt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_padded(
            self.prompt_cross_attn, self.decoder, self.stride, image, patch_tokens, class_token, prompt
        )


def with_prompt_channel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without the prompt channel (``prompt_channel=False``) -> the same weights in
    the ``prompt_channel=True`` layout, the new input channels zero: the network computes the same
    function until training moves them (a fine-tuning start)."""
    out = dict(state)
    first = "decoder.convstream.convs.0.conv.weight"  # input: RGB -> RGB + prompt
    out[first] = F.pad(state[first], (0, 0, 0, 0, 0, 1))
    fusion = sorted(
        k for k in state if k.startswith("decoder.fusion_blks.") and k.endswith("conv.conv.weight")
    )
    deepest, finest = fusion[0], fusion[-1]
    out[deepest] = F.pad(state[deepest], (0, 0, 0, 0, 0, 1))  # [detail, features] + coverage
    w = state[finest]  # [image (3), x] -> [image, prompt, x]
    out[finest] = torch.cat([w[:, :3], torch.zeros_like(w[:, :1]), w[:, 3:]], dim=1)
    return out


def build_smat(preset: str = "tiny") -> SMat:
    """SMat at a size preset (``tiny`` or ``paper`` = DINOv2 ViT-S/14 shapes)."""
    return SMat(PRESETS[preset])
