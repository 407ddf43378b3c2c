"""Stage 3 of lip-sync, render: reshape the mouth of one output frame as the plan says.

    renderer = make_renderer("classic", track)  # or "wav2lip", with a loaded model and the audio
    new = render_frame(frame, k, track, plan, renderer)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voicefake.lipsync.plan import MouthPlan
from voicefake.lipsync.track import FaceTrack

if TYPE_CHECKING:
    from voicefake.lipsync.mouth import MouthRenderer
    from voicefake.lipsync.wav2lip import Wav2LipRenderer


@dataclass
class Renderer:
    """The mouth renderer of one job: the classic warp, or the Wav2Lip generator (`neural`)."""

    classic: MouthRenderer | None = None
    neural: Wav2LipRenderer | None = None

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

    return Renderer(classic=MouthRenderer(track.interior))


def render_frame(frame: np.ndarray, k: int, track: FaceTrack, plan: MouthPlan, renderer: Renderer) -> np.ndarray:
    """Output frame `k`: `frame` (the input frame the plan shows there) with its mouth reshaped, or
    `frame` itself where the plan leaves it alone (no face, mouth covered, face turned away)."""
    strength = float(plan.strength[k])
    if not strength > 0:
        return frame
    points = track.landmarks[plan.order[k]]
    if renderer.neural is not None:
        return renderer.neural.render(frame, points, k, strength)
    return renderer.classic.render(frame, points, float(plan.opening[k]), float(plan.spread[k]), strength)
