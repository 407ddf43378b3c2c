"""Speaker embeddings (resemblyzer GE2E d-vectors): who is speaking, as a 256-d unit vector.

The one home of the speaker encoder. Enrollment embeds its cleaned utterances with
`embed_utterance` / `embed_partials` and writes the voice's profile (profile.npz); cloning trains
toward that profile; `embed()` takes any clip (resemblyzer's own preprocessing first) and is what
validation and benchmarks judge likeness with; `embed_batch()` is the differentiable path for
training (PyTorch end to end, so a speaker loss can pull synthesized speech toward the profile).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from voicefake.config import ANALYSIS_RATE

_N_FFT, _HOP, _N_MELS = 400, 160, 40  # resemblyzer: 25 ms windows, 10 ms steps, 40 mel bands
_TARGET_DBFS = -30.0  # resemblyzer normalises loudness to this before embedding
PARTIAL_RATE = 2.0  # partial d-vectors a second: resemblyzer's 1.6 s windows every 0.5 s
_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def encoder():
    """The resemblyzer encoder (weights bundled in the package), on CPU, frozen."""
    from resemblyzer import VoiceEncoder

    model = VoiceEncoder(device="cpu", verbose=False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def embed(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """d-vector of any clip (float32, unit length), after resemblyzer's preprocessing (16 kHz,
    loudness normalised, long pauses trimmed)."""
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(np.asarray(audio, dtype=np.float32), source_sr=sample_rate)
    if len(wav) < _HOP * 10:  # its VAD trimmed (almost) everything: embed the clip untrimmed
        import soxr

        wav = soxr.resample(np.asarray(audio, dtype=np.float32), sample_rate, ANALYSIS_RATE)
    return embed_utterance(wav)


def embed_utterance(audio16: np.ndarray) -> np.ndarray:
    """The d-vector of one cleaned utterance of 16 kHz audio, taken as it is (nothing trimmed)."""
    return _run(audio16, {}).astype(np.float32)


def embed_partials(audio16: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d-vector, partial d-vectors (n, 256), their windows (n, 2) in samples) of one cleaned
    utterance of 16 kHz audio: resemblyzer's 1.6 s windows, PARTIAL_RATE a second, averaged into
    the d-vector (so this costs about as much as `embed_utterance`). The partials say who speaks when."""
    embedding, partials, slices = _run(audio16, {"return_partials": True, "rate": PARTIAL_RATE})
    windows = np.array([[w.start, min(w.stop, len(audio16))] for w in slices], np.int64)
    return embedding.astype(np.float32), partials.astype(np.float32), windows


def _run(audio16: np.ndarray, options: dict):
    import torch

    with _lock:
        # this small LSTM runs 2x faster on one thread than on two (measured on 2 cores)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():  # not inference_mode: training shares this encoder with autograd
                return encoder().embed_utterance(np.asarray(audio16, np.float32), **options)
        finally:
            torch.set_num_threads(threads)


def profile(clips: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """A voice's profile from clips of it: the unit mean of their d-vectors. Enrollment writes a
    better one (outliers and other speakers removed) to profile.npz; this serves plain datasets."""
    return unit(np.mean([embed(clip, sample_rate) for clip in clips], axis=0))


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two d-vectors: about 0.9 for the same voice, 0.4-0.7 for others."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


@functools.lru_cache(maxsize=4)
def _mel_basis(device: str):
    import librosa
    import torch

    return torch.from_numpy(librosa.filters.mel(sr=ANALYSIS_RATE, n_fft=_N_FFT, n_mels=_N_MELS)).to(device)


def embed_batch(waves, sample_rate: int):
    """Differentiable d-vectors [B, 256] of waveforms [B, T] (or [B, 1, T]), torch tensors."""
    import torch
    import torchaudio

    waves = waves.reshape(waves.shape[0], -1)
    if sample_rate != ANALYSIS_RATE:
        waves = torchaudio.functional.resample(waves, sample_rate, ANALYSIS_RATE)
    rms = waves.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-10).sqrt()
    waves = waves * (10 ** (_TARGET_DBFS / 20) / rms).detach()  # loudness is not identity
    window = torch.hann_window(_N_FFT, device=waves.device)
    spec = torch.stft(waves, _N_FFT, _HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    mels = _mel_basis(str(waves.device)) @ spec.abs().pow(2)  # resemblyzer uses power mels, not log
    model = encoder().to(waves.device)
    return model(mels.transpose(1, 2))
