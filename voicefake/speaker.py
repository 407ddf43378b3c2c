"""Speaker embeddings (resemblyzer GE2E d-vectors): who is speaking, as a 256-d unit vector.

Two paths into the same encoder: `embed()` for audio files and profiles (numpy, resemblyzer's
own preprocessing) and `embed_batch()` for training (PyTorch, differentiable end to end, so a
speaker-consistency loss can pull synthesized speech toward a target voice).
"""

from __future__ import annotations

import functools

import numpy as np

ENCODER_SAMPLE_RATE = 16000
_N_FFT, _HOP, _N_MELS = 400, 160, 40  # resemblyzer: 25 ms windows, 10 ms steps, 40 mel bands
_TARGET_DBFS = -30.0  # resemblyzer normalises loudness to this before embedding


@functools.lru_cache(maxsize=1)
def encoder():
    """The resemblyzer encoder (weights bundled in the package), on CPU, frozen."""
    from resemblyzer import VoiceEncoder

    model = VoiceEncoder(device="cpu", verbose=False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def embed(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """d-vector of one utterance (float32, unit length)."""
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(np.asarray(audio, dtype=np.float32), source_sr=sample_rate)
    if len(wav) < _HOP * 10:
        wav = np.asarray(audio, dtype=np.float32)  # VAD trimmed (almost) everything: embed as is
    return encoder().embed_utterance(wav).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two d-vectors: about 0.9 for the same voice, 0.4-0.7 for others."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


@functools.lru_cache(maxsize=4)
def _mel_basis(device: str):
    import librosa
    import torch

    return torch.from_numpy(librosa.filters.mel(sr=ENCODER_SAMPLE_RATE, n_fft=_N_FFT, n_mels=_N_MELS)).to(device)


def embed_batch(waves, sample_rate: int):
    """Differentiable d-vectors [B, 256] of waveforms [B, T] (or [B, 1, T]), torch tensors."""
    import torch
    import torchaudio

    waves = waves.reshape(waves.shape[0], -1)
    if sample_rate != ENCODER_SAMPLE_RATE:
        waves = torchaudio.functional.resample(waves, sample_rate, ENCODER_SAMPLE_RATE)
    rms = waves.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-10).sqrt()
    waves = waves * (10 ** (_TARGET_DBFS / 20) / rms).detach()  # loudness is not identity
    window = torch.hann_window(_N_FFT, device=waves.device)
    spec = torch.stft(waves, _N_FFT, _HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    mels = _mel_basis(str(waves.device)) @ spec.abs().pow(2)  # resemblyzer uses power mels, not log
    model = encoder().to(waves.device)
    return model(mels.transpose(1, 2))
