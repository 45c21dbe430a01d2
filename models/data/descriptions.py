"""Templated text descriptions that single out one person in a scene.

Each instance gets attributes measured from the image and its visible alpha (centroid,
area, box, dominant clothing colour, depth order when known), and a description built from
templates such as "the person on the left in red", "the second person from the right",
"the person in blue", "the largest person", "the person behind the person in white".
Descriptions are unique within a scene: the left-to-right position is unique by
construction, and colour, size and relation templates are only used when what they name is
unique in the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.colours import dominant_colour

NOUN = "person"

# Position phrase of the i-th instance from the left, for K instances.
POSITION_PHRASES: dict[int, tuple[str, ...]] = {
    1: ("",),
    2: ("on the left", "on the right"),
    3: ("on the left", "in the middle", "on the right"),
    4: ("on the far left", "second from the left", "second from the right", "on the far right"),
    5: (
        "on the far left",
        "second from the left",
        "in the middle",
        "second from the right",
        "on the far right",
    ),
}


@dataclass
class InstanceAttributes:
    """What a description may say about one instance.

    ``centroid`` (x, y) and ``box`` (x0, y0, x1, y1; x1/y1 exclusive) in pixels of the visible
    alpha; ``area`` the visible alpha's sum in pixels; ``colour`` the dominant clothing colour
    name (None when too little clothing is visible) and ``colour_rgb`` the mean RGB in [0, 1]
    of the pixels so named; ``depth`` 0 for the front-most instance (None when unknown).
    """

    centroid: tuple[float, float]
    area: float
    box: tuple[int, int, int, int]
    colour: str | None = None
    colour_rgb: tuple[float, float, float] | None = None
    depth: int | None = None


def position_phrase(rank: int, count: int) -> str:
    """Phrase for the ``rank``-th instance from the left (0-based) among ``count``."""
    if count in POSITION_PHRASES:
        return POSITION_PHRASES[count][rank]
    if rank == 0:
        return "on the far left"
    if rank == count - 1:
        return "on the far right"
    ordinals = ("second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
    if rank < count / 2:
        return f"{ordinals[rank - 1]} from the left"
    return f"{ordinals[count - 2 - rank]} from the right"


def position_noun_phrase(rank: int, count: int) -> str:
    """ "the person on the left", "the second person from the right", or "the person" for one."""
    pos = position_phrase(rank, count)
    if not pos:
        return f"the {NOUN}"
    first, _, rest = pos.partition(" ")
    if rest.startswith("from the"):
        return f"the {first} {NOUN} {rest}"
    return f"the {NOUN} {pos}"


def measure_attributes(
    image: np.ndarray,
    alphas: np.ndarray,
    garments: np.ndarray | None = None,
    depth: np.ndarray | None = None,
) -> list[InstanceAttributes]:
    """Attributes of each instance.

    ``image`` [H, W, 3] (uint8 or float in [0, 1]); ``alphas`` [K, H, W] visible alphas in [0, 1];
    ``garments`` [K, H, W] optional visible alpha of each instance's upper garment (the
    synthetic generator knows it); without it the clothing colour is measured in the band
    from 30 % to 60 % of the instance box's height, where the torso usually is.
    ``depth`` [K] optional depth order (0 = front).
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    out = []
    for k in range(alphas.shape[0]):
        a = alphas[k]
        area = float(a.sum())
        inside = a > 0.5 if (a > 0.5).any() else a > 0
        rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
        if len(rows) == 0:
            out.append(InstanceAttributes((0.0, 0.0), 0.0, (0, 0, 0, 0), depth=None))
            continue
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        total = max(area, 1e-6)
        cx = float((a.sum(axis=0) * np.arange(a.shape[1])).sum() / total)
        cy = float((a.sum(axis=1) * np.arange(a.shape[0])).sum() / total)
        centroid = (cx, cy)
        if garments is not None:
            sel = garments[k] > 0.8
            min_px = max(20, 0.03 * area)
        else:
            band = np.zeros_like(a, bool)
            h = box[3] - box[1]
            band[box[1] + int(0.3 * h) : box[1] + int(0.6 * h) + 1] = True
            sel = band & (a > 0.9)
            min_px = 20
        colour = colour_rgb = None
        if sel.sum() >= min_px:
            found = dominant_colour(img[sel])
            if found is not None:
                colour, rgb = found
                colour_rgb = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
        out.append(
            InstanceAttributes(
                centroid=centroid,
                area=area,
                box=box,
                colour=colour,
                colour_rgb=colour_rgb,
                depth=None if depth is None else int(depth[k]),
            )
        )
    return out


def _boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def describe_instances(
    attributes: list[InstanceAttributes],
    rng: np.random.Generator | None = None,
) -> list[str]:
    """One description per instance, unique within the scene.

    With ``rng`` the template is drawn at random among those that identify the instance;
    without it the most informative one is used (position and colour).
    """
    count = len(attributes)
    if count == 0:
        return []
    order = sorted(range(count), key=lambda k: (attributes[k].centroid[0], k))
    rank = {k: r for r, k in enumerate(order)}
    colours = [a.colour for a in attributes]
    unique_colour = [c is not None and colours.count(c) == 1 for c in colours]
    areas = np.array([a.area for a in attributes])
    by_area = np.argsort(-areas)
    largest = int(by_area[0]) if count >= 2 and areas[by_area[0]] >= 1.4 * areas[by_area[1]] else None
    smallest = int(by_area[-1]) if count >= 3 and areas[by_area[-2]] >= 1.4 * areas[by_area[-1]] else None

    texts: list[str] = []
    for k, att in enumerate(attributes):
        pos = position_noun_phrase(rank[k], count)
        cands: list[tuple[str, float]] = []
        if count == 1:
            cands.append((f"the {NOUN}", 0.4))
            if att.colour:
                cands.append((f"the {NOUN} in {att.colour}", 0.6))
        else:
            cands.append((pos, 0.2))
            if att.colour:
                cands.append((f"{pos} in {att.colour}", 0.35))
            if unique_colour[k]:
                cands.append((f"the {NOUN} in {att.colour}", 0.15))
                cands.append((f"the {NOUN} wearing {att.colour}", 0.05))
            if k == largest:
                cands.append((f"the largest {NOUN}", 0.05))
            if k == smallest:
                cands.append((f"the smallest {NOUN}", 0.05))
            cands.extend(_relations(k, attributes, unique_colour))
        if rng is None:
            # Position (plus colour when known): the most informative template.
            text = cands[-1][0] if count == 1 else cands[1][0] if att.colour else cands[0][0]
        else:
            weights = np.array([w for _, w in cands])
            text = cands[int(rng.choice(len(cands), p=weights / weights.sum()))][0]
        texts.append(text)
    # Safety net: templates are unique by construction, but never hand out a duplicate.
    for k in range(count):
        if texts.count(texts[k]) > 1:
            texts[k] = position_noun_phrase(rank[k], count)
    return texts


def _relations(
    k: int, attributes: list[InstanceAttributes], unique_colour: list[bool]
) -> list[tuple[str, float]]:
    """'behind' / 'in front of' / 'next to' templates that identify instance ``k``."""
    out: list[tuple[str, float]] = []
    count = len(attributes)
    me = attributes[k]
    for j, other in enumerate(attributes):
        if j == k or not unique_colour[j]:
            continue
        if count == 2:
            out.append((f"the {NOUN} next to the {NOUN} in {other.colour}", 0.07))
        if me.depth is None or other.depth is None or not _boxes_overlap(me.box, other.box):
            continue
        # Only if no third instance stands in the same relation to ``other``.
        if me.depth > other.depth:
            rivals = [
                i
                for i, a in enumerate(attributes)
                if i not in (j, k)
                and a.depth is not None
                and a.depth > other.depth
                and _boxes_overlap(a.box, other.box)
            ]
            if not rivals:
                out.append((f"the {NOUN} behind the {NOUN} in {other.colour}", 0.1))
        elif me.depth < other.depth:
            rivals = [
                i
                for i, a in enumerate(attributes)
                if i not in (j, k)
                and a.depth is not None
                and a.depth < other.depth
                and _boxes_overlap(a.box, other.box)
            ]
            if not rivals:
                out.append((f"the {NOUN} in front of the {NOUN} in {other.colour}", 0.1))
    return out
