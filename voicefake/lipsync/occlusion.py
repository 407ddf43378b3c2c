"""What is in front of the mouth: a whole frame (fingers over the mouth) or the pixels of a part of it.

    occlusion_score(frame, points)       # > this video's usual: the frame is left as it was (track.py)
    covering_mask(frame, points, box)    # per pixel: what the renderer must leave in front
    keep_in_front(frame, patch, box, points)  # the renderers' last step (mouth.py, bank.py)

Lips are horizontal structures: along a column across the mouth, brightness changes at the lip
edges and at the lip line. Something held in front (a finger, a pen, a microphone) is one surface:
the columns it covers lose that structure. Those columns seed a colour and edge segmentation
(GrabCut) of the lower face, which finds the whole occluder, above and below the lips too.
"""

from __future__ import annotations

import cv2
import numpy as np

from voicefake.lipsync.face import (
    LOWER_OUTER,
    MOUTH_LEFT,
    MOUTH_OUTER,
    MOUTH_RIGHT,
    UPPER_OUTER,
    contour,
    mouth_frame,
    to_image,
    to_local,
)

COLUMNS = 24  # columns across the mouth, corner to corner (less a tenth at each corner)
COLUMN_ROWS = 24  # samples down each column, from above the upper lip to below the lower one
COVERED = 0.4  # a column with less than this share of the mouth's usual lip-edge energy is covered
RUN = 3  # covered columns must come in runs: one alone is a crease or a shadow
CLEAR = 0.6  # a column with more than this share is surely lips
WORK_PX = 110  # the segmentation runs on the lower face scaled to about this width
GRABCUT_ROUNDS = 3


def occlusion_score(frame: np.ndarray, points: np.ndarray) -> float:
    """Across-the-mouth vs along-the-mouth edge energy around the lips.

    Lips, teeth and the lip line are horizontal structures (about 0.5-0.75 on faces we tried);
    fingers over the mouth are vertical ones (1.4-2). A hand there makes landmarks unreliable
    and the mouth must not be redrawn on top of it.
    """
    geo = mouth_frame(points)
    xs, ys = np.linspace(-0.6, 0.6, 48), np.linspace(-0.3, 0.45, 32)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).astype(np.float32)
    patch = _sample_gray(frame, to_image(grid, geo))
    gx = np.abs(cv2.Sobel(patch, cv2.CV_32F, 1, 0)).mean()
    gy = np.abs(cv2.Sobel(patch, cv2.CV_32F, 0, 1)).mean()
    return float(gx / max(gy, 1e-3))


def _sample_gray(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Brightness (float32) at image `points` (..., 2), bilinear; only the patch they span is made grey."""
    h, w = frame.shape[:2]
    x0, y0 = np.clip(np.floor(points.reshape(-1, 2).min(axis=0)).astype(int) - 1, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(points.reshape(-1, 2).max(axis=0)).astype(int) + 2, [x0 + 1, y0 + 1], [w, h])
    patch = frame[y0:y1, x0:x1]
    gray = patch if patch.ndim == 2 else cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    xs, ys = (points[..., 0] - x0).astype(np.float32), (points[..., 1] - y0).astype(np.float32)
    return cv2.remap(gray, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def lip_columns(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x of each column in mouth-frame units, its lip-edge energy as a share of the mouth's usual).

    "Usual" is the 85th percentile over the columns, so a hand over half the mouth does not set it.
    """
    geo = mouth_frame(points)
    local = to_local(points, geo)
    left, right = local[MOUTH_LEFT, 0], local[MOUTH_RIGHT, 0]
    xs = np.linspace(left + 0.1 * (right - left), right - 0.1 * (right - left), COLUMNS)
    top = np.interp(xs, *contour(local, UPPER_OUTER)) - 0.04
    bottom = np.interp(xs, *contour(local, LOWER_OUTER)) + 0.04
    ys = top + np.linspace(0.0, 1.0, COLUMN_ROWS)[:, None] * (bottom - top)
    column = _sample_gray(frame, to_image(np.stack([np.broadcast_to(xs, ys.shape), ys], axis=-1), geo))
    energy = np.abs(np.diff(column, axis=0)).sum(axis=0)
    return xs, energy / max(float(np.percentile(energy, 85)), 1e-3)


def keep_in_front(frame: np.ndarray, patch: np.ndarray, box: tuple[int, int, int, int], points: np.ndarray) -> np.ndarray:
    """A copy of `frame` with `patch` (its region `box`, re-rendered) put in, except where something
    covers part of the mouth (`covering_mask`): a finger stays in front of the new mouth."""
    x0, y0, x1, y1 = box
    front = covering_mask(frame, points, box)
    if front is not None:
        front = front[..., None]
        patch = (patch * (1.0 - front) + frame[y0:y1, x0:x1] * front + 0.5).astype(frame.dtype)
    out = frame.copy()
    out[y0:y1, x0:x1] = patch
    return out


def covering_mask(frame: np.ndarray, points: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """Alpha (0..1, the size of `box`) of whatever covers part of the mouth in `frame`, or None when
    nothing does. The renderer keeps `frame`'s own pixels there: the occluder stays in front."""
    xs, share = lip_columns(frame, points)
    covered = np.convolve((share < COVERED).astype(float), np.ones(RUN) / RUN, mode="same") > 0.6
    if not covered.any():
        return None
    x0, y0, x1, y1 = box
    scale = min(1.0, WORK_PX / max(x1 - x0, 1))
    size = (max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale)))
    region = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    seeds = _seeds(region.shape[:2], points, box, scale, xs, share, covered)
    in_front = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if min(in_front.sum(), (~in_front).sum()) < 10:  # too few pixels on a side for its colour model
        return None
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: the same frame, the same mask
    cv2.grabCut(region, seeds, None, np.zeros((1, 65)), np.zeros((1, 65)), GRABCUT_ROUNDS, cv2.GC_INIT_WITH_MASK)
    front = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.float32)
    front = cv2.dilate(front, np.ones((3, 3), np.uint8))  # the occluder's edge too: it is in front
    return np.clip(cv2.resize(front, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def _seeds(shape, points, box, scale, xs, share, covered) -> np.ndarray:
    """GrabCut's starting labels: covered columns' lips are the occluder, clear columns' lips are
    face, the rest of a covered column is probably occluder, everything else probably face."""
    h, w = shape
    x0, y0 = box[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    pixels = np.stack([(gx + 0.5) / scale - 0.5 + x0, (gy + 0.5) / scale - 0.5 + y0], axis=-1)
    local_x = to_local(pixels, mouth_frame(points))[..., 0]
    column = np.clip(np.searchsorted(xs, local_x), 0, len(xs) - 1)
    across = (local_x >= xs[0] - 0.03) & (local_x <= xs[-1] + 0.03)
    lips = np.zeros((h, w), np.uint8)
    cv2.fillPoly(lips, [np.round((points[MOUTH_OUTER] - [x0, y0] + 0.5) * scale - 0.5).astype(np.int32)], 1)
    strip = across & covered[column]
    seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    seeds[strip] = cv2.GC_PR_FGD
    seeds[(lips > 0) & strip] = cv2.GC_FGD
    seeds[(lips > 0) & across & ~strip & (share[column] > CLEAR)] = cv2.GC_BGD
    return seeds
