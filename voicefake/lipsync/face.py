"""Faces: find them, follow one through a video, 68 landmarks per frame, smoothed over time.

dlib's HOG face detector and 68-point shape predictor do the work; their weights ship inside
the PyPI packages dlib-bin and face-recognition-models, so nothing is downloaded. The 68-point
model was trained on iBUG 300-W, whose terms allow research and non-commercial use only.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from voicefake.errors import VoicefakeError

# Landmark index groups of the 68-point (iBUG 300-W) layout.
JAW = list(range(17))
NOSE = list(range(27, 36))
RIGHT_EYE = list(range(36, 42))  # the subject's right eye, on the image's left
LEFT_EYE = list(range(42, 48))
MOUTH_OUTER = list(range(48, 60))
MOUTH_INNER = list(range(60, 68))
LIPS = MOUTH_OUTER + MOUTH_INNER
MOUTH_LEFT, MOUTH_RIGHT = 48, 54  # the outer corners (image left and right)
INNER_LEFT, INNER_RIGHT = 60, 64  # the inner corners
UPPER_OUTER = list(range(48, 55))  # corner to corner along the upper lip's outer edge
LOWER_OUTER = [48, 59, 58, 57, 56, 55, 54]
UPPER_INNER = list(range(60, 65))
LOWER_INNER = [60, 67, 66, 65, 64]
# The three inner columns between the corners, upper and lower points facing each other, with the
# outer lip points above and below them: (61, 67, 50, 58), (62, 66, 51, 57), (63, 65, 52, 56).
INNER_COLUMNS = list(zip(UPPER_INNER[1:4], LOWER_INNER[1:4], UPPER_OUTER[2:5], LOWER_OUTER[2:5]))
UPPER_LIP = [*UPPER_OUTER[1:6], *UPPER_INNER[1:4]]  # every upper-lip point but the corners
LOWER_LIP = [*LOWER_OUTER[5:0:-1], *LOWER_INNER[3:0:-1]]  # every lower-lip point but the corners
LOWER_LIP_CENTRE = 66  # inner edge, middle

# A frontal face in inter-ocular units: eye centres at (-0.5, 0) and (0.5, 0), y pointing down.
# Drawn by hand from average proportions; the renderer uses it only to fix its mesh topology,
# the tests use it to draw a synthetic face.
# fmt: off
_JAW = [(1.08 * np.cos(a), 0.08 + 1.62 * np.sin(a) ** 1.25) for a in np.linspace(np.pi, 0, 17)]
TEMPLATE_68 = np.array(
    [
        *_JAW,
        (-0.95, -0.22), (-0.78, -0.33), (-0.58, -0.36), (-0.40, -0.33), (-0.22, -0.26),  # right brow
        (0.22, -0.26), (0.40, -0.33), (0.58, -0.36), (0.78, -0.33), (0.95, -0.22),  # left brow
        (0.0, 0.0), (0.0, 0.18), (0.0, 0.36), (0.0, 0.55),  # nose bridge down to the tip
        (-0.20, 0.66), (-0.10, 0.70), (0.0, 0.72), (0.10, 0.70), (0.20, 0.66),  # nostrils
        (-0.72, 0.02), (-0.58, -0.06), (-0.42, -0.06), (-0.27, 0.02), (-0.42, 0.06), (-0.58, 0.06),
        (0.27, 0.02), (0.42, -0.06), (0.58, -0.06), (0.72, 0.02), (0.58, 0.06), (0.42, 0.06),
        (-0.42, 0.98), (-0.27, 0.91), (-0.11, 0.87), (0.0, 0.89), (0.11, 0.87), (0.27, 0.91),  # outer lips
        (0.42, 0.98), (0.28, 1.07), (0.13, 1.12), (0.0, 1.13), (-0.13, 1.12), (-0.28, 1.07),
        (-0.36, 0.98), (-0.12, 0.95), (0.0, 0.96), (0.12, 0.95),  # inner lips
        (0.36, 0.98), (0.12, 1.01), (0.0, 1.02), (-0.12, 1.01),
    ],
    dtype=np.float32,
)
# fmt: on


def model_file(name: str) -> str:
    """Path of a dlib model file shipped in the face-recognition-models package."""
    spec = importlib.util.find_spec("face_recognition_models")  # located, not imported: it imports pkg_resources
    if spec is None or not spec.submodule_search_locations:
        raise VoicefakeError("the face landmark model is not installed: run `pip install face-recognition-models`")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise VoicefakeError(f"the face landmark model {path} is missing: reinstall face-recognition-models")
    return str(path)


_models: dict[str, object] = {}
_models_lock = threading.Lock()


def _dlib_models():
    """(detector, shape predictor), loaded once per process."""
    with _models_lock:
        if not _models:
            try:
                import dlib
            except ImportError as error:
                raise VoicefakeError("dlib is not installed: run `pip install dlib-bin`") from error
            _models["detector"] = dlib.get_frontal_face_detector()
            _models["predictor"] = dlib.shape_predictor(model_file("shape_predictor_68_face_landmarks.dat"))
            _models["rect"] = dlib.rectangle
    return _models["detector"], _models["predictor"], _models["rect"]


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


MIN_SCORE = 0.1  # detector margin for a new face: just above 0, false faces in clothing turned up


def _detect(
    gray: np.ndarray, scale: float, upsample: int = 0, threshold: float = MIN_SCORE
) -> list[tuple[np.ndarray, float]]:
    """Face boxes (left, top, right, bottom) in `gray`'s coordinates, with detector scores."""
    import cv2

    detector, _, _ = _dlib_models()
    small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rects, scores, _ = detector.run(np.ascontiguousarray(small), upsample, threshold)
    return [
        (np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float32) / scale, float(s))
        for r, s in zip(rects, scores)
    ]


def _landmarks(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    _, predictor, rect = _dlib_models()
    left, top, right, bottom = (int(round(v)) for v in box)
    shape = predictor(gray, rect(left, top, right - 1, bottom - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_centers(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eyes."""
    return points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)


def scaled_points(points: np.ndarray, factor: tuple[float, float]) -> np.ndarray:
    """Landmarks found in a copy of a picture, in the picture `factor` (x, y) times that size (pixel centres kept)."""
    return ((points + 0.5) * np.asarray(factor, dtype=np.float32) - 0.5).astype(np.float32)


def interocular(points: np.ndarray) -> float:
    """Distance between the eye centres in pixels: the face's scale."""
    left, right = eye_centers(points)
    return float(np.hypot(*(right - left)))


def mouth_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Origin (mouth centre), x axis (along the eyes), y axis (down the face), inter-ocular scale."""
    left, right = eye_centers(points)
    ex = (right - left) / max(float(np.hypot(*(right - left))), 1e-6)
    ey = np.array([-ex[1], ex[0]], dtype=np.float32)
    origin = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) / 2
    return origin, ex.astype(np.float32), ey, interocular(points)


def to_local(p: np.ndarray, frame) -> np.ndarray:
    """Image points -> mouth-frame coordinates (inter-ocular units, x along the eyes, y down)."""
    origin, ex, ey, scale = frame
    d = p - origin
    return np.stack([d @ ex, d @ ey], axis=-1) / scale


def to_image(q: np.ndarray, frame) -> np.ndarray:
    """Mouth-frame coordinates -> image points (the inverse of to_local)."""
    origin, ex, ey, scale = frame
    return (origin + scale * (q[..., :1] * ex + q[..., 1:2] * ey)).astype(np.float32)


def contour(local: np.ndarray, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """x (increasing) and y of a lip contour in mouth-frame coordinates, for interpolation along the mouth."""
    xs, ys = local[indices, 0], local[indices, 1]
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


def mouth_opening(points: np.ndarray) -> float:
    """Gap between the inner lips at the middle of the mouth, in inter-ocular units (0 = closed)."""
    gaps = [np.hypot(*(points[a] - points[b])) for a, b in ((61, 67), (62, 66), (63, 65))]
    return float(np.mean(gaps)) / max(interocular(points), 1e-6)


def yaw_ratio(points: np.ndarray) -> float:
    """How far the head is turned: 0 frontal, about +-0.5 at three-quarter view, +-1 in profile."""
    left = np.hypot(*(points[30] - points[2]))
    right = np.hypot(*(points[30] - points[14]))
    return float((left - right) / max(left + right, 1e-6))


def detect_faces(image: np.ndarray, upsample: int = 1, scale: float = 1.0) -> list[np.ndarray]:
    """68 landmarks (x, y) of every face in a BGR or grey image, largest face first. The detector
    runs on the image resized by `scale` (< 1 is faster and finds only larger faces); the landmarks
    always come from the full-resolution image."""
    gray = _gray(image)
    found = []
    for box, _ in _detect(gray, scale, upsample):
        found.append((float((box[2] - box[0]) * (box[3] - box[1])), _landmarks(gray, box)))
    return [points for _, points in sorted(found, key=lambda item: -item[0])]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Follows one face through a video, frame by frame: `tracker(frame)` gives its 68 landmarks or None.

    Once a face is found it is re-detected only in a small window around where it was (cheap at any
    resolution); the whole frame is searched again only when it is lost. `face_index` None follows
    the largest face, N the N-th face from the left.
    """

    COARSE_SIDE = 480  # the whole-frame search first runs on frames shrunk to this size (faces >= ~110 px at 640 wide)
    FINE_SIDE = 1280

    def __init__(self, face_index: int | None = None, still: bool = False):
        self.face_index = face_index
        self.still = still  # a photo: search as thoroughly as it takes
        self.box: np.ndarray | None = None
        self.last_center: np.ndarray | None = None
        self.last_size = 0.0  # width of the last box, pixels
        self.frames = 0
        self.lost_for = 0
        self.most_faces = 0  # the most faces seen in one frame

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        self.frames += 1
        box = self._follow(frame) if self.box is not None else None
        if box is None:
            box = self._search(frame)
        if box is None:
            self.box = None
            self.lost_for += 1
            return None
        self.lost_for = 0
        self.box = box
        self.last_center = (box[:2] + box[2:]) / 2
        self.last_size = float(box[2] - box[0])
        return self._points(frame, box)

    def _points(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        # Landmarks come from a full-resolution crop around the box, converted to grey there only.
        h, w = frame.shape[:2]
        size = box[2] - box[0]
        x0, y0 = int(max(0, box[0] - size)), int(max(0, box[1] - size))
        x1, y1 = int(min(w, box[2] + size)), int(min(h, box[3] + size))
        crop = _gray(frame[y0:y1, x0:x1])
        offset = np.array([x0, y0, x0, y0], dtype=np.float32)
        return _landmarks(crop, box - offset) + np.array([x0, y0], dtype=np.float32)

    def _follow(self, frame: np.ndarray) -> np.ndarray | None:
        """Re-detect the face near its last box, in a window resized so the face is ~120 px wide."""
        h, w = frame.shape[:2]
        box = self.box
        size = box[2] - box[0]
        x0, y0 = int(max(0, box[0] - 0.6 * size)), int(max(0, box[1] - 0.6 * size))
        x1, y1 = int(min(w, box[2] + 0.6 * size)), int(min(h, box[3] + 0.6 * size))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        scale = float(np.clip(100.0 / size, 0.05, 2.0))
        candidates = _detect(_gray(frame[y0:y1, x0:x1]), scale, threshold=-0.2)  # a face known to be there
        offset = np.array([x0, y0, x0, y0], dtype=np.float32)
        best = max(((_iou(b + offset, box), b + offset) for b, _ in candidates), default=None, key=lambda c: c[0])
        return best[1] if best is not None and best[0] > 0.3 else None

    def _search(self, frame: np.ndarray) -> np.ndarray | None:
        """Search the whole frame: coarse every frame, finer levels now and then (always for a photo)."""
        gray = _gray(frame)
        side = max(gray.shape)
        levels = [(min(1.0, self.COARSE_SIDE / side), 0)]
        thorough = self.still or self.lost_for % 10 == 0
        if thorough:
            fine = min(1.0, self.FINE_SIDE / side)
            levels += [(fine, 0), (fine, 1)] if fine > levels[0][0] else [(fine, 1)]
        for scale, upsample in levels:
            found = _detect(gray, scale, upsample)
            if found:
                return self._choose([box for box, _ in found])
        return None

    def _choose(self, boxes: list[np.ndarray]) -> np.ndarray | None:
        self.most_faces = max(self.most_faces, len(boxes))
        if self.last_center is not None:  # reacquire the face we were following: the nearest one
            return min(boxes, key=lambda b: np.hypot(*((b[:2] + b[2:]) / 2 - self.last_center)))
        if self.face_index is None:
            return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        by_left = sorted(boxes, key=lambda b: b[0])
        return by_left[self.face_index] if self.face_index < len(by_left) else None


def smooth_track(points: np.ndarray, fps: float) -> np.ndarray:
    """Remove landmark jitter without lag: (N, 68, 2) with NaN where no face -> smoothed copy.

    Gaps of a few frames between two close positions are bridged. Within each run of frames the
    filter is zero-phase and adapts to motion: strong (Gaussian) while the head is still, where
    jitter shows most, light (local quadratic fit) while it moves, so the mesh never trails the face.
    """
    points = np.array(points, dtype=np.float32, copy=True)
    n = len(points)
    found = ~np.isnan(points[:, 0, 0])
    _bridge_gaps(points, found, max_gap=max(2, int(round(fps / 10))))
    found = ~np.isnan(points[:, 0, 0])
    scale = max(fps / 25.0, 0.5)
    out = points.copy()
    start = 0
    while start < n:
        if not found[start]:
            start += 1
            continue
        end = start
        while end < n and found[end]:
            end += 1
        out[start:end] = _smooth_run(points[start:end], scale)
        start = end
    return out


def _bridge_gaps(points: np.ndarray, found: np.ndarray, max_gap: int) -> None:
    indices = np.flatnonzero(found)
    for a, b in zip(indices[:-1], indices[1:]):
        if 1 < b - a <= max_gap + 1:
            jump = np.abs(points[b] - points[a]).max() / max(interocular(points[a]), 1e-6)
            if jump < 0.25:
                for i in range(a + 1, b):
                    t = (i - a) / (b - a)
                    points[i] = (1 - t) * points[a] + t * points[b]


def _smooth_run(run: np.ndarray, scale: float) -> np.ndarray:
    n = len(run)
    if n < 3:
        return run
    flat = run.reshape(n, -1).astype(np.float64)
    strong = _gaussian_filter(flat, 2.5 * scale)
    light = _local_quadratic(flat, max(2, int(round(3 * scale))))
    eyes = np.stack([np.concatenate(eye_centers(p)) for p in run])
    iod = np.array([interocular(p) for p in run])
    speed = np.zeros(n)
    speed[1:] = np.abs(np.diff(eyes, axis=0)).max(axis=1) / np.maximum(iod[1:], 1e-6)
    speed = _gaussian_filter(speed[:, None], 1.5 * scale)[:, 0] * scale
    moving = np.clip(speed / 0.015, 0.0, 1.0)[:, None]
    return (moving * light + (1 - moving) * strong).reshape(run.shape).astype(np.float32)


def _gaussian_filter(x: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian along axis 0, renormalised at the ends (no pull toward zero)."""
    radius = max(1, int(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    n = len(x)
    total = np.zeros_like(x)
    norm = np.zeros((n, 1))
    for o, w in zip(offsets, weights):
        lo, hi = max(0, -o), min(n, n - o)
        if lo >= hi:  # the offset reaches past a run shorter than the kernel: no overlap
            continue
        total[lo:hi] += w * x[lo + o : hi + o]
        norm[lo:hi] += w
    return total / norm


def _local_quadratic(x: np.ndarray, radius: int) -> np.ndarray:
    """Savitzky-Golay style: value of a quadratic fitted over +-radius frames (shorter at the ends)."""
    n = len(x)
    out = np.empty_like(x)

    def fit_weights(t: np.ndarray) -> np.ndarray:  # weights giving the fitted value at t = 0
        degree = 2 if len(t) >= 5 else 1
        return np.linalg.pinv(np.vander(t, degree + 1, increasing=True).astype(np.float64))[0]

    if n > 2 * radius:
        weights = fit_weights(np.arange(-radius, radius + 1))
        out[radius : n - radius] = sum(w * x[k : n - 2 * radius + k] for k, w in enumerate(weights))
    for i in [*range(min(radius, n)), *range(max(radius, n - radius), n)]:
        lo, hi = max(0, i - radius), min(n, i + radius + 1)
        out[i] = fit_weights(np.arange(lo, hi) - i) @ x[lo:hi]
    return out
