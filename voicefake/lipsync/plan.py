"""Stage 2 of lip-sync, plan: for each output frame, the input frame it shows, the mouth shape the
audio asks for, and how strongly to reshape the mouth there.

    plan = plan_mouth(track, samples, rate, fps, frames)  # exact phoneme `timings` when known
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicefake.lipsync.track import FaceTrack


@dataclass
class MouthPlan:
    """Per output frame: what it shows and what to do to its mouth."""

    order: list[int]  # the input frame each output frame shows (the clip plays back and forth if too short)
    opening: np.ndarray  # target mouth opening, 0 closed .. 1 wide open
    spread: np.ndarray  # -1 rounded ("oo") .. +1 spread ("ee")
    strength: np.ndarray  # 0..1, how far to move the mouth to the target (0: leave the frame as it is)
    source: str  # "phonemes" (exact timings) or "audio" (acoustic features)
    speech: bool  # False: the audio never asks the mouth to open
    mouths: np.ndarray | None = None  # the track's bank mouth to draw with (-1: the classic renderer); None: no bank

    def __len__(self) -> int:
        return len(self.order)


def plan_mouth(
    track: FaceTrack,
    samples: np.ndarray,
    rate: int,
    fps: float,
    frames: int,
    timings: Sequence | None = None,
) -> MouthPlan:
    """The plan for `frames` output frames at `fps` of the face in `track` speaking `samples`
    (driven by the phoneme `timings` when given, else by the sound itself)."""
    from voicefake.io.video import ping_pong
    from voicefake.lipsync.visemes import track_from_audio, track_from_phonemes

    strength = _strengths(track.found & ~track.occluded, track.yaw, fps)
    n_in = len(track)
    order = list(range(frames)) if frames <= n_in else ping_pong(n_in, frames)
    if timings:
        shape = track_from_phonemes(timings, fps, frames)
    else:
        shape = track_from_audio(samples, rate, fps, frames)
    plan = MouthPlan(order, shape.opening, shape.spread, strength[order], shape.source, shape.has_speech)
    if track.bank is not None:
        plan.mouths = _bank_mouths(track, plan)
    return plan


def _bank_mouths(track: FaceTrack, plan: MouthPlan) -> np.ndarray:
    """Per output frame, the bank mouth nearest the target shape, in runs of real consecutive mouths."""
    from voicefake.lipsync.bank import choose_mouths
    from voicefake.lipsync.mouth import target_shape
    from voicefake.lipsync.visemes import MAX_OPENING

    # The audio's widest opening is the speaker's own widest (most open less little): what he does
    # when he talks, instead of a wider mouth that the bank does not have.
    scale = min(1.0, track.bank.reach / MAX_OPENING)
    targets = np.full((len(plan), 68, 2), np.nan, np.float32)
    for k, i in enumerate(plan.order):
        if plan.strength[k] > 0:
            targets[k] = target_shape(track.landmarks[i], scale * float(plan.opening[k]), float(plan.spread[k]))
    return choose_mouths(track.bank, targets, own=track.landmarks[plan.order])


def _strengths(found: np.ndarray, yaw: np.ndarray, fps: float) -> np.ndarray:
    """How much to reshape each input frame's mouth, 0..1.

    Full on frontal faces; fading out between a three-quarter view and profile (where a 2-D mouth
    model is wrong); and ramped over ~0.12 s where the face appears or disappears, so the edit
    never pops in or out.
    """
    turned = np.clip((0.55 - np.abs(yaw)) / 0.25, 0.0, 1.0)
    ramp = max(1, int(round(0.12 * fps)))
    n = len(found)
    distance = np.full(n, ramp, dtype=np.float64)
    last = -(10**9)
    for i in range(n):  # distance to the nearest frame without a face, both ways
        if not found[i]:
            last = i
        distance[i] = min(distance[i], i - last)
    last = 10**9
    for i in range(n - 1, -1, -1):
        if not found[i]:
            last = i
        distance[i] = min(distance[i], last - i)
    fade = np.clip(distance / ramp, 0.0, 1.0) if not found.all() else np.ones(n)
    return np.where(found, turned * fade, 0.0)
