"""Is this file a voicefake output? Every trace we leave, checked in one place.

    report = detect_file("clip.mp4")
    report.found, report.audio, report.video, report.to_dict()

Traces: the audio watermark (watermark.py), for video the frame watermark (videomark.py), and the
metadata tags and signed C2PA manifest (provenance.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from voicefake.errors import VoicefakeError

# The audio mark is read from 0.33 s blocks, and a whole codeword is only sure to be recoverable
# from about 3 s: the README's "any 3 s holds it whole" (100% of 3 s crops in
# bench/watermark_robustness.py). Shorter audio is often missed (joe's speech, 40 random crops
# each, 2026: 1 s 10%, 1.5 s 50%, 2 s 58% where it spans sentences marked one by one, 3 s 90-100%;
# after AAC under ~2 s is sometimes missed), so below this length "not found" proves nothing.
MIN_AUDIO_SECONDS = 3.0


@dataclass
class MarkReport:
    """One watermark's verdict: found, confidence 0-1, and what its payload says."""

    found: bool
    confidence: float
    voice_hash: int | None = None
    voice: str | None = None  # the voice's name when it is on this machine
    created: str | None = None  # the hour it was made, UTC
    seconds: float | None = None  # length of the audio checked (audio marks only)
    too_short: bool = False  # not found, but the audio is shorter than the mark needs: undecided
    payload_unreadable: bool = False  # found (the audio mark's sync pattern) but its payload is lost

    @classmethod
    def from_detection(cls, detection) -> MarkReport:
        from voicefake.provenance import watermark
        from voicefake.tts.voice import list_voices

        report = cls(bool(detection.found), round(float(detection.confidence), 4))
        report.payload_unreadable = detection.payload_unreadable
        if detection.payload is not None:
            names = {watermark.voice_hash(v.name): v.name for v in list_voices()}
            names.setdefault(watermark.voice_hash("lipsync"), "lipsync")
            report.voice_hash = int(detection.payload.voice_hash)
            report.voice = names.get(report.voice_hash)
            report.created = detection.payload.created().strftime("%Y-%m-%dT%H:00Z")
        return report


@dataclass
class FileReport:
    """Everything `detect_file` found in one file."""

    file: str
    audio: MarkReport | None = None  # None: the file has no audio
    video: MarkReport | None = None  # None: the file has no video
    extra: dict = field(default_factory=dict)  # metadata tags and signed provenance, when present

    @property
    def found(self) -> bool:
        """True when any watermark was found."""
        return any(m is not None and m.found for m in (self.audio, self.video))

    @property
    def undecided(self) -> str | None:
        """Why no verdict can be given (nothing found in audio too short to hold the mark), else None."""
        if self.found or self.audio is None or not self.audio.too_short:
            return None
        return _too_short(self.audio.seconds)

    def to_dict(self) -> dict:
        """A JSON-ready dict (what `voicefake detect --json` prints)."""
        from dataclasses import asdict

        return {"file": self.file, "watermarked": self.found,
                "decided": self.undecided is None, **({"reason": self.undecided} if self.undecided else {}),
                "audio": None if self.audio is None else asdict(self.audio),
                "video": None if self.video is None else asdict(self.video), **self.extra}

    def summary(self) -> str:
        """One human line per trace."""
        lines = []
        for kind, mark in (("audio", self.audio), ("video", self.video)):
            if mark is None:
                continue
            if mark.payload_unreadable:
                lines.append(f"{kind} watermark: voicefake output, payload unreadable (confidence {mark.confidence:.4f})")
            elif mark.found:
                voice = mark.voice or f"unknown voice (hash {mark.voice_hash:04x})"
                lines.append(f"{kind} watermark: voicefake output, voice {voice}, made around {mark.created} "
                             f"(confidence {mark.confidence:.4f})")
            elif kind == "audio" and mark.too_short:
                lines.append(f"{kind} watermark: {_too_short(mark.seconds)}; none found in it, which proves nothing")
            else:
                lines.append(f"{kind} watermark: not found (confidence it is marked {mark.confidence:.2f})")
        if "tags" in self.extra or "c2pa" in self.extra:  # metadata tags and the signed C2PA manifest
            from voicefake.provenance.manifest import describe

            lines += describe(self.extra)
        return "\n".join(lines)


def _too_short(seconds: float) -> str:
    return f"too short to decide ({seconds:.1f} s; the mark needs at least {MIN_AUDIO_SECONDS:.0f} s)"


def _video_frames(path: Path, limit: int):
    """Up to `limit` decoded frames (BGR) of the file's first video stream; none for audio files."""
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VoicefakeError(f"cannot read {path}: not an audio or video file FFmpeg can decode ({error})") from error
    try:
        with container:
            streams = [s for s in container.streams.video if s.frames != 1]  # skip mp3/m4a cover art
            if not streams:
                return
            for count, frame in enumerate(container.decode(streams[0])):
                if count >= limit:
                    return
                yield frame.to_ndarray(format="bgr24")
    except av.error.FFmpegError as error:
        raise VoicefakeError(f"cannot decode the video of {path}: the file is damaged or truncated ({error})") from error


def detect_file(path: str | Path) -> FileReport:
    """Check any audio or video file for every voicefake trace: audio mark, video mark, tags, C2PA."""
    from voicefake.io.media import check_input_file, read_media
    from voicefake.provenance import manifest as provenance
    from voicefake.provenance import videomark, watermark

    path = check_input_file(path, give="an audio or video file")
    report = FileReport(str(path))
    frames = _video_frames(path, videomark.MAX_FRAMES)  # summed as decoded, never all held at once
    first = next(frames, None)
    if first is not None:
        report.video = MarkReport.from_detection(videomark.detect_frames(itertools.chain([first], frames)))
    try:
        audio = read_media(path, watermark.SAMPLE_RATE)
    except VoicefakeError:
        if report.video is None:
            raise
        audio = []  # a silent video: the frames speak for it
    if len(audio):
        report.audio = MarkReport.from_detection(watermark.detect(audio, watermark.SAMPLE_RATE))
        report.audio.seconds = round(len(audio) / watermark.SAMPLE_RATE, 3)
        report.audio.too_short = not report.audio.found and report.audio.seconds < MIN_AUDIO_SECONDS
    if report.audio is None and report.video is None:
        raise VoicefakeError(f"{path} has no audio or video to check")
    report.extra.update(provenance.inspect(path))  # {"tags": {...}, "c2pa": {...} or None}
    return report
