"""Stage 1 of lip-sync, track: follow one face through the frames, smooth its landmarks over time,
and note which way it looks, what covers its mouth, and (for the classic renderer) the best view
of its open mouth.

    track = track_face(frames, fps)  # frames: BGR uint8 arrays

`FaceFollower` does the same one frame at a time, for a video streamed from disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voicefake.errors import VoicefakeError

GLANCE_FACE_PX = 120.0  # face width the detector sees when glancing past the end of the audio

if TYPE_CHECKING:
    from voicefake.lipsync.bank import MouthBank
    from voicefake.lipsync.mouth import MouthInterior


@dataclass
class FaceTrack:
    """The face in each input frame, smoothed over time."""

    landmarks: np.ndarray  # (frames, 68, 2) image coordinates; NaN where there is no face
    found: np.ndarray  # bool per frame: a face is there
    yaw: np.ndarray  # per frame: 0 frontal, about +-0.5 at three-quarter view, +-1 in profile (0: no face)
    occluded: np.ndarray  # bool per frame: something (a hand) is in front of the mouth
    interior: MouthInterior | None = None  # the MouthInterior to paint open mouths with (None unless harvested)
    bank: MouthBank | None = None  # the video's own mouths (None: a photo, too little talking, not harvested)

    def __len__(self) -> int:
        return len(self.found)

    def scaled(self, factor: tuple[float, float]) -> FaceTrack:
        """The track of the same video at a size `factor` (x, y) times this one's (pixel centres kept)."""
        if factor == (1.0, 1.0):
            return self
        from voicefake.lipsync.face import scaled_points

        bank = self.bank.scaled(factor) if self.bank is not None else None
        return FaceTrack(scaled_points(self.landmarks, factor), self.found, self.yaw, self.occluded, self.interior, bank)


def track_face(
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    face_index: int | None = None,
    still: bool = False,
    harvest: bool = False,
) -> FaceTrack:
    """The track of the largest face (or the `face_index`-th from the left) through `frames`.

    `harvest`: also find a mouth interior for the classic renderer (FaceTrack.interior) and, in a
    video, keep its own mouths (FaceTrack.bank).
    """
    follower = FaceFollower(face_index, still=still, harvest=harvest)
    for frame in frames:
        follower.add(frame)
    return follower.finish(fps)


class FaceFollower:
    """Follows one face frame by frame: `add(frame)` for each, then `finish(fps)` for the FaceTrack."""

    def __init__(self, face_index: int | None = None, still: bool = False, harvest: bool = False,
                 to_full: tuple[float, float] = (1.0, 1.0)):
        from voicefake.lipsync.bank import MouthBank
        from voicefake.lipsync.face import FaceTracker
        from voicefake.lipsync.mouth import MouthInterior

        self.tracker = FaceTracker(face_index, still=still)
        self.harvest = harvest  # look for the best open mouth (the classic renderer paints with it)
        self.raw: list[np.ndarray] = []  # landmarks per frame as found, NaN without a face
        self.occlusion: dict[int, float] = {}  # frame -> occlusion score, where there is a face
        self.interior, self.widest = None, MouthInterior.MIN_OPENING
        self.fallback = None  # a procedural interior, from the first face seen
        self.bank = MouthBank() if harvest and not still else None  # a photo has one mouth: nothing to choose
        self.to_full = to_full  # frames given are shrunk by this (x, y) from the video's size
        self._nan = np.full((68, 2), np.nan, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def faces(self) -> int:
        """How many frames so far show the face."""
        return sum(not np.isnan(points[0, 0]) for points in self.raw)

    def add(self, frame: np.ndarray, full=None) -> None:
        """Follow the face into the next frame; `full`: the frame at the video's size when `frame` is
        a shrunk copy (a Yuv420), where the mouth bank cuts its mouths (a shrunk mouth would be blurred)."""
        from voicefake.lipsync.mouth import MouthInterior, refine_inner_lips
        from voicefake.lipsync.occlusion import occlusion_score

        points = self.tracker(frame)
        if points is None:
            self.raw.append(self._nan)
            return
        points = refine_inner_lips(frame, points)
        self.raw.append(points)
        self.occlusion[len(self.raw) - 1] = occlusion_score(frame, points)
        if self.harvest:
            if self.fallback is None:
                self.fallback = MouthInterior.procedural(frame, points)
            self.interior, self.widest = _better_interior(frame, points, self.interior, self.widest)
        if self.bank is not None and (full is not None or self.to_full == (1.0, 1.0)):
            # a shrunk frame's mouth only with the full frame to cut it from: a shrunk one is blurred
            self.bank.add(len(self.raw) - 1, frame, points, full, self.to_full)

    def glance(self, frame: np.ndarray) -> None:
        """A frame that will not be shown (past the end of the audio): only a wider open mouth of the
        face followed (the one nearest where it was last seen) counts."""
        from voicefake.lipsync.face import detect_faces
        from voicefake.lipsync.mouth import refine_inner_lips

        # the face followed is known to be about last_size wide: detect on a copy where it is ~120 px
        faces = detect_faces(frame, upsample=0, scale=min(1.0, GLANCE_FACE_PX / max(self.tracker.last_size, 1.0)))
        if faces:
            points = min(faces, key=lambda p: np.hypot(*(p.mean(axis=0) - self.tracker.last_center)))
            self.interior, self.widest = _better_interior(
                frame, refine_inner_lips(frame, points), self.interior, self.widest
            )

    def finish(self, fps: float) -> FaceTrack:
        """The landmarks smoothed over time, the yaw and the covered frames."""
        from voicefake.lipsync.face import smooth_track, yaw_ratio

        if not self.raw:
            raise VoicefakeError("no frames to follow a face in")
        landmarks = smooth_track(np.stack(self.raw), fps)
        found = ~np.isnan(landmarks[:, 0, 0])
        yaw = np.array([yaw_ratio(p) if ok else 0.0 for p, ok in zip(landmarks, found)])
        occluded = _occluded(self.occlusion, len(self.raw))
        interior = (self.interior or self.fallback) if self.harvest else None
        bank = self.bank.finish(landmarks, found, occluded, yaw) if self.bank is not None else None
        return FaceTrack(landmarks, found, yaw, occluded, interior, bank)


def _better_interior(frame, points, interior, widest):
    """Keep the mouth interior of the frame with the widest real open mouth seen so far."""
    from voicefake.lipsync.face import mouth_opening, yaw_ratio
    from voicefake.lipsync.mouth import MouthInterior
    from voicefake.lipsync.occlusion import occlusion_score

    opening = mouth_opening(points)
    if opening > widest and abs(yaw_ratio(points)) < 0.25 and occlusion_score(frame, points) < 0.9:
        candidate = MouthInterior.harvest(frame, points)
        if candidate.looks_like_a_mouth():
            return candidate, opening
    return interior, widest


def _occluded(scores: dict[int, float], n: int) -> np.ndarray:
    """Frames whose mouth is covered: edge orientation far above this video's clear frames (its lower
    quartile, so a beard or a mustache, present throughout, is not taken for a hand), over 5 frames."""
    values = np.full(n, np.nan)
    for i, v in scores.items():
        values[i] = v
    known = ~np.isnan(values)
    if known.sum() < 2:
        return np.zeros(n, dtype=bool)
    threshold = max(1.0, 1.6 * float(np.percentile(values[known], 25)))
    padded = np.pad(np.where(known, values, 0.0), 2, mode="edge")
    smooth = np.array([np.median(padded[i : i + 5]) for i in range(n)])
    return known & (smooth > threshold)
