"""Enrollment on real recordings: speed, speech kept, transcription accuracy, consent errors.

    .venv/bin/python bench/enroll_speed.py [--minutes 5 25] [--asr-minutes 5] [--trials 20]

Uses ../shared/data/speech/{allison_en, ivrvoice_ru} (real speakers, 16 kHz FLAC, with
transcripts). For each speaker: wall time to enroll the first N minutes of clips (given
transcripts, declared licence) and what was kept; for English, the same without transcripts
(pocketsphinx) and its word error rate against the given ones; then the consent speaker check:
~7 s of a speaker's held-out clips as the consent recording against each enrolled profile
(false reject: own speech refused; false accept: the other speaker accepted).
Prints markdown tables for the README.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "speech"
SPEAKERS = {
    "allison_en": ("en", "CC-BY-SA-3.0, asterisk-core-sounds-en, Allison Smith"),
    "ivrvoice_ru": ("ru", "CC-BY-3.0, asterisk-core-sounds-ru, IvrvoiceRU"),
}


def clips(speaker):
    with open(SPEECH / speaker / "metadata.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="|"))


def first_minutes(rows, minutes):
    chosen, total = [], 0.0
    for row in rows:
        if total >= minutes * 60:
            break
        chosen.append(row)
        total += float(row["duration_s"])
    return chosen, total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 25])
    parser.add_argument("--asr-minutes", type=float, default=5)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    if not SPEECH.is_dir():
        sys.exit(f"bench needs the real recordings in {SPEECH}")
    os.environ["VOICEFAKE_HOME"] = tempfile.mkdtemp(prefix="voicefake-bench-")
    import voicefake
    from voicefake import consent as consents
    from voicefake import speech
    from voicefake.enroll import _consent_audio, voice_folder
    from voicefake.transcribe import word_error_rate

    print(f"machine: {os.cpu_count()} cores, load average before start {os.getloadavg()[0]:.1f}\n")
    rows_enroll, profiles, held_out = [], {}, {}
    for speaker, (language, licence) in SPEAKERS.items():
        rows = clips(speaker)
        metadata = SPEECH / speaker / "metadata.csv"
        for minutes in args.minutes:
            chosen, total = first_minutes(rows, minutes)
            name = f"{speaker.replace('_', '-')}-{minutes:g}"
            start = time.perf_counter()
            report = voicefake.enroll(name, [SPEECH / speaker / r["file"] for r in chosen],
                                      consent=voicefake.DeclaredLicence(licence), transcripts=metadata, language=language)
            wall = time.perf_counter() - start
            rejected = ", ".join(f"{k} {int(c)}" for k, (c, _) in sorted(report.rejected.items()))
            rows_enroll.append((speaker, "given", f"{total / 60:.1f}", f"{wall:.1f}", f"{report.seconds_kept / 60:.1f}",
                                report.utterances_kept, rejected or "-", f"{report.consistency:.3f}"))
            if minutes == min(args.minutes):
                profiles[speaker] = np.load(voice_folder(name) / "profile.npz")["mean_embedding"]
                # speech only: the corpus also holds "(5 seconds of silence)" clips
                held_out[speaker] = [r for r in rows[len(chosen):]
                                     if 2.0 <= float(r["duration_s"]) <= 11.0 and not r["transcript"].startswith("(")]
            print(f"enrolled {speaker} {minutes:g} min in {wall:.1f} s", file=sys.stderr)

    # pocketsphinx instead of the given transcripts (English only)
    wer_line = "n/a"
    if args.asr_minutes:
        rows = clips("allison_en")
        chosen, total = first_minutes(rows, args.asr_minutes)
        start = time.perf_counter()
        report = voicefake.enroll("allison-asr", [SPEECH / "allison_en" / r["file"] for r in chosen],
                                  consent=voicefake.DeclaredLicence(SPEAKERS["allison_en"][1]))
        wall = time.perf_counter() - start
        folder = voice_folder("allison-asr")
        manifest = json.loads((folder / "manifest.json").read_text())
        texts = dict(line.rstrip("\n").split("|")[:2] for line in open(folder / "metadata.csv", encoding="utf-8"))
        heard = {}
        for utt in manifest["utterances"]:
            heard.setdefault(utt["source"], []).append(texts[utt["id"]])
        given = {str(SPEECH / "allison_en" / r["file"]): r["transcript"] for r in chosen}
        refs, hyps = [], []
        for source, parts in heard.items():
            refs.append(given[manifest["report"]["files"][source]])
            hyps.append(" ".join(parts))
        wer = word_error_rate(refs, hyps)
        wer_line = f"{wer:.3f} over {len(refs)} recordings"
        rows_enroll.append(("allison_en", "pocketsphinx", f"{total / 60:.1f}", f"{wall:.1f}", f"{report.seconds_kept / 60:.1f}",
                            report.utterances_kept, ", ".join(f"{k} {int(c)}" for k, (c, _) in sorted(report.rejected.items())) or "-",
                            f"{report.consistency:.3f}"))

    print("| speaker | transcripts | minutes given | wall s | minutes kept | utterances | rejected (count) | consistency |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows_enroll:
        print("| " + " | ".join(map(str, row)) + " |")
    print(f"\npocketsphinx word error rate against the given transcripts (allison_en, {args.asr_minutes:g} min): {wer_line}\n")

    # consent speaker check on real speakers
    rng = np.random.default_rng(0)
    scratch = Path(tempfile.mkdtemp(prefix="consent-"))
    scores = {(p, c): [] for p in profiles for c in profiles}
    for consent_speaker, pool in held_out.items():
        for trial in range(args.trials):
            audio, order = [], rng.permutation(len(pool))
            for index in order:
                clip, _ = sf.read(SPEECH / consent_speaker / pool[index]["file"], dtype="float32")
                audio += [clip, np.zeros(8000, np.float32)]
                if sum(map(len, audio)) >= 7 * 16000:
                    break
            path = scratch / f"{consent_speaker}-{trial}.wav"
            sf.write(path, np.concatenate(audio), 16000)
            _, embedding = _consent_audio(path)
            for profile_speaker, centre in profiles.items():
                scores[(profile_speaker, consent_speaker)].append(speech.similarity(embedding, centre))
    threshold = consents.SPEAKER_THRESHOLD
    print(f"consent speaker check (threshold {threshold}, {args.trials} consent recordings of ~7 s per speaker):\n")
    print("| enrolled profile | consent spoken by | similarity min / median / max | decision errors |")
    print("|---|---|---|---|")
    for (profile_speaker, consent_speaker), values in scores.items():
        values = np.array(values)
        if profile_speaker == consent_speaker:
            errors = f"false reject {np.mean(values < threshold):.0%}"
        else:
            errors = f"false accept {np.mean(values >= threshold):.0%}"
        print(f"| {profile_speaker} | {consent_speaker} | {values.min():.3f} / {np.median(values):.3f} / {values.max():.3f} | {errors} |")


if __name__ == "__main__":
    main()
