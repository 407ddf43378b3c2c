"""What tests share: speech from the bundled voice, real recordings from ../shared when present,
files in every container and codec users bring (encoded with PyAV), and a tiny generated voice."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from voicefake.asr import HARVARD_SENTENCES
from voicefake.config import NOISE_SCALE
from voicefake.lipsync.face import TEMPLATE_68

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

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
    out = np.zeros(round(seconds * rate), np.float32)  # round: a length given as samples / rate comes back whole
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


def shared_data() -> Path:
    """../shared/data, or skip the test (CI has it; a fresh clone elsewhere may not)."""
    if not SHARED.is_dir():
        pytest.skip(f"real recordings not available: {SHARED} is missing")
    return SHARED / "data"


def real_clips(
    speaker: str, min_seconds: float = 2.0, max_seconds: float = 60.0, skip: int = 0, limit: int | None = None
) -> list[tuple[Path, str]]:
    """(path, transcript) of a real speaker's clips in ../shared, or skip the test."""
    folder = shared_data() / "speech" / speaker
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


# A voice as small as VITS allows (1.4 M parameters instead of 24 M): random weights, so it
# speaks noise, but through every real step (phonemes, ONNX export, onnxruntime, durations, marks).
TINY_DIMS_ARGS = dict(
    hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_layers_text_encoder=1, num_layers_flow=1,
    resblock_kernel_sizes_decoder=[3], resblock_dilation_sizes_decoder=[[1, 2]], upsample_initial_channel_decoder=32,
)


def make_tiny_voice(folder: Path, speaker_dims: int = 0) -> Path:
    """Build the tiny voice and export it as a Piper voice `folder`/voice.onnx (+ .json)."""
    import json

    import torch

    from voicefake.tts.clone import piper_config
    from voicefake.tts.export import export_onnx
    from voicefake.tts.model import VitsDims, build_vits
    from voicefake.tts.voice import load_voice

    torch.manual_seed(0)
    model = build_vits(VitsDims(**TINY_DIMS_ARGS, d_vector_dim=speaker_dims)).eval()
    base = json.loads(Path(f"{load_voice().info.model_path}.json").read_text(encoding="utf-8"))
    d_vector = torch.nn.functional.normalize(torch.ones(speaker_dims), dim=0) if speaker_dims else None
    config = piper_config(base, {"tool": "voicefake tests", "base_voice": "tiny (random weights)"})
    folder.mkdir(parents=True, exist_ok=True)
    return export_onnx(model, folder / "voice.onnx", config, d_vector=d_vector)


# --- faces and video ---------------------------------------------------------------------------

RATE = 22050  # the audio rate lip-sync tests make their sounds at


def draw_face(size: int = 320, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A synthetic frontal face (BGR) that dlib's detector and landmark model accept: skin-shaded oval,
    hair, brows, eyes with irises, a shaded nose and closed lips, laid out on the 68-point template."""
    s = 4 * size  # drawn 4x larger, then shrunk: smooth anti-aliased shading
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    img = np.stack([0.55 + 0.1 * yy, 0.5 + 0.05 * yy, 0.45 + 0 * yy], axis=-1)
    cx, cy, iod = 0.5 + shift[0] / size, 0.42 + shift[1] / size, 0.2

    def at(x, y):
        return int((cx + x * iod) * s), int((cy + y * iod) * s)

    def length(v):
        return int(v * iod * s)

    skin = np.array([0.55, 0.65, 0.85], np.float32)
    hair = (0.12, 0.18, 0.25)
    cv2.rectangle(img, at(-0.6, 1.0), at(0.6, 3.0), (skin * 0.8).tolist(), -1)
    cv2.ellipse(img, at(0, -0.2), (length(1.35), length(1.6)), 0, 0, 360, hair, -1)
    mask = np.zeros((s, s), np.float32)
    cv2.ellipse(mask, at(0, 0.45), (length(1.1), length(1.35)), 0, 0, 360, 1.0, -1)
    r2 = ((xx - cx) / (1.1 * iod)) ** 2 + ((yy - (cy + 0.45 * iod)) / (1.35 * iod)) ** 2
    shade = np.clip(1.0 - 0.35 * r2**1.5, 0.5, 1)[..., None]
    img = img * (1 - mask[..., None]) + mask[..., None] * skin * shade
    cv2.ellipse(img, at(0, -0.75), (length(1.15), length(0.55)), 0, 180, 360, hair, -1)
    for side in (-1, 1):
        brow = np.array([at(side * x, y) for x, y in TEMPLATE_68[17:22, :] * [-1, 1]], np.int32)
        cv2.polylines(img, [brow], False, (0.15, 0.2, 0.28), length(0.09), cv2.LINE_AA)
        cv2.ellipse(img, at(side * 0.5, 0), (length(0.26), length(0.11)), 0, 0, 360, (0.9, 0.92, 0.95), -1, cv2.LINE_AA)
        cv2.circle(img, at(side * 0.5, 0), length(0.1), (0.35, 0.3, 0.2), -1, cv2.LINE_AA)
        cv2.circle(img, at(side * 0.5, 0), length(0.05), (0.05, 0.05, 0.05), -1, cv2.LINE_AA)
        cv2.ellipse(
            img,
            at(side * 0.5, 0),
            (length(0.27), length(0.12)),
            0,
            180,
            360,
            (0.1, 0.1, 0.15),
            length(0.03),
            cv2.LINE_AA,
        )
        cv2.ellipse(
            img, at(side * 0.1, 0.66), (length(0.06), length(0.03)), 0, 0, 360, (0.15, 0.2, 0.3), -1, cv2.LINE_AA
        )
    cv2.line(img, at(0.1, 0.1), at(0.14, 0.55), (skin * 0.75).tolist(), length(0.06), cv2.LINE_AA)
    cv2.ellipse(
        img, at(0, 0.62), (length(0.22), length(0.1)), 0, 0, 180, (skin * 0.7).tolist(), length(0.04), cv2.LINE_AA
    )
    upper = [
        at(-0.42, 0.98),
        at(-0.2, 0.9),
        at(0, 0.93),
        at(0.2, 0.9),
        at(0.42, 0.98),
        at(0.2, 1.0),
        at(0, 1.0),
        at(-0.2, 1.0),
    ]
    lower = [
        at(-0.42, 0.98),
        at(-0.2, 1.0),
        at(0, 1.0),
        at(0.2, 1.0),
        at(0.42, 0.98),
        at(0.22, 1.1),
        at(0, 1.15),
        at(-0.22, 1.1),
    ]
    cv2.fillPoly(img, [np.array(upper, np.int32)], (0.35, 0.35, 0.7), cv2.LINE_AA)
    cv2.fillPoly(img, [np.array(lower, np.int32)], (0.4, 0.4, 0.75), cv2.LINE_AA)
    line = [at(-0.42, 0.98), at(-0.2, 1.0), at(0, 1.0), at(0.2, 1.0), at(0.42, 0.98)]
    cv2.polylines(img, [np.array(line, np.int32)], False, (0.15, 0.15, 0.35), length(0.025), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), s / 400)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).normal(0, 0.01, img.shape)
    return np.clip((img + noise) * 255, 0, 255).astype(np.uint8)


def vowel(seconds: float, f0: float = 140.0) -> np.ndarray:
    """A voiced 'ah': harmonics of f0 shaped by two formants (700 and 1200 Hz)."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for k in range(1, 40):
        f = k * f0
        gain = np.exp(-(((f - 700) / 250) ** 2)) + 0.6 * np.exp(-(((f - 1200) / 300) ** 2)) + 0.02
        out += gain * np.sin(2 * np.pi * f * t + k)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def make_video(path, frames, fps, audio=None):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
