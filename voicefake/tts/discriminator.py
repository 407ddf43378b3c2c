"""Light discriminators for fine-tuning a clone: on its waveform or on its log-mel.

Piper ships no discriminator, and coqui's (multi-period + multi-scale, 47 M parameters) costs
3.7 s a step on 2 CPU cores. Trained with the mel loss alone, the waveform decoder smears
harmonics and grows constant-frequency tones within a hundred steps; a discriminator that
looks at linear spectrograms at three resolutions sees exactly those, for a fraction of the cost
(`MultiResolutionDiscriminator`, UnivNet's MRD). A clone with the universal vocoder never makes
a waveform in training; `MelDiscriminator` judges the log-mel it hands the vocoder instead,
where an L1 loss alone leaves the harmonics blurred.
"""

from __future__ import annotations

import torch
from torch import nn

RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
CHANNELS = 16  # UnivNet uses 32; half of that, with stride in time too, fits a CPU step


class SpectrogramDiscriminator(nn.Module):
    """Judges one resolution's magnitude spectrogram; returns (logits, feature maps)."""

    def __init__(self, n_fft: int, hop: int, channels: int = CHANNELS):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        norm = nn.utils.parametrizations.weight_norm
        self.layers = nn.ModuleList([
            norm(nn.Conv2d(1, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            *[norm(nn.Conv2d(channels, channels, (3, 9), stride=(2, 2), padding=(1, 4))) for _ in range(3)],
            norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.output = norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, waves: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        window = torch.hann_window(self.n_fft, device=waves.device)
        spec = torch.stft(waves.reshape(waves.shape[0], -1), self.n_fft, self.hop, window=window, return_complex=True)
        return _judge(self.layers, self.output, spec.abs().clamp_min(1e-5).log().transpose(1, 2).unsqueeze(1))


def _judge(layers, output, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run a 2-D conv stack on `x` [B, 1, H, W]: (logits, each layer's feature map)."""
    features = []
    for layer in layers:
        x = nn.functional.leaky_relu(layer(x), 0.1)
        features.append(x)
    return output(x).flatten(1), features


class MelDiscriminator(nn.Module):
    """Judges a log-mel spectrogram [B, bands, frames] as patches of bands x frames (a list of one
    (logits, feature maps), the form `MultiResolutionDiscriminator` returns)."""

    def __init__(self, channels: int = 2 * CHANNELS):
        super().__init__()
        norm = nn.utils.parametrizations.weight_norm
        self.layers = nn.ModuleList([
            norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
            *[norm(nn.Conv2d(channels, channels, (3, 9), stride=(2, 2), padding=(1, 4))) for _ in range(3)],
            norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.output = norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, mel: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [_judge(self.layers, self.output, mel.unsqueeze(1))]


class MultiResolutionDiscriminator(nn.Module):
    """One spectrogram discriminator per resolution."""

    def __init__(self, resolutions=RESOLUTIONS, channels: int = CHANNELS):
        super().__init__()
        self.discriminators = nn.ModuleList(SpectrogramDiscriminator(n, h, channels) for n, h in resolutions)

    def forward(self, waves: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(waves) for d in self.discriminators]


def discriminator_loss(discriminator, real: torch.Tensor, made: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN loss of the discriminator: real toward 1, made toward 0."""
    loss = real.new_zeros(())
    for (real_logits, _), (made_logits, _) in zip(discriminator(real), discriminator(made.detach())):
        loss = loss + ((real_logits - 1) ** 2).mean() + (made_logits ** 2).mean()
    return loss


def adversarial_losses(discriminator, real: torch.Tensor, made: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's (adversarial, feature-matching) losses against the discriminator."""
    adversarial = feature = made.new_zeros(())
    with torch.no_grad():
        real_outputs = discriminator(real)
    for (logits, made_features), (_, real_features) in zip(discriminator(made), real_outputs):
        adversarial = adversarial + ((logits - 1) ** 2).mean()
        feature = feature + sum(torch.mean(torch.abs(a - b)) for a, b in zip(made_features, real_features))
    return adversarial, feature
