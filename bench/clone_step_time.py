"""Seconds per training step of a clone: the universal-vocoder path against the bundled decoder's, one process.

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


def seconds_per_step(vocoder: str, utterances, target: torch.Tensor, steps: int, scratch: Path) -> float:
    model, _ = load_base("cpu", vocoder)
    stamps = []
    train.fine_tune(model, utterances, target, scratch / f"{vocoder}.pt", train.TrainSettings(vocoder=vocoder),
                    seconds=float("inf"), max_steps=steps + WARM_UP, on_step=lambda *_: stamps.append(time.monotonic()))
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
        own = seconds_per_step("own", utterances, target, args.steps, Path(scratch))
        universal = seconds_per_step("universal", utterances, target, args.steps, Path(scratch))
    print(f"| path | s/step | ratio |\n|---|---|---|\n| bundled decoder trained (before) | {own:.2f} | 1.00x |\n"
          f"| universal vocoder (mel adapter) | {universal:.2f} | {universal / own:.2f}x |")


if __name__ == "__main__":
    main()
