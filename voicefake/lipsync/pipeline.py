"""Lip-sync: make the mouth in a video (or a photo) follow new audio.

    report = voicefake.lipsync("face.mp4", "speech.wav", "out.mp4")
    report = voicefake.speak_video("face.png", "Hello there.", "out.mp4", voice="joe")

Two passes over the face video, streamed (memory does not grow with its length): the first
follows the face and records its landmarks and the best view of its open mouth; the landmarks
are then smoothed over time; the second pass reshapes each frame's mouth to the audio and
encodes H.264 + AAC into a file that appears only when complete.

The stages, each testable on arrays alone: track (track.py: frames -> FaceTrack), plan (plan.py:
audio + track -> MouthPlan), render (render.py: one frame -> its new frame); and here, the inputs
and the write loop (label, watermark, FRAME_FILTERS, progress, report).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from voicefake.config import DEFAULT_VOICE, pretrained_dirs
from voicefake.errors import VoicefakeError
from voicefake.lipsync.plan import MouthPlan, plan_mouth
from voicefake.lipsync.render import make_renderer, render_frame, render_region
from voicefake.lipsync.track import FaceFollower, FaceTrack

ENGINES = ("auto", "classic", "wav2lip")
LABEL_TEXT = "AI-generated"
TRACK_SIDE = 1280  # a larger video is followed on a copy shrunk to fit this; the landmarks are scaled back
SHAPING_THREADS = 2  # output frames whose mouths are made at once (OpenCV and NumPy work without the GIL)

# Every output frame passes through these, in order, after the visible label and the invisible
# watermark, in mark_frame(). Each takes (frame BGR uint8, index, fps) -> frame.
FRAME_FILTERS: list[Callable[[np.ndarray, int, float], np.ndarray]] = []


@dataclass
class LipsyncReport:
    """What `lipsync` did."""

    output: Path
    engine: str  # "classic" or "wav2lip"
    width: int
    height: int
    fps: float
    frames: int  # output frames
    duration: float  # seconds of audio (= video)
    face_frames: int  # output frames whose mouth was reshaped
    no_face_frames: int  # output frames passed through: no face found
    turned_frames: int  # output frames passed through or softened: face turned away (profile)
    covered_frames: int  # output frames passed through: something (a hand) in front of the mouth
    mouth_source: str  # "phonemes" (exact timings), "audio" (acoustic features) or "mel spectrogram" (wav2lip)
    mouth_interior: str  # "harvested" (from the clip's own open mouth), "procedural" or "-"
    bank_frames: int  # output frames whose mouth is one of the video's own (the mouth bank), not painted
    speech: bool  # False: the audio never asks the mouth to open, so it stays closed
    seconds: float  # wall-clock time
    opening: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # target mouth opening per frame
    synced: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))  # which frames were reshaped

    def summary(self) -> str:
        """One line for the CLI."""
        parts = [
            f"wrote {self.output} ({self.width}x{self.height}, {self.fps:.3g} fps, "
            f"{self.frames} frames, {self.duration:.1f} s)",
            f"engine {self.engine}",
            f"mouth from {self.mouth_source}",
            f"{self.face_frames} frames lip-synced",
        ]
        if self.no_face_frames:
            parts.append(f"{self.no_face_frames} without a face left as they were")
        if self.covered_frames:
            parts.append(f"{self.covered_frames} with the mouth covered left as they were")
        if self.bank_frames:
            parts.append(f"{self.bank_frames} with a mouth from the video itself")
        if self.turned_frames:
            parts.append(f"{self.turned_frames} with the face turned away (softened)")
        if not self.speech:
            parts.append("no speech in the audio: mouth kept closed")
        parts.append(f"{self.frames / max(self.seconds, 1e-6):.1f} frames/s")
        return "; ".join(parts)


def label_layout(height: int, width: int, text: str = LABEL_TEXT) -> tuple[tuple[int, int, int, int], tuple, float, int]:
    """Where the label goes on a picture of this size: its box (x0, y0, x1, y1), the text's origin,
    font scale and thickness. The text lies inside the box."""
    import cv2

    scale = max(0.35, min(height, width) / 900.0)
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(3, int(round(th * 0.45)))
    x1, y1 = width - pad * 2, height - pad * 2
    x0, y0 = max(0, x1 - tw - 2 * pad), max(0, y1 - th - base - 2 * pad)
    return (x0, y0, x1, y1), (x0 + pad, y1 - pad - base // 2), scale, thickness


def draw_label(frame: np.ndarray, text: str = LABEL_TEXT, picture=None, origin=(0, 0)) -> np.ndarray:
    """The visible disclosure: `text` in the bottom-right corner, on a translucent dark box, in place.
    `frame` may be the part at `origin` (x, y) of a larger picture of size `picture` (height, width)."""
    import cv2

    (x0, y0, x1, y1), (tx, ty), scale, thickness = label_layout(*(picture or frame.shape[:2]), text)
    ox, oy = origin
    box = frame[max(0, y0 - oy) : y1 - oy, max(0, x0 - ox) : x1 - ox]
    box[:] = (box.astype(np.float32) * 0.45).astype(np.uint8)
    cv2.putText(
        frame, text, (tx - ox, ty - oy), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA
    )
    return frame


def shape_frame(frame, index: int, render, region, label: bool = True):
    """Output frame `index`, first half: its mouth (`render`, render_frame) and the visible label, as
    a new frame (`frame` is left as it was). A Yuv420 `frame` (plain 4:2:0 video, no FRAME_FILTERS)
    is converted only where it changes: the mouth (`region`, render_region) and the label, on BGR
    crops. Frames are independent here, so _write shapes several at once."""
    from voicefake.io.yuv import Yuv420

    if isinstance(frame, Yuv420):
        out = frame.copy()
        render_yuv(out, index, render, region)
        if label:
            label_yuv(out)
        return out
    frame = render(frame, index)
    return draw_label(frame.copy()) if label else frame


def mark_frame(frame, index: int, fps: float, mark):
    """Output frame `index`, second half: the shaped frame with the invisible `mark` (a
    videomark.FrameMarker: always; --no-label removes only the label) and FRAME_FILTERS, in output
    order (the marker reuses a recent frame's field). A Yuv420 `frame` is marked in its luma plane,
    in place (shape_frame made it)."""
    from voicefake.io.yuv import Yuv420

    if isinstance(frame, Yuv420):
        frame.y[:] = mark.mark_luma(frame.y)
        return frame
    frame = mark(frame)
    for apply in FRAME_FILTERS:
        frame = apply(frame, index, fps)
    return frame


def render_yuv(frame, index: int, render, region) -> None:
    """Reshape the mouth of a Yuv420 `frame`, in place: `render(bgr, index, origin=...)` (render_frame)
    on the BGR crop of `region(index)` (render_region; None: nothing to render)."""
    from voicefake.io.yuv import edit_region

    box = region(index)
    if box is not None:
        edit_region(frame, box, lambda crop, origin: render(crop, index, origin=origin))


def label_yuv(frame) -> None:
    """draw_label on a Yuv420 `frame`, in place, converting only the label's box."""
    from voicefake.io.yuv import edit_region

    picture = (frame.height, frame.width)
    x0, y0, x1, y1 = label_layout(*picture)[0]
    draw = partial(draw_label, picture=picture)
    edit_region(frame, (x0 - 2, y0 - 2, x1 + 2, y1 + 2), lambda crop, origin: draw(crop.copy(), origin=origin))


WEIGHT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")


def find_wav2lip_weights() -> Path | None:
    """The first Wav2Lip generator checkpoint (a file named wav2lip*.pth / .pt) in `pretrained_dirs()`."""
    for folder in pretrained_dirs():
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                name = path.name.lower()
                if path.is_file() and name.startswith("wav2lip") and name.endswith(WEIGHT_SUFFIXES):
                    return path
    return None


# ---------------------------------------------------------------- inputs


def _audio_input(audio) -> tuple[np.ndarray, int, list | None]:
    """(samples, rate, phoneme timings or None) from a path, AudioChunk(s) or (samples, rate)."""
    from voicefake.io.media import read_media
    from voicefake.io.video import VideoWriter
    from voicefake.lipsync.visemes import timings_from_chunks
    from voicefake.tts.voice import AudioChunk

    if isinstance(audio, (str, os.PathLike)):
        return read_media(audio, VideoWriter.AUDIO_RATE), VideoWriter.AUDIO_RATE, None
    if isinstance(audio, AudioChunk):
        audio = [audio]
    if isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[1], (int, np.integer)):
        return np.asarray(audio[0], dtype=np.float32).reshape(-1), int(audio[1]), None
    chunks = list(audio)
    if not chunks or not all(isinstance(c, AudioChunk) for c in chunks):
        raise VoicefakeError("audio must be a file path, AudioChunk(s) from Voice.synthesize, or (samples, rate)")
    rates = {c.sample_rate for c in chunks}
    if len(rates) != 1:
        raise VoicefakeError(
            f"audio chunks have different sample rates {sorted(rates)}: synthesize them with one voice"
        )
    samples = np.concatenate([np.asarray(c.audio, dtype=np.float32).reshape(-1) for c in chunks])
    return samples, rates.pop(), timings_from_chunks(chunks)


def _marked_soundtrack(samples: np.ndarray, rate: int):
    """The soundtrack with the voicefake audio watermark, and its payload (which the frames carry too).

    Speech from `voicefake say` is already marked with its voice; anything else is marked "lipsync".
    """
    from voicefake.provenance import watermark

    found = watermark.detect(samples, rate)
    if found.payload is not None:  # a mark without a readable payload is marked again, readably
        return samples, found.payload
    payload = watermark.Payload.now("lipsync")
    return watermark.embed(samples, rate, payload), payload


def _pick_engine(engine: str, weights) -> tuple[str, Path | None]:
    if engine not in ENGINES:
        raise VoicefakeError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if weights is not None:  # named by the user: allowed anywhere
        from voicefake.io.media import check_input_file

        weights = check_input_file(weights, "Wav2Lip weights", "a Wav2Lip checkpoint file (.pth)")
        return ("classic", None) if engine == "classic" else ("wav2lip", weights)
    if engine == "classic":
        return "classic", None
    found = find_wav2lip_weights()
    if engine == "wav2lip" and found is None:
        where = ", ".join(str(d) for d in pretrained_dirs())
        raise VoicefakeError(
            f"--engine wav2lip needs Wav2Lip weights (wav2lip.pth or wav2lip_gan.pth) in one of: {where}; "
            "voicefake cannot download them. Give --weights PATH, or use --engine classic (the default without weights)"
        )
    return ("wav2lip", found) if found is not None else ("classic", None)


# ---------------------------------------------------------------- the job


def lipsync(
    face: str | os.PathLike,
    audio,
    out: str | os.PathLike,
    *,
    face_index: int | None = None,
    label: bool = True,
    engine: str = "auto",
    weights: str | os.PathLike | None = None,
    progress: bool = True,
    quality: int = 14,
) -> LipsyncReport:
    """Make the face in `face` (video or photo) speak `audio`; write an H.264 + AAC mp4 to `out`.

    `audio`: a file path, AudioChunk(s) from `Voice.synthesize` (their phoneme timings drive the
    mouth exactly) or (samples, rate). The video runs as long as the audio: trimmed, or played
    back and forth. `face_index` picks the N-th face from the left (default: the largest);
    `label` draws the visible "AI-generated" label; `engine` is auto, classic or wav2lip.
    """
    from voicefake.io.media import check_not_an_input
    from voicefake.io.video import check_video_output, open_face_media

    started = time.perf_counter()
    check_not_an_input(out, [face, audio])  # before anything: never write over the source
    out = check_video_output(out)
    if face_index is not None and face_index < 0:
        raise VoicefakeError(f"face index {face_index} is negative: faces are counted from 0, the leftmost")
    samples, rate, timings = _audio_input(audio)
    if len(samples) == 0 or rate <= 0:
        raise VoicefakeError("the audio is empty (0 s long): give speech to lip-sync to")
    samples, payload = _marked_soundtrack(samples, rate)
    duration = len(samples) / rate
    media = open_face_media(face)
    engine, weights = _pick_engine(engine, weights)
    model = None
    if engine == "wav2lip":  # a refused checkpoint fails here, before any work
        from voicefake.lipsync.wav2lip import load_checkpoint

        model = load_checkpoint(weights)

    fps = float(media.fps)
    n_out = max(1, int(round(duration * fps)))
    track = _track(media, face, face_index, n_out, harvest=engine == "classic", progress=progress)
    plan = plan_mouth(track, samples, rate, fps, n_out, timings)
    renderer = make_renderer(engine, track, model=model, samples=samples, rate=rate, fps=fps)
    render = partial(render_frame, track=track, plan=plan, renderer=renderer)
    region = partial(render_region, track=track, plan=plan)
    soundtrack = (samples, rate, payload)
    threads = 1 if engine == "wav2lip" else SHAPING_THREADS  # the Wav2Lip model has threads of its own
    writer = _write(
        out, face, media, plan.order, (render, region), soundtrack, label=label, quality=quality, progress=progress,
        threads=threads,
    )
    return _report(out, engine, writer, duration, track, plan, renderer, started)


# ---------------------------------------------------------------- the stages


def _track(media, face, face_index: int | None, n_out: int, harvest: bool, progress: bool) -> FaceTrack:
    """Pass 1: follow the face through the video, as far as the output will go (`n_out` frames)."""
    from tqdm import tqdm

    from voicefake.io.video import iter_frames, prefetch, sample_frames, shrinker

    # followed on a smaller copy, cheap at any size; the mouth bank crops from the full frame
    keep_full = harvest and not media.still
    shrink, factor = shrinker(media, TRACK_SIDE, keep_full=keep_full)
    follower = FaceFollower(face_index, still=media.still, harvest=harvest, to_full=factor)
    bar = tqdm(
        total=min(media.frames or n_out, n_out), desc="tracking face", unit="frame", disable=not progress, leave=False
    )
    for frame in prefetch(iter_frames(media, record=True, convert=shrink)):
        if len(follower) == n_out:  # the audio is shorter than the video: the rest is never shown
            media.frames = n_out
            break
        follower.add(*(frame if keep_full else (frame, None)))
        bar.update(1)
    bar.close()
    if harvest and not media.still and len(follower) == n_out and follower.tracker.last_center is not None:
        # The audio ends before the video: glance at the rest of it too for a wide-open mouth.
        glance_shrink, _ = shrinker(media, TRACK_SIDE)  # no full-size frames kept for a glance
        for frame in sample_frames(media, 12, after=n_out / float(media.fps), convert=glance_shrink):
            follower.glance(frame)
    if len(follower) == 0:
        raise VoicefakeError(f"{face} has no frames that can be decoded")
    if not follower.faces:
        if face_index is not None and follower.tracker.most_faces:
            raise VoicefakeError(
                f"there is no face number {face_index} in {face}: it shows at most {follower.tracker.most_faces} "
                "at once, numbered from 0 (the leftmost)"
            )
        raise VoicefakeError(
            f"no face found in {face}: use a photo or video where a face is clearly visible, "
            "roughly frontal and at least 80 pixels wide"
        )
    return follower.finish(float(media.fps)).scaled(factor)


def _write(out: Path, face, media, order: list[int], render, soundtrack, *, label: bool, quality: int, progress: bool,
           threads: int = SHAPING_THREADS):
    """Pass 2: the input frames in `order`, each through shape_frame (mouth, label; `threads`
    frames at once) and mark_frame (watermark, FRAME_FILTERS; in order), encoded with the soundtrack
    (samples, rate, watermark payload). `render` is (render, region): render_frame and
    render_region for this job.
    The VideoWriter, closed: its file is complete."""
    from tqdm import tqdm

    from voicefake.io.video import VideoWriter, frames_in_order, map_in_order, prefetch, to_bgr, to_yuv
    from voicefake.provenance.videomark import FrameMarker

    samples, rate, payload = soundtrack
    fps, n_out = float(media.fps), len(order)
    mark = FrameMarker(payload)  # the frames carry the soundtrack's payload
    render, region = render
    # Plain 4:2:0 stays 4:2:0: only the mouth and the label are converted (at 4K, most of the work saved)
    as_yuv = media.plain and not FRAME_FILTERS

    with VideoWriter(out, media.width, media.height, media.fps, samples, rate, quality=quality) as writer:
        frames = prefetch(frames_in_order(media, order, convert=to_yuv if as_yuv else to_bgr))
        shaped = map_in_order(lambda frame, k: shape_frame(frame, k, render, region, label), frames, threads)
        for k, frame in enumerate(
            tqdm(shaped, total=n_out, desc="lip-syncing", unit="frame", disable=not progress, leave=False)
        ):
            writer.write(mark_frame(frame, k, fps, mark))
            if k + 1 == n_out:
                break
        if writer.frames < n_out:
            raise VoicefakeError(f"{face}: could only decode {writer.frames} of {n_out} frames")
    return writer


def _report(out: Path, engine: str, writer, duration: float, track, plan, renderer, started: float) -> LipsyncReport:
    """What the job did, once `writer` has closed."""
    return LipsyncReport(
        output=out,
        engine=engine,
        width=writer.width,
        height=writer.height,
        fps=float(writer.fps),
        frames=writer.frames,
        duration=duration,
        **_frame_counts(track, plan),
        mouth_source="mel spectrogram" if engine == "wav2lip" else plan.source,
        mouth_interior=renderer.interior,
        bank_frames=renderer.bank_drawn,
        speech=plan.speech,
        seconds=time.perf_counter() - started,
        opening=np.asarray(plan.opening, dtype=np.float32),
    )


def _frame_counts(track: FaceTrack, plan: MouthPlan) -> dict:
    """The report's counts of output frames: reshaped, without a face, covered, turned away."""
    shown = np.asarray(plan.order, dtype=np.intp)
    found, occluded = track.found[shown], track.occluded[shown]
    clear = found & ~occluded
    turned = clear & (plan.strength < 0.999) & (np.abs(track.yaw[shown]) > 0.3)
    synced = clear & (plan.strength > 0)
    return {
        "face_frames": int(synced.sum()),
        "no_face_frames": int((~found).sum()),
        "turned_frames": int(turned.sum()),
        "covered_frames": int((found & occluded).sum()),
        "synced": synced,
    }


def speak_video(
    face: str | os.PathLike,
    text: str,
    out: str | os.PathLike,
    *,
    voice: str = DEFAULT_VOICE,
    speed: float = 1.0,
    **options,
) -> LipsyncReport:
    """Text -> speech in `voice` -> lip-sync of `face`, driven by the synthesis's exact phoneme timings."""
    from voicefake.io.media import check_not_an_input
    from voicefake.io.video import check_video_output, open_face_media
    from voicefake.tts.voice import load_voice

    check_not_an_input(out, [face])
    check_video_output(out)  # fail on a bad path, face or weights before spending time on speech
    open_face_media(face)
    _pick_engine(options.get("engine", "auto"), options.get("weights"))
    chunks: Sequence = list(load_voice(voice).synthesize(text, speed=speed))
    if not chunks:
        raise VoicefakeError("the text has nothing to say: give some words")
    return lipsync(face, chunks, out, **options)
