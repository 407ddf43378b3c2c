"""Naturalness: how a listener would rate speech, 1 (bad) to 5 (excellent), without a reference.

DistillMOS (Microsoft, MIT) is a MOS predictor distilled from XLS-R; its weights ship inside
the wheel. Speaker encoders reward timbre, not quality (a clone can score 0.9 on them and
sound like noise), so every clone is judged on this too. Measured here: clean real speech
4.47, white noise at 5 dB SNR 1.65, the bundled voice 4.09.
"""

from __future__ import annotations

import functools

import numpy as np

from voicefake.config import ANALYSIS_RATE  # DistillMOS reads 16 kHz mono in [-1, 1]


@functools.lru_cache(maxsize=1)
def _model():
    import distillmos

    model = distillmos.ConvTransformerSQAModel().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def mos(audio: np.ndarray, sample_rate: int) -> float:
    """Predicted mean opinion score (about 1 to 5) of one utterance."""
    import soxr
    import torch

    wave = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != ANALYSIS_RATE:
        wave = soxr.resample(wave, sample_rate, ANALYSIS_RATE).astype(np.float32)
    with torch.inference_mode():
        return float(_model()(torch.from_numpy(np.clip(wave, -1.0, 1.0))[None]).item())


def mean_mos(clips: list[np.ndarray], sample_rate: int) -> float:
    """Mean predicted MOS of several utterances."""
    return float(np.mean([mos(clip, sample_rate) for clip in clips]))
