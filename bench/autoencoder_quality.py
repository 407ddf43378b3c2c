"""How natural is the trainable base's own reconstruction path? (issue 12's diagnosis)

    .venv/bin/python bench/autoencoder_quality.py [--speakers allison_en ivrvoice_ru] [--clips 6]

Cloning trains the decoder on the latents the posterior encoder finds in the target's speech
(speech -> posterior encoder -> z -> decoder -> speech). The posterior encoder is not in the
Piper voice: it was distilled from the base voice's own speech (recipes/build_base.py). This
bench reports DistillMOS of that path, before any cloning, next to the input's own score: for
the base voice's speech (the data it was distilled on) and for each dev speaker's held-out clips.
A clone cannot sound better than the latents it is trained on.
"""

import argparse

import numpy as np
import torch
from clone_quality import SENTENCES, SHARED, split

from voicefake import speaker
from voicefake.config import SAMPLE_RATE
from voicefake.io.audio import read_audio
from voicefake.tts import naturalness
from voicefake.tts.clone import load_base
from voicefake.tts.train import spectrogram
from voicefake.tts.voice import load_voice


@torch.no_grad()
def reconstruct(model, audio: np.ndarray, d_vector: torch.Tensor) -> np.ndarray:
    """speech (22.05 kHz) -> posterior encoder (its mean) -> waveform decoder -> speech."""
    spec = spectrogram(torch.from_numpy(audio.astype(np.float32))[None, None])
    g = torch.nn.functional.normalize(d_vector.reshape(1, -1).float(), dim=-1).unsqueeze(-1)
    _, mean, _, mask = model.posterior_encoder(spec, torch.tensor([spec.shape[2]]), g=g)
    return model.waveform_decoder(mean * mask, g=g)[0, 0].numpy()


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
    args = parser.parse_args()
    model, base_d_vector = load_base("cpu", args.vocoder)
    model.eval()
    print("| speech | clips | DistillMOS of the input | of its reconstruction |\n|---|---|---|---|")
    base = load_voice("joe")
    own = [np.concatenate([c.audio for c in base.synthesize(text)]) for text in SENTENCES[: args.clips]]
    report("base voice (distillation data)", model, own, base_d_vector)
    for name in args.speakers:
        _, references = split(name, 5.0)
        clips = [read_audio(SHARED / name / row[0], SAMPLE_RATE)[0] for row in references[: args.clips]]
        d_vector = torch.from_numpy(np.mean([speaker.embed(c, SAMPLE_RATE) for c in clips], axis=0))
        report(name, model, clips, d_vector)


if __name__ == "__main__":
    main()
