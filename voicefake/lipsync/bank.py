"""The mouth bank: the input video's own mouths, to draw each output frame's mouth with a real one.

After Video Rewrite (Bregler, Covell and Slaney, 1997). Stretching a frame's lips over a mouth they
never made looks like a grimace; a video of the speaker talking already holds his real open mouths.
The bank keeps, for every usable input frame (face found, mouth clear, roughly frontal), a crop of
the lips and around them, with the frame's landmarks. Then:

    bank = MouthBank(); bank.add(i, frame, points) ...; bank = bank.finish(track arrays)  # track.py
    choice = choose_mouths(bank, targets, own)   # plan.py: a bank mouth per output frame, or -1
    new = bank.render(frame, points, choice[k])  # render.py (None: draw with the classic renderer)

Frames whose lips are not redder than the skin around them (a finger across the mouth) or that are
motion-blurred stay out of the bank. The choice matches the target lips to each bank mouth's lips
(the opening first; inter-ocular units, from the upper lip) and, by dynamic programming over the
output frames, prefers to go on with the next real frame, so real mouth motion plays through; the
frame's own mouth is one more choice, drawn by the classic warp, which costs only where it would
have to invent an opening. The render aligns the chosen frame to this one (a similarity on the
nose and eyes, moved onto the frame's upper lip), warps this frame's lower face so its lips and jaw
take that mouth's shape, and blends the real lips, teeth and mouth in, feathered and colour-matched
on the skin around them. A photo, or a video with too few usable talking frames, keeps the classic
renderer (mouth.py) alone.
"""

from __future__ import annotations

import cv2
import numpy as np

from voicefake.lipsync.face import (
    LIPS,
    LOWER_LIP_CENTRE,
    MOUTH_INNER,
    MOUTH_OUTER,
    UPPER_OUTER,
    interocular,
    mouth_frame,
    to_local,
)
from voicefake.lipsync.mouth import FIXED, JAW_FOLLOW, JAW_WEIGHTS, mesh_folds, warp
from voicefake.lipsync.occlusion import keep_in_front

MAX_YAW = 0.25  # a more turned face shows a mouth in a perspective no frontal frame can reuse
MIN_MOUTHS = 25  # about a second of talking: fewer shapes than this leave too little to choose from
REACH = 97  # percentile of the bank's openings taken as the speaker's widest (the very widest may be a yawn)
MIN_WIDEST = 0.10  # inter-ocular units: a bank whose widest mouth opens less cannot draw an open mouth
CROP_MARGIN = 0.45  # inter-ocular units kept around the lips: the blend's feather and the colour ring
MAX_BYTES = 256 << 20  # crops beyond this keep every other frame (then every 4th...): memory stays bounded
JUMP = 0.04  # cost (inter-ocular units of lip shape) of cutting to another bank frame than the next
HOLD = 0.015  # cost of showing the same bank frame again: a frozen mouth looks dead, but less than a cut
OPENING_WEIGHT = 1.0  # the opening (inner-lip gap) counts this much...
SHAPE_WEIGHT = 0.5  # ...and the whole lips' shape this much: the target is a model's, the bank's are real
OPEN_COST = 2.0  # the own mouth's cost per inter-ocular unit of opening the classic warp has to invent
FAR = 0.07  # a bank mouth further than this from the target (shape_distance) is not used there
LIP_COLOUR = 0.75  # a mouth whose lips are less red than this share of the clip's clearest (90th percentile)
# is covered: a finger across the lips has lip-like edges (occlusion.py misses it) but skin's colour
SHARPNESS = 0.5  # a crop less sharp than this share of the clip's sharper ones (75th percentile) is
# motion-blurred or out of focus: the mouth drawn from it would be blurrier than the frame it goes into
GROW = 0.05  # inter-ocular units the blended region reaches past the outer lips
FEATHER = 0.03  # inter-ocular units: the blend's soft edge (sigma)
RING = (0.06, 0.18)  # inter-ocular units past the outer lips: the skin that sets the colour match
GAIN_LIMIT = (0.75, 1.33)  # a colour gain outside this is a shadow or a highlight, not the light


def lip_shape(points: np.ndarray) -> np.ndarray:
    """The lips (20, 2) in the face's own frame: inter-ocular units, along and down the eyes' line, from
    the middle of the upper lip (which stays where it is as the jaw opens the mouth: see MouthBank.render)."""
    _, ex, ey, scale = mouth_frame(points)
    return to_local(points[LIPS], (points[UPPER_OUTER].mean(axis=0), ex, ey, scale))


def shape_distance(shapes: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """How far each of `shapes` (n, 20, 2) is from `shape` (20, 2): SHAPE_WEIGHT times the RMS over the
    lip points plus OPENING_WEIGHT times the difference in opening (what the audio asks for first),
    inter-ocular units."""
    rms = np.sqrt(((shapes - shape) ** 2).sum(axis=-1).mean(axis=-1))
    return SHAPE_WEIGHT * rms + OPENING_WEIGHT * np.abs(_gap(shapes) - _gap(shape))


_UPPER_GAP, _LOWER_GAP = [LIPS.index(i) for i in (61, 62, 63)], [LIPS.index(i) for i in (67, 66, 65)]


def _gap(shapes: np.ndarray) -> np.ndarray:
    """The inner lips' mean gap at the three middle columns (as face.mouth_opening, from lip_shape)."""
    return np.maximum(shapes[..., _LOWER_GAP, 1] - shapes[..., _UPPER_GAP, 1], 0.0).mean(axis=-1)


def lip_redness(image: np.ndarray, points: np.ndarray) -> float:
    """How much redder (YCrCb Cr) the lips are than the skin around them (between RING's radii)."""
    iod = interocular(points)
    h, w = image.shape[:2]
    outer, inner = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    cv2.fillPoly(outer, [np.round(points[MOUTH_OUTER]).astype(np.int32)], 1)
    cv2.fillPoly(inner, [np.round(points[MOUTH_INNER]).astype(np.int32)], 1)
    band = (outer > 0) & (inner == 0)
    ring = _skin_ring(_distance(outer), iod)
    if band.sum() < 10 or ring.sum() < 10:
        return 0.0
    cr = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[..., 1].astype(np.float32)
    return float(cr[band].mean() - cr[ring].mean())


def _distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's distance in pixels to `mask` (uint8, > 0 inside, where it is 0): one pass for every
    radius asked of it (a dilation per radius cost 1-2 ms a frame at 1080p)."""
    return cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)


def _skin_ring(distance: np.ndarray, iod: float) -> np.ndarray:
    """The skin between RING's radii around the lips whose `_distance` is given, as bool."""
    return (distance > max(1.0, RING[0] * iod)) & (distance <= max(1.0, RING[1] * iod))


def _crop_box(points: np.ndarray, shape: tuple) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) the bank keeps around the lips, inside a picture of this shape; None if tiny."""
    margin = CROP_MARGIN * interocular(points)
    lips = points[LIPS]
    x0, y0 = np.maximum(np.floor(lips.min(axis=0) - margin).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(lips.max(axis=0) + margin).astype(int) + 1, [shape[1], shape[0]])
    return None if x1 - x0 < 8 or y1 - y0 < 8 else (int(x0), int(y0), int(x1), int(y1))


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, scale, shift) that maps `source` points onto `target`."""
    ms, mt = source.mean(axis=0), target.mean(axis=0)
    s = (source - ms) @ np.array([1, 1j])
    t = (target - mt) @ np.array([1, 1j])
    z = (np.conj(s) @ t) / max(float((np.abs(s) ** 2).sum()), 1e-9)
    a = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.concatenate([a, (mt - a @ ms)[:, None]], axis=1)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ m[:, :2].T + m[:, 2]).astype(np.float32)


class MouthBank:
    """The input's own mouths: a crop around the lips of each usable frame, with its landmarks."""

    def __init__(self):
        self.frames: list[int] = []  # input frame of each entry, increasing
        self.crops: list[np.ndarray] = []  # BGR uint8
        self.origins: list[tuple[int, int]] = []  # (x, y) of each crop in its frame
        self.redness: list[float] = []  # lip_redness of each crop
        self.sharpness: list[float] = []  # variance of the Laplacian of each crop
        # image coordinates, set by finish() (the track's: scaled() brings them to the crops' size)
        self.landmarks = np.zeros((0, 68, 2), np.float32)
        self.shapes = np.zeros((0, 20, 2), np.float32)  # lip_shape of each entry
        self.reach = 0.0  # inter-ocular units: how wide the speaker opens his mouth (set by finish())
        self.stride = 1  # every how many frames one is kept (doubles when the crops outgrow MAX_BYTES)
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, index: int, frame: np.ndarray, points: np.ndarray, full=None, to_full=(1.0, 1.0)) -> None:
        """Keep a crop of input frame `index` around its lips (`points`, as found), if it may serve.
        `full`: the frame at the video's size (a Yuv420) when `frame` is a copy shrunk by `to_full`
        (x, y); the crop is cut from it (only the crop converted), the checks are made on `frame`."""
        from voicefake.io.yuv import even_box
        from voicefake.lipsync.face import scaled_points, yaw_ratio

        if index % self.stride or abs(yaw_ratio(points)) >= MAX_YAW:
            return
        box = _crop_box(points, frame.shape)
        if box is None:
            return
        x0, y0, x1, y1 = box
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        self.redness.append(lip_redness(crop, points - np.array([x0, y0], np.float32)))
        self.sharpness.append(float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()))
        if full is not None:
            x0, y0, x1, y1 = even_box(_crop_box(scaled_points(points, to_full), full.shape), full.width, full.height)
            crop = full.crop_bgr((x0, y0, x1, y1))
        self.frames.append(index)
        self.crops.append(crop)
        self.origins.append((int(x0), int(y0)))
        self.bytes += crop.nbytes
        if self.bytes > MAX_BYTES:  # keep every other one of those kept so far, and from now on
            self.stride *= 2
            self._keep([i for i, f in enumerate(self.frames) if f % self.stride == 0])

    def _keep(self, entries: list[int]) -> None:
        """Keep only these entries (indices, increasing)."""
        for name in ("frames", "crops", "origins", "redness", "sharpness"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in entries])
        self.bytes = sum(c.nbytes for c in self.crops)

    def finish(self, landmarks: np.ndarray, found: np.ndarray, occluded: np.ndarray, yaw: np.ndarray) -> MouthBank | None:
        """The bank with the smoothed `landmarks` of the track, less covered or turned frames; None when
        it is too small to serve (a photo, little talking) or never opens the mouth."""
        from voicefake.lipsync.face import mouth_opening

        red = float(np.percentile(self.redness, 90)) if self.frames else 0.0
        sharp = float(np.percentile(self.sharpness, 75)) if self.frames else 0.0
        keep = [
            i
            for i, f in enumerate(self.frames)
            if found[f] and not occluded[f] and abs(yaw[f]) < MAX_YAW and self.sharpness[i] >= SHARPNESS * sharp
            and (red < 1.0 or self.redness[i] >= LIP_COLOUR * red)  # red < 1: a video without colour
        ]
        if len(keep) < MIN_MOUTHS:
            return None
        self._keep(keep)
        self.landmarks = landmarks[self.frames].astype(np.float32)
        openings = [mouth_opening(p) for p in self.landmarks]
        self.reach = float(np.percentile(openings, REACH))
        if self.reach < MIN_WIDEST:
            return None
        self.shapes = np.stack([lip_shape(p) for p in self.landmarks]).astype(np.float32)
        return self

    def scaled(self, factor: tuple[float, float]) -> MouthBank:
        """The bank of the same video at a size `factor` (x, y) times the landmarks' (the track was
        followed on a shrunk copy): the landmarks scaled, the crops already cut at full size."""
        from copy import copy

        from voicefake.lipsync.face import scaled_points

        bank = copy(self)
        bank.landmarks = scaled_points(self.landmarks, factor)
        return bank

    @property
    def follows(self) -> np.ndarray:
        """Per entry: it is the frame right after the entry before it (a real, continuous motion)."""
        frames = np.asarray(self.frames)
        return np.concatenate([[False], np.diff(frames) == self.stride])

    def render(self, frame: np.ndarray, points: np.ndarray, entry: int, strength: float = 1.0) -> np.ndarray | None:
        """A copy of `frame` (landmarks `points`) whose mouth is bank `entry`'s, `strength` of the way;
        None where the mesh would fold over (odd landmarks): the classic renderer backs off there."""
        source = self.landmarks[entry]
        # turned and scaled as the nose and eyes say, and moved so the upper lips meet: a head tilted
        # another way puts the mouth elsewhere under the nose, and the frame's own place wins
        to_frame = similarity(source[FIXED], points[FIXED])
        to_frame[:, 2] += points[UPPER_OUTER].mean(axis=0) - _apply(to_frame, source[UPPER_OUTER]).mean(axis=0)
        aligned = _apply(to_frame, source)
        target = points.copy()
        target[LIPS] = aligned[LIPS]
        chin = aligned[LOWER_LIP_CENTRE] - points[LOWER_LIP_CENTRE]  # the jaw follows the lower lip
        for i, w in JAW_WEIGHTS.items():
            target[i] = points[i] + JAW_FOLLOW * w * chin
        target = points + strength * (target - points)
        if mesh_folds(target) or mesh_folds(points):
            return None
        if float(np.abs(target - points).max()) < 0.25:  # nothing visible to do: keep the pixels exactly
            return frame
        patch, box = warp(frame, points, target)
        x0, y0, x1, y1 = box
        mouth = self._aligned(entry, to_frame, aligned, target, box)
        _blend(patch, mouth, target - np.array([x0, y0], np.float32), strength)
        return keep_in_front(frame, patch, box, points)

    def _aligned(self, entry: int, to_frame, aligned, target, box) -> np.ndarray:
        """Bank `entry`'s crop on the pixels of `box`: moved by the similarity `to_frame` (its landmarks
        then lie at `aligned`), then warped by the mesh so they lie at `target` (what remains)."""
        x0, y0, x1, y1 = box
        crop, (cx, cy) = self.crops[entry], self.origins[entry]
        shift = np.array([x0, y0], np.float32)
        m = to_frame.copy()
        m[:, 2] += m[:, :2] @ np.array([cx, cy], np.float64) - shift  # crop pixels -> box pixels
        canvas = cv2.warpAffine(crop, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
        patch, (bx0, by0, bx1, by1) = warp(canvas, aligned - shift, target - shift)
        canvas[by0:by1, bx0:bx1] = patch
        return canvas


def _blend(patch: np.ndarray, mouth: np.ndarray, target: np.ndarray, strength: float) -> None:
    """Blend `mouth` (the bank's, aligned) into `patch` over the lips of `target` (patch coordinates),
    feathered, with a colour gain from the skin around the lips; in place."""
    iod = interocular(target)
    h, w = patch.shape[:2]
    poly = np.zeros((h, w), np.uint8)
    cv2.fillPoly(poly, [np.round(target[MOUTH_OUTER]).astype(np.int32)], 1)
    distance = _distance(poly)
    ring = _skin_ring(distance, iod)
    grown = (distance <= max(1.0, GROW * iod)).astype(np.float32)
    alpha = cv2.GaussianBlur(grown, (0, 0), max(0.8, FEATHER * iod))
    alpha = (strength * alpha)[..., None]
    if ring.sum() >= 20:
        here = patch[ring].astype(np.float32).mean(axis=0)
        there = mouth[ring].astype(np.float32).mean(axis=0)
        gain = np.clip(here / np.maximum(there, 1.0), *GAIN_LIMIT)
    else:
        gain = np.ones(3, np.float32)
    patch[:] = np.clip(patch * (1.0 - alpha) + mouth * gain * alpha + 0.5, 0, 255).astype(patch.dtype)


def choose_mouths(bank: MouthBank, targets: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """The bank entry to draw each output frame's mouth with (-1: the classic renderer, or no target).

    `targets` (frames, 68, 2): the landmarks each output frame's mouth should take (NaN: not drawn).
    `own` (frames, 68, 2): the landmarks of the input frame each output frame shows. Its own mouth
    is one more choice, drawn by the classic warp: where it is near the target (a small warp of its
    own lips beats any other mouth), and free to continue, as the input plays on.
    Viterbi over the output frames: the lip-shape distance to each mouth, plus JUMP for any entry but
    the next frame of the one before (or HOLD for the same one again), at O(frames x bank).
    """
    n, entries = len(targets), len(bank) + 1  # the last: the frame's own mouth
    active = ~np.isnan(targets[:, 0, 0])
    cost = np.zeros((n, entries))
    cost[:, -1] = np.inf if own is None else 0.0
    for k in np.flatnonzero(active):
        target = lip_shape(targets[k])
        cost[k, :-1] = shape_distance(bank.shapes, target)
        if own is not None:
            # The classic warp closes a mouth well (its own lips, pressed together); opening it, it
            # has to invent the inside: the wider the opening to invent, the more it costs (up to FAR:
            # where no bank mouth is nearer than that, the classic warp draws anyway).
            missing = float(_gap(target) - _gap(lip_shape(own[k])))
            cost[k, -1] = min(FAR, OPEN_COST * max(0.0, missing))
    follows = np.concatenate([bank.follows, [False]])
    index = np.arange(entries)
    step_from = index - 1
    step_from[-1] = entries - 1  # the own mouth goes on from itself
    best = cost[0].copy()
    back = np.zeros((n, entries), np.int32)
    for k in range(1, n):
        step = np.where(follows, best[step_from], np.inf)
        step[-1] = best[-1]
        jump_from = int(np.argmin(best))
        options = np.stack([step, best + HOLD, np.full(entries, best[jump_from] + JUMP)])
        pick = np.argmin(options, axis=0)
        back[k] = np.choose(pick, [step_from, index, np.full(entries, jump_from)])
        best = options[pick, index] + cost[k]
        best -= best[np.isfinite(best)].min()
    path = np.empty(n, np.int64)
    path[-1] = int(np.argmin(best))
    for k in range(n - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    far = cost[np.arange(n), path] > FAR
    return np.where(active & ~far & (path < entries - 1), path, -1)
