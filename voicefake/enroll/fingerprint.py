"""Audio fingerprints: is this recording a copy of that one (re-encoded, resampled, louder)?

Consent uses it to refuse a consent recording that is a replay of an earlier consent recording
or of the enrollment audio. A fingerprint is one 32-bit word per 16 ms frame: the signs of the
changes, over frequency and time, of the energies of 33 log-spaced bands at 300-3000 Hz (after
Haitsma & Kalker, "A highly robust audio fingerprinting system", 2002). Copies keep the signs;
two different recordings agree on about half of the bits, even the same speaker saying the same
words. Numpy only: fingerprinting takes ~1 ms per second of audio, comparing less.

What it cannot do (why replay detection is limited):
* It recognises the same recording, not the same voice: speech of the person taken from
  anywhere else (a video, a phone call) that the enrollment does not contain is not a replay of
  anything it knows. The consent phrase check (a random sentence issued minutes before, English
  only) is what defeats old recordings; the fingerprint only helps where that check is missing
  (other languages) and names the replay.
* A recording played through a loudspeaker into a microphone keeps its fingerprint only partly
  (room echo, noise): matching needs 2 s at most 25% differing bits, which such a replay may miss.
* Only consent recordings still on this machine are compared (removing a voice deletes its recording).
"""

from __future__ import annotations

import functools

import numpy as np

from voicefake.config import ANALYSIS_RATE  # fingerprints are taken at 16 kHz

_NFFT, _HOP = 2048, 256  # 128 ms windows (long, so a shift of half a hop changes little), 16 ms steps
_LOW, _HIGH, _BANDS = 300.0, 3000.0, 33
FRAME_SECONDS = _HOP / ANALYSIS_RATE
WINDOW_SECONDS = 2.0  # a replay is recognised from 2 s of it
# Share of differing bits at or below which two 2 s windows are one recording. Calibrated
# (bench/consent_replay.py: 25 real clips of ../shared, each found inside a longer recording):
# copies cut at any sample offset, 10 dB quieter, through 8 kHz, MP3 32k or noise at 30 dB SNR
# scored 0.00-0.19; other recordings of the same or the other speaker 0.41-0.50, and the bundled
# voice saying the same sentence twice 0.35-0.44.
MATCH_BER = 0.25


@functools.lru_cache(maxsize=1)
def _band_matrix() -> np.ndarray:
    edges = np.geomspace(_LOW, _HIGH, _BANDS + 1) * _NFFT / ANALYSIS_RATE
    bins = np.arange(_NFFT // 2 + 1)
    matrix = np.zeros((_NFFT // 2 + 1, _BANDS), np.float32)
    for band in range(_BANDS):  # rectangular bands, with fractional bins at their edges
        lo, hi = edges[band], edges[band + 1]
        matrix[:, band] = np.clip(np.minimum(bins + 0.5, hi) - np.maximum(bins - 0.5, lo), 0, None)
    return matrix


def fingerprint(audio16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bits, voiced) of 16 kHz audio: bits (frames, 32) bool, voiced (frames,) bool marks the
    frames loud enough to count (within 40 dB of the loudest, above digital silence)."""
    audio16 = np.asarray(audio16, np.float32)
    if len(audio16) < _NFFT + 2 * _HOP:
        return np.zeros((0, _BANDS - 1), bool), np.zeros(0, bool)
    count = 1 + (len(audio16) - _NFFT) // _HOP
    index = np.arange(_NFFT)[None, :] + _HOP * np.arange(count)[:, None]
    frames = audio16[index] * np.hanning(_NFFT).astype(np.float32)
    energy = (np.abs(np.fft.rfft(frames, axis=1)) ** 2) @ _band_matrix() + 1e-12  # (count, 33)
    log_energy = np.log(energy)
    across = log_energy[:, :-1] - log_energy[:, 1:]  # (count, 32)
    bits = (across[1:] - across[:-1]) > 0  # (count - 1, 32)
    total = energy.sum(axis=1)
    loud = (total > total.max() * 1e-4) & (total > 1e-7)
    return bits, loud[1:] & loud[:-1]


def _signs(bits: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    return np.where(bits, 1.0, -1.0).astype(np.float32) * voiced[:, None]


def best_match(probe: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(share of differing bits, seconds into `probe`) of the 2 s window of `probe` that `reference`
    holds most exactly, at any time shift; (0.5, 0.0) when there is nothing to compare."""
    bits_p, voiced_p = probe
    bits_r, voiced_r = reference
    size = round(WINDOW_SECONDS / FRAME_SECONDS)
    need = int(0.75 * size)  # frames both voiced at the best shift
    if len(bits_r) < need or voiced_r.sum() < need:
        return 0.5, 0.0
    starts = [a for a in range(0, max(len(bits_p) - size, 0) + 1, size // 2) if voiced_p[a : a + size].sum() >= need]
    if not starts:
        return 0.5, 0.0
    n = 1 << (size + len(bits_r)).bit_length()
    signs_p, signs_r = _signs(bits_p, voiced_p), _signs(bits_r, voiced_r)
    windows = np.stack([np.pad(signs_p[a : a + size], ((0, size - len(signs_p[a : a + size])), (0, 0))) for a in starts])
    masks = np.abs(windows[:, :, 0])
    spectrum_r = np.fft.rfft(signs_r, n, axis=0)
    mask_r = np.fft.rfft(voiced_r.astype(np.float32), n)
    # correlation at every shift: sum of sign products (agreements minus disagreements) and overlap
    agree = np.fft.irfft(np.conj(np.fft.rfft(windows, n, axis=1)) * spectrum_r[None], n, axis=1).sum(axis=2)
    overlap = np.fft.irfft(np.conj(np.fft.rfft(masks, n, axis=1)) * mask_r[None], n, axis=1)
    usable = overlap >= need - 0.5
    ber = np.where(usable, 0.5 - agree / (2 * _BANDS - 2) / np.maximum(overlap, 1.0), 0.5)
    k, _ = np.unravel_index(int(np.argmin(ber)), ber.shape)
    return float(ber.min()), starts[k] * FRAME_SECONDS


def is_copy(probe: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]) -> bool:
    return best_match(probe, reference)[0] <= MATCH_BER
