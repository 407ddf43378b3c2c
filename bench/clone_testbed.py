"""Issue 12's test bed: a short clone run with changed training settings, judged on all three figures.

    .venv/bin/python bench/clone_testbed.py [--speaker allison_en] [--steps 100] [--settings JSON] [--probe-every N]

Naturalness collapses within the first hundred steps of cloning, so a 100-step run (minutes on
2 CPU cores) tells whether a change to the training objective helps. `--settings` overrides
fields of `train.TrainSettings`, e.g. '{"vocoder": "own"}' (the bundled voice's waveform decoder
trained, as before the universal vocoder), '{"decoder_rate_scale": 0}' or
'{"frozen": ["text_encoder", "duration_predictor", "flow"]}'. The clone speaks six tuning
sentences of its own (apart from the validation and test sentences) and the run prints
DistillMOS, pocketsphinx WER and resemblyzer likeness to the held-out references; with
`--probe-every N` also every N steps. Same training and reference clips as bench/clone_quality.py.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from clone_quality import LANGUAGES, SHARED, profile, split

from voicefake import speaker
from voicefake.asr import transcribe, word_error_rate
from voicefake.config import ANALYSIS_RATE, DEFAULT_VOICE, SAMPLE_RATE
from voicefake.io.audio import read_audio
from voicefake.tts import naturalness, train
from voicefake.tts.clone import load_base
from voicefake.tts.model import vits_synthesize
from voicefake.tts.pauses import cut_at_pauses
from voicefake.tts.text import text_to_sentences
from voicefake.tts.voice import load_voice

TUNING_SENTENCES = [
    "The old man sat by the window and read the paper.", "We walked along the river until the sun went down.",
    "Please bring the red box from the kitchen table.", "She bought three apples and a loaf of bread.",
    "The children played in the garden after lunch.", "A cold wind blew across the empty field.",
]
PROFILE_UTTERANCES = 40  # training utterances the d-vector the clone is conditioned on comes from


def training_utterances(name: str, rows: list, phoneme_id_map, folder: Path):
    """The training clips copied into a dataset folder (metadata.csv + wavs/), loaded for training."""
    (folder / "wavs").mkdir(parents=True)
    for row in rows:
        shutil.copy(SHARED / name / row[0], folder / row[0])
    (folder / "metadata.csv").write_text("file|transcript|duration_s\n" + "".join("|".join(r) + "\n" for r in rows))
    return train.load_utterances(folder, phoneme_id_map, LANGUAGES[name])


@torch.no_grad()
def judge(model, phoneme_id_map, d_vector: torch.Tensor, reference_profile: np.ndarray, count: int) -> dict:
    """DistillMOS, WER and likeness of the model speaking the first `count` tuning sentences."""
    was_training = model.training
    model.eval()
    torch.manual_seed(1)  # the same sampling noise for every model judged: differences are the model's
    sentences = TUNING_SENTENCES[:count]
    audio = [np.concatenate([vits_synthesize(model, s.phoneme_ids, d_vector=d_vector)[0]
                             for s in text_to_sentences(text, phoneme_id_map)]) for text in sentences]
    model.train(was_training)
    made = profile(audio, SAMPLE_RATE, speaker.embed)
    return {"mos": round(naturalness.mean_mos(audio, SAMPLE_RATE), 3),
            "wer": round(word_error_rate(sentences, [transcribe(a, SAMPLE_RATE) for a in audio]), 3),
            "resemblyzer": round(speaker.similarity(made, reference_profile), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speaker", default="allison_en", choices=list(LANGUAGES))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--settings", default="{}", help="TrainSettings fields as JSON")
    parser.add_argument("--whole-clips", action="store_true", help="do not cut long clips at pauses (as before)")
    parser.add_argument("--probe-every", type=int, default=0, help="also judge every N steps (4 sentences)")
    args = parser.parse_args()
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.settings).items()}
    settings = train.TrainSettings(**overrides)
    torch.manual_seed(0)
    base = load_voice(DEFAULT_VOICE)
    rows, references = split(args.speaker, 5.0)
    clips = [read_audio(SHARED / args.speaker / r[0], ANALYSIS_RATE)[0] for r in references]
    reference_profile = profile(clips, ANALYSIS_RATE, speaker.embed)
    with tempfile.TemporaryDirectory() as scratch:
        utterances = training_utterances(args.speaker, rows, base.phoneme_id_map, Path(scratch) / "data")
        own = [u.audio for u in utterances[:PROFILE_UTTERANCES]]
        target = torch.from_numpy(profile(own, SAMPLE_RATE, speaker.embed))
        model, _ = load_base("cpu", settings.vocoder)
        if not args.whole_clips:  # as clone.clone_from_dataset does
            utterances = cut_at_pauses(model, utterances, settings.max_clip_seconds, base.phoneme_id_map, target)
        started = time.monotonic()

        def on_step(step, losses, checkpoint):
            if args.probe_every and step % args.probe_every == 0:
                figures = judge(model, base.phoneme_id_map, target, reference_profile, 4)
                print(json.dumps({"step": step, **figures}), flush=True)

        if args.steps:
            train.fine_tune(model, utterances, target, Path(scratch) / "clone.pt", settings, seconds=float("inf"),
                            max_steps=args.steps, on_step=on_step)
        figures = judge(model, base.phoneme_id_map, target, reference_profile, len(TUNING_SENTENCES))
    print(json.dumps({"speaker": args.speaker, "steps": args.steps, "settings": args.settings,
                      "train_s": round(time.monotonic() - started), **figures}))


if __name__ == "__main__":
    main()
