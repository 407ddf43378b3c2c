"""Fine-tuning VITS: the posterior encoder the ONNX voice lacks, then a clone of a target speaker.

Piper ships only the inference half of VITS. Training also needs the posterior encoder
(linear spectrogram -> latent z), so `distill_posterior_encoder` rebuilds it from the model's
own speech, whose z is known. A clone (`fine_tune`) then trains in two phases:

    1. autoencoder   posterior encoder + mel adapter reconstruct her log-mel (`autoencoder_losses`)
    2. clone         the VITS objective in mel space: mel reconstruction, KL between posterior and
                     prior, duration likelihood (`mel_losses`)

The bundled voice's own waveform decoder can be trained instead (`generator_losses`, with an
optional spectrogram discriminator), but it smears the harmonics (issue 12).
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import torch

from voicefake.config import HOP_LENGTH, NOISE_SCALE, SAMPLE_RATE
from voicefake.enroll.dataset import read_dataset
from voicefake.errors import VoicefakeError
from voicefake.io.atomic import atomic_output, output_error
from voicefake.io.audio import read_audio
from voicefake.tts.model import has_mel_decoder
from voicefake.tts.text import clean_text, phonemes_to_ids, phonemize
from voicefake.vocoder.hifigan import log_mel_of_spectrogram

N_FFT = 1024
N_MELS = 80
SEGMENT_FRAMES = 32  # decoder trains on random 32-frame (0.37 s) slices, as in VITS


@dataclass
class Utterance:
    """One training clip: audio at SAMPLE_RATE and the phoneme ids of its transcript."""

    audio: np.ndarray
    phoneme_ids: list[int]
    text: str


def load_utterances(
    folder: str | Path, id_map, espeak_voice: str = "en-us", minutes: float | None = None,
    min_seconds: float = 0.5, max_seconds: float = 30.0,
) -> list[Utterance]:
    """Read, resample and phonemize a dataset folder, up to `minutes` of audio. Clips longer than
    training takes are kept whole here: `pauses.cut_at_pauses` cuts them."""
    utterances, total = [], 0.0
    for path, text in read_dataset(folder):
        if minutes is not None and total >= minutes * 60:
            break
        audio, _ = read_audio(path, SAMPLE_RATE)
        seconds = len(audio) / SAMPLE_RATE
        if not min_seconds <= seconds <= max_seconds:
            continue
        phonemes = [p for sentence in phonemize(clean_text(text, espeak_voice), espeak_voice) for p in [*sentence, " "]][:-1]
        peak = np.abs(audio).max()
        if peak > 0:
            audio = audio * (0.95 / peak)
        utterances.append(Utterance(audio.astype(np.float32), phonemes_to_ids(phonemes, id_map), text))
        total += seconds
    if not utterances:
        raise VoicefakeError(f"no usable clips ({min_seconds}-{max_seconds} s with transcripts) in {folder}")
    return utterances


def spectrogram(waves: torch.Tensor) -> torch.Tensor:
    """Linear magnitude spectrogram [B, 513, frames] of waveforms [B, 1, T] (the posterior encoder's input)."""
    from TTS.utils.audio.torch_transforms import wav_to_spec

    return wav_to_spec(waves, N_FFT, HOP_LENGTH, N_FFT)


def mel_spectrogram(waves: torch.Tensor) -> torch.Tensor:
    """Log mel spectrogram [B, 80, frames] (what the reconstruction loss compares)."""
    from TTS.utils.audio.torch_transforms import spec_to_mel

    return spec_to_mel(spectrogram(waves), N_FFT, N_MELS, SAMPLE_RATE, 0.0, None)


def collate(utterances: list[Utterance]) -> dict[str, torch.Tensor]:
    """Pad a list of utterances into one batch (phoneme ids, spectrograms, waveforms)."""
    frames = [len(u.audio) // HOP_LENGTH for u in utterances]
    ids = torch.zeros(len(utterances), max(len(u.phoneme_ids) for u in utterances), dtype=torch.long)
    waves = torch.zeros(len(utterances), 1, max(frames) * HOP_LENGTH)
    for i, (u, n) in enumerate(zip(utterances, frames)):
        ids[i, : len(u.phoneme_ids)] = torch.tensor(u.phoneme_ids)
        waves[i, 0, : n * HOP_LENGTH] = torch.from_numpy(u.audio[: n * HOP_LENGTH])
    return {
        "x": ids,
        "x_lengths": torch.tensor([len(u.phoneme_ids) for u in utterances]),
        "spec": spectrogram(waves),
        "spec_lengths": torch.tensor(frames),
        "waves": waves,
    }


def _kl(z_p, logs_q, m_p, logs_p, mask) -> torch.Tensor:
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return (kl * mask).sum() / mask.sum()


STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop): short, medium and long windows


def stft_loss(made: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss (Parallel WaveGAN): spectral convergence + log magnitude, 3 resolutions.

    The mel loss alone blurs harmonics above the mel bands' resolution; short windows keep
    onsets and long ones keep the harmonics sharp.
    """
    made, real = made.reshape(-1, made.shape[-1]), real.reshape(-1, real.shape[-1])
    total = made.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        window = torch.hann_window(n_fft, device=made.device)
        a, b = (torch.stft(w, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-5) for w in (made, real))
        total = total + torch.linalg.norm(b - a) / torch.linalg.norm(b) + torch.nn.functional.l1_loss(a.log(), b.log())
    return total / len(STFT_RESOLUTIONS)


def generator_losses(model, batch: dict, d_vectors: torch.Tensor | None = None, speaker_weight: float = 0.0,
                     stft_weight: float = 0.0, discriminator=None, adversarial_weight: float = 0.0):
    """The VITS generator objective on one batch; returns a dict of scalar losses with "total".

    With a `discriminator`, "total" also holds its own least-squares loss on the same slices:
    the two never share a gradient (its weights are frozen for the generator's terms, the
    decoder's output is detached for its own), so one backward pass and one optimizer step
    train both.
    """
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    aux = {"d_vectors": None if d_vectors is None else d_vectors.to(device)}
    out = model(batch["x"], batch["x_lengths"], batch["spec"], batch["spec_lengths"], batch["waves"], aux)
    y_mask = (torch.arange(batch["spec"].shape[2], device=device)[None] < batch["spec_lengths"][:, None]).float()
    losses = {
        "mel": torch.nn.functional.l1_loss(mel_spectrogram(out["model_outputs"]), mel_spectrogram(out["waveform_seg"])),
        "kl": _kl(out["z_p"], out["logs_q"], out["m_p"], out["logs_p"], y_mask[:, None]),
        "duration": out["loss_duration"].sum(),
    }
    total = 45.0 * losses["mel"] + losses["kl"] + losses["duration"]  # the VITS paper's weights
    if stft_weight:
        losses["stft"] = stft_loss(out["model_outputs"], out["waveform_seg"])
        total = total + stft_weight * losses["stft"]
    if discriminator is not None and adversarial_weight:
        total = total + _adversarial_terms(discriminator, out["waveform_seg"], out["model_outputs"], losses,
                                           adversarial_weight)
    if speaker_weight and d_vectors is not None:
        from voicefake.speaker import embed_batch

        made = embed_batch(out["model_outputs"], SAMPLE_RATE)
        target = torch.nn.functional.normalize(d_vectors.to(device), dim=-1)
        losses["speaker"] = 1.0 - (made * target).sum(-1).mean()
        total = total + speaker_weight * losses["speaker"]
    losses["total"] = total
    return losses


def _adversarial_terms(discriminator, real: torch.Tensor, made: torch.Tensor, losses: dict, weight: float):
    """Generator (adversarial + feature matching, VITS weights 1 and 2) and discriminator terms."""
    from voicefake.tts.discriminator import adversarial_losses, discriminator_loss

    discriminator.requires_grad_(False)
    losses["adversarial"], losses["features"] = adversarial_losses(discriminator, real, made)
    discriminator.requires_grad_(True)
    losses["discriminator"] = discriminator_loss(discriminator, real, made)
    return weight * (losses["adversarial"] + 2.0 * losses["features"]) + losses["discriminator"]


def mel_losses(model, batch: dict, d_vectors: torch.Tensor, prior_weight: float = 0.0,
               adversarial_weight: float = 0.0, prior_quefrencies: int = 0, adversarial_quefrencies: int = 0) -> dict:
    """The clone objective of a model with a `MelWaveformDecoder`: VITS's, reconstructing in mel space.

    The posterior's z must give, through the adapter, the clip's log-mel; KL between posterior
    and prior and the duration likelihood are VITS's. With `prior_weight` > 0, what the prior
    samples on the aligned text (`_prior_latents`) must give the clip's log-mel too; with
    `adversarial_weight` > 0, it must also pass `model.disc` (a `MelDiscriminator`) as her log-mel
    (with `adversarial_quefrencies` > 0, judged on their fine structure alone: `_fine_structure`).
    The vocoder never runs in training (a step costs 0.84x one that trains the bundled decoder).
    """
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    g = torch.nn.functional.normalize(d_vectors.to(device)).unsqueeze(-1)
    text, m_p, logs_p, x_mask = model.text_encoder(batch["x"], batch["x_lengths"])
    z, _, logs_q, y_mask = model.posterior_encoder(batch["spec"], batch["spec_lengths"], g=g)
    z_p = model.flow(z, y_mask, g=g)
    durations, path = model.forward_mas({}, z_p, m_p, logs_p, text, x_mask, y_mask, g=g, lang_emb=None)
    m_p, logs_p = (torch.einsum("klmn, kjm -> kjn", path, prior) for prior in (m_p, logs_p))
    target = log_mel_of_spectrogram(batch["spec"])  # the vocoder's features, from the STFT collate already made
    losses = {
        "mel": _adapter_mel_error(model, z, y_mask, target),
        "kl": _kl(z_p, logs_q, m_p, logs_p, y_mask),
        "duration": durations["loss_duration"].sum(),
    }
    losses["total"] = 45.0 * losses["mel"] + losses["kl"] + losses["duration"]
    if prior_weight or adversarial_weight:
        spoken = _prior_latents(model, m_p, logs_p, y_mask, g)
    if prior_weight:  # taught to the flow, not the adapter; `prior_quefrencies` > 0: the envelopes only
        losses["prior_mel"] = _adapter_mel_error(model, spoken, y_mask, target, adapter_learns=False,
                                                 quefrencies=prior_quefrencies)
        losses["total"] = losses["total"] + 45.0 * prior_weight * losses["prior_mel"]
    if adversarial_weight:
        made, real = model.waveform_decoder.adapter(spoken * y_mask), target
        if adversarial_quefrencies:  # the harmonics, which the spoken path blurs (docs/cloning.md)
            made, real = (_fine_structure(x, adversarial_quefrencies) for x in (made, real))
        losses["total"] = losses["total"] + _adversarial_terms(model.disc, real * y_mask, made * y_mask, losses,
                                                               adversarial_weight)
    return losses


def _prior_latents(model, m_p, logs_p, y_mask, g) -> torch.Tensor:
    """Latents drawn as a voice speaks: from the prior (on the frames the alignment gave the text),
    through the flow backwards, with the voice's sampling noise.

    Training otherwise shows the adapter only the posterior's latents, which the prior matches
    in distribution (KL), not frame for frame; losses on these train the path a voice speaks."""
    z_p = m_p + torch.randn_like(m_p) * torch.exp(logs_p) * NOISE_SCALE
    return model.flow(z_p, y_mask, g=g, reverse=True)


@functools.lru_cache(maxsize=4)
def _cepstrum_matrix(quefrencies: int, bands: int) -> torch.Tensor:
    """The first `quefrencies` rows of the orthonormal DCT-II over `bands` log-mel bands."""
    return torch.from_numpy(scipy.fft.dct(np.eye(bands), norm="ortho", axis=0)[:quefrencies]).float()


def _envelope(log_mel: torch.Tensor, quefrencies: int) -> torch.Tensor:
    """The log-mel's low-quefrency cepstrum [B, quefrencies, frames]: its envelope (formants: what
    is said), without the harmonic fine structure (pitch), which a text-only path can only average."""
    return torch.einsum("kb,nbt->nkt", _cepstrum_matrix(quefrencies, log_mel.shape[1]).to(log_mel), log_mel)


def _fine_structure(log_mel: torch.Tensor, quefrencies: int) -> torch.Tensor:
    """The log-mel less its envelope (`_envelope`, turned back into bands): the ripple of the pitch's
    harmonics, [B, bands, frames]."""
    basis = _cepstrum_matrix(quefrencies, log_mel.shape[1]).to(log_mel)
    return log_mel - torch.einsum("kb,nkt->nbt", basis, _envelope(log_mel, quefrencies))


def autoencoder_losses(model, batch: dict, d_vectors: torch.Tensor) -> dict:
    """Phase 1 of a clone: the posterior encoder and the adapter learn to reconstruct her log-mel.

    An autoencoder on her clips (no prior, flow or durations, so no KL pulling her latents back
    toward the base voice's): the adapter learns her sound from latents that can carry it.
    Phase 2 (`mel_losses`) then brings the prior to those latents (issue 12: DistillMOS 2.9-3.1
    after both phases against 2.2 for phase 2 alone, on the 100-step test bed).
    """
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    g = torch.nn.functional.normalize(d_vectors.to(device)).unsqueeze(-1)
    z, _, _, y_mask = model.posterior_encoder(batch["spec"], batch["spec_lengths"], g=g)
    mel = _adapter_mel_error(model, z, y_mask, log_mel_of_spectrogram(batch["spec"]))
    return {"mel": mel, "total": 45.0 * mel}


def _adapter_mel_error(model, z: torch.Tensor, y_mask: torch.Tensor, target: torch.Tensor,
                       adapter_learns: bool = True, quefrencies: int = 0) -> torch.Tensor:
    """Mean L1 between the adapter's log-mel of `z` and the clip's, `target` (whole clips: the adapter is cheap).

    `adapter_learns` False: the error teaches only what made `z`, not the adapter. `quefrencies` > 0:
    between their envelopes (`_envelope`) instead."""
    adapter = model.waveform_decoder.adapter
    if adapter_learns:
        made = adapter(z * y_mask)
    else:
        fixed = {name: p.detach() for name, p in adapter.named_parameters()}
        made = torch.func.functional_call(adapter, fixed, (z * y_mask,))
    if quefrencies:
        made, target = _envelope(made, quefrencies), _envelope(target, quefrencies)
    return ((made - target).abs() * y_mask).sum() / (y_mask.sum() * made.shape[1])


class MelObjective(torch.nn.Module):
    """`mel_losses` (or phase 1's `autoencoder_losses`) as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, model, settings: TrainSettings):
        super().__init__()
        self.model = model
        self.weights = {"prior_weight": settings.prior_mel_weight, "adversarial_weight": settings.adversarial_weight,
                        "prior_quefrencies": settings.prior_mel_quefrencies,
                        "adversarial_quefrencies": settings.adversarial_quefrencies}

    def forward(self, batch: dict, d_vectors: torch.Tensor, autoencoder: bool = False) -> dict:
        if autoencoder:
            return autoencoder_losses(self.model, batch, d_vectors)
        return mel_losses(self.model, batch, d_vectors, **self.weights)


def fit_mel_adapter(adapter, examples: list[tuple[torch.Tensor, torch.Tensor]], steps: int, batch_size: int = 16,
                    window: int = 128, lr: float = 1e-3, progress=None) -> list[float]:
    """Teach the adapter the base voice's own latent -> log-mel map from (z, log-mel) examples of its speech.

    Then a clone starts where the base voice is (DistillMOS 3.6 through the vocoder after 3000
    steps, against 3.63 for the vocoder on the base voice's exact mel) and moves from there."""
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    adapter.train()
    losses = []
    for _ in range(steps):
        picked = random.sample(examples, min(batch_size, len(examples)))
        z = torch.nn.utils.rnn.pad_sequence([e[0].T for e in picked], batch_first=True).transpose(1, 2)
        mel = torch.nn.utils.rnn.pad_sequence([e[1].T for e in picked], batch_first=True).transpose(1, 2)
        mel, lengths, z = _random_windows(mel, torch.tensor([e[0].shape[1] for e in picked]), z, window)
        mask = (torch.arange(mel.shape[2])[None] < lengths[:, None]).unsqueeze(1)
        loss = ((adapter(z) - mel).abs() * mask).sum() / (mask.sum() * mel.shape[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress:
            progress(losses[-1])
    adapter.eval()
    return losses


class WeightAverage:
    """An exponential moving average of a model's trained weights (Polyak averaging).

    Starts where phase 2 starts; the decay ramps up, (1 + n) / (10 + n), so the first steps'
    weights do not linger in it."""

    def __init__(self, model, decay: float):
        self.decay, self.count = decay, 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()
                       if p.requires_grad and not name.startswith("disc.")}  # a voice has no discriminator

    @torch.no_grad()
    def update(self, model) -> None:
        """Fold in the model's weights after a step (the first update copies them)."""
        keep = min(self.decay, (1 + self.count) / (10 + self.count)) if self.count else 0.0
        self.count += 1
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1.0 - keep)

    @torch.no_grad()
    def swap(self, model) -> None:
        """Exchange the model's weights with the averaged ones (twice: back as they were).

        Before the first update there is no average: the model keeps its weights."""
        if not self.count:
            return
        for name, p in model.named_parameters():
            if name in self.shadow:
                trained = p.detach().clone()
                p.copy_(self.shadow[name])
                self.shadow[name] = trained

    @contextlib.contextmanager
    def in_use(self, model):
        """The model holds the averaged weights inside the block, its own again after it."""
        self.swap(model)
        try:
            yield model
        finally:
            self.swap(model)

    def state_dict(self) -> dict:
        return {"count": self.count, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.shadow = int(state["count"]), dict(state["shadow"])


@dataclass
class Checkpoint:
    """Everything needed to resume training exactly where it stopped."""

    step: int
    seconds: float  # training time spent so far
    settings: dict
    history: list  # (step, seconds, validation figures) rows

    def save(self, path: Path, model, optimizer, average: WeightAverage | None = None) -> None:
        """Write then rename: a crash or full disk never leaves a corrupt checkpoint."""
        extra = {} if average is None else {"average": average.state_dict()}
        with atomic_output(path) as partial:
            try:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), **extra, **asdict(self)},
                           partial)
            except (OSError, RuntimeError) as error:  # torch reports a full disk as RuntimeError
                raise output_error(path, error) from error

    @classmethod
    def load(cls, path: Path, model, optimizer=None, average: WeightAverage | None = None) -> Checkpoint:
        """Restore model (and optimizer, and weight average) weights; returns the training position.

        A truncated, overwritten or foreign file raises VoicefakeError (`damaged_checkpoint`)."""
        check_checkpoint(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            if optimizer is not None:
                optimizer.load_state_dict(state["optimizer"])
            if average is not None and "average" in state:
                average.load_state_dict(state["average"])
            return cls(state["step"], state["seconds"], state["settings"], state["history"])
        except Exception as error:  # unpickling, missing keys, tensors of another model
            raise damaged_checkpoint(path, error) from error


def damaged_checkpoint(path: Path, error: BaseException | str) -> VoicefakeError:
    """The one-line error for a checkpoint that cannot be resumed from."""
    reason = error if isinstance(error, str) else (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
    return VoicefakeError(f"the checkpoint {path} is damaged ({reason}): it cannot be resumed from; "
                          "start over with --restart")


def check_checkpoint(path: Path) -> None:
    """Cheaply check that `path` is a whole torch.save archive (every member's CRC), without unpickling it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
                raise damaged_checkpoint(path, "not a PyTorch checkpoint")
            bad = archive.testzip()
    except VoicefakeError:
        raise
    except OSError as error:  # BadZipFile is no OSError: this is a read failure (permissions, I/O)
        raise VoicefakeError(f"cannot read the checkpoint {path}: {error.strerror or error}") from error
    except Exception as error:  # BadZipFile, and whatever else garbage makes zipfile raise
        raise damaged_checkpoint(path, f"not a complete PyTorch checkpoint: {error}") from error
    if bad is not None:
        raise damaged_checkpoint(path, f"{bad} is corrupt")


def pad_pairs(waves: list[np.ndarray], zs: list[np.ndarray], features=spectrogram) -> tuple[torch.Tensor, ...]:
    """Batch (waveform, latent z) pairs as (`features` of the waveforms, frame counts, z) for distillation."""
    frames = [z.shape[1] for z in zs]
    longest = max(frames)
    wave_batch = torch.zeros(len(waves), 1, longest * HOP_LENGTH)
    z_batch = torch.zeros(len(zs), zs[0].shape[0], longest)
    for i, (w, z) in enumerate(zip(waves, zs)):
        w = torch.as_tensor(w).reshape(-1)[: longest * HOP_LENGTH]
        wave_batch[i, 0, : len(w)] = w
        z_batch[i, :, : z.shape[1]] = torch.as_tensor(z)
    return features(wave_batch), torch.tensor(frames), z_batch


def _random_windows(spec, lengths, z, window: int):
    """The same random slice of at most `window` frames from each spectrogram and its z."""
    width = min(window, int(lengths.max()))
    spec_out = torch.zeros(spec.shape[0], spec.shape[1], width)
    z_out = torch.zeros(z.shape[0], z.shape[1], width)
    for i, n in enumerate(lengths.tolist()):
        start, take = random.randint(0, max(0, n - width)), min(width, n)
        spec_out[i, :, :take] = spec[i, :, start : start + take]
        z_out[i, :, :take] = z[i, :, start : start + take]
    return spec_out, lengths.clamp(max=width), z_out


def pytorch_teacher(model, d_vector: torch.Tensor | None = None, noise: float = 0.667):
    """`teacher(sentences)`: the model speaks them; returns their (waveform, z) pairs batched."""
    g = None if d_vector is None else d_vector.reshape(1, -1)

    @torch.no_grad()
    def teach(sentences: list[list[int]]):
        waves, zs = [], []
        for ids in sentences:
            model.inference_noise_scale, model.length_scale, model.inference_noise_scale_dp = noise, 1.0, 0.8
            out = model.inference(torch.tensor([ids]), aux_input={"x_lengths": torch.tensor([len(ids)]), "d_vectors": g})
            waves.append(out["model_outputs"][0, 0])
            zs.append(out["z"][0])
        return pad_pairs(waves, zs)

    return teach


def distill_posterior_encoder(model, sentences: list[list[int]], steps: int, d_vector: torch.Tensor | None = None,
                              batch_size: int = 8, lr: float = 2e-4, optimizer=None, teacher=None,
                              progress=None, window: int = 96) -> list[float]:
    """Teach the posterior encoder to recover, from a spectrogram, the z the decoder made it from.

    `teacher(sentences) -> (spectrograms, frames, z)` makes the examples; by default the model
    itself in PyTorch (clone.py uses the 5x faster ONNX graph of the same voice). The encoder
    sees random `window`-frame slices: its receptive field is 65 frames, so whole sentences
    would cost more and teach nothing more.
    """
    encoder = model.posterior_encoder
    optimizer = optimizer or torch.optim.AdamW(encoder.parameters(), lr=lr, betas=(0.8, 0.99))
    teacher = teacher or pytorch_teacher(model, d_vector)
    g = None if d_vector is None else d_vector.reshape(1, -1, 1)
    losses = []
    for _ in range(steps):
        picked = random.sample(sentences, min(batch_size, len(sentences)))
        spec, lengths, z = _random_windows(*teacher(picked), window)
        encoder.train()
        _, m_q, logs_q, mask = encoder(spec, lengths, g=None if g is None else g.expand(len(picked), -1, -1))
        # Gaussian likelihood of the true z under q, per frame: fits the mean and a calibrated spread
        nll = (logs_q + 0.5 * (z - m_q) ** 2 * torch.exp(-2 * logs_q)) * mask
        loss = nll.sum() / (mask.sum() * z.shape[1])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 5.0)
        optimizer.step()
        losses.append(loss.item())
        if progress:
            progress(losses[-1])
    encoder.eval()
    return losses


@dataclass
class TrainSettings:
    """What a clone run trains and for how long. Changing any of these (but `minutes`) breaks `--resume`."""

    # "universal": the clone learns in mel space and speaks through the universal HiFi-GAN
    # (`mel_losses`); "own": the bundled voice's waveform decoder is fine-tuned on the waveform
    # (`generator_losses`), which smears the harmonics within 100 steps (README, issue 12)
    vocoder: str = "universal"
    batch_size: int = 4
    learning_rate: float = 2e-4  # the VITS training rate: 5 minutes of data leave no time to go slower
    # Measured on Allison, 150 steps: training everything took the word error rate from 0.34 to
    # 0.94 (the text side forgets English before it learns her); freezing the text encoder and
    # duration predictor and slowing the flow keeps it near 0.35-0.46 for the same similarity gain.
    frozen: tuple = ("text_encoder", "duration_predictor")
    flow_rate_scale: float = 0.1  # the flow moves the prior toward her latents, gently
    stft_weight: float = 0.0  # the multi-resolution STFT loss beside the mel loss
    prior_mel_weight: float = 0.0  # > 0: the mel loss on the prior's latents too (`mel_losses`)
    prior_mel_quefrencies: int = 0  # > 0: ... on their envelope only, this many cepstral coefficients
    adversarial_weight: float = 0.0  # > 0: train the decoder (or the mel adapter) against a discriminator too
    adversarial_quefrencies: int = 0  # > 0: the mel discriminator judges the fine structure from this coefficient up
    conditioning_rate_scale: float = 1.0  # the layers that inject the d-vector (zero at the start)
    decoder_rate_scale: float = 1.0  # the waveform decoder (the vocoder); 0 freezes it but its conditioning
    speaker_weight: float = 5.0  # the resemblyzer speaker-consistency loss (own vocoder only)
    # Phase 1 (universal vocoder only): the first steps train the posterior encoder and the
    # adapter alone, as an autoencoder of her mel (`autoencoder_losses`), the adapter faster.
    autoencoder_steps: int = 300
    autoencoder_adapter_rate_scale: float = 5.0
    # What validation judges and a clone keeps: an exponential moving average of the weights phase 2
    # trains (its horizon grows to 1 / (1 - decay) steps), not the last step's, which batch 4 jitters.
    average_decay: float = 0.99
    segment_frames: int = SEGMENT_FRAMES
    max_clip_seconds: float = 8.0  # longer clips cost much more per step for little gain
    seed: int = 0


def trainable_parameters(model, frozen: tuple = ()) -> list[torch.nn.Parameter]:
    """The generator's parameters (no discriminator), minus the modules named in `frozen`."""
    return [p for name, p in model.named_parameters()
            if not name.startswith("disc.") and not name.startswith(tuple(f"{f}." for f in frozen))]


def _rate_scale(name: str, settings: TrainSettings) -> float:
    """How fast one parameter learns, relative to the learning rate."""
    if re.search(r"(^|\.)cond(_layer)?\.", name):
        return settings.conditioning_rate_scale  # the speaker-conditioning layers start at zero
    if name.startswith("flow."):
        return settings.flow_rate_scale
    if name.startswith("waveform_decoder."):
        return settings.decoder_rate_scale
    return 1.0


def parameter_groups(model, settings: TrainSettings) -> list[dict]:
    """Optimizer groups by learning rate (see `_rate_scale`); frozen parts and rate 0 are left out.

    Each group also carries its rate in either phase ("clone_lr", "autoencoder_lr"; `use_phase`)."""
    frozen = tuple(f"{f}." for f in settings.frozen)
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if name.startswith("disc."):
            scale = 1.0 if settings.adversarial_weight else 0.0
        else:
            scale = 0.0 if name.startswith(frozen) else _rate_scale(name, settings)
        p.requires_grad_(scale > 0)  # no gradients computed for frozen parts: faster
        if scale > 0:
            groups.setdefault((scale, name.startswith("waveform_decoder.")), []).append(p)
    return [{"params": params, "lr": settings.learning_rate * scale, "clone_lr": settings.learning_rate * scale,
             "autoencoder_lr": settings.learning_rate * scale * (settings.autoencoder_adapter_rate_scale if decoder else 1)}
            for (scale, decoder), params in groups.items()]


def autoencoding(model, step: int, settings: TrainSettings) -> bool:
    """Whether training step `step` (0-based) belongs to phase 1, the autoencoder (`autoencoder_losses`)."""
    return has_mel_decoder(model) and step < settings.autoencoder_steps


def use_phase(optimizer, model, step: int, settings: TrainSettings) -> None:
    """Set the learning rates of the phase step `step` is in; phase 2 starts with fresh Adam moments.

    Only the step decides, so a run resumed in either phase, or at the boundary, goes on alike."""
    phase_one = autoencoding(model, step, settings)
    for group in optimizer.param_groups:
        group["lr"] = group["autoencoder_lr" if phase_one else "clone_lr"]
    if step == settings.autoencoder_steps and has_mel_decoder(model):
        optimizer.state.clear()  # the moments of the autoencoder's gradients would steer the first clone steps


def fine_tune(
    model, utterances: list[Utterance], d_vector: torch.Tensor, checkpoint_path: Path, settings: TrainSettings,
    seconds: float, max_steps: int | None = None, resume: bool = False, checkpoint_every: float = 120.0,
    validate=None, validate_every: int = 100, patience: int = 4, on_step=None,
) -> Checkpoint:
    """Train `model` toward the speaker of `utterances` for `seconds` of wall time (or `max_steps`).

    Saves `checkpoint_path` every `checkpoint_every` seconds, at the end and when interrupted
    (Ctrl-C, SIGTERM), so only a hard kill (-9) loses anything: at most one interval.
    A clone with the universal vocoder first trains `settings.autoencoder_steps` steps of phase 1
    (`autoencoder_losses`), then the clone objective. `validate(model) -> dict` of figures with
    a "score" (higher is better) runs every `validate_every` steps of phase 2 on the average of
    the weights phase 2 trained (`WeightAverage`); the best-scoring average is kept beside the
    checkpoint (`best.pt`) and is what the model holds on return;
    training stops early after `patience` checks without a new best. `on_step(step, losses,
    checkpoint)` reports progress. Runs under torchrun too (DistributedDataParallel, gloo or
    nccl): rank 0 writes the files.
    """
    import time

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    model.spec_segment_size = settings.segment_frames
    if settings.adversarial_weight:
        from voicefake.tts.discriminator import MelDiscriminator, MultiResolutionDiscriminator

        judge = MelDiscriminator if has_mel_decoder(model) else MultiResolutionDiscriminator
        model.disc = judge().to(next(model.parameters()).device)
    optimizer = torch.optim.AdamW(parameter_groups(model, settings), betas=(0.8, 0.99), eps=1e-9)
    average = WeightAverage(model, settings.average_decay)
    state = _starting_state(model, optimizer, checkpoint_path, settings, resume, average)
    objective = MelObjective(model, settings) if has_mel_decoder(model) else model
    trainer = torch.nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True) if distributed else objective
    clips = [u for u in utterances if len(u.audio) <= settings.max_clip_seconds * SAMPLE_RATE] or utterances
    target = torch.nn.functional.normalize(d_vector.reshape(1, -1).float(), dim=-1)
    best_path = best_weights_path(checkpoint_path)
    started, last_save = time.monotonic() - state.seconds, time.monotonic()

    def finished() -> bool:
        done = (max_steps is not None and state.step >= max_steps) or time.monotonic() - started >= seconds
        done = done or _checks_since_best(state.history) >= patience
        if distributed:  # every rank must stop at the same step, or the others wait forever
            flag = torch.tensor([float(done)])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            done = bool(flag.item())
        return done

    try:
        while not finished():
            rng = random.Random(settings.seed * 1_000_003 + state.step * world + rank)  # resumable and per-rank
            batch = collate(rng.sample(clips, min(settings.batch_size, len(clips))))
            use_phase(optimizer, model, state.step, settings)
            phase_one = autoencoding(model, state.step, settings)
            losses = _train_step(trainer, model, optimizer, batch, target, settings, phase_one)
            if not phase_one:
                average.update(model)
            state.step += 1
            state.seconds = time.monotonic() - started
            if validate is not None and _validation_due(model, state.step, settings, validate_every):
                _validate(model, validate, state, best_path if rank == 0 else None, average)
            if on_step:
                on_step(state.step, losses, state)
            if rank == 0 and time.monotonic() - last_save >= checkpoint_every:
                state.save(checkpoint_path, model, optimizer, average)
                last_save = time.monotonic()
    except BaseException:  # Ctrl-C, a cancel from the app (SIGTERM): keep every finished step
        if rank == 0 and state.step > 0:
            state.save(checkpoint_path, model, optimizer, average)
        raise
    model.eval()
    if rank == 0:
        state.save(checkpoint_path, model, optimizer, average)
    average.swap(model)  # the model ends holding the average, or the best check's weights (below)
    load_best_weights(model, best_path)
    return state


def _starting_state(model, optimizer, checkpoint_path: Path, settings: TrainSettings, resume: bool,
                    average: WeightAverage) -> Checkpoint:
    """A fresh position, or the checkpoint's when resuming with unchanged settings."""
    if not (resume and Path(checkpoint_path).exists()):
        best_weights_path(checkpoint_path).unlink(missing_ok=True)  # a new run: an old best is not ours
        return Checkpoint(step=0, seconds=0.0, settings=asdict(settings), history=[])
    state = Checkpoint.load(checkpoint_path, model, optimizer, average)
    if state.settings != asdict(settings):
        changed = sorted(k for k in asdict(settings) if state.settings.get(k) != asdict(settings)[k])
        raise VoicefakeError(f"cannot resume: settings changed since the checkpoint ({', '.join(changed)}); "
                             "use the same settings, or start over without --resume")
    return state


def _train_step(trainer, model, optimizer, batch: dict, target: torch.Tensor, settings: TrainSettings,
                autoencoder: bool = False) -> dict:
    """One optimizer step on one batch; returns the losses as floats."""
    model.train()
    d_vectors = target.expand(len(batch["x"]), -1)
    if has_mel_decoder(model):
        losses = trainer(batch, d_vectors, autoencoder)
    else:
        losses = generator_losses(trainer, batch, d_vectors, settings.speaker_weight, settings.stft_weight,
                                  getattr(model, "disc", None), settings.adversarial_weight)
    optimizer.zero_grad()
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 10.0)
    optimizer.step()
    return {k: v.item() for k, v in losses.items()}


def _validation_due(model, steps_done: int, settings: TrainSettings, every: int) -> bool:
    """Every `every` steps of phase 2 (the autoencoder's prior is not yet the voice: no point judging it)."""
    clone_steps = steps_done - (settings.autoencoder_steps if has_mel_decoder(model) else 0)
    return clone_steps > 0 and clone_steps % every == 0


def _score(row) -> float:
    """The validation score of a history row (step, seconds, figures)."""
    figures = row[2]
    return float(figures["score"] if isinstance(figures, dict) else figures)


def _checks_since_best(history: list) -> int:
    """How many validations have passed since the best one (0 when the last one is the best)."""
    if not history:
        return 0
    scores = [_score(row) for row in history]
    return len(scores) - 1 - int(np.argmax(scores))


def _validate(model, validate, state: Checkpoint, best_path: Path | None, average: WeightAverage) -> None:
    """Measure the model's averaged weights; keep them in `best_path` when they beat every earlier check.

    Training goes on from its own weights afterwards."""
    model.eval()
    with average.in_use(model):
        figures = validate(model)
        figures = dict(figures) if isinstance(figures, dict) else {"score": float(figures)}
        state.history.append((state.step, round(state.seconds, 1), figures))
        if best_path is not None and _checks_since_best(state.history) == 0:
            with atomic_output(best_path) as partial:
                torch.save({"model": generator_state(model), "step": state.step, "figures": figures}, partial)


def best_weights_path(checkpoint_path: Path) -> Path:
    """Where the best-validated weights of a run are kept: `best.pt` beside its checkpoint."""
    return Path(checkpoint_path).with_name("best.pt")


def generator_state(model) -> dict:
    """The weights a voice needs (no discriminator)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("disc.")}


def load_best_weights(model, best_path: Path) -> int | None:
    """Put the best-validated weights into `model`; returns their step (None when there are none)."""
    if not Path(best_path).exists():
        return None
    state = torch.load(best_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"], strict=False)
    return int(state["step"])
