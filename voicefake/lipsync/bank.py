"""The clip's own mouths (Video Rewrite, Bregler et al. 1997): real open mouths instead of stretched ones.

    bank = MouthBank()
    bank.consider(frame, points, k)            # pass 1, every clear frontal frame of the input video
    choice = bank.choose(target, current)      # pass 2, per output frame: the closest real mouth (or None)
    bank.paste(patch, box, target, choice)     # over the warped frame: that mouth, fitted to the target

Each banked mouth is the lower-face region of one input frame resampled into the mouth's own frame
(origin between the corners, x along the eyes, inter-ocular units), with its lip landmarks there.
For a target mouth shape the bank picks the real mouth whose lips are closest, preferring to keep
the one it showed last (or its successor in the clip) so the mouth does not flicker between frames,
then fits it to the target: column by column, its lip contours are moved onto the target's, so only
the small remaining difference is warped. A relit, feathered paste keeps the seam invisible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from voicefake.lipsync.face import (
    LOWER_INNER,
    LOWER_OUTER,
    MOUTH_INNER,
    MOUTH_LEFT,
    MOUTH_OUTER,
    MOUTH_RIGHT,
    UPPER_INNER,
    UPPER_OUTER,
    interocular,
    mouth_frame,
    to_image,
    to_local,
)

HALF_WIDTH = 0.75  # the banked region, inter-ocular units: x in [-0.75, 0.75] ...
TOP, BOTTOM = -0.45, 0.75  # ... and y from under the nose to the chin
MAX_PX_PER_UNIT = 160  # detail kept: faces larger than this (pixels per inter-ocular distance) are banked smaller
MAX_MOUTHS = 240  # banked mouths at most (a 15 s clip has ~375 frames; a near-duplicate shape is skipped)
SAME_SHAPE = 0.012  # mean lip-landmark distance (units) under which a new mouth adds nothing
SWITCH_COST = 0.02  # how much worse a fit must be kept for, rather than cutting to another mouth
PAINT_COST = 2.0  # the frame's own mouth, opened wider than it was, counts this much worse than its shape says
MIN_SHOWN_OPENING = 0.03  # a target opening (units) under this is left to the warp: a closed mouth is the frame's own
LIP_POINTS = MOUTH_OUTER + MOUTH_INNER
FEATHER = 0.035  # units: the blend ramps over this band outside the outer lips


@dataclass
class BankedMouth:
    lips: np.ndarray  # (20, 2) lip landmarks, mouth-frame units
    patch: np.ndarray  # (H, W, 3) uint8: the region resampled on the bank's grid
    frame: int  # the input frame it came from


class MouthBank:
    """Real mouths of one input video, indexed by lip shape."""

    def __init__(self):
        self.mouths: list[BankedMouth] = []
        self.px_per_unit = 0.0
        self.last: int | None = None  # index of the mouth shown in the previous output frame

    def __len__(self) -> int:
        return len(self.mouths)

    def _grid(self) -> np.ndarray:
        w = int(round(2 * HALF_WIDTH * self.px_per_unit))
        h = int(round((BOTTOM - TOP) * self.px_per_unit))
        xs = np.linspace(-HALF_WIDTH, HALF_WIDTH, w, dtype=np.float32)
        ys = np.linspace(TOP, BOTTOM, h, dtype=np.float32)
        return np.stack(np.meshgrid(xs, ys), axis=-1)

    def consider(self, frame: np.ndarray, points: np.ndarray, index: int) -> None:
        """Bank this frame's mouth unless a banked one already has its shape (or the bank is full)."""
        if len(self.mouths) >= MAX_MOUTHS:
            return
        geo = mouth_frame(points)
        lips = to_local(points[LIP_POINTS], geo).astype(np.float32)
        if self.mouths and min(np.abs(m.lips - lips).mean() for m in self.mouths) < SAME_SHAPE:
            return
        if not self.px_per_unit:
            self.px_per_unit = float(min(MAX_PX_PER_UNIT, interocular(points)))
        img = to_image(self._grid(), geo)
        patch = cv2.remap(frame, img[..., 0], img[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self.mouths.append(BankedMouth(lips, patch, index))

    def choose(self, target: np.ndarray, current: np.ndarray) -> int | None:
        """Index of the banked mouth to show for `target` landmarks (image coordinates) over a frame
        whose own landmarks are `current`; None: the warped frame's own mouth is the better fit."""
        if not self.mouths:
            return None
        geo = mouth_frame(target)
        want = to_local(target[LIP_POINTS], geo)
        if _gap(want) < MIN_SHOWN_OPENING:
            self.last = None
            return None
        # the candidates: every banked mouth, then the frame's own (warped); a change of mouth costs.
        # Opening the frame's own mouth further means painting an inside it never showed: dearer.
        have = to_local(current[LIP_POINTS], mouth_frame(current))
        own = np.abs(have - want).mean() * (PAINT_COST if _gap(want) > _gap(have) + SAME_SHAPE else 1.0)
        cost = np.array([*(np.abs(m.lips - want).mean() for m in self.mouths), own])
        kept = np.zeros(len(cost), bool)
        if self.last is None:
            kept[-1] = True
        else:
            kept[self.last] = True
            kept[[k for k, m in enumerate(self.mouths) if m.frame == self.mouths[self.last].frame + 1]] = True
        best = int(np.argmin(cost + SWITCH_COST * ~kept))
        self.last = None if best == len(self.mouths) else best
        return self.last

    def paste(self, patch: np.ndarray, box: tuple[int, int, int, int], target: np.ndarray, choice: int) -> None:
        """Draw banked mouth `choice`, fitted to the `target` landmarks, into `patch` (the warped
        region at `box`), relit to it and feathered beyond the outer lips."""
        mouth = self.mouths[choice]
        geo = mouth_frame(target)
        want = to_local(target[LIP_POINTS], geo)
        region = _outer_box(target, box, geo)
        if region is None:
            return
        x0, y0, x1, y1 = region
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        q = to_local(np.stack([xs, ys], axis=-1), geo)
        source = _fit(q, want, mouth.lips)
        u = (source[..., 0] + HALF_WIDTH) / (2 * HALF_WIDTH) * (mouth.patch.shape[1] - 1)
        v = (source[..., 1] - TOP) / (BOTTOM - TOP) * (mouth.patch.shape[0] - 1)
        drawn = cv2.remap(mouth.patch, u, v, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        alpha = _alpha(q, want)
        bx0, by0 = box[:2]
        under = patch[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
        drawn *= _relight(drawn, under.astype(np.float32), alpha)
        a = alpha[..., None]
        under[:] = np.clip(under * (1 - a) + drawn * a + 0.5, 0, 255).astype(patch.dtype)


def _gap(lips_local: np.ndarray) -> float:
    """The widest parting of the inner lips (units), from the 20 lip points in LIP_POINTS order."""
    inner = lips_local[len(MOUTH_OUTER) :]
    upper, lower = inner[[1, 2, 3]], inner[[7, 6, 5]]
    return float(np.max(lower[:, 1] - upper[:, 1]))


def _contours(lips: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(4, len(x)) y of the upper outer, upper inner, lower inner, lower outer lip edges at each x."""
    local = np.full((68, 2), np.nan, np.float32)
    local[LIP_POINTS] = lips
    rows = []
    for chain in (UPPER_OUTER, UPPER_INNER, LOWER_INNER, LOWER_OUTER):
        order = np.argsort(local[chain, 0], kind="stable")
        rows.append(np.interp(x, local[chain, 0][order], local[chain, 1][order]))
    return np.stack(rows)


CORNERS = [MOUTH_OUTER.index(MOUTH_LEFT), MOUTH_OUTER.index(MOUTH_RIGHT)]  # in LIP_POINTS order


def _fit(q: np.ndarray, want: np.ndarray, have: np.ndarray) -> np.ndarray:
    """Where in the banked mouth (lips `have`) each target point `q` (lips `want`) comes from.

    x: the target's corners map onto the banked mouth's, linearly, fixed at the region's sides.
    y: at each x, the four lip edges map onto the banked mouth's, linearly between them, fixed at
    the top and bottom of the region: a mouth opened a little wider is stretched there, not everywhere.
    """
    knots_in = np.array([-HALF_WIDTH, want[CORNERS[0], 0], want[CORNERS[1], 0], HALF_WIDTH])
    knots_out = np.array([-HALF_WIDTH, have[CORNERS[0], 0], have[CORNERS[1], 0], HALF_WIDTH])
    flat = q.reshape(-1, 2)
    x_src = np.interp(flat[:, 0], knots_in, knots_out)
    top, bottom = np.full((1, len(flat)), TOP), np.full((1, len(flat)), BOTTOM)
    knots_w = np.concatenate([top, _edges(want, flat[:, 0]), bottom])
    knots_h = np.concatenate([top, _edges(have, x_src), bottom])
    y, y_src = flat[:, 1], flat[:, 1].copy()
    for k in range(len(knots_w) - 1):
        lo, hi = knots_w[k], knots_w[k + 1]
        t = (y - lo) / np.maximum(hi - lo, 1e-4)
        y_src = np.where((y >= lo) & (y <= hi), knots_h[k] + t * (knots_h[k + 1] - knots_h[k]), y_src)
    return np.stack([x_src, y_src], axis=-1).reshape(q.shape).astype(np.float32)


def _edges(lips: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The four lip edges at each x, kept in order and inside the banked region."""
    edges = np.clip(_contours(lips, x), TOP + 0.01, BOTTOM - 0.01)
    return np.maximum.accumulate(edges, axis=0)


def _alpha(q: np.ndarray, want: np.ndarray) -> np.ndarray:
    """1 inside the target's outer lips, fading to 0 over FEATHER beyond them."""
    flat = q.reshape(-1, 2)
    edges = _contours(want, flat[:, 0])
    above = np.clip((flat[:, 1] - edges[0]) / FEATHER + 1, 0, 1)
    below = np.clip((edges[3] - flat[:, 1]) / FEATHER + 1, 0, 1)
    inward = np.minimum(flat[:, 0] - want[CORNERS[0], 0], want[CORNERS[1], 0] - flat[:, 0])
    alpha = (above * below * np.clip(inward / FEATHER + 1, 0, 1)).reshape(q.shape[:2])
    return (alpha * alpha * (3 - 2 * alpha)).astype(np.float32)  # smoothstep: no visible ramp edge


def _relight(drawn: np.ndarray, under: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per-channel gain that matches the banked mouth's surroundings to this frame's (the feather band)."""
    ring = (alpha > 0.05) & (alpha < 0.95)
    if ring.sum() < 20:
        return np.ones(3, np.float32)
    gain = under[ring].mean(axis=0) / np.maximum(drawn[ring].mean(axis=0), 1.0)
    return np.clip(gain, 0.8, 1.25).astype(np.float32)


def _outer_box(target: np.ndarray, box: tuple[int, int, int, int], geo) -> tuple[int, int, int, int] | None:
    """The image box of the target's lips plus the feather band, within the warped `box`."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)
    lips = to_local(target[LIP_POINTS], geo)
    lo, hi = lips.min(axis=0) - 2 * FEATHER, lips.max(axis=0) + 2 * FEATHER
    quad = to_image((lo + hi) / 2 + corners * (hi - lo) / 2, geo)
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, box[0]), max(y0, box[1]), min(x1, box[2]), min(y1, box[3])
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None
