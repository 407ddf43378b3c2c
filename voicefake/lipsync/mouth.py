"""The classic lip-sync renderer: reshape the real lips of a frame, fill the mouth, touch nothing else.

The lips and jaw are moved by a piecewise-affine warp of the frame itself (a triangle mesh on the
face's landmarks, pinned to zero motion on a ring around the lower face), so the lips keep their
own texture, lighting and sharpness, and the warp fades to nothing at the ring: no box, no seam,
no second mouth. Where the lips part, the mouth interior is painted from a texture harvested from
the clip's own frames (its teeth, its tongue, its shadows) or, when the face never opens its mouth,
from a procedural one coloured from the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from voicefake.lipsync.face import (
    INNER_COLUMNS,
    INNER_LEFT,
    INNER_RIGHT,
    JAW,
    LIPS,
    LOWER_INNER,
    LOWER_LIP,
    LOWER_LIP_CENTRE,
    LOWER_OUTER,
    MOUTH_INNER,
    MOUTH_LEFT,
    MOUTH_OUTER,
    MOUTH_RIGHT,
    TEMPLATE_68,
    UPPER_INNER,
    UPPER_LIP,
    UPPER_OUTER,
    contour,
    interocular,
    mouth_frame,
    to_image,
    to_local,
)
from voicefake.lipsync.occlusion import keep_in_front
from voicefake.lipsync.visemes import MAX_OPENING

JAW_WEIGHTS = {4: 0.12, 5: 0.35, 6: 0.62, 7: 0.86, 8: 1.0, 9: 0.86, 10: 0.62, 11: 0.35, 12: 0.12}
FIXED = [27, 28, 29, 30, 31, 32, 33, 34, 35, 39, 40, 41, 42, 46, 47]  # nose and lower eyelids: never move
# The pinned ring: the jaw line pushed out from the mouth centre, furthest below the chin, which
# moves most (the neck and collar in between absorb its motion), less by the cheeks and temples.
RING_SCALE = np.array(
    [1.15, 1.15, 1.15, 1.2, 1.3, 1.4, 1.5, 1.5, 1.5, 1.5, 1.5, 1.4, 1.3, 1.2, 1.15, 1.15, 1.15], np.float32
)
UPPER_SHARE = 0.25  # of a new opening, the part taken by the upper lip (the jaw does the rest)
CLOSE_UPPER_SHARE = 0.3  # of an existing gap to close, the part the upper lip covers
CLOSE_PRESS = 1.3  # close 30 % past the landmarks: they sit on the teeth edge, lips are a little beyond
JAW_FOLLOW = 0.7  # the chin moves this much of the lower lip's motion
CLOSED_NOISE = 0.012  # inter-ocular units


def target_shape(points: np.ndarray, opening: float, spread: float) -> np.ndarray:
    """Where the 68 landmarks go for a mouth `opening` (0..1) and `spread` (-1 round .. 1 spread).

    The current lips are first closed (the gap between the inner lips removed, mostly by raising
    the lower lip), then opened to the target with a jaw drop; lip thickness is kept.
    """
    frame = mouth_frame(points)
    local = to_local(points, frame)
    x_in = local[UPPER_INNER, 0]
    # A gap under ~1 % of the eye distance is landmark noise on closed lips: ignoring it keeps a closed
    # mouth exactly as it is in silence instead of nudging it a pixel back and forth.
    gap_cols = np.maximum(0.0, local[LOWER_INNER[1:4], 1] - local[UPPER_INNER[1:4], 1])
    gap_cols = np.minimum(gap_cols, np.maximum(0.0, 2.0 * (gap_cols - CLOSED_NOISE)))
    x_cols = (local[UPPER_INNER[1:4], 0] + local[LOWER_INNER[1:4], 0]) / 2
    gx = np.concatenate([[x_in[0]], x_cols, [x_in[-1]]])
    gy = np.concatenate([[0.0], gap_cols, [0.0]])
    order = np.argsort(gx, kind="stable")
    gx, gy = gx[order], gy[order]
    half = max((local[INNER_RIGHT, 0] - local[INNER_LEFT, 0]) / 2, 0.05)
    centre_x = (local[INNER_RIGHT, 0] + local[INNER_LEFT, 0]) / 2
    depth = opening * MAX_OPENING
    power = 0.5 - 0.2 * spread  # round lips part evenly; spread lips part to a slit

    def gap_now(x):
        # toward the corners the gap closes like a square root, not linearly: teeth show almost
        # to the corners in a smile, and a linear ramp would leave them peeking through
        t = np.clip((x - gx[0]) / max(gx[1] - gx[0], 1e-6), 0, 1) ** 0.5 * gy[1]
        t2 = np.clip((gx[-1] - x) / max(gx[-1] - gx[-2], 1e-6), 0, 1) ** 0.5 * gy[-2]
        middle = np.interp(x, gx[1:-1], gy[1:-1])
        ramp = np.where(x < gx[1], t, np.where(x > gx[-2], t2, middle))
        return CLOSE_PRESS * ramp

    def gap_new(x):
        r = np.clip((x - centre_x) / half, -1.0, 1.0)
        return depth * (1.0 - r**2) ** power

    new = local.copy()
    for i in UPPER_LIP:
        x = local[i, 0]
        new[i, 1] += CLOSE_UPPER_SHARE * gap_now(x) - UPPER_SHARE * gap_new(x)
    for i in LOWER_LIP:
        x = local[i, 0]
        new[i, 1] += -(1 - CLOSE_UPPER_SHARE) * gap_now(x) + (1 - UPPER_SHARE) * gap_new(x)
    for i in (MOUTH_LEFT, MOUTH_RIGHT, INNER_LEFT, INNER_RIGHT):  # corners: pulled down a little by the jaw
        new[i, 1] += 0.12 * depth
    lips = LIPS
    new[lips, 0] = centre_x + (new[lips, 0] - centre_x) * (1.0 + 0.10 * spread)
    chin = new[LOWER_LIP_CENTRE, 1] - local[LOWER_LIP_CENTRE, 1]  # how far the lower lip moved: the jaw follows
    for i, w in JAW_WEIGHTS.items():
        new[i, 1] += JAW_FOLLOW * w * chin
    return np.where(np.isin(np.arange(68), [*lips, *JAW_WEIGHTS])[:, None], to_image(new, frame), points)


def refine_inner_lips(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Move the inner-lip landmarks onto the real lip edges, judged by colour.

    The 68-point model often puts the inner lip points on the teeth of a smiling or open mouth;
    closing such a mouth by the landmarks would leave a strip of teeth showing. Down each of the
    three inner columns, pixels much brighter (teeth) or much darker (the mouth) than the lips
    form a run: its ends are the lip edges.
    """
    geo = mouth_frame(points)
    local = to_local(points, geo)
    ycc = None
    out = points.copy()
    for up, down, top_outer, bottom_outer in INNER_COLUMNS:
        x = (local[up, 0] + local[down, 0]) / 2
        y_top, y_bottom = local[top_outer, 1], local[bottom_outer, 1]
        if y_bottom - y_top < 0.04:
            continue
        if ycc is None:
            ycc = _ycc_crop(frame, points)
            if ycc is None:
                return points
            crop, (cx, cy) = ycc
            levels = _lip_levels(crop, points - np.array([cx, cy], dtype=np.float32))
            if levels is None:
                return points
            lip_y, lip_c = levels
        t = np.linspace(0.0, 1.0, 40)
        q = np.stack([np.full_like(t, x), y_top + t * (y_bottom - y_top)], axis=-1)
        img = to_image(q, geo) - np.array([cx, cy], dtype=np.float32)
        samples = []
        for dx in (-1.0, 0.0, 1.0):  # a 3-pixel-wide column
            samples.append(
                cv2.remap(
                    crop,
                    (img[:, 0] + dx)[None, :],
                    img[:, 1][None, :],
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )[0]
            )
        line = np.mean(samples, axis=0)  # (40, 3): Y, Cr, Cb
        # teeth: brighter and greyer than the lips (either can be weak: glossy lips, sepia video)
        chroma = np.hypot(line[:, 1] - 128, line[:, 2] - 128)
        teeth = (line[:, 0] - lip_y) / max(255.0 - lip_y, 1.0) + (lip_c - chroma) / lip_c > 0.5
        teeth &= line[:, 0] > lip_y
        dark = line[:, 0] < 0.55 * lip_y
        other = teeth | dark
        other[:3] = other[-3:] = False  # the outer lip edges themselves
        if not other.any():
            continue
        # the run of non-lip pixels around where the landmarks put the opening
        t_up = (local[up, 1] - y_top) / (y_bottom - y_top)
        t_down = (local[down, 1] - y_top) / (y_bottom - y_top)
        middle = int(np.clip(round((t_up + t_down) / 2 * 39), 0, 39))
        hits = np.flatnonzero(other)
        seed = hits[np.argmin(np.abs(hits - middle))]
        if abs(seed - middle) > 6:
            continue
        lo = hi = seed
        while lo > 0 and (other[lo - 1] or (lo > 1 and other[lo - 2])):  # bridge one-sample holes
            lo -= 1
        while hi < 39 and (other[hi + 1] or (hi < 38 and other[hi + 2])):
            hi += 1
        new_up = y_top + (lo - 0.5) / 39 * (y_bottom - y_top)
        new_down = y_top + (hi + 0.5) / 39 * (y_bottom - y_top)
        # Only ever widen the opening, and by a bounded amount (inter-ocular units): the landmarks
        # err by sitting on the teeth, and a misread highlight should cost little.
        limit = 0.06
        local_up = np.clip(new_up, local[up, 1] - limit, local[up, 1])
        local_down = np.clip(new_down, local[down, 1], local[down, 1] + limit)
        out[up] = to_image(np.array([local[up, 0], local_up], np.float32), geo)
        out[down] = to_image(np.array([local[down, 0], local_down], np.float32), geo)
    return out


def _lip_levels(ycc: np.ndarray, points: np.ndarray) -> tuple[float, float] | None:
    """Typical (brightness, chroma) of the lips: the most colourful pixels inside the outer lip contour."""
    mask = np.zeros(ycc.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[MOUTH_OUTER]).astype(np.int32)], 1)
    pixels = ycc[mask > 0]
    if len(pixels) < 20:
        return None
    chroma = np.hypot(pixels[:, 1] - 128, pixels[:, 2] - 128)
    lip_c = float(np.percentile(chroma, 75))
    lip_y = float(np.median(pixels[chroma >= 0.8 * lip_c, 0]))
    return lip_y, max(lip_c, 4.0)


def _ycc_crop(frame: np.ndarray, points: np.ndarray):
    lips = points[LIPS]
    x0, y0 = np.floor(lips.min(axis=0)).astype(int) - 4
    x1, y1 = np.ceil(lips.max(axis=0)).astype(int) + 5
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2YCrCb).astype(np.float32), (x0, y0)


# ---------------------------------------------------------------- mesh


def _ring(points: np.ndarray) -> np.ndarray:
    centre = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) / 2
    return (centre + RING_SCALE[:, None] * (points[JAW] - centre)).astype(np.float32)


MOVING = [*JAW[2:15], *LIPS]  # the lower jaw line and the lips
VERTEX_IDS = [*MOVING, *FIXED]  # then the 17 ring points


def _vertices(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points[VERTEX_IDS], _ring(points)])


def _delaunay(points: np.ndarray) -> list[list[int]]:
    """Delaunay triangles of `points` as index triples."""
    lo, hi = points.min(axis=0) - 1, points.max(axis=0) + 1
    subdiv = cv2.Subdiv2D((float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])))
    for p in points:
        subdiv.insert((float(p[0]), float(p[1])))
    tris = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2):
        d = np.linalg.norm(points[None, :, :] - t[:, None, :], axis=2)
        idx = d.argmin(axis=1)
        if d[np.arange(3), idx].max() < 1e-3 and len(set(idx)) == 3:  # drops the helper outer vertices
            tris.append([int(i) for i in idx])
    return tris


def _build_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Triangles (vertex indices) of the warp mesh, fixed once from the template face.

    Delaunay on the face outside the lips, plus hand-made strips for the lips themselves and the
    mouth opening, whose landmarks can meet or cross and so must not be triangulated by position.
    """
    where = {landmark: k for k, landmark in enumerate(VERTEX_IDS)}
    verts = _vertices(TEMPLATE_68)
    outside = [k for k, landmark in enumerate(VERTEX_IDS) if landmark not in MOUTH_INNER]
    outside += list(range(len(VERTEX_IDS), len(verts)))
    outer = [where[i] for i in MOUTH_OUTER]
    lip_poly = verts[outer]
    tris = []
    for tri in _delaunay(verts[outside]):
        tri = [outside[t] for t in tri]
        if all(t in outer for t in tri):  # inside the lips: replaced below
            continue
        centroid = verts[tri].mean(axis=0)
        if cv2.pointPolygonTest(lip_poly, tuple(float(c) for c in centroid), False) > 0:
            raise RuntimeError("mesh template error: a face triangle covers the lips")
        tris.append(tri)

    def strip(a: list[int], b: list[int]) -> list[list[int]]:
        """Zip two landmark chains running the same way into triangles."""
        out, i, j = [], 0, 0
        while i < len(a) - 1 or j < len(b) - 1:
            if j == len(b) - 1 or (i < len(a) - 1 and (i + 1) / len(a) <= (j + 1) / len(b)):
                out.append([where[a[i]], where[a[i + 1]], where[b[j]]])
                i += 1
            else:
                out.append([where[a[i]], where[b[j + 1]], where[b[j]]])
                j += 1
        return out

    lips = strip(UPPER_OUTER, UPPER_INNER) + strip(LOWER_OUTER, LOWER_INNER)
    cavity = strip(UPPER_INNER, LOWER_INNER)
    cavity = [t for t in cavity if len(set(t)) == 3]
    tris = np.array(tris + lips + cavity, dtype=np.int32)
    is_cavity = np.zeros(len(tris), dtype=bool)
    is_cavity[len(tris) - len(cavity) :] = True
    return tris, is_cavity


TRIANGLES, CAVITY_TRIANGLES = _build_mesh()
# 1 for triangles inside the face (no ring vertex), by raster id (0 = outside the mesh)
_LIP_VERTICES = [VERTEX_IDS.index(i) for i in LIPS]
_LIP_LUT = np.concatenate([[0.0], np.isin(TRIANGLES, _LIP_VERTICES).all(axis=1)]).astype(np.float32)
_INNER_LUT = np.concatenate([[0.0], (TRIANGLES < len(VERTEX_IDS)).all(axis=1)]).astype(np.float32)


def _signed_areas(verts: np.ndarray) -> np.ndarray:
    a, b, c = verts[TRIANGLES[:, 0]], verts[TRIANGLES[:, 1]], verts[TRIANGLES[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


_TEMPLATE_SIGN = np.sign(_signed_areas(_vertices(TEMPLATE_68)))
_DRAW_ORDER = [*np.flatnonzero(CAVITY_TRIANGLES), *np.flatnonzero(~CAVITY_TRIANGLES)]


# Triangles that can deform: those with a moving landmark (the lips, the jaw), less the mouth opening
# itself, which may close to nothing. Triangles of fixed points map onto themselves whatever their shape.
_CHECKED = np.isin(TRIANGLES, list(range(len(MOVING)))).any(axis=1) & ~CAVITY_TRIANGLES


def mesh_folds(points: np.ndarray) -> bool:
    """True when the landmarks fold the mesh over (a triangle turned inside out): do not warp."""
    areas = _signed_areas(_vertices(points))
    scale = interocular(points) ** 2
    ok = (np.sign(areas) == _TEMPLATE_SIGN) | (np.abs(areas) < 1e-4 * scale)
    return not bool(ok[_CHECKED].all())


WARP_DETAIL = 80.0  # pixels per inter-ocular distance at which the smooth part of the warp is computed


def _raster(dst: np.ndarray, box: tuple[int, int, int, int], scale: float, only=None) -> np.ndarray:
    """Triangle id (1-based, 0 = none) of each pixel of `box`, on a grid `scale` times the frame's."""
    x0, y0, x1, y1 = box
    ids = np.zeros((max(1, int(round((y1 - y0) * scale))), max(1, int(round((x1 - x0) * scale)))), np.uint8)
    shift = 4
    areas = _signed_areas(dst)
    # The mouth opening first, so the lips cover it wherever they meet or press together; an opening
    # turned inside out (lips pressed past each other) is not drawn at all.
    for k in _DRAW_ORDER:
        if only is not None and not only[k]:
            continue
        if abs(areas[k]) < 1e-3 or (CAVITY_TRIANGLES[k] and np.sign(areas[k]) != _TEMPLATE_SIGN[k]):
            continue
        # pixel centres: grid cell (i, j) is at frame ((j + 0.5) / scale + x0 - 0.5, ...)
        poly = ((dst[TRIANGLES[k]] - [x0, y0] + 0.5) * scale - 0.5) * (1 << shift)
        cv2.fillConvexPoly(ids, np.round(poly).astype(np.int32), int(k) + 1, lineType=cv2.LINE_8, shift=shift)
    return ids


def _displacement(ids: np.ndarray, coef: np.ndarray, box, scale: float) -> np.ndarray:
    """(h, w, 2) displacement source - target, in frame pixels, on the grid of `ids`."""
    x0, y0 = box[:2]
    xs = (np.arange(ids.shape[1], dtype=np.float32)[None, :] + 0.5) / scale - 0.5 + x0  # broadcast, not a grid
    ys = (np.arange(ids.shape[0], dtype=np.float32)[:, None] + 0.5) / scale - 0.5 + y0
    c = coef[ids]  # (h, w, 6): source x = c0 x + c1 y + c2, source y = c3 x + c4 y + c5
    out = np.empty(ids.shape + (2,), np.float32)
    out[..., 0] = c[..., 0] * xs + c[..., 1] * ys + c[..., 2] - xs
    out[..., 1] = c[..., 3] * xs + c[..., 4] * ys + c[..., 5] - ys
    return out


def warp(frame: np.ndarray, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Warp the lower face so landmarks at `source` move to `target`; returns (patch, (x0, y0, x1, y1)).

    Backward mapping: every pixel of the patch looks up where it came from, through the affine map
    of the target triangle it lies in. The displacement field is blurred so the triangle edges
    leave no creases (and, being smooth, is computed at a modest resolution for large faces), except
    on the lips, which keep the exact map at full resolution; bicubic sampling keeps them sharp.
    """
    h, w = frame.shape[:2]
    src, dst = _vertices(source), _vertices(target)
    lo = np.floor(np.minimum(src.min(axis=0), dst.min(axis=0))).astype(int) - 2
    hi = np.ceil(np.maximum(src.max(axis=0), dst.max(axis=0))).astype(int) + 3
    box = x0, y0, x1, y1 = max(0, lo[0]), max(0, lo[1]), min(w, hi[0]), min(h, hi[1])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return frame[y0:y1, x0:x1].copy(), box
    # affine maps target -> source, one per triangle (row 0: identity for pixels outside the mesh)
    t_mat = np.concatenate([dst[TRIANGLES], np.ones((len(TRIANGLES), 3, 1), np.float32)], axis=2).astype(np.float64)
    safe = np.abs(np.linalg.det(t_mat)) > 1e-6
    coef = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float64), (len(TRIANGLES) + 1, 1))
    solved = np.linalg.solve(t_mat[safe], src[TRIANGLES][safe].astype(np.float64))  # (n, 3, 2)
    coef[1:][safe] = solved.transpose(0, 2, 1).reshape(-1, 6)
    coef = coef.astype(np.float32)

    iod = interocular(target)
    scale = min(1.0, WARP_DETAIL / max(iod, 1.0))
    ids = _raster(dst, box, scale)
    raw = _displacement(ids, coef, box, scale)
    # Inside the face the mesh follows the landmarks closely; beyond the jaw line (neck, collar,
    # background) it is only there to fade the motion out, so smooth it much more: no kinks there.
    inside = cv2.GaussianBlur(_INNER_LUT[ids], (0, 0), 0.04 * iod * scale, borderType=cv2.BORDER_REPLICATE)[..., None]
    fine = cv2.GaussianBlur(raw, (0, 0), max(0.7, 0.015 * iod * scale), borderType=cv2.BORDER_REPLICATE)
    coarse = _blur_coarse(raw, max(1.5, 0.09 * iod * scale))
    disp = inside * fine + (1 - inside) * coarse
    lips_here = _LIP_LUT[ids][..., None]
    disp = lips_here * raw + (1 - lips_here) * disp
    if scale < 1.0:
        disp = cv2.resize(disp, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        # The lips themselves keep the exact map, at full resolution: where lips meet, the map jumps
        # from one lip to the other, and any blur or interpolation there would sample the teeth.
        llo = np.floor(np.minimum(src[_LIP_VERTICES].min(axis=0), dst[_LIP_VERTICES].min(axis=0))).astype(int) - 2
        lhi = np.ceil(np.maximum(src[_LIP_VERTICES].max(axis=0), dst[_LIP_VERTICES].max(axis=0))).astype(int) + 3
        lbox = max(x0, llo[0]), max(y0, llo[1]), min(x1, lhi[0]), min(y1, lhi[1])
        lip_ids = _raster(dst, lbox, 1.0, only=_LIP_LUT[1:] > 0)
        exact = _displacement(lip_ids, coef, lbox, 1.0)
        on_lips = (lip_ids > 0)[..., None]
        region = disp[lbox[1] - y0 : lbox[3] - y0, lbox[0] - x0 : lbox[2] - x0]
        region[:] = np.where(on_lips, exact, region)
    disp[..., 0] += np.arange(x0, x1, dtype=np.float32)[None, :]  # displacement -> where each pixel comes from
    disp[..., 1] += np.arange(y0, y1, dtype=np.float32)[:, None]
    patch = cv2.remap(frame, disp, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return patch, box


def _blur_coarse(field: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur, done at a quarter of the resolution (the field is smooth anyway)."""
    h, w = field.shape[:2]
    if sigma < 4 or min(h, w) < 16:
        return cv2.GaussianBlur(field, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(field, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------- mouth interior


def _patch_mean(frame: np.ndarray, points: np.ndarray, indices: list[int]) -> np.ndarray:
    """Mean colour inside the polygon of the given landmarks."""
    poly = points[indices]
    x0, y0 = np.floor(poly.min(axis=0)).astype(int)
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 1
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return np.full(3, 128.0, dtype=np.float32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 1)
    pixels = frame[y0:y1, x0:x1][mask > 0]
    return pixels.mean(axis=0).astype(np.float32) if len(pixels) else np.full(3, 128.0, np.float32)


SKIN_PATCH = [31, 33, 35, 53, 51, 49]  # between the nostrils and the upper lip
LIP_PATCH = [*UPPER_OUTER, *UPPER_INNER[::-1]]  # the upper lip


@dataclass
class MouthInterior:
    """Appearance of the inside of the mouth, unrolled: rows run from the upper to the lower inner lip,
    columns from corner to corner; `height[u]` is how open that column was, in inter-ocular units."""

    texture: np.ndarray  # (H, W, 3) float32 BGR
    height: np.ndarray  # (W,) inter-ocular units
    reference: np.ndarray  # skin colour of the face it came from, to relight it per frame
    gap: np.ndarray  # (W,) where (0 top .. 1 bottom) the dark gap between the teeth rows runs, per column
    source: str  # "harvested" or "procedural"

    ROWS, COLS = 48, 96
    MIN_OPENING = 0.07  # a frame whose lips part less than this (inter-ocular units) has nothing to harvest

    @classmethod
    def harvest(cls, frame: np.ndarray, points: np.ndarray) -> MouthInterior:
        """Cut the open mouth of `frame` out along its inner lips."""
        geo = mouth_frame(points)
        local = to_local(points, geo)
        ux, uy = contour(local, UPPER_INNER)
        lx, ly = contour(local, LOWER_INNER)
        u = np.linspace(0.0, 1.0, cls.COLS)
        x = local[INNER_LEFT, 0] + u * (local[INNER_RIGHT, 0] - local[INNER_LEFT, 0])
        top, bottom = np.interp(x, ux, uy), np.interp(x, lx, ly)
        # skip a sliver at each lip: landmarks sit on the lip edge, and a lip inside a mouth is a double lip
        v = np.linspace(0.06, 0.94, cls.ROWS)[:, None]
        ys = top[None, :] + v * (bottom - top)[None, :]
        q = np.stack([np.broadcast_to(x[None, :], ys.shape), ys], axis=-1)
        img = to_image(q, geo)
        texture = cv2.remap(frame, img[..., 0], img[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        texture = texture.astype(np.float32)
        height = np.maximum(bottom - top, 0.0) * 0.88
        # the darkest row of each column (smoothed both ways): the gap between the teeth rows
        lum = cv2.GaussianBlur(texture.mean(axis=2), (0, 0), sigmaX=3.0, sigmaY=1.5)
        lo, hi = int(0.15 * cls.ROWS), int(0.85 * cls.ROWS)
        gap = (lo + np.argmin(lum[lo:hi], axis=0)) / (cls.ROWS - 1)
        gap = np.convolve(np.pad(gap, 6, mode="edge"), np.ones(13) / 13, mode="valid").astype(np.float32)
        return cls(texture, height.astype(np.float32), _patch_mean(frame, points, SKIN_PATCH), gap, "harvested")

    def looks_like_a_mouth(self) -> bool:
        """An open mouth has dark depths and bright teeth: much more contrast than skin, unlike a hand
        held over the mouth (measured: open mouths 0.95-1.35 of the skin brightness, hands 0.45-0.75)."""
        lum = self.texture.mean(axis=2)
        skin = float(self.reference.mean())
        spread = float(np.percentile(lum, 90) - np.percentile(lum, 10))
        return spread > 0.9 * skin and float((lum < 0.45 * skin).mean()) >= 0.05

    @classmethod
    def procedural(cls, frame: np.ndarray, points: np.ndarray) -> MouthInterior:
        """A plausible mouth (upper teeth, dark cavity, tongue, lower teeth) coloured from this face."""
        skin = _patch_mean(frame, points, SKIN_PATCH)
        lip = _patch_mean(frame, points, LIP_PATCH)
        rows, cols = cls.ROWS, cls.COLS
        u = np.linspace(0.0, 1.0, cols)[None, :]
        v = np.linspace(0.0, 1.0, rows)[:, None]
        lum = float(skin.mean())
        teeth = np.clip(np.array([0.86, 0.94, 0.97]) * min(235.0, 1.1 * lum + 30), 0, 255)
        cavity = lip * 0.22
        tongue = lip * 0.62
        tex = np.empty((rows, cols, 3), np.float32)
        tex[:] = cavity
        # upper teeth: the top 42 %, a soft wavy lower edge, gaps between the front teeth
        edge = 0.42 + 0.012 * np.cos((u - 0.5) * 2 * np.pi * 5.5)
        upper = np.clip((edge - v) / 0.03, 0, 1)
        lower = np.clip((v - 0.84) / 0.03, 0, 1) * 0.7  # lower teeth, partly hidden
        gaps = np.ones_like(u)
        for c in (0.5, 0.5 - 0.085, 0.5 + 0.085, 0.5 - 0.155, 0.5 + 0.155, 0.5 - 0.215, 0.5 + 0.215):
            gaps -= 0.28 * np.exp(-0.5 * ((u - c) / 0.006) ** 2)
        tongue_mask = np.clip(1 - (((u - 0.5) / 0.32) ** 2 + ((v - 0.92) / 0.2) ** 2), 0, 1) ** 0.5
        tex = tex * (1 - tongue_mask[..., None]) + tongue * tongue_mask[..., None]
        shade = (0.35 + 0.65 * np.sin(np.pi * u) ** 0.8)[..., None]  # teeth recede into the corners
        tex = tex * (1 - upper[..., None]) + (teeth * gaps[..., None] * shade) * upper[..., None]
        tex = tex * (1 - lower[..., None]) + (teeth * 0.8 * gaps[..., None] * shade) * lower[..., None]
        tex = cv2.GaussianBlur(tex.astype(np.float32), (0, 0), 0.6)
        height = (0.24 * np.sqrt(np.clip(1 - (2 * u[0] - 1) ** 2, 0, 1))).astype(np.float32)
        return cls(tex, height, skin, np.full(cols, 0.6, np.float32), "procedural")

    def paint(self, patch: np.ndarray, box: tuple[int, int, int, int], target: np.ndarray, frame: np.ndarray) -> None:
        """Paint the mouth opening of the `target` landmarks into `patch` (the warped region at `box`)."""
        x0, y0, x1, y1 = box
        poly = target[MOUTH_INNER]
        geo = mouth_frame(target)
        local = to_local(target, geo)
        ux, uy = contour(local, UPPER_INNER)
        lx, ly = contour(local, LOWER_INNER)
        xs = np.linspace(local[INNER_LEFT, 0], local[INNER_RIGHT, 0], 9)
        if float(np.max(np.interp(xs, lx, ly) - np.interp(xs, ux, uy))) < 0.004:
            return  # closed
        bx0, by0 = np.floor(poly.min(axis=0)).astype(int) - 1
        bx1, by1 = np.ceil(poly.max(axis=0)).astype(int) + 2
        bx0, by0, bx1, by1 = max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1)
        if bx1 - bx0 < 2 or by1 - by0 < 2:
            return
        shift = 3
        alpha = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        cv2.fillPoly(alpha, [np.round((poly - [bx0, by0]) * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
        if not alpha.any():
            return
        ys, xs_img = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
        q = to_local(np.stack([xs_img, ys], axis=-1), geo)
        qx, qy = q[..., 0], q[..., 1]
        span = max(local[INNER_RIGHT, 0] - local[INNER_LEFT, 0], 1e-3)
        u = np.clip((qx - local[INNER_LEFT, 0]) / span, 0.0, 1.0)
        top = np.interp(qx, ux, uy)
        open_h = np.maximum(np.interp(qx, lx, ly) - top, 1e-4)
        depth = np.clip(qy - top, 0.0, open_h)
        have = np.maximum(np.interp(u, np.linspace(0, 1, len(self.height)), self.height), 1e-3)
        # A narrower opening than the texture shows the band around the texture's gap between the
        # teeth (the incisal edges and the dark behind them), as a real mouth opening a little does;
        # a wider one shows all of it, stretched.
        gap = np.interp(u, np.linspace(0, 1, len(self.gap)), self.gap)
        top_in_texture = np.where(open_h < have, gap * (have - open_h), 0.0)
        v = np.clip((top_in_texture + depth) / np.maximum(have, open_h), 0.0, 1.0)
        rows, cols = self.texture.shape[:2]
        fill = cv2.remap(
            self.texture,
            (u * (cols - 1)).astype(np.float32),
            (v * (rows - 1)).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # relight to this frame, and let the upper lip shade the teeth just under it
        gain = np.clip(_patch_mean(frame, target, SKIN_PATCH) / np.maximum(self.reference, 1.0), 0.6, 1.6)
        lip_shadow = 1.0 - 0.3 * np.exp(-depth / 0.012)
        dim = 0.55 + 0.45 * np.minimum(1.0, open_h / have)  # a narrow opening lets less light in
        fill = fill * gain * (lip_shadow * dim)[..., None]
        a = (alpha.astype(np.float32) / 255.0)[..., None]
        region = patch[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
        region[:] = np.clip(region * (1 - a) + fill * a, 0, 255).astype(patch.dtype)


class MouthRenderer:
    """Reshape the mouth of frames to mouth-track values; one per video (it holds the mouth interior)."""

    def __init__(self, interior: MouthInterior):
        self.interior = interior

    def render(
        self, frame: np.ndarray, points: np.ndarray, opening: float, spread: float, strength: float = 1.0
    ) -> np.ndarray:
        """A copy of `frame` whose mouth has the given shape; `strength` < 1 moves only part of the way."""
        if strength <= 0.0:
            return frame
        target = target_shape(points, opening, spread)
        target = points + strength * (target - points)
        for _ in range(3):  # a folded mesh means odd landmarks (profile, occlusion): back off, then give up
            if not mesh_folds(target) and not mesh_folds(points):
                break
            target = points + 0.5 * (target - points)
        else:
            return frame
        if float(np.abs(target - points).max()) < 0.25:  # nothing visible to do: keep the pixels exactly
            return frame
        patch, box = warp(frame, points, target)
        self.interior.paint(patch, box, target, frame)
        return keep_in_front(frame, patch, box, points)
