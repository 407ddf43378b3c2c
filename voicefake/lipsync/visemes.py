"""Mouth shapes for speech: a per-video-frame track of how open and how spread the lips are.

Two sources: the synthesizer's phoneme timings (exact), mapped to visemes and blended with a
dominance model of coarticulation; or, for any other audio, acoustic features (loudness in the
speech band, fricative noise, spectral balance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicefake.config import ANALYSIS_RATE

# espeak-ng (IPA) phoneme -> (opening 0..1, spread -1 rounded..+1 spread, dominance).
# Dominance says how strongly a sound imposes its shape on its neighbours: lip closures must
# happen, so they dominate; tongue-only consonants (k, h, t...) borrow the shape of nearby vowels.
# fmt: off
VISEMES: dict[str, tuple[float, float, float]] = {
    # vowels
    "i": (0.28, 0.8, 1.0), "ɪ": (0.32, 0.6, 0.8), "e": (0.45, 0.5, 1.0), "ɛ": (0.52, 0.4, 1.0),
    "æ": (0.72, 0.4, 1.0), "a": (0.88, 0.1, 1.0), "ɑ": (0.9, 0.0, 1.0), "ɒ": (0.8, -0.3, 1.0),
    "ʌ": (0.58, 0.0, 0.9), "ə": (0.42, 0.0, 0.5), "ɐ": (0.5, 0.0, 0.6), "ɜ": (0.45, 0.0, 0.8),
    "ɚ": (0.35, -0.2, 0.7), "ɝ": (0.35, -0.2, 0.8), "ɔ": (0.62, -0.6, 1.0), "o": (0.48, -0.8, 1.0),
    "ʊ": (0.28, -0.8, 0.9), "u": (0.22, -1.0, 1.0), "y": (0.22, -1.0, 1.0), "ø": (0.35, -0.8, 1.0),
    "ᵻ": (0.3, 0.4, 0.6), "ɯ": (0.25, 0.3, 0.8),
    # lips closed
    "p": (0.0, 0.0, 8.0), "b": (0.0, 0.0, 8.0), "m": (0.0, 0.0, 8.0),
    # lower lip to upper teeth
    "f": (0.07, 0.1, 4.0), "v": (0.07, 0.1, 4.0),
    # rounded consonants
    "w": (0.1, -1.0, 3.0), "ʃ": (0.16, -0.6, 2.0), "ʒ": (0.16, -0.6, 2.0), "ɹ": (0.2, -0.5, 1.0),
    # teeth close, tongue hidden
    "s": (0.1, 0.4, 2.0), "z": (0.1, 0.4, 2.0), "θ": (0.16, 0.2, 1.5), "ð": (0.16, 0.2, 1.5),
    "j": (0.18, 0.6, 1.0), "t": (0.2, 0.2, 0.5), "d": (0.2, 0.2, 0.5), "n": (0.18, 0.1, 0.4),
    "l": (0.25, 0.1, 0.4), "ɾ": (0.25, 0.1, 0.3), "ʔ": (0.15, 0.0, 0.3), "x": (0.25, 0.0, 0.3),
    "k": (0.25, 0.0, 0.3), "ɡ": (0.25, 0.0, 0.3), "g": (0.25, 0.0, 0.3), "ŋ": (0.22, 0.0, 0.3),
    "h": (0.3, 0.0, 0.2), "ç": (0.2, 0.4, 0.5),
}
# fmt: on
REST = (0.0, 0.0, 1.5)  # silence: lips together
PAUSES = set("^$.,;:!?—…") | {"_"}
WORD_GAP = " "  # no pause in connected speech: it shapes the mouth only weakly
MODIFIERS = set("ˈˌːˑ̃ʲʰ") | {"\u0329", "\u032f"}  # stress, length, nasal...: no shape of their own
# The synthesizer's duration model places a sound's label about 40 ms after the sound itself (the
# p closure of "open" shows in the audio one phoneme early), and lips move before the sound they
# shape anyway, so the mouth track runs this much ahead of the labels.
LEAD_S = 0.04
PHONEME_GAIN = 1.5
MAX_OPENING = 0.30  # an opening of 1.0 parts the inner lips by this many inter-ocular distances


@dataclass
class MouthTrack:
    """Target mouth shape for each output video frame."""

    fps: float
    opening: np.ndarray  # 0 closed .. 1 wide open ("ah")
    spread: np.ndarray  # -1 rounded ("oo") .. +1 spread ("ee")
    source: str  # "phonemes" or "audio"

    def __len__(self) -> int:
        return len(self.opening)

    @property
    def has_speech(self) -> bool:
        """False when the audio never asks the mouth to open."""
        return bool(np.max(self.opening, initial=0.0) > 0.05)


@dataclass
class PhonemeTiming:
    """One phoneme of the synthesized audio: symbol, start and length in seconds."""

    phoneme: str
    start: float
    duration: float


def timings_from_chunks(chunks: Sequence) -> list[PhonemeTiming]:
    """Flatten AudioChunk phoneme timings into one list on the concatenated audio's time axis."""
    timings, offset = [], 0.0
    for chunk in chunks:
        t = offset
        for phoneme, duration in zip(chunk.phonemes, chunk.phoneme_durations):
            timings.append(PhonemeTiming(phoneme, t, duration))
            t += duration
        offset += chunk.duration
    return timings


def track_from_phonemes(timings: Sequence[PhonemeTiming], fps: float, frames: int) -> MouthTrack:
    """Mouth track from exact phoneme timings, with coarticulation (dominance blending)."""
    # Stress and length marks are their own tokens in the synthesizer; their time belongs to the
    # sound they mark, so fold it into the neighbour (stress: the next one, length: the previous one).
    segments: list[list] = []  # [symbol, start, duration]
    carry = None
    for t in timings:
        if t.phoneme in MODIFIERS:
            if t.phoneme in "ːˑ" and segments:
                segments[-1][2] += t.duration
            else:
                carry = t.start if carry is None else carry
            continue
        start = carry if carry is not None else t.start
        segments.append([t.phoneme, start - LEAD_S, t.start + t.duration - start])
        carry = None
    rate = 1000.0  # evaluate on a 1 ms grid, then average over each video frame
    total = max((s + d for _, s, d in segments), default=0.0)
    n_grid = int(np.ceil(max(total, frames / fps) * rate)) + 1
    time = np.arange(n_grid) / rate
    num = np.zeros((2, n_grid))
    den = np.full(n_grid, 1e-6)
    closures = []
    for symbol, start, duration in segments:
        if symbol in PAUSES:
            target = REST
            # A long pause is a full rest; a short one (a comma between phrases) barely closes.
            weight = REST[2] * min(1.0, duration / 0.15)
        elif symbol == WORD_GAP:
            target, weight = (0.2, 0.0, 0.15), 0.15
        else:
            target = VISEMES.get(symbol, (0.3, 0.0, 0.3))
            weight = target[2]
            if target[0] == 0.0:
                closures.append((start, duration))
        centre = start + duration / 2
        # Each sound spreads over its own length plus ~60 ms each side (anticipation and carry-over).
        sigma = 0.25 * duration + 0.018
        lo, hi = int(max(0, (centre - 4 * sigma) * rate)), int(min(n_grid, (centre + 4 * sigma) * rate + 1))
        g = weight * np.exp(-0.5 * ((time[lo:hi] - centre) / sigma) ** 2)
        num[0, lo:hi] += g * target[0]
        num[1, lo:hi] += g * target[1]
        den[lo:hi] += g
    values = num / den
    # no sound at all (before the first phoneme, after the last): closed
    silent = den < 1e-3
    values[:, silent] = 0.0
    values = _lowpass(values, sigma_s=0.018, rate=rate)  # the lips' own inertia
    opening, spread = (_per_frame(v, rate, fps, frames) for v in values)
    # Blending neighbours flattens the peaks of short vowels (undershoot, as in real fast speech);
    # a gain brings typical vowels back to a clearly visible opening.
    opening = opening * PHONEME_GAIN
    # A /p b m/ closure is short (~60 ms) but must be seen: close every frame it covers half of.
    for start, duration in closures:
        first = int(np.floor(start * fps))
        last = int(np.ceil((start + duration) * fps))
        for k in range(max(0, first), min(frames, last)):
            overlap = min(start + duration, (k + 1) / fps) - max(start, k / fps)
            if overlap >= 0.5 / fps or overlap >= 0.8 * duration:
                opening[k] = min(opening[k], 0.02)
    return MouthTrack(fps, np.clip(opening, 0, 1), np.clip(spread, -1, 1), "phonemes")


def track_from_audio(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> MouthTrack:
    """Mouth track from the sound alone (any voice, any recording)."""
    import soxr

    rate = ANALYSIS_RATE
    if sample_rate != rate:
        audio = soxr.resample(np.asarray(audio, dtype=np.float32), sample_rate, rate)
    audio = np.asarray(audio, dtype=np.float64)
    hop, win = 80, 400  # 5 ms hop, 25 ms window
    if len(audio) < win:
        return MouthTrack(fps, np.zeros(frames), np.zeros(frames), "audio")
    n = 1 + (len(audio) - win) // hop
    index = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[index] * np.hanning(win), n=512)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / rate)

    def band(lo: float, hi: float) -> np.ndarray:
        return spectrum[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) + 1e-10

    voiced = band(250, 3000)  # where vowels (open mouths) put their energy
    hiss = band(3500, 8000)  # fricatives: s, f, sh - narrow openings
    loud = 10 * np.log10(voiced)
    peak = np.percentile(loud, 99)
    # Speech is harmonic: its spectrum has peaks (low flatness), noise is flat (about 0.56 for white noise).
    speech_band = spectrum[:, (freqs >= 100) & (freqs < 4000)] + 1e-10
    flatness = np.exp(np.log(speech_band).mean(axis=1)) / speech_band.mean(axis=1)
    harmonic = (flatness < 0.3) & (loud > peak - 30)
    if peak < -55 or harmonic.mean() < 0.03:  # silence, or noise without a voice in it: nothing to say
        return MouthTrack(fps, np.zeros(frames), np.zeros(frames), "audio")
    opening = np.clip((loud - (peak - 30)) / 24, 0, 1)
    fricative = np.clip((10 * np.log10(hiss / voiced) + 6) / 12, 0, 1)
    opening *= 1 - 0.7 * fricative
    low, high = band(250, 900), band(1400, 3000)
    spread = np.clip((10 * np.log10(high / low) + 8) / 10, -1, 1) * np.minimum(1, opening * 3)
    values = _lowpass(np.stack([opening**0.8, spread]), sigma_s=0.03, rate=rate / hop)
    # frame k's window [k*hop, k*hop + win) is centred half a window later
    delay = int(round((win / 2) / hop))
    values = np.concatenate([np.zeros((2, delay)), values], axis=1)
    opening, spread = (_per_frame(v, rate / hop, fps, frames) for v in values)
    return MouthTrack(fps, np.clip(opening, 0, 1), np.clip(spread, -1, 1), "audio")


def _lowpass(values: np.ndarray, sigma_s: float, rate: float) -> np.ndarray:
    sigma = sigma_s * rate
    radius = max(1, int(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, ((0, 0), (radius, radius)), mode="edge")
    return np.stack([np.convolve(row, kernel, mode="valid") for row in padded])


def _per_frame(values: np.ndarray, rate: float, fps: float, frames: int) -> np.ndarray:
    """Average of a finely sampled curve over each video frame's display interval."""
    out = np.zeros(frames)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    for k in range(frames):
        lo = int(round(k / fps * rate))
        hi = max(lo + 1, int(round((k + 1) / fps * rate)))
        lo, hi = min(lo, len(values)), min(hi, len(values))
        out[k] = (cumulative[hi] - cumulative[lo]) / (hi - lo) if hi > lo else 0.0
    return out
