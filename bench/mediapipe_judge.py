"""Mouth opening per frame by MediaPipe Face Mesh: a second landmark judge, independent of dlib.

Runs under its own venv (mediapipe pins numpy<2 and protobuf<5, so it stays out of the project's):

    python3.11 -m venv bench/.venv-mediapipe
    bench/.venv-mediapipe/bin/pip install mediapipe==0.10.21 opencv-python-headless

    bench/.venv-mediapipe/bin/python bench/mediapipe_judge.py VIDEO_OR_IMAGE RESULT.json [MAX_FRAMES]

Every frame is looked at on its own (static image mode: no tracking from one frame to the next).
The opening is the mean gap between the inner lips at three points across the middle of the mouth
(Face Mesh points 82-87, 13-14, 312-317) over the distance between the outer eye corners (33-263);
null where no face is found. RESULT.json: {"frames": N, "opening": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")  # quieter MediaPipe / TF Lite start-up
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

INNER_LIPS = ((82, 87), (13, 14), (312, 317))  # upper, lower inner-lip points, left to right
EYE_CORNERS = (33, 263)  # outer corners of the two eyes


def frames(path: Path, limit: int):
    """The first `limit` BGR frames of a video, or the one frame of an image."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f"cannot read {path}")
        yield image
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {path}")
    try:
        for _ in range(limit):
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def opening(mesh, frame: np.ndarray) -> float | None:
    """Inner-lip gap over outer-eye-corner distance on one BGR frame; None without a face."""
    found = mesh.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).multi_face_landmarks
    if not found:
        return None
    h, w = frame.shape[:2]
    points = np.array([(p.x * w, p.y * h) for p in found[0].landmark])
    gaps = [np.hypot(*(points[a] - points[b])) for a, b in INNER_LIPS]
    scale = np.hypot(*(points[EYE_CORNERS[0]] - points[EYE_CORNERS[1]]))
    return float(np.mean(gaps) / scale) if scale > 1e-6 else None


def main() -> None:
    if len(sys.argv) not in (3, 4):
        raise SystemExit(f"usage: {sys.argv[0]} VIDEO_OR_IMAGE RESULT.json [MAX_FRAMES]")
    import mediapipe as mp

    source, result = Path(sys.argv[1]), Path(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) == 4 else sys.maxsize
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        values = [opening(mesh, frame) for frame in frames(source, limit)]
    result.write_text(json.dumps({"frames": len(values), "opening": values}))


if __name__ == "__main__":
    main()
