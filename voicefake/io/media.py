"""Decode any audio or video file (wav, flac, mp3, m4a/aac, ogg/opus, webm, mp4, mkv...) with PyAV.

Decoding streams: `stream_audio` yields short blocks, so a two-hour file never sits in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from voicefake.errors import VoicefakeError

# what a folder of recordings is searched for (anything else there is ignored)
MEDIA_EXTENSIONS = {
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".webm", ".mp4", ".m4v", ".mov",
    ".mkv", ".avi", ".wma", ".aiff", ".aif", ".caf", ".amr", ".3gp",
}


def check_input_file(path: str | os.PathLike, what: str = "file", give: str = "a video, photo or audio file") -> Path:
    """`path` if it is a file; else one line saying it is a folder or missing (`what` names it)."""
    path = Path(path)
    if path.is_dir():
        raise VoicefakeError(f"{path} is a folder, not a file: give {give}")
    if not path.is_file():
        raise VoicefakeError(f"cannot read {what} {path}: no such file")
    return path


def check_not_an_input(output: str | os.PathLike, inputs) -> Path:
    """Refuse an output that is one of the input files (a symlink, hard link or ./ spelling of it)."""
    output = Path(output)
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            continue  # in-memory input (samples, chunks): nothing to overwrite
        same = output.resolve() == Path(item).resolve()
        if not same and output.exists() and Path(item).exists():
            same = os.path.samefile(output, item)
        if same:
            raise VoicefakeError(f"the output {output} is the input file {item}: choose another output path")
    return output


def find_media(paths: list[str | os.PathLike]) -> list[Path]:
    """Audio/video files named by `paths`, folders searched recursively, sorted within each folder."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
        elif path.is_file():
            found.append(path)
        else:
            raise VoicefakeError(f"{path} does not exist: give audio or video files, or folders that hold them")
    return found


def media_duration(path: str | os.PathLike) -> float | None:
    """Length of the file's audio in seconds from its header, without decoding; None if unknown."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                return None
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000  # av.time_base
    except Exception:
        return None
    return None


def stream_audio(path: str | os.PathLike, sample_rate: int, block_seconds: float = 1.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks of the file's first audio track at `sample_rate`, about `block_seconds` each.

    Channels are averaged (not mixed down by the codec library, which would attenuate a clipped
    stereo signal and hide the clipping). Raises VoicefakeError for unreadable files.
    """
    import av

    path = check_input_file(path, "audio", "an audio or video file")
    try:
        container = av.open(str(path))
    except Exception as error:
        raise VoicefakeError(
            f"cannot read audio from {path}: not an audio or video file FFmpeg can decode ({_reason(error)})"
        ) from error
    with container:
        if not container.streams.audio:
            raise VoicefakeError(f"{path} has no audio track: give a file with recorded speech")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        pending: list[np.ndarray] = []
        pending_samples = 0
        block = max(1, int(block_seconds * sample_rate))
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray().mean(axis=0, dtype=np.float32)
                        pending.append(samples)
                        pending_samples += len(samples)
                if pending_samples >= block:
                    yield np.concatenate(pending)
                    pending, pending_samples = [], 0
            for out in resampler.resample(None):  # flush what the resampler holds back
                pending.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
        except av.FFmpegError as error:
            raise VoicefakeError(f"cannot decode {path}: the file is damaged or truncated ({_reason(error)})") from error
        if pending:
            yield np.concatenate(pending)


def read_media(path: str | os.PathLike, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """The whole audio track of a (short) file as mono float32 at `sample_rate`."""
    blocks, total = [], 0
    for block in stream_audio(path, sample_rate):
        blocks.append(block)
        total += len(block)
        if max_seconds is not None and total > max_seconds * sample_rate:
            raise VoicefakeError(f"{path} is longer than {max_seconds:.0f} s: give a shorter recording")
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
