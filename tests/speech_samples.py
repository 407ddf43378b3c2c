"""Real test material for enrollment tests: speech from the bundled voice, real recordings from
../shared when present, and files in every container/codec users bring (encoded with PyAV)."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicefake.asr import HARVARD_SENTENCES
from voicefake.config import NOISE_SCALE

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SPEECH = SHARED / "data" / "speech"

SENTENCES = HARVARD_SENTENCES[:12]


def speak(voice, text: str, noise: float = NOISE_SCALE, marked: bool = False, speed: float = 1.0) -> np.ndarray:
    """The bundled voice reading `text`, 22.05 kHz float32: standing in for a person, so without
    voicefake's watermark (enrollment refuses marked speech) unless `marked`."""
    if marked:
        return np.concatenate([c.audio for c in voice.synthesize(text, speed=speed, noise=noise)])
    from piper.config import SynthesisConfig

    from voicefake.tts.text import text_to_sentences

    config = SynthesisConfig(length_scale=voice.pace / speed, noise_scale=noise, noise_w_scale=0.8)
    parts = []
    for sentence in text_to_sentences(text, voice.phoneme_id_map, voice.espeak_voice):
        audio = np.asarray(voice.piper.phoneme_ids_to_audio(sentence.phoneme_ids, config), np.float32).reshape(-1)
        parts.append(audio * min(1.0, 0.99 / max(float(np.abs(audio).max(initial=0.0)), 1e-9)))
    return np.concatenate(parts)


def encode(path: Path, audio: np.ndarray, rate: int, codec: str, channels: int = 1, video: bool = False) -> Path:
    """Write `audio` with FFmpeg's `codec` into the container named by `path`'s extension."""
    import av

    layout = "stereo" if channels == 2 else "mono"
    target_rate = 48000 if codec in ("libopus", "opus") else rate
    if target_rate != rate:
        import soxr

        audio = soxr.resample(audio, rate, target_rate).astype(np.float32)
    planes = np.stack([audio] * channels) if channels == 2 else audio[None, :]
    with av.open(str(path), "w") as container:
        if video:
            vstream = container.add_stream("mpeg4", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        stream = container.add_stream(codec, rate=target_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = target_rate
        frame.pts, frame.time_base = 0, Fraction(1, target_rate)
        if stream.codec_context.format.name != "fltp":
            resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=target_rate)
            frames = resampler.resample(frame)
        else:
            frames = [frame]
        for out in frames:
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if video:
            seconds = len(audio) / target_rate
            for i in range(max(1, int(seconds * 5))):
                image = av.VideoFrame.from_ndarray(np.full((64, 64, 3), (i * 9) % 255, np.uint8), format="rgb24")
                image.pts = i
                for packet in vstream.encode(image):
                    container.mux(packet)
            for packet in vstream.encode(None):
                container.mux(packet)
    return path


def music(seconds: float, rate: int = 22050, seed: int = 0) -> np.ndarray:
    """Synthetic instrumental music: plucked harmonic notes of a scale with chords and drum hits."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), np.float32)
    notes = [220, 247, 262, 294, 330, 349, 392, 440, 494, 523]
    pos = 0
    while pos < len(out):
        length = min(int(rng.uniform(0.2, 0.6) * rate), len(out) - pos)
        t = np.arange(length) / rate
        f = rng.choice(notes)
        envelope = np.minimum(1, t / 0.01) * np.exp(-t * 3)
        tone = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 8))
        chord = 0.5 * sum(np.sin(2 * np.pi * f * m * t) for m in (1.25, 1.5))
        out[pos : pos + length] += envelope * (tone + chord)
        hit = min(800, length)
        out[pos : pos + hit] += rng.normal(0, 1, hit) * np.exp(-np.arange(hit) / 200)
        pos += length
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def real_clips(
    speaker: str, min_seconds: float = 2.0, max_seconds: float = 60.0, skip: int = 0, limit: int | None = None
) -> list[tuple[Path, str]]:
    """(path, transcript) of a real speaker's clips in ../shared, or skip the test."""
    folder = SPEECH / speaker
    if not (folder / "metadata.csv").is_file():
        pytest.skip(f"real recordings not available: {folder} is missing")
    with open(folder / "metadata.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="|") if min_seconds <= float(r["duration_s"]) <= max_seconds]
    rows = rows[skip:]
    if limit is not None:
        rows = rows[:limit]
    return [(folder / r["file"], r["transcript"]) for r in rows]


def join(paths: list[Path], rate: int, gap: float = 1.0) -> np.ndarray:
    """Clips read at `rate` and joined with `gap` s of silence."""
    from voicefake.io.media import read_media

    parts = []
    for path in paths:
        parts += [read_media(path, rate), np.zeros(int(gap * rate), np.float32)]
    return np.concatenate(parts)


def write(path: Path, audio: np.ndarray, rate: int = 22050) -> Path:
    sf.write(path, audio, rate)
    return path
