"""Stage 3 of lip-sync, render: reshape the mouth of one output frame as the plan says.

    renderer = make_renderer("classic", track)  # or "wav2lip", with a loaded model and the audio
    new = render_frame(frame, k, track, plan, renderer)
    box = render_region(k, track, plan)  # all that render_frame may change, or None
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from voicefake.lipsync.plan import MouthPlan
from voicefake.lipsync.track import FaceTrack

if TYPE_CHECKING:
    from voicefake.lipsync.bank import MouthBank
    from voicefake.lipsync.mouth import MouthRenderer
    from voicefake.lipsync.wav2lip import Wav2LipRenderer


@dataclass
class Renderer:
    """The mouth renderer of one job: the classic warp (with the video's own mouths, `bank`, where the
    plan chose one), or the Wav2Lip generator (`neural`)."""

    classic: MouthRenderer | None = None
    neural: Wav2LipRenderer | None = None
    bank: MouthBank | None = None
    bank_drawn: int = 0  # frames drawn with a mouth from the bank (it backs off where its mesh would fold)
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # frames render at once

    def count_bank_mouth(self) -> None:
        with self._count_lock:
            self.bank_drawn += 1

    @property
    def interior(self) -> str:
        """Where the classic renderer's mouth interior comes from ("harvested", "procedural"), or "-"."""
        return self.classic.interior.source if self.classic is not None else "-"


def make_renderer(
    engine: str,
    track: FaceTrack,
    *,
    model=None,
    samples: np.ndarray | None = None,
    rate: int = 0,
    fps: float = 0.0,
) -> Renderer:
    """"classic": paints open mouths with the track's interior; "wav2lip": the loaded `model`, which
    draws the mouth from the audio (`samples` at `rate`) itself, for video at `fps`."""
    if engine == "wav2lip":
        from voicefake.lipsync.wav2lip import Wav2LipRenderer

        return Renderer(neural=Wav2LipRenderer(model, samples, rate, fps))
    from voicefake.lipsync.mouth import MouthRenderer

    return Renderer(classic=MouthRenderer(track.interior), bank=track.bank)


REGION_MARGIN = 0.6  # inter-ocular distances around the face and the warp's ring: the jaw drops less


def render_region(k: int, track: FaceTrack, plan: MouthPlan) -> tuple[int, int, int, int] | None:
    """A box (x0, y0, x1, y1) around every pixel render_frame may change in output frame `k` (the
    face, Wav2Lip's box above the brows, the classic warp's ring below the chin), or None for none."""
    from voicefake.lipsync.face import JAW, MOUTH_LEFT, MOUTH_RIGHT, interocular
    from voicefake.lipsync.mouth import RING_SCALE

    if not float(plan.strength[k]) > 0:
        return None
    points = track.landmarks[plan.order[k]]
    centre = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) / 2
    reach = np.concatenate([points, centre + RING_SCALE.max() * (points[JAW] - centre)])
    margin = REGION_MARGIN * interocular(points) + 4
    (x0, y0), (x1, y1) = np.floor(reach.min(axis=0) - margin), np.ceil(reach.max(axis=0) + margin)
    return int(x0), int(y0), int(x1), int(y1)


def render_frame(
    frame: np.ndarray, k: int, track: FaceTrack, plan: MouthPlan, renderer: Renderer, origin=(0, 0)
) -> np.ndarray:
    """Output frame `k`: `frame` (the input frame the plan shows there) with its mouth reshaped, or
    `frame` itself where the plan leaves it alone (no face, mouth covered, face turned away).
    `frame` may be the part of it at `origin` (x, y) that holds render_region."""
    strength = float(plan.strength[k])
    if not strength > 0:
        return frame
    points = track.landmarks[plan.order[k]] - np.asarray(origin, dtype=np.float32)
    if renderer.neural is not None:
        return renderer.neural.render(frame, points, k, strength)
    if renderer.bank is not None and plan.mouths is not None and plan.mouths[k] >= 0:
        drawn = renderer.bank.render(frame, points, int(plan.mouths[k]), strength)
        if drawn is not None:
            renderer.count_bank_mouth()
            return drawn
    return renderer.classic.render(frame, points, float(plan.opening[k]), float(plan.spread[k]), strength)
