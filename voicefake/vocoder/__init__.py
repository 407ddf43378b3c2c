"""The vocoder: log-mel spectrogram -> waveform (HiFi-GAN, universal weights, never fine-tuned)."""

from voicefake.vocoder.hifigan import load_vocoder, log_mel

__all__ = ["load_vocoder", "log_mel"]
