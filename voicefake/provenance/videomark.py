"""The invisible video watermark: the audio mark's payload, written into the frames' brightness.

Every frame gets the same faint pattern: a keyed 48 x 48 grid of cells over the whole picture,
each a little brighter or darker (1-4 levels of 255) by the coded bit it carries, plus presence
cells that are the same in every mark. Because the grid is defined relative to the frame, a
resized copy still lines up; because the cells are large (1/48 of the picture), H.264 keeps them
where it throws fine detail away. The detector shrinks each frame to the grid, removes the
picture's own coarse shading with a high-pass, adds the evidence of many frames, tests the
presence cells (a z-score) and decodes the same convolutional code + CRC as the audio mark
(watermark.py), so a payload it reports is one that checks out, not a guess.

    mark = FrameMarker(payload)              # one per video
    marked = mark(frame)                     # BGR uint8 in, BGR uint8 out
    marked_y = mark.mark_luma(y)             # or a 4:2:0 frame's luma plane (limited range)
    detect_frames(frames) -> watermark.Detection
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import cv2
import numpy as np

from voicefake.provenance import watermark
from voicefake.provenance.watermark import Detection, Payload

GRID = 48  # cells per side; each cell is 1/48 of the frame's width and height
CELL = 8  # pixels per cell side on the detector's canvas
CANVAS = GRID * CELL
STRENGTH = 1.0  # luma levels (of 255) a cell moves by at least
FLAT_LIMIT = 1.5  # ... and at most in a flat cell, where more would show as mottling
MAX_STRENGTH = 4.0  # ... and at most in a busy cell, where the texture hides it
MARGIN = 0.6  # evidence (robust luma levels) each group should carry in the frame as written
ROBUST = 2.0  # luma levels: cells whose own shading is far beyond this count for less (edges)
PAYLOAD_CELLS = 12  # cells per coded bit; the remaining cells carry the keyed presence pattern
MIN_PRESENCE = 4.0  # z-score that says "marked"; unmarked video is about N(0, 1): 4.0 is p < 1e-4
MAX_WRONG_BITS = 10  # of 124 coded bits: beyond this the payload would not decode; mark presence only
MIN_AGREEMENT = 0.6  # decoded codeword vs observations, below which a CRC match is not trusted
FIELD_WIDTH = 1280  # wider frames get their field made at this width, then stretched
MAX_FRAMES = 250  # frames the detector reads (10 s at 25 fps): more adds evidence, not certainty
LIMITED = 219 / 255  # levels of limited-range luma (16..235, as encoded) per level of full-range grey

_N_CODED = watermark._N_CODED  # 124 coded bits
_rng = watermark._keyed_rng("video-cells")
_CHIP = _rng.choice([-1.0, 1.0], size=GRID * GRID)  # keyed sign of each cell
_ORDER = _rng.permutation(GRID * GRID)
# Each cell belongs to a group: coded bit k (PAYLOAD_CELLS cells each), or the presence group,
# whose cells carry their bare chip in every mark so a mark is found even when the payload is lost.
_GROUP = np.empty(GRID * GRID, np.int64)
_GROUP[_ORDER] = np.minimum(np.arange(GRID * GRID) // PAYLOAD_CELLS, _N_CODED)
_GROUP[_ORDER[: PAYLOAD_CELLS * _N_CODED]] = np.arange(PAYLOAD_CELLS * _N_CODED) % _N_CODED
_PRESENCE = _GROUP == _N_CODED
_GROUP_SIZE = np.bincount(_GROUP, minlength=_N_CODED + 1)


def _canvas(frame: np.ndarray) -> np.ndarray:
    """The frame's luma shrunk to the detector's CANVAS x CANVAS (float32)."""
    luma = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(luma.astype(np.float32), (CANVAS, CANVAS), interpolation=cv2.INTER_AREA)


def _luma_canvas(luma: np.ndarray) -> np.ndarray:
    """`_canvas` of a frame given as its limited-range luma plane (shrunk as uint8: at 4K a float
    copy costs more than the rest of the mark; the rounding is far below what a cell carries)."""
    height, width = luma.shape
    if width >= 2 * CANVAS or height >= 2 * CANVAS:  # by whole factors first: OpenCV does those fast
        luma = cv2.resize(luma, (width // (width // CANVAS), height // (height // CANVAS)), interpolation=cv2.INTER_AREA)
    small = cv2.resize(luma, (CANVAS, CANVAS), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (small - 16.0) / LIMITED


def _cells(canvas: np.ndarray) -> np.ndarray:
    """The detector's view: mean luma per cell minus its neighbourhood's (GRID * GRID values)."""
    cells = canvas.reshape(GRID, CELL, GRID, CELL).mean(axis=(1, 3))
    return (cells - cv2.blur(cells, (3, 3), borderType=cv2.BORDER_REFLECT)).reshape(-1)


def _robust(cells: np.ndarray) -> np.ndarray:
    """Cauchy influence: a cell on a strong edge says little about the mark, so it counts little."""
    return cells / (1.0 + (cells / ROBUST) ** 2)


def _per_group(values: np.ndarray) -> np.ndarray:
    """Mean of `values` over the cells of each group (the coded bits, then presence)."""
    return np.bincount(_GROUP, weights=values, minlength=_N_CODED + 1) / _GROUP_SIZE


def _signs(payload: Payload) -> np.ndarray:
    """+1/-1 per cell: the keyed chip, turned by the coded bit it carries (bit 0 -> +1)."""
    coded = np.append(1.0 - 2.0 * watermark._codeword(payload), 1.0)
    return _CHIP * coded[_GROUP]


def _field(amplitudes: np.ndarray, height: int, width: int) -> np.ndarray:
    """The cell grid stretched smoothly over the frame: soft bumps, no block outline to see."""
    grid = amplitudes.reshape(GRID, GRID).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=8)
def _gain(height: int, width: int) -> float:
    """How much of a cell's change the detector sees at this frame size (softened edges lose some)."""
    probe = _field(_CHIP * 10.0, height, width)
    return float((_cells(cv2.resize(probe, (CANVAS, CANVAS), interpolation=cv2.INTER_AREA)) * _CHIP).mean() / 10.0)


_LEVELS = np.linspace(STRENGTH, MAX_STRENGTH, 21)


def _amplitudes(canvas: np.ndarray, signs: np.ndarray, gain: float) -> tuple[np.ndarray, int]:
    """Per cell: how far to move it so each group carries MARGIN of evidence, within what its texture hides.

    Informed embedding: where the picture's own shading argues against a bit, that bit is
    pushed harder, but only in cells busy enough to hide it (a flat cell moves FLAT_LIMIT at
    most, a textured one up to MAX_STRENGTH). Also returns how many bits still read wrong.
    """
    texture = canvas.reshape(GRID, CELL, GRID, CELL).std(axis=(1, 3)).reshape(-1)
    limit = np.clip(FLAT_LIMIT + 0.5 * texture, FLAT_LIMIT, MAX_STRENGTH)
    pushed = np.minimum(_LEVELS[:, None], limit[None, :])  # (levels, cells)
    cells = _cells(canvas)
    reached = np.stack([_per_group(_robust(cells + gain * row * signs) * signs) for row in pushed])
    enough = reached >= MARGIN
    choice = np.where(enough.any(axis=0), np.argmax(enough, axis=0), len(_LEVELS) - 1)
    wrong = int((reached[choice, np.arange(_N_CODED + 1)][:_N_CODED] < 0).sum())
    return pushed[choice[_GROUP], np.arange(GRID * GRID)], wrong


def embed_frame(frame: np.ndarray, payload: Payload, presence_only: bool | None = None) -> np.ndarray:
    """`frame` (BGR or grey uint8) with the payload written into its brightness.

    A picture too busy to carry the payload (more bit errors than the code corrects, e.g. a
    sharp, high-contrast still) gets the presence pattern in every cell instead: it is still
    found as marked, and the payload is read from the soundtrack. `presence_only` forces the
    choice (FrameMarker makes it once per video); None decides from this frame.
    """
    height, width = frame.shape[:2]
    return _add_luma(frame, _mark_field(_canvas(frame), height, width, payload, presence_only))


def embed_luma(luma: np.ndarray, payload: Payload, presence_only: bool | None = None) -> np.ndarray:
    """A 4:2:0 frame's limited-range luma plane (uint8) with the payload written in: the mark
    `embed_frame` writes into the frame as BGR, as that frame's encoder would see it."""
    height, width = luma.shape
    field = _mark_field(_luma_canvas(luma), height, width, payload, presence_only)
    return _add_luma(luma, field * LIMITED)


def _mark_field(canvas: np.ndarray, height: int, width: int, payload: Payload, presence_only: bool | None):
    """The brightness change (grey levels) that marks a frame of this size and this canvas; made
    smaller than the frame where it is wide (the field is smooth), to be stretched as uint8."""
    gain = _gain(height, width)
    signs = _CHIP if presence_only else _signs(payload)
    amplitudes, wrong = _amplitudes(canvas, signs, gain)
    if presence_only is None and wrong > MAX_WRONG_BITS:
        signs = _CHIP
        amplitudes, _ = _amplitudes(canvas, signs, gain)
    scale = min(1.0, FIELD_WIDTH / width)
    return _field(signs * amplitudes, round(height * scale), round(width * scale))


def _add_luma(frame: np.ndarray, field: np.ndarray) -> np.ndarray:
    """`frame` + `field` (levels, rounded) in every channel, saturating: the same brightness change
    as adding in float, at uint8 speed."""
    return _add_steps(frame, _steps(field, frame.shape))


def _steps(field: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`field` (levels) as the two uint8 images a frame of `shape` is raised and lowered by. A field
    smaller than the frame (it is smooth: cells are 1/48 of the picture) is rounded first and
    stretched after, as uint8, which costs far less at 4K."""
    up = cv2.convertScaleAbs(np.maximum(field, 0.0))  # rounded half to even, saturated: as np.rint
    down = cv2.convertScaleAbs(np.minimum(field, 0.0))
    height, width = shape[:2]
    if up.shape != (height, width):
        up = cv2.resize(up, (width, height), interpolation=cv2.INTER_LINEAR)
        down = cv2.resize(down, (width, height), interpolation=cv2.INTER_LINEAR)
    if len(shape) == 3:
        up, down = cv2.merge([up] * shape[2]), cv2.merge([down] * shape[2])
    return up, down


def _add_steps(frame: np.ndarray, steps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    up, down = steps
    return cv2.subtract(cv2.add(frame, up), down)


REFRESH_FRAMES = 2  # FrameMarker remakes the field at least every this many frames (the picture moves)...
CUT = 8.0  # ... and at once where the coarse picture changed by more than this (mean luma levels): a cut


class FrameMarker:
    """Marks every frame of one video with one payload, choosing payload or presence-only on the first frame.

    One choice per video keeps the payload's evidence adding up across frames instead of mixing
    two layouts. The field a frame gets is made for a recent frame (REFRESH_FRAMES, CUT): the
    amplitudes follow the picture's coarse shading, which a few frames hardly move, and making the
    field is most of the mark's cost.
    """

    def __init__(self, payload: Payload):
        self.payload = payload
        self.presence_only: bool | None = None
        self._steps: tuple[np.ndarray, np.ndarray] | None = None  # the field in use, as _add_steps takes it
        self._made_for: tuple[tuple[int, ...], np.ndarray] | None = None  # (shape, _glance) it was made for
        self._age = 0  # frames marked with it

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """`frame` (BGR or grey uint8) marked."""
        return self._marked(frame, lambda: _canvas(frame), 1.0)

    def mark_luma(self, luma: np.ndarray) -> np.ndarray:
        """A 4:2:0 frame's limited-range luma plane marked (as embed_luma)."""
        return self._marked(luma, lambda: _luma_canvas(luma), LIMITED)

    def _marked(self, frame: np.ndarray, canvas, scale: float) -> np.ndarray:
        glance = _glance(frame)
        if self._stale(frame.shape, glance):
            height, width = frame.shape[:2]
            picture = canvas()
            if self.presence_only is None:
                _, wrong = _amplitudes(picture, _signs(self.payload), _gain(height, width))
                self.presence_only = wrong > MAX_WRONG_BITS
            field = _mark_field(picture, height, width, self.payload, self.presence_only)
            self._steps, self._made_for, self._age = _steps(field * scale, frame.shape), (frame.shape, glance), 0
        self._age += 1
        return _add_steps(frame, self._steps)

    def _stale(self, shape: tuple[int, ...], glance: np.ndarray) -> bool:
        if self._made_for is None or self._age >= REFRESH_FRAMES or shape != self._made_for[0]:
            return True
        return float(cv2.absdiff(glance, self._made_for[1]).mean()) > CUT


def _glance(frame: np.ndarray) -> np.ndarray:
    """The picture's coarse shading (GRID x GRID, from every 4th pixel): cheap enough for every frame."""
    sparse = frame[::4, ::4]
    return cv2.resize(sparse, (GRID, GRID), interpolation=cv2.INTER_AREA).astype(np.float32)


def _z(evidence: np.ndarray) -> float:
    """How far the cells lean toward their chips, in units of their own spread (unmarked: about N(0, 1))."""
    return float(evidence.sum() / np.sqrt((evidence**2).sum() + 1e-12))


def detect_frames(frames: Iterable[np.ndarray], max_frames: int = MAX_FRAMES) -> Detection:
    """Look for the mark in a sequence of frames (BGR or grey uint8, any size).

    `score` is the presence pattern's z-score (unmarked video: about N(0, 1)); the payload is
    decoded from the frames' average, where a moving picture's own shading cancels out.
    """
    total, count = np.zeros(GRID * GRID), 0
    for frame in frames:
        total += _cells(_canvas(frame))
        count += 1
        if count >= max_frames:
            break
    if count == 0:
        return Detection(False, 0.0, None, 0.0)
    evidence = _robust(total / count) * _CHIP
    presence = max(_z(evidence[_PRESENCE]), _z(evidence))  # the presence cells, or every cell (busy stills)
    soft = np.bincount(_GROUP, weights=evidence, minlength=_N_CODED + 1)[:_N_CODED]  # > 0: coded bit 0
    bits, agreement = watermark._decode(soft[None])
    payload = watermark._check(bits[0]) if agreement[0] >= MIN_AGREEMENT else None
    found = presence >= MIN_PRESENCE or (payload is not None and presence >= MIN_PRESENCE / 2)
    confidence = float(1.0 / (1.0 + np.exp(-1.5 * (presence - MIN_PRESENCE + 2.0))))
    return Detection(found, confidence, payload if found else None, presence)
