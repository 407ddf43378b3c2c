"""Seconds per training step of a clone, one process: the universal-vocoder path's two phases
(autoencoder, then the clone objective, alone or with the optional prior-mel loss or mel
discriminator) against the bundled decoder's one.

    .venv/bin/python bench/clone_step_time.py [--speaker allison_en] [--steps 20]

Steps are a clone's budget. Both paths train on the same 5 minutes of the speaker's clips with
the same batches (seeded); the first 3 steps of each are warm-up and not counted.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from clone_quality import LANGUAGES, split
from clone_testbed import training_utterances

from voicefake.config import DEFAULT_VOICE
from voicefake.tts import train
from voicefake.tts.clone import load_base
from voicefake.tts.voice import load_voice

WARM_UP = 3


def seconds_per_step(settings: train.TrainSettings, utterances, target: torch.Tensor, steps: int,
                     scratch: Path) -> float:
    model, _ = load_base("cpu", settings.vocoder)
    stamps = []
    train.fine_tune(model, utterances, target, scratch / "clone.pt", settings, seconds=float("inf"),
                    max_steps=steps + WARM_UP, on_step=lambda *_: stamps.append(time.monotonic()))
    return (stamps[-1] - stamps[WARM_UP - 1]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speaker", default="allison_en", choices=list(LANGUAGES))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows, _ = split(args.speaker, 5.0)
    with tempfile.TemporaryDirectory() as scratch:
        utterances = training_utterances(args.speaker, rows, load_voice(DEFAULT_VOICE).phoneme_id_map,
                                         Path(scratch) / "data")
        target = torch.nn.functional.normalize(torch.ones(256), dim=0)
        paths = {
            "bundled decoder trained (before)": train.TrainSettings(vocoder="own"),
            "universal vocoder, phase 1 (autoencoder)": train.TrainSettings(),
            "universal vocoder, phase 2 (clone objective)": train.TrainSettings(autoencoder_steps=0),
            "phase 2 + the prior's mel loss": train.TrainSettings(autoencoder_steps=0, prior_mel_weight=1.0),
            "phase 2 + the mel discriminator": train.TrainSettings(autoencoder_steps=0, adversarial_weight=1.0),
        }
        times = {name: seconds_per_step(settings, utterances, target, args.steps, Path(scratch))
                 for name, settings in paths.items()}
    reference = times["bundled decoder trained (before)"]
    print("| path | s/step | ratio |\n|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {seconds / reference:.2f}x |")


if __name__ == "__main__":
    main()
