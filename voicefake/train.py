"""Fine-tuning VITS: the posterior encoder the ONNX voice lacks, then a clone of a target speaker.

Piper ships only the inference half of VITS. Training also needs the posterior encoder
(linear spectrogram -> latent z), so `distill_posterior_encoder` rebuilds it from the model's
own speech, whose z is known. `train_step` is then the VITS generator objective (mel
reconstruction, KL between posterior and prior, duration likelihood) plus a speaker-consistency
loss through resemblyzer that pulls the output toward the target's d-vector. The GAN half is
left out: on a CPU one discriminator step costs as much as four generator steps.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import HOP_LENGTH, SAMPLE_RATE, read_audio
from .dataset import _is_number
from .errors import VoicefakeError
from .text import phonemes_to_ids, phonemize, clean_text

N_FFT = 1024
N_MELS = 80
SEGMENT_FRAMES = 32  # decoder trains on random 32-frame (0.37 s) slices, as in VITS


@dataclass
class Utterance:
    """One training clip: audio at SAMPLE_RATE and the phoneme ids of its transcript."""

    audio: np.ndarray
    phoneme_ids: list[int]
    text: str


def read_metadata(folder: str | Path) -> list[tuple[Path, str]]:
    """(audio path, transcript) pairs of an LJSpeech-style folder.

    Accepts classic LJSpeech (`id|text|normalized text`, audio in `wavs/<id>.wav`) and the
    headed `file|transcript|duration_s` form, whose file names carry their extension.
    """
    folder = Path(folder)
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise VoicefakeError(f"{folder} has no metadata.csv: expected an LJSpeech-style folder (wavs/, metadata.csv)")
    rows = list(csv.reader(metadata.open(encoding="utf-8"), delimiter="|", quoting=csv.QUOTE_NONE))
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["file", "transcript"]:
        rows = rows[1:]
    pairs = []
    for row in rows:
        if len(row) < 2 or not row[1].strip():
            continue
        name, text = row[0].strip(), (row[2] if len(row) > 2 and row[2].strip() and not _is_number(row[2]) else row[1])
        name = name if Path(name).suffix else f"{name}.wav"
        path = folder / name if "/" in name or (folder / name).is_file() else folder / "wavs" / name
        pairs.append((path, text.strip()))
    if not pairs:
        raise VoicefakeError(f"{metadata} lists no clips with transcripts")
    return pairs


def load_utterances(
    folder: str | Path, id_map, espeak_voice: str = "en-us", minutes: float | None = None,
    min_seconds: float = 0.5, max_seconds: float = 12.0,
) -> list[Utterance]:
    """Read, resample and phonemize a dataset folder, up to `minutes` of audio."""
    utterances, total = [], 0.0
    for path, text in read_metadata(folder):
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


def generator_losses(model, batch: dict, d_vectors: torch.Tensor | None = None, speaker_weight: float = 0.0):
    """The VITS generator objective on one batch; returns a dict of scalar losses with "total"."""
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
    if speaker_weight and d_vectors is not None:
        from .speaker import embed_batch

        made = embed_batch(out["model_outputs"], SAMPLE_RATE)
        target = torch.nn.functional.normalize(d_vectors.to(device), dim=-1)
        losses["speaker"] = 1.0 - (made * target).sum(-1).mean()
        total = total + speaker_weight * losses["speaker"]
    losses["total"] = total
    return losses


@dataclass
class Checkpoint:
    """Everything needed to resume training exactly where it stopped."""

    step: int
    seconds: float  # training time spent so far
    settings: dict
    history: list  # (step, seconds, validation figures) rows

    def save(self, path: Path, model, optimizer) -> None:
        """Write then rename: a crash or full disk never leaves a corrupt checkpoint."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), **asdict(self)}, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, model, optimizer=None) -> "Checkpoint":
        """Restore model (and optimizer) weights; returns the training position."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        return cls(state["step"], state["seconds"], state["settings"], state["history"])


def pad_pairs(waves: list[np.ndarray], zs: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """Batch (waveform, latent z) pairs as (spectrograms, frame counts, z) for distillation."""
    frames = [z.shape[1] for z in zs]
    longest = max(frames)
    wave_batch = torch.zeros(len(waves), 1, longest * HOP_LENGTH)
    z_batch = torch.zeros(len(zs), zs[0].shape[0], longest)
    for i, (w, z) in enumerate(zip(waves, zs)):
        w = torch.as_tensor(w).reshape(-1)[: longest * HOP_LENGTH]
        wave_batch[i, 0, : len(w)] = w
        z_batch[i, :, : z.shape[1]] = torch.as_tensor(z)
    return spectrogram(wave_batch), torch.tensor(frames), z_batch


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

    batch_size: int = 4
    learning_rate: float = 2e-4  # the VITS training rate: 5 minutes of data leave no time to go slower
    # Measured on Allison, 150 steps: training everything took the word error rate from 0.34 to
    # 0.94 (the text side forgets English before it learns her); freezing the text encoder and
    # duration predictor and slowing the flow keeps it near 0.35-0.46 for the same similarity gain.
    frozen: tuple = ("text_encoder", "duration_predictor")
    flow_rate_scale: float = 0.1  # the flow moves the prior toward her latents, gently
    speaker_weight: float = 5.0  # the resemblyzer speaker-consistency loss
    segment_frames: int = SEGMENT_FRAMES
    max_clip_seconds: float = 8.0  # longer clips cost much more per step for little gain
    seed: int = 0


def trainable_parameters(model, frozen: tuple = ()) -> list[torch.nn.Parameter]:
    """The generator's parameters (no discriminator), minus the modules named in `frozen`."""
    return [p for name, p in model.named_parameters()
            if not name.startswith("disc.") and not name.startswith(tuple(f"{f}." for f in frozen))]


def parameter_groups(model, settings: TrainSettings) -> list[dict]:
    """Optimizer groups: the flow at `flow_rate_scale` of the rate, the rest at full rate; frozen parts left out."""
    frozen = tuple(f"{f}." for f in settings.frozen)
    flow, rest = [], []
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen))  # no gradients computed for frozen parts: faster
        if p.requires_grad and not name.startswith("disc."):
            (flow if name.startswith("flow.") else rest).append(p)
    return [{"params": rest, "lr": settings.learning_rate},
            {"params": flow, "lr": settings.learning_rate * settings.flow_rate_scale}]


def fine_tune(
    model, utterances: list[Utterance], d_vector: torch.Tensor, checkpoint_path: Path, settings: TrainSettings,
    seconds: float, max_steps: int | None = None, resume: bool = False, checkpoint_every: float = 120.0,
    validate=None, validate_every: int = 100, patience: int = 4, on_step=None,
) -> Checkpoint:
    """Train `model` toward the speaker of `utterances` for `seconds` of wall time (or `max_steps`).

    Saves `checkpoint_path` every `checkpoint_every` seconds, at the end and when interrupted
    (Ctrl-C, SIGTERM), so only a hard kill (-9) loses anything: at most one interval.
    `validate(model) -> float` (higher is better, e.g. speaker similarity) runs every
    `validate_every` steps; training stops early after `patience` checks without a new best. `on_step(step, losses, checkpoint)` reports progress. Runs under torchrun too
    (DistributedDataParallel, gloo or nccl): rank 0 writes the checkpoint.
    """
    import time

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    model.spec_segment_size = settings.segment_frames
    optimizer = torch.optim.AdamW(parameter_groups(model, settings), betas=(0.8, 0.99), eps=1e-9)
    trained = trainable_parameters(model, settings.frozen)
    state = Checkpoint(step=0, seconds=0.0, settings=asdict(settings), history=[])
    if resume and Path(checkpoint_path).exists():
        state = Checkpoint.load(checkpoint_path, model, optimizer)
        if state.settings != asdict(settings):
            changed = sorted(k for k in asdict(settings) if state.settings.get(k) != asdict(settings)[k])
            raise VoicefakeError(f"cannot resume: settings changed since the checkpoint ({', '.join(changed)}); "
                                 "use the same settings, or start over without --resume")
    trainer = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if distributed else model
    clips = [u for u in utterances if len(u.audio) <= settings.max_clip_seconds * SAMPLE_RATE] or utterances
    target = torch.nn.functional.normalize(d_vector.reshape(1, -1).float(), dim=-1)
    best = max((row[2] for row in state.history), default=-1.0)
    since_best = 0
    started, last_save = time.monotonic() - state.seconds, time.monotonic()
    def finished() -> bool:
        done = (max_steps is not None and state.step >= max_steps) or time.monotonic() - started >= seconds
        done = done or since_best >= patience
        if distributed:  # every rank must stop at the same step, or the others wait forever
            flag = torch.tensor([float(done)])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            done = bool(flag.item())
        return done

    try:
        while not finished():
            rng = random.Random(settings.seed * 1_000_003 + state.step * world + rank)  # resumable and per-rank
            batch = collate(rng.sample(clips, min(settings.batch_size, len(clips))))
            model.train()
            losses = generator_losses(trainer, batch, target.expand(len(batch["x"]), -1), settings.speaker_weight)
            optimizer.zero_grad()
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(trained, 10.0)
            optimizer.step()
            state.step += 1
            state.seconds = time.monotonic() - started
            if validate is not None and state.step % validate_every == 0:
                model.eval()
                score = validate(model)
                state.history.append((state.step, state.seconds, score))
                best, since_best = (score, 0) if score > best else (best, since_best + 1)
            if on_step:
                on_step(state.step, {k: v.item() for k, v in losses.items()}, state)
            if rank == 0 and time.monotonic() - last_save >= checkpoint_every:
                state.save(checkpoint_path, model, optimizer)
                last_save = time.monotonic()
    except BaseException:  # Ctrl-C, a cancel from the app (SIGTERM): keep every finished step
        if rank == 0 and state.step > 0:
            state.save(checkpoint_path, model, optimizer)
        raise
    model.eval()
    if rank == 0:
        state.save(checkpoint_path, model, optimizer)
    return state
