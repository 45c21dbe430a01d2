"""Procedural, articulated people rendered as soft-edged layers with fractional hair.

A person is a 2-D skeleton (pelvis, spine, neck, head, two arms, two legs) posed by joint
angles, dressed by a :class:`PersonStyle` and drawn part by part (back to front) from signed
distance fields, so every edge is anti-aliased; a garment's pieces are united through the
minimum of their distance fields, so no seams of partial alpha appear inside the body.
Hair is a cap (plus a back mass for long styles) with a fuzzy edge and many thin, curved,
anti-aliased strands drawn at 3x and averaged down, which gives the fractional alpha that
makes matting hard.

The result is a :class:`PersonLayer`: alpha and premultiplied colour (alpha * F) over the
layer's box, plus the alpha of the upper garment (used to name the clothing colour).
Working in premultiplied colour lets blur (defocus, motion) act on alpha and colour
consistently, so the compositing equation I = alpha * F + (1 - alpha) * B holds exactly.

Body lengths are in units of the person's height H (head top to soles); the local frame has
its origin at the pelvis, x to the image right, y down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.data.colours import COLOUR_NAMES, sample_named_colour
from models.data.noise import value_noise

SKIN_TONES = np.array(
    [
        [0.98, 0.84, 0.74],
        [0.94, 0.76, 0.64],
        [0.87, 0.67, 0.53],
        [0.78, 0.57, 0.42],
        [0.66, 0.45, 0.31],
        [0.52, 0.34, 0.23],
        [0.38, 0.24, 0.16],
        [0.27, 0.17, 0.12],
    ],
    np.float32,
)

HAIR_COLOURS = np.array(
    [
        [0.04, 0.035, 0.03],
        [0.10, 0.07, 0.05],
        [0.22, 0.14, 0.08],
        [0.38, 0.24, 0.13],
        [0.52, 0.25, 0.11],
        [0.78, 0.63, 0.40],
        [0.90, 0.80, 0.58],
        [0.58, 0.57, 0.55],
    ],
    np.float32,
)

HAIR_STYLES = ("short", "long", "bun", "curly", "shaved")
PATTERNS = ("solid", "solid", "hstripes", "vstripes", "plaid", "mottled")
SLEEVES = ("short", "long", "long", "none")
BOTTOMS = ("trousers", "trousers", "shorts", "skirt")


@dataclass
class PersonStyle:
    """How a person looks. Colours are RGB float32 [3] in [0, 1]."""

    skin: np.ndarray
    hair: np.ndarray
    hair_style: str
    top: np.ndarray
    top_name: str
    top_pattern: str
    top_accent: np.ndarray
    sleeves: str
    bottom: np.ndarray
    bottom_kind: str
    shoes: np.ndarray
    facing_front: bool = True
    mannequin: bool = False
    hat: np.ndarray | None = None
    bag: np.ndarray | None = None


@dataclass
class Pose:
    """Joint angles in degrees. Arm and leg angles are measured from straight down, positive
    away from the body; the elbow and knee bends turn the lower limb back towards the body."""

    lean: float = 0.0
    head_tilt: float = 0.0
    shoulder: tuple[float, float] = (15.0, 15.0)
    elbow: tuple[float, float] = (10.0, 10.0)
    hip: tuple[float, float] = (5.0, 5.0)
    knee: tuple[float, float] = (0.0, 0.0)
    width: float = 1.0
    child: bool = False
    arms_in_front: tuple[bool, bool] = (True, True)


@dataclass
class PersonLayer:
    """A rendered person restricted to its box: rows y0.., cols x0.. of the canvas.

    ``alpha`` [h, w], ``premult`` [h, w, 3] (alpha * F), ``top`` [h, w] (alpha of the upper
    garment as seen within the person, i.e. already hidden where arms or hair cover it).
    ``feet`` is the soles' centre in canvas pixels, or None for a crop without feet.
    """

    y0: int
    x0: int
    alpha: np.ndarray
    premult: np.ndarray
    top: np.ndarray
    feet: tuple[float, float] | None = None
    head: tuple[float, float] = (0.0, 0.0)
    height: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.alpha.shape[0], self.alpha.shape[1]

    def slices(self) -> tuple[slice, slice]:
        """Canvas slices (rows, cols) covered by this layer."""
        h, w = self.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


def sample_style(
    rng: np.random.Generator,
    top_name: str | None = None,
    mannequin: bool = False,
) -> PersonStyle:
    """Random skin tone, hair, clothing (colour, pattern, sleeves, trousers/shorts/skirt)."""
    i = rng.integers(0, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[i] + rng.random() * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    hair = HAIR_COLOURS[rng.integers(0, len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    if top_name is None:
        top_name = str(rng.choice(COLOUR_NAMES))
    top = sample_named_colour(rng, top_name)
    accent_name = str(rng.choice([n for n in COLOUR_NAMES if n != top_name]))
    bottom_name = str(rng.choice(["blue", "blue", "black", "gray", "brown", "white", "green", "red"]))
    style = PersonStyle(
        skin=np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1).astype(np.float32),
        hair=np.clip(hair, 0, 1).astype(np.float32),
        hair_style=str(rng.choice(HAIR_STYLES, p=[0.35, 0.3, 0.1, 0.15, 0.1])),
        top=top,
        top_name=top_name,
        top_pattern=str(rng.choice(PATTERNS)),
        top_accent=sample_named_colour(rng, accent_name),
        sleeves=str(rng.choice(SLEEVES)),
        bottom=sample_named_colour(rng, bottom_name),
        bottom_kind=str(rng.choice(BOTTOMS)),
        shoes=sample_named_colour(rng, str(rng.choice(["black", "brown", "white", "gray"]))),
        facing_front=bool(rng.random() < 0.8),
        mannequin=mannequin,
    )
    if not mannequin and rng.random() < 0.12:
        style.hat = sample_named_colour(rng, str(rng.choice(COLOUR_NAMES)))
    if not mannequin and rng.random() < 0.15:
        style.bag = sample_named_colour(
            rng, str(rng.choice(["black", "brown", "red", "white", "blue", "gray"]))
        )
    if mannequin:
        tone = sample_named_colour(rng, str(rng.choice(["white", "gray", "brown", "black"])))
        for name in ("skin", "hair", "top", "top_accent", "bottom", "shoes"):
            setattr(style, name, tone.copy())
        style.hair_style = "shaved"
        style.top_pattern = "solid"
        style.facing_front = False
    return style


def sample_pose(rng: np.random.Generator) -> Pose:
    """Random standing / walking / gesturing pose."""
    mode = rng.choice(["stand", "walk", "wave", "hips", "cross"], p=[0.35, 0.25, 0.15, 0.15, 0.1])
    sh = [rng.uniform(4, 35), rng.uniform(4, 35)]
    el = [rng.uniform(0, 40), rng.uniform(0, 40)]
    hip = [rng.uniform(-2, 10), rng.uniform(-2, 10)]
    knee = [rng.uniform(0, 8), rng.uniform(0, 8)]
    if mode == "walk":
        hip = [rng.uniform(10, 22), rng.uniform(10, 22)]
        knee = [rng.uniform(0, 20), rng.uniform(0, 20)]
        sh = [rng.uniform(10, 40), rng.uniform(10, 40)]
    elif mode == "wave":
        k = int(rng.integers(0, 2))
        sh[k] = rng.uniform(90, 160)
        el[k] = rng.uniform(-60, 40)
    elif mode == "hips":
        for k in range(2):
            if rng.random() < 0.8:
                sh[k] = rng.uniform(35, 55)
                el[k] = rng.uniform(90, 120)
    elif mode == "cross":
        sh = [rng.uniform(10, 25), rng.uniform(10, 25)]
        el = [rng.uniform(90, 120), rng.uniform(90, 120)]
    return Pose(
        lean=rng.normal(0, 4),
        head_tilt=rng.normal(0, 7),
        shoulder=(sh[0], sh[1]),
        elbow=(el[0], el[1]),
        hip=(hip[0], hip[1]),
        knee=(knee[0], knee[1]),
        width=rng.uniform(0.82, 1.2),
        child=bool(rng.random() < 0.12),
        arms_in_front=(bool(rng.random() < 0.85), bool(rng.random() < 0.85)),
    )


# ---------------------------------------------------------------------------------------
# Signed distance fields on a box grid. gx: [1, w], gy: [h, 1] pixel-centre coordinates.


def _capsule(gx, gy, p0, p1, r0, r1):
    """Tapered capsule p0 (radius r0) -> p1 (r1): (sdf, t along the axis, signed lateral / radius)."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    l2 = dx * dx + dy * dy + 1e-9
    px, py = gx - p0[0], gy - p0[1]
    t = np.clip((px * dx + py * dy) / l2, 0.0, 1.0)
    qx, qy = px - t * dx, py - t * dy
    r = r0 + t * (r1 - r0)
    lateral = (dx * py - dy * px) / math.sqrt(l2)
    return np.sqrt(qx * qx + qy * qy) - r, t, np.clip(lateral / r, -1.0, 1.0)


def _ellipse(gx, gy, c, a, b, angle=0.0):
    """Ellipse centred at c with semi-axes a (along ``angle`` radians) and b: (sdf, u/a, v/b)."""
    ca, sa = math.cos(angle), math.sin(angle)
    x, y = gx - c[0], gy - c[1]
    u = (x * ca + y * sa) / a
    v = (-x * sa + y * ca) / b
    k = np.sqrt(u * u + v * v)
    g = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    d = np.where(k > 0.3, (k - 1.0) * k / np.maximum(g, 1e-6), (k - 1.0) * min(a, b))
    return d, u, v


def _polygon(gx, gy, pts):
    """Convex polygon (vertices [n, 2] in order): sdf as the max of the edges' half-plane distances."""
    pts = np.asarray(pts, np.float64)
    area = 0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    sign = 1.0 if area > 0 else -1.0
    d = None
    for i in range(len(pts)):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % len(pts)]
        ex, ey = x1 - x0, y1 - y0
        n = math.hypot(ex, ey) + 1e-9
        # outward normal of a counter-clockwise (in y-down coordinates: clockwise) polygon
        nx, ny = sign * ey / n, -sign * ex / n
        di = (gx - x0) * nx + (gy - y0) * ny
        d = di if d is None else np.maximum(d, di)
    return d


def _cover(sdf: np.ndarray, soft: float) -> np.ndarray:
    """Anti-aliased coverage of the inside (sdf < 0) with a ramp ``soft`` pixels wide."""
    return np.clip(0.5 - sdf / soft, 0.0, 1.0).astype(np.float32)


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _limb_dir(side: int, deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([side * math.sin(a), math.cos(a)])


class _Canvas:
    """Premultiplied layer being painted back to front (alpha, colour, upper-garment alpha)."""

    def __init__(self, y0: int, x0: int, h: int, w: int):
        self.y0, self.x0, self.h, self.w = y0, x0, h, w
        self.alpha = np.zeros((h, w), np.float32)
        self.premult = np.zeros((h, w, 3), np.float32)
        self.top = np.zeros((h, w), np.float32)

    def grid(self, box):
        """Local slices and coordinate grids for a canvas-space box (x0, y0, x1, y1), or None."""
        bx0 = max(math.floor(box[0]) - self.x0, 0)
        by0 = max(math.floor(box[1]) - self.y0, 0)
        bx1 = min(math.ceil(box[2]) - self.x0 + 1, self.w)
        by1 = min(math.ceil(box[3]) - self.y0 + 1, self.h)
        if bx1 <= bx0 or by1 <= by0:
            return None
        gx = (np.arange(bx0, bx1, dtype=np.float32) + self.x0)[None, :]
        gy = (np.arange(by0, by1, dtype=np.float32) + self.y0)[:, None]
        return (slice(by0, by1), slice(bx0, bx1)), gx, gy

    def paint(self, sl, cover: np.ndarray, colour: np.ndarray, is_top: bool = False) -> None:
        """Composite ``cover`` ([h, w]) of ``colour`` ([3] or [h, w, 3]) over what is painted."""
        c = cover[..., None]
        self.premult[sl] = c * colour + (1.0 - c) * self.premult[sl]
        self.alpha[sl] = cover + (1.0 - cover) * self.alpha[sl]
        self.top[sl] = (cover if is_top else 0.0) + (1.0 - cover) * self.top[sl]


def _shade(lateral: np.ndarray, light: float, amount: float = 0.28) -> np.ndarray:
    """Cylinder-like shading factor from the signed lateral coordinate in [-1, 1]."""
    return (1.0 - amount * lateral * lateral + 0.12 * light * lateral).astype(np.float32)


def render_person(
    rng: np.random.Generator,
    canvas_hw: tuple[int, int],
    pelvis_xy: tuple[float, float],
    height_px: float,
    style: PersonStyle,
    pose: Pose,
    strands: bool = True,
) -> PersonLayer | None:
    """Draw one person whose pelvis is at ``pelvis_xy`` (canvas px) and who is ``height_px`` tall.

    Parts outside the canvas (``canvas_hw`` = (H, W)) are cut off, which gives the partial,
    out-of-frame crops of real photos. Returns None when nothing of the person is inside.
    """
    H, W = canvas_hw
    s = float(height_px)
    soft = float(rng.uniform(0.8, 1.6))
    light = float(rng.uniform(-1, 1))
    head_scale = 1.3 if pose.child else 1.0
    wf = pose.width
    o = np.asarray(pelvis_xy, np.float64)

    def P(v) -> np.ndarray:  # local (units of H) -> canvas px
        return o + s * _rot(np.asarray(v, np.float64), pose.lean)

    torso_len = 0.29 if not pose.child else 0.26
    neck = np.array([0.0, -torso_len])
    sw, ww, hw = 0.115 * wf, 0.085 * wf, 0.092 * wf
    shoulders = [neck + np.array([-sw * 0.93, 0.04]), neck + np.array([sw * 0.93, 0.04])]
    hips = [np.array([-hw * 0.62, 0.0]), np.array([hw * 0.62, 0.0])]
    head_ry = 0.064 * head_scale
    head_rx = 0.05 * head_scale * (1.0 if style.facing_front else 1.05)
    head_c = neck + _rot(np.array([0.0, -(0.022 + head_ry)]), pose.head_tilt)
    lscale = 0.8 if pose.child else 1.0

    arms, legs = [], []
    for k, side in enumerate((-1, 1)):
        sh = shoulders[k] + np.array([-side * 0.01, 0.005])
        elbow = sh + 0.17 * lscale * _limb_dir(side, pose.shoulder[k])
        wrist = elbow + 0.145 * lscale * _limb_dir(side, pose.shoulder[k] - pose.elbow[k])
        hand = wrist + 0.045 * lscale * _limb_dir(side, pose.shoulder[k] - pose.elbow[k])
        arms.append((sh, elbow, wrist, hand))
        hp = hips[k]
        knee = hp + 0.245 * lscale * _limb_dir(side, pose.hip[k])
        ankle = knee + 0.235 * lscale * _limb_dir(side, pose.hip[k] - pose.knee[k])
        legs.append((hp, knee, ankle))

    # Layer box: everything that can be painted, plus room for hair strands and later blur.
    local_pts = [head_c + np.array([0, -head_ry * 1.6]), neck] + [p for a in arms for p in a]
    local_pts += [p for leg in legs for p in leg]
    pts = np.array([P(p) for p in local_pts])
    margin = 0.16 * s * head_scale + 6
    x0 = int(max(math.floor(pts[:, 0].min() - margin), 0))
    y0 = int(max(math.floor(pts[:, 1].min() - margin), 0))
    x1 = int(min(math.ceil(pts[:, 0].max() + margin), W))
    y1 = int(min(math.ceil(pts[:, 1].max() + margin), H))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    cv = _Canvas(y0, x0, y1 - y0, x1 - x0)
    cloth_noise = 0.88 + 0.24 * value_noise(rng, cv.h, cv.w, max(4.0, 0.04 * s))

    def box_of(points, pad):
        arr = np.array(points)
        return (arr[:, 0].min() - pad, arr[:, 1].min() - pad, arr[:, 0].max() + pad, arr[:, 1].max() + pad)

    def garment_colour(sl, gx, gy, base, pattern, accent, shade):
        col = base[None, None, :] * shade[..., None]
        if pattern in ("hstripes", "vstripes", "plaid"):
            period = max(3.0, s * rng.uniform(0.02, 0.045))
            # Stripes follow the body: rotate the coordinates by the lean.
            a = math.radians(pose.lean)
            u = gx * math.cos(a) + gy * math.sin(a)
            v = -gx * math.sin(a) + gy * math.cos(a)
            coord = v if pattern == "hstripes" else u
            band = (np.sin(coord * (2 * math.pi / period)) > 0.35).astype(np.float32)
            if pattern == "plaid":
                band = np.maximum(band, (np.sin(u * (2 * math.pi / period)) > 0.6).astype(np.float32) * 0.7)
            band = np.broadcast_to(band, shade.shape)
            col = col * (1 - band[..., None]) + (accent[None, None, :] * shade[..., None]) * band[..., None]
        elif pattern == "mottled":
            col = col * (0.85 + 0.3 * value_noise(rng, shade.shape[0], shade.shape[1], 3.0))[..., None]
        return np.clip(col * cloth_noise[sl][..., None], 0, 1)

    def paint_limb(p0, p1, r0, r1, colour, is_top=False, pattern=None):
        a, b = P(p0), P(p1)
        g = cv.grid(box_of([a, b], max(r0, r1) * s + 2))
        if g is None:
            return
        sl, gx, gy = g
        d, _, lat = _capsule(gx, gy, a, b, r0 * s, r1 * s)
        cover = _cover(d, soft)
        shade = _shade(lat, light)
        if pattern is not None:
            col = garment_colour(sl, gx, gy, colour, pattern, style.top_accent, shade)
        else:
            col = np.clip(colour[None, None, :] * shade[..., None] * cloth_noise[sl][..., None], 0, 1)
        cv.paint(sl, cover, col, is_top)

    def paint_arm(k):
        sh, elbow, wrist, hand = arms[k]
        sleeve_top = style.sleeves in ("short", "long")
        upper_col = style.top if sleeve_top else style.skin
        paint_limb(
            sh, elbow, 0.036 * wf, 0.027, upper_col, sleeve_top, style.top_pattern if sleeve_top else None
        )
        if style.sleeves == "short":
            mid = sh + 0.55 * (elbow - sh)
            paint_limb(mid, elbow, 0.028, 0.026, style.skin)
        lower_top = style.sleeves == "long"
        paint_limb(
            elbow,
            wrist,
            0.027,
            0.02,
            style.top if lower_top else style.skin,
            lower_top,
            style.top_pattern if lower_top else None,
        )
        paint_limb(wrist, hand, 0.022, 0.017, style.skin)

    def paint_leg(k):
        hp, knee, ankle = legs[k]
        trousers = style.bottom_kind == "trousers"
        paint_limb(hp, knee, 0.056 * wf, 0.04, style.bottom if style.bottom_kind != "skirt" else style.skin)
        if style.bottom_kind == "shorts":
            paint_limb(hp + 0.55 * (knee - hp), knee, 0.045 * wf, 0.038, style.skin)
        paint_limb(knee, ankle, 0.04, 0.027, style.bottom if trousers else style.skin)
        side = -1 if k == 0 else 1
        toe = ankle + np.array([side * 0.035, 0.025])
        paint_limb(ankle + np.array([0, 0.01]), toe, 0.024, 0.02, style.shoes)

    back_hair = style.hair_style == "long" or not style.facing_front
    long_len = float(rng.uniform(0.12, 0.3)) if style.hair_style == "long" else 0.06
    hair_top_c = head_c + _rot(np.array([0.0, -0.12 * head_ry]), pose.head_tilt)
    hair_a = head_rx * (1.12 if style.hair_style != "curly" else 1.4)
    hair_b = head_ry * (1.0 if style.hair_style != "curly" else 1.22)
    if style.hair_style == "shaved":
        hair_a, hair_b = head_rx * 1.02, head_ry * 0.97

    # --- back to front -----------------------------------------------------------------
    if back_hair and style.hair_style == "long":
        a, b = P(head_c), P(head_c + np.array([0.0, long_len]))
        g = cv.grid(box_of([a, b], hair_a * 1.4 * s + 2))
        if g is not None:
            sl, gx, gy = g
            d, _, lat = _capsule(gx, gy, a, b, hair_a * 1.1 * s, hair_a * 1.25 * s)
            cv.paint(
                sl, _cover(d, soft * 1.5), style.hair[None, None, :] * _shade(lat, light, 0.4)[..., None]
            )
    for k in range(2):
        if not pose.arms_in_front[k]:
            paint_arm(k)
    for k in range(2):
        paint_leg(k)

    # Pelvis (garment of the bottom) and, for skirts, the skirt trapezoid.
    pel = [P(hips[0] * 0.8), P(hips[1] * 0.8)]
    g = cv.grid(box_of(pel, 0.06 * s + 2))
    if g is not None:
        sl, gx, gy = g
        d, _, lat = _capsule(gx, gy, pel[0], pel[1], 0.05 * wf * s, 0.05 * wf * s)
        cv.paint(sl, _cover(d, soft), np.clip(style.bottom * _shade(lat, light)[..., None], 0, 1))
    if style.bottom_kind == "skirt":
        kn = [legs[0][1], legs[1][1]]
        quad = [
            P(np.array([-hw, -0.03])),
            P(np.array([hw, -0.03])),
            P(kn[1] + np.array([0.05 * wf, 0.0])),
            P(kn[0] + np.array([-0.05 * wf, 0.0])),
        ]
        g = cv.grid(box_of(quad, 2))
        if g is not None:
            sl, gx, gy = g
            d = _polygon(gx, gy, quad)
            cv.paint(sl, _cover(d, soft), np.clip(style.bottom * cloth_noise[sl][..., None], 0, 1))

    # Torso: upper trapezoid (shoulders -> waist) united with lower one (waist -> hips).
    # The two pieces overlap (each runs 0.03 H past the waist along its own taper), so that
    # their union has no seam of partial coverage.
    nw = 0.055 * wf
    w_up = ww - (sw - ww) * (0.03 / 0.16)
    w_lo = ww - (hw - ww) * (0.03 / 0.12)
    upper = [
        P(neck + np.array([-nw, -0.002])),
        P(neck + np.array([nw, -0.002])),
        P(neck + np.array([sw, 0.035])),
        P(np.array([w_up, -0.07])),
        P(np.array([-w_up, -0.07])),
        P(neck + np.array([-sw, 0.035])),
    ]
    lower = [
        P(np.array([-w_lo, -0.13])),
        P(np.array([w_lo, -0.13])),
        P(np.array([hw, 0.02])),
        P(np.array([-hw, 0.02])),
    ]
    g = cv.grid(box_of(upper + lower, 3))
    if g is not None:
        sl, gx, gy = g
        d = np.minimum(_polygon(gx, gy, upper), _polygon(gx, gy, lower))
        # Round the shoulders with a capsule across them.
        dsh, _, _ = _capsule(gx, gy, P(shoulders[0]), P(shoulders[1]), 0.034 * wf * s, 0.034 * wf * s)
        d = np.minimum(d, dsh)
        cx = P(np.array([0.0, -0.12]))
        half = 0.11 * wf * s
        lat = np.clip(((gx - cx[0]) * math.cos(math.radians(pose.lean))) / half, -1, 1)
        lat = np.broadcast_to(lat, d.shape)
        col = garment_colour(sl, gx, gy, style.top, style.top_pattern, style.top_accent, _shade(lat, light))
        cv.paint(sl, _cover(d, soft), col, True)

    # Neck.
    a, b = P(neck + np.array([0, 0.02])), P(head_c)
    g = cv.grid(box_of([a, b], 0.04 * s + 2))
    if g is not None:
        sl, gx, gy = g
        d, _, lat = _capsule(gx, gy, a, b, 0.027 * s, 0.025 * s)
        cv.paint(sl, _cover(d, soft), np.clip(style.skin * 0.9 * _shade(lat, light)[..., None], 0, 1))
    for k in range(2):
        if pose.arms_in_front[k]:
            paint_arm(k)
    if style.bag is not None:
        _paint_bag(rng, cv, P, arms[int(rng.integers(2))][3], s, soft, light, style.bag)

    # Head, face, hair.
    hc = P(head_c)
    tilt = math.radians(pose.head_tilt + pose.lean)
    g = cv.grid(box_of([hc], head_ry * s * 1.2 + 2))
    if g is not None:
        sl, gx, gy = g
        d, u, v = _ellipse(gx, gy, hc, head_rx * s, head_ry * s, tilt)
        shade = (1.0 - 0.22 * u * u + 0.1 * light * u).astype(np.float32)
        cv.paint(sl, _cover(d, soft), np.clip(style.skin * shade[..., None], 0, 1))
        if style.facing_front and not style.mannequin:
            eye_col = np.array([0.08, 0.06, 0.05], np.float32)
            for side in (-1, 1):
                ec = hc + s * _rot(
                    np.array([side * 0.38 * head_rx, 0.02 * head_ry]), pose.head_tilt + pose.lean
                )
                de, _, _ = _ellipse(gx, gy, ec, 0.11 * head_rx * s, 0.06 * head_ry * s, tilt)
                cv.paint(sl, _cover(de, 0.8) * 0.85, eye_col)
            mc = hc + s * _rot(np.array([0.0, 0.5 * head_ry]), pose.head_tilt + pose.lean)
            dm, _, _ = _ellipse(gx, gy, mc, 0.28 * head_rx * s, 0.05 * head_ry * s, tilt)
            cv.paint(sl, _cover(dm, 0.8) * 0.6, np.clip(style.skin * np.array([0.7, 0.45, 0.45]), 0, 1))

    hcc = P(hair_top_c)
    if style.hair_style != "shaved" or not style.mannequin:
        g = cv.grid(box_of([hcc], hair_b * s * 1.3 + 3))
        if g is not None:
            sl, gx, gy = g
            d, u, v = _ellipse(gx, gy, hcc, hair_a * s, hair_b * s, tilt)
            if style.facing_front:
                face_c = hc + s * _rot(np.array([0.0, 0.28 * head_ry]), pose.head_tilt + pose.lean)
                fringe = 0.8 if style.hair_style != "shaved" else 0.92
                df, _, _ = _ellipse(gx, gy, face_c, head_rx * fringe * s, head_ry * 0.86 * s, tilt)
                d = np.maximum(d, -df)
            if style.hair_style == "curly":
                d = d + (value_noise(rng, d.shape[0], d.shape[1], max(2.0, 0.012 * s)) - 0.5) * 0.05 * s
            shade = (1.0 - 0.3 * u * u - 0.15 * np.clip(v, -1, 1)).astype(np.float32)
            hair_cover = _cover(d, soft * (1.6 if style.hair_style != "shaved" else 1.0))
            if style.hair_style == "shaved":
                hair_cover *= 0.85
            cv.paint(sl, hair_cover, np.clip(style.hair * shade[..., None], 0, 1))
        if style.hair_style == "bun":
            bc = hcc + s * _rot(np.array([0.0, -0.95 * hair_b]), pose.head_tilt + pose.lean)
            g = cv.grid(box_of([bc], 0.04 * s + 2))
            if g is not None:
                sl, gx, gy = g
                d, u, _ = _ellipse(gx, gy, bc, 0.032 * s, 0.028 * s)
                cv.paint(sl, _cover(d, soft * 1.4), np.clip(style.hair * (1 - 0.3 * u * u)[..., None], 0, 1))

    if strands and not style.mannequin and style.hair_style != "shaved":
        _draw_strands(rng, cv, hcc, hair_a * s, hair_b * s, tilt, style, long_len * s if back_hair else 0.0)
    if style.hat is not None:
        _paint_hat(rng, cv, hcc, hair_a * s, hair_b * s, tilt, soft, light, style.hat)

    feet = None
    fy = max(P(legs[0][2])[1], P(legs[1][2])[1]) + 0.03 * s
    if fy < H:
        feet = (float((P(legs[0][2])[0] + P(legs[1][2])[0]) / 2), float(fy))
    return PersonLayer(
        y0=y0,
        x0=x0,
        alpha=cv.alpha,
        premult=cv.premult,
        top=cv.top,
        feet=feet,
        head=(float(hc[0]), float(hc[1])),
        height=s,
    )


def _paint_hat(
    rng: np.random.Generator,
    cv: _Canvas,
    centre: np.ndarray,
    a: float,
    b: float,
    tilt: float,
    soft: float,
    light: float,
    colour: np.ndarray,
) -> None:
    """A brimmed hat or a beanie on the hair cap (centre, semi-axes a, b in px)."""
    ca, sa = math.cos(tilt), math.sin(tilt)
    up = np.array([sa, -ca])
    brim = rng.random() < 0.6
    crown_c = centre + up * (0.45 * b)
    g = cv.grid((centre[0] - 2 * a, centre[1] - 2 * b, centre[0] + 2 * a, centre[1] + b))
    if g is None:
        return
    sl, gx, gy = g
    d, u, _ = _ellipse(gx, gy, crown_c, a * (0.95 if brim else 1.05), b * (0.6 if brim else 0.75), tilt)
    if not brim:  # a beanie: the crown cut at the brow line
        d = np.maximum(d, -((gx - centre[0]) * up[0] + (gy - centre[1]) * up[1]))
    shade = (1.0 - 0.25 * u * u + 0.1 * light * u).astype(np.float32)
    cv.paint(sl, _cover(d, soft), np.clip(colour * shade[..., None], 0, 1))
    if brim:
        db, ub, _ = _ellipse(gx, gy, centre + up * (0.05 * b), a * rng.uniform(1.4, 1.9), b * 0.16, tilt)
        cv.paint(sl, _cover(db, soft), np.clip(colour * 0.85 * (1 - 0.2 * ub * ub)[..., None], 0, 1))


def _paint_bag(
    rng: np.random.Generator,
    cv: _Canvas,
    to_canvas,
    hand: np.ndarray,
    s: float,
    soft: float,
    light: float,
    colour: np.ndarray,
) -> None:
    """A handbag hanging from ``hand`` (local coordinates) on a thin strap; part of the person."""
    bw, bh = rng.uniform(0.04, 0.06), rng.uniform(0.035, 0.05)
    strap = rng.uniform(0.02, 0.06)
    top = hand + np.array([0.0, strap])
    quad = [
        to_canvas(top + np.array([-bw * 0.8, 0.0])),
        to_canvas(top + np.array([bw * 0.8, 0.0])),
        to_canvas(top + np.array([bw, 2 * bh])),
        to_canvas(top + np.array([-bw, 2 * bh])),
    ]
    arr = np.array(quad)
    g = cv.grid((arr[:, 0].min() - 3, arr[:, 1].min() - 3, arr[:, 0].max() + 3, arr[:, 1].max() + 3))
    if g is not None:
        sl, gx, gy = g
        d = _polygon(gx, gy, quad)
        lat = np.broadcast_to(np.clip((gx - arr[:, 0].mean()) / (bw * s), -1, 1), d.shape)
        cv.paint(sl, _cover(d, soft), np.clip(colour * _shade(lat, light, 0.2)[..., None], 0, 1))
    # The strap: a capsule thinner than a pixel on small people, so its alpha is fractional.
    h0, t0, t1 = (
        to_canvas(hand),
        to_canvas(top + np.array([-bw * 0.5, 0.0])),
        to_canvas(top + np.array([bw * 0.5, 0.0])),
    )
    g = cv.grid((min(h0[0], t0[0], t1[0]) - 3, h0[1] - 3, max(h0[0], t0[0], t1[0]) + 3, t0[1] + 3))
    if g is not None:
        sl, gx, gy = g
        r = max(0.003 * s, 0.35)
        d = np.minimum(_capsule(gx, gy, h0, t0, r, r)[0], _capsule(gx, gy, h0, t1, r, r)[0])
        cv.paint(sl, _cover(d, 1.0), np.clip(colour * 0.8, 0, 1))


def _draw_strands(
    rng: np.random.Generator,
    cv: _Canvas,
    centre: np.ndarray,
    a: float,
    b: float,
    tilt: float,
    style: PersonStyle,
    long_px: float,
) -> None:
    """Thin curved hair strands (quadratic Béziers) around the hair outline, drawn at 3x with
    anti-aliasing and averaged down, so each strand has fractional alpha."""
    ss = 3
    reach = max(a, b) * (1.6 if style.hair_style == "curly" else 1.0) + long_px
    box = (
        centre[0] - a - reach,
        centre[1] - b - reach * 0.6,
        centre[0] + a + reach,
        centre[1] + b + reach + long_px,
    )
    g = cv.grid(box)
    if g is None:
        return
    sl, gx, gy = g
    bx0, by0 = float(gx[0, 0]), float(gy[0, 0])
    h, w = gy.shape[0], gx.shape[1]
    perimeter = math.pi * (a + b)
    n = int(np.clip(perimeter * rng.uniform(0.8, 1.8), 25, 500))
    if style.hair_style == "curly":
        n = int(n * 1.5)
    face_front = style.facing_front
    # Roots on the upper part of the outline (and the sides for long hair); none on the face.
    lo, hi = (-math.pi * 1.08, math.pi * 0.08) if face_front else (-math.pi * 1.2, math.pi * 0.2)
    phi = rng.uniform(lo, hi, n)
    ca, sa = math.cos(tilt), math.sin(tilt)
    ex, ey = a * np.cos(phi), b * np.sin(phi)
    rx = centre[0] + (ex * ca - ey * sa) * rng.uniform(0.82, 1.0, n)
    ry = centre[1] + (ex * sa + ey * ca) * rng.uniform(0.82, 1.0, n)
    nx, ny = np.cos(phi) / a, np.sin(phi) / b
    nn = np.sqrt(nx * nx + ny * ny)
    nx, ny = (nx * ca - ny * sa) / nn, (nx * sa + ny * ca) / nn
    # Strands flow along the outline (down and away from the crown), slightly outwards;
    # a few fly away.
    tx, ty = -ny, nx
    flip = ty < 0
    tx, ty = np.where(flip, -tx, tx), np.where(flip, -ty, ty)
    crown = np.abs(np.cos(phi)) < 0.25
    tx = np.where(crown, np.sign(np.cos(phi) + 1e-6) * np.abs(tx), tx)
    out = rng.uniform(0.05, 0.45, n)
    fly = rng.random(n) < 0.06
    out = np.where(fly, rng.uniform(0.8, 2.0, n), out)
    gravity = {"long": 0.6, "curly": 0.0}.get(style.hair_style, 0.15)
    dx = tx + nx * out + rng.normal(0, 0.15, n)
    dy = ty + ny * out + gravity + rng.normal(0, 0.15, n)
    if style.hair_style == "curly":
        dx, dy = nx + rng.normal(0, 0.5, n), ny + rng.normal(0, 0.5, n)
    dn = np.sqrt(dx * dx + dy * dy) + 1e-6
    dx, dy = dx / dn, dy / dn
    length = max(a, b) * rng.uniform(0.1, 0.5, n) * np.where(fly, 1.6, 1.0)
    if long_px > 0:
        side = np.abs(np.cos(phi)) > 0.55
        length = np.where(side, length + long_px * rng.uniform(0.3, 1.0, n), length)
    if style.hair_style == "curly":
        length *= 0.7
    # Bend sideways, mostly outwards, so that long strands do not sweep across the face.
    bend = rng.normal(0.0, 0.12, n) * length
    bend += 0.12 * length * np.sign(-dy * nx + dx * ny)
    if style.hair_style == "curly":
        bend = rng.normal(0, 0.9, n) * length
    t = np.linspace(0.0, 1.0, 7)[None, :]
    mx = rx + dx * length * 0.5 - dy * bend
    my = ry + dy * length * 0.5 + dx * bend
    ex2, ey2 = rx + dx * length, ry + dy * length
    px = (1 - t) ** 2 * rx[:, None] + 2 * (1 - t) * t * mx[:, None] + t**2 * ex2[:, None]
    py = (1 - t) ** 2 * ry[:, None] + 2 * (1 - t) * t * my[:, None] + t**2 * ey2[:, None]
    shift = 3
    scale = ss * (1 << shift)
    curves = np.stack(
        [(px - bx0 + 0.5) * scale - 0.5 * (1 << shift), (py - by0 + 0.5) * scale - 0.5 * (1 << shift)], -1
    )
    curves = np.round(curves).astype(np.int32)
    big = np.zeros((h * ss, w * ss), np.uint8)
    thin = rng.random(n) < 0.7
    cv2.polylines(big, list(curves[thin]), False, 255, 1, cv2.LINE_AA, shift)
    cv2.polylines(big, list(curves[~thin]), False, 255, 2, cv2.LINE_AA, shift)
    cover = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    cover *= float(rng.uniform(0.75, 1.0))
    tint = np.clip(style.hair * rng.uniform(1.0, 1.25), 0, 1)
    cv.paint(sl, cover, tint)
