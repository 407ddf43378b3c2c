"""How natural is the trainable base's own reconstruction path? (issue 12's diagnosis)

    .venv/bin/python bench/autoencoder_quality.py [--speakers allison_en ivrvoice_ru] [--clips 6]
        [--weights CLONE/voice/best.pt] [--split 6 12 20 30]

Cloning trains the decoder on the latents the posterior encoder finds in the target's speech
(speech -> posterior encoder -> z -> decoder -> speech). The posterior encoder is not in the
Piper voice: it was distilled from the base voice's own speech (recipes/build_base.py). This
bench reports DistillMOS of that path, before any cloning, next to the input's own score: for
the base voice's speech (the data it was distilled on) and for each dev speaker's held-out clips.
A clone cannot sound better than the latents it is trained on.

`--weights` judges a clone's path instead (the best.pt of a clone run, e.g. bench/clone_quality.py's
OUT/SPEAKER/voice/best.pt). `--split Q ...` (universal vocoder only) asks which part of the
log-mel costs the naturalness: for each Q, the made log-mel with its envelope (the first Q
coefficients of its cosine transform over the 80 bands) replaced by the real clip's, and with
everything from Q up (the harmonics' fine structure) replaced instead; for the reconstruction,
and with `--weights` also for what the clone's prior speaks on the clip's own alignment.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from clone_quality import SENTENCES, SHARED, split
from clone_testbed import training_utterances

from voicefake import speaker
from voicefake.config import DEFAULT_VOICE, SAMPLE_RATE
from voicefake.io.audio import read_audio
from voicefake.tts import naturalness, train
from voicefake.tts.clone import load_base
from voicefake.tts.train import load_best_weights, spectrogram
from voicefake.tts.voice import load_voice
from voicefake.vocoder.hifigan import log_mel_of_spectrogram


@torch.no_grad()
def reconstruct(model, audio: np.ndarray, d_vector: torch.Tensor) -> np.ndarray:
    """speech (22.05 kHz) -> posterior encoder (its mean) -> waveform decoder -> speech."""
    _, z, g = _latents(model, audio, d_vector)
    return model.waveform_decoder(z, g=g)[0, 0].numpy()


def _latents(model, audio: np.ndarray, d_vector: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(linear spectrogram, the posterior's mean latents, the speaker conditioning) of `audio`."""
    spec = spectrogram(torch.from_numpy(audio.astype(np.float32))[None, None])
    g = torch.nn.functional.normalize(d_vector.reshape(1, -1).float(), dim=-1).unsqueeze(-1)
    _, mean, _, mask = model.posterior_encoder(spec, torch.tensor([spec.shape[2]]), g=g)
    return spec, mean * mask, g


def _smooth_part(log_mel: torch.Tensor, quefrencies: int) -> torch.Tensor:
    """The log-mel's envelope back in bands: its first `quefrencies` cosine coefficients, inverted."""
    return log_mel - train._fine_structure(log_mel, quefrencies)


@torch.no_grad()
def posterior_mels(model, clips: list[np.ndarray], d_vector: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(real log-mel, the adapter's log-mel of the posterior's mean latents) of each clip."""
    pairs = []
    for clip in clips:
        spec, z, _ = _latents(model, clip, d_vector)
        pairs.append((log_mel_of_spectrogram(spec), model.waveform_decoder.adapter(z)))
    return pairs


@torch.no_grad()
def spoken_mels(model, name: str, rows: list, d_vector: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(real log-mel, the adapter's log-mel of what the prior speaks on the clip's own alignment) of each clip:
    the path a voice speaks (the prior's latents with the voice's sampling noise, through the flow
    backwards), timed as she said it (monotonic alignment search, as in training), so that the two compare frame by frame."""
    g = torch.nn.functional.normalize(d_vector.reshape(1, -1).float(), dim=-1).unsqueeze(-1)
    torch.manual_seed(0)
    pairs = []
    with tempfile.TemporaryDirectory() as scratch:
        utterances = training_utterances(name, rows, load_voice(DEFAULT_VOICE).phoneme_id_map, Path(scratch) / "data")
    for utterance in utterances:
        batch = train.collate([utterance])
        text, m_p, logs_p, x_mask = model.text_encoder(batch["x"], batch["x_lengths"])
        z, _, _, y_mask = model.posterior_encoder(batch["spec"], batch["spec_lengths"], g=g)
        _, path = model.forward_mas({}, model.flow(z, y_mask, g=g), m_p, logs_p, text, x_mask, y_mask, g=g, lang_emb=None)
        m_p, logs_p = (torch.einsum("klmn, kjm -> kjn", path, prior) for prior in (m_p, logs_p))
        spoken = train._prior_latents(model, m_p, logs_p, y_mask, g)
        pairs.append((log_mel_of_spectrogram(batch["spec"]), model.waveform_decoder.adapter(spoken * y_mask)))
    return pairs


@torch.no_grad()
def split_report(label: str, model, pairs: list[tuple[torch.Tensor, torch.Tensor]], splits: list[int]) -> None:
    """DistillMOS of the made log-mel (of each (real, made) pair) alone, and with its envelope, or its
    fine structure, taken from the real one."""
    vocoder = model.waveform_decoder.vocoder
    heard: dict[str, list[np.ndarray]] = {}
    for real, made in pairs:
        heard.setdefault("as made", []).append(vocoder(made)[0, 0].numpy())
        for q in splits:
            real_smooth, made_smooth = _smooth_part(real, q), _smooth_part(made, q)
            swapped = {f"real envelope (q < {q})": real_smooth + made - made_smooth,
                       f"real fine structure (q >= {q})": made_smooth + real - real_smooth}
            for part, log_mel in swapped.items():
                heard.setdefault(part, []).append(vocoder(log_mel)[0, 0].numpy())
    for part, audio in heard.items():
        print(f"| {label} | {part} | {naturalness.mean_mos(audio, SAMPLE_RATE):.2f} |", flush=True)


def report(label: str, model, clips: list[np.ndarray], d_vector: torch.Tensor) -> None:
    rebuilt = [reconstruct(model, clip, d_vector) for clip in clips]
    print(f"| {label} | {len(clips)} | {naturalness.mean_mos(clips, SAMPLE_RATE):.2f} "
          f"| {naturalness.mean_mos(rebuilt, SAMPLE_RATE):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", nargs="+", default=["allison_en", "ivrvoice_ru"])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--vocoder", default="universal", choices=["universal", "own"],
                        help="the mel adapter + universal HiFi-GAN (what clones use), or the bundled voice's decoder")
    parser.add_argument("--weights", help="a clone run's best.pt: judge its path instead of the base's (one speaker)")
    parser.add_argument("--split", nargs="*", type=int, default=[], metavar="Q",
                        help="also swap the envelope / fine structure at these quefrencies with the real clip's")
    args = parser.parse_args()
    if args.split and args.vocoder != "universal":
        parser.error("--split needs the universal vocoder (it works on the adapter's log-mel)")
    model, base_d_vector = load_base("cpu", args.vocoder)
    if args.weights:
        print(f"clone weights of step {load_best_weights(model, args.weights)}")
    model.eval()
    print("| speech | clips | DistillMOS of the input | of its reconstruction |\n|---|---|---|---|")
    if not args.weights:
        base = load_voice("joe")
        own = [np.concatenate([c.audio for c in base.synthesize(text)]) for text in SENTENCES[: args.clips]]
        report("base voice (distillation data)", model, own, base_d_vector)
    for name in args.speakers:
        _, references = split(name, 5.0)
        clips = [read_audio(SHARED / name / row[0], SAMPLE_RATE)[0] for row in references[: args.clips]]
        d_vector = torch.from_numpy(np.mean([speaker.embed(c, SAMPLE_RATE) for c in clips], axis=0))
        report(name, model, clips, d_vector)
        if args.split:
            split_report(f"{name}, reconstruction", model, posterior_mels(model, clips, d_vector), args.split)
        if args.split and args.weights:
            spoken = spoken_mels(model, name, references[: args.clips], d_vector)
            split_report(f"{name}, spoken on her timing", model, spoken, args.split)


if __name__ == "__main__":
    main()
