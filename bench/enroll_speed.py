"""Enrollment on real recordings: speed, speech kept, transcription accuracy, consent errors.

    .venv/bin/python bench/enroll_speed.py [--minutes 5 25] [--asr-minutes 5] [--trials 20]

Uses ../shared/data/speech/{allison_en, ivrvoice_ru} (real speakers, 16 kHz FLAC, with
transcripts). For each speaker: wall time to enroll the first N minutes of clips (given
transcripts, declared licence) and what was kept; for English, the same without transcripts
(pocketsphinx) and its word error rate against the given ones; then the consent speaker check:
~7 s of a speaker's held-out clips as the consent recording against each enrolled profile
(false reject: own speech refused; false accept: the other speaker accepted).
Then a second voice in one recording (`--mixed-minutes`, `--only-mixed`): the target's clips in
turns, with other speakers' turns (the other real speaker and the bundled voice, unmarked)
between them after pauses of 0.2-0.4 s, as one file; enrolled with and without the split at
speaker changes, it reports what share of the kept speech is really someone else's (from the
ground-truth sample ranges of every clip).
Prints markdown tables for the README.
"""

import argparse
import csv
import importlib
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


def unmarked_joe(texts, rate=16000):
    """The bundled voice reading `texts`, without the watermark (enrollment refuses marked speech)."""
    import soxr
    from piper.config import SynthesisConfig

    import voicefake
    from voicefake.tts.text import text_to_sentences

    voice = voicefake.load_voice("joe")
    out = []
    for text in texts:
        ids = [s.phoneme_ids for s in text_to_sentences(text, voice.phoneme_id_map)]
        audio = np.concatenate([np.asarray(voice.piper.phoneme_ids_to_audio(i, SynthesisConfig()), np.float32).reshape(-1)
                                for i in ids])
        out.append(soxr.resample(audio * 0.5 / max(np.abs(audio).max(), 1e-6), voice.sample_rate, rate).astype(np.float32))
    return out


def mixed_recording(target, others, minutes, other_share, rng, rate=16000):
    """One recording: `target`'s clips in turns of 1-3, another speaker's clip between turns
    (about `other_share` of the speech), 0.2-0.4 s pauses between turns and a 1.2 s pause every
    few turns. `others`: {name: [audio...]}. Returns (audio, transcript of the target's words,
    [(start, stop) samples of other speakers' clips], seconds of target speech)."""
    rows = [r for r in clips(target) if 1.0 <= float(r["duration_s"]) <= 8.0 and not r["transcript"].startswith("(")]
    order = rng.permutation(len(rows))
    parts, texts, other_ranges, position, spoken, other_seconds, k = [], [], [], 0, 0.0, 0.0, 0
    while spoken < minutes * 60 and k < len(order):
        for _ in range(int(rng.integers(1, 4))):
            if k >= len(order):
                break
            row = rows[order[k]]
            k += 1
            clip, _ = sf.read(SPEECH / target / row["file"], dtype="float32")
            parts.append(clip)
            texts.append(row["transcript"])
            position += len(clip)
            spoken += len(clip) / rate
            pause = np.zeros(int(rng.uniform(0.2, 0.4) * rate), np.float32)
            parts.append(pause)
            position += len(pause)
        if other_seconds < other_share / (1 - other_share) * spoken:
            pool = others[list(others)[int(rng.integers(len(others)))]]
            clip = pool[int(rng.integers(len(pool)))]
            other_ranges.append((position, position + len(clip)))
            other_seconds += len(clip) / rate
            parts += [clip, np.zeros(int(rng.uniform(0.2, 0.4) * rate), np.float32)]
            position += len(parts[-1]) + len(clip)
        if rng.random() < 0.4:
            parts.append(np.zeros(int(1.2 * rate), np.float32))
            position += len(parts[-1])
    return np.concatenate(parts), " ".join(texts), other_ranges, spoken


def kept_from_others(folder, other_ranges, rate=16000):
    """(seconds kept, seconds of it inside other speakers' clips) of an enrolled voice."""
    manifest = json.loads((folder / "manifest.json").read_text())
    kept = other = 0.0
    for utt in manifest["utterances"]:
        a, b = utt["start_s"], utt["start_s"] + utt["seconds"]
        kept += b - a
        other += sum(max(0.0, min(b, s1 / rate) - max(a, s0 / rate)) for s0, s1 in other_ranges)
    return kept, other


def print_table(header, rows):
    """A markdown table: `header` (column names), then one line per row."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


MIXED_HEADER = ("target", "minutes: target + others (turns)", "cuts", "utterances split", "minutes kept",
                "kept from other speakers", "wall s")
ENROLL_HEADER = ("speaker", "transcripts", "minutes given", "wall s", "minutes kept", "utterances", "rejected (count)",
                 "consistency")
CONSENT_HEADER = ("enrolled profile", "consent spoken by", "similarity min / median / max", "decision errors")


def mixed_others(other, joe):
    """The other speakers' clips of a mixed recording: up to 150 speech clips of 1-6 s of `other`, and joe."""
    return {other: [sf.read(SPEECH / other / r["file"], dtype="float32")[0] for r in clips(other)
                    if 1.0 <= float(r["duration_s"]) <= 6.0 and not r["transcript"].startswith("(")][:150],
            "joe (unmarked)": joe}


def enroll_mixed(target, path, ranges, split):
    """Enroll the mixed recording at `path`, with or without the split at speaker changes.
    Returns (wall s, utterances split, seconds kept, seconds of it other speakers)."""
    import voicefake
    from voicefake.config import voice_folder
    from voicefake.enroll import gates

    language, licence = SPEAKERS[target]
    saved = gates.PARTIAL_LIMIT
    gates.PARTIAL_LIMIT = gates.PARTIAL_LIMIT if split else -1.0  # -1: no window is another voice
    name = f"mix-{target.replace('_', '-')}-{'split' if split else 'whole'}"
    start = time.perf_counter()
    try:
        report = voicefake.enroll(name, [path], consent=voicefake.DeclaredLicence(licence), language=language,
                                  transcripts=path.with_suffix(".txt"))
    finally:
        gates.PARTIAL_LIMIT = saved
    wall = time.perf_counter() - start
    kept, from_others = kept_from_others(voice_folder(name), ranges)
    splits = next((n.split()[0] for n in report.notes if "another speaker's turn" in n), "0")
    return wall, splits, kept, from_others


def mixed_case(minutes, seed=0):
    """Enroll one recording of a target with other speakers' turns, with and without the split."""
    from voicefake.asr import HARVARD_SENTENCES

    joe = unmarked_joe(HARVARD_SENTENCES)
    table = []
    scratch = Path(tempfile.mkdtemp(prefix="mixed-"))
    for target, other in (("allison_en", "ivrvoice_ru"), ("ivrvoice_ru", "allison_en")):
        others = mixed_others(other, joe)
        audio, text, ranges, spoken = mixed_recording(target, others, minutes, 0.14, np.random.default_rng(seed))
        path = scratch / f"{target}-mixed.flac"
        sf.write(path, audio, 16000)
        path.with_suffix(".txt").write_text(text, encoding="utf-8")  # the target's words (others' are not wanted)
        other_total = sum(b - a for a, b in ranges) / 16000
        for split in (False, True):
            wall, splits, kept, from_others = enroll_mixed(target, path, ranges, split)
            table.append((target, f"{spoken / 60:.1f} + {other_total / 60:.1f} ({len(ranges)} turns)",
                          "split at changes" if split else "whole cuts (before)", splits, f"{kept / 60:.2f}",
                          f"{from_others:.1f} s = {from_others / max(kept, 1e-9):.1%}", f"{wall:.0f}"))
            print(f"mixed {target} split={split}: kept {kept:.0f} s, {from_others:.1f} s of it other speakers", file=sys.stderr)
    print_table(MIXED_HEADER, table)
    print()


def enroll_row(speaker, transcripts, total, wall, report):
    """A row of the enrollment table."""
    rejected = ", ".join(f"{k} {int(c)}" for k, (c, _) in sorted(report.rejected.items()))
    return (speaker, transcripts, f"{total / 60:.1f}", f"{wall:.1f}", f"{report.seconds_kept / 60:.1f}",
            report.utterances_kept, rejected or "-", f"{report.consistency:.3f}")


def enroll_given(minutes_list):
    """Enroll each speaker's first N minutes with the given transcripts. Returns (table rows,
    {speaker: mean embedding of the shortest enrollment}, {speaker: held-out speech clips})."""
    import voicefake
    from voicefake.config import voice_folder

    rows_enroll, profiles, held_out = [], {}, {}
    for speaker, (language, licence) in SPEAKERS.items():
        rows = clips(speaker)
        metadata = SPEECH / speaker / "metadata.csv"
        for minutes in minutes_list:
            chosen, total = first_minutes(rows, minutes)
            name = f"{speaker.replace('_', '-')}-{minutes:g}"
            start = time.perf_counter()
            report = voicefake.enroll(name, [SPEECH / speaker / r["file"] for r in chosen],
                                      consent=voicefake.DeclaredLicence(licence), transcripts=metadata, language=language)
            wall = time.perf_counter() - start
            rows_enroll.append(enroll_row(speaker, "given", total, wall, report))
            if minutes == min(minutes_list):
                profiles[speaker] = np.load(voice_folder(name) / "profile.npz")["mean_embedding"]
                # speech only: the corpus also holds "(5 seconds of silence)" clips
                held_out[speaker] = [r for r in rows[len(chosen):]
                                     if 2.0 <= float(r["duration_s"]) <= 11.0 and not r["transcript"].startswith("(")]
            print(f"enrolled {speaker} {minutes:g} min in {wall:.1f} s", file=sys.stderr)
    return rows_enroll, profiles, held_out


def enroll_asr(minutes):
    """Enroll allison_en's first `minutes` with pocketsphinx instead of the given transcripts.
    Returns (table row, word error rate line)."""
    import voicefake
    from voicefake.asr import word_error_rate
    from voicefake.config import voice_folder
    from voicefake.enroll.dataset import read_metadata

    chosen, total = first_minutes(clips("allison_en"), minutes)
    start = time.perf_counter()
    report = voicefake.enroll("allison-asr", [SPEECH / "allison_en" / r["file"] for r in chosen],
                              consent=voicefake.DeclaredLicence(SPEAKERS["allison_en"][1]))
    wall = time.perf_counter() - start
    folder = voice_folder("allison-asr")
    manifest = json.loads((folder / "manifest.json").read_text())
    texts = dict(read_metadata(folder / "metadata.csv"))
    heard = {}
    for utt in manifest["utterances"]:
        heard.setdefault(utt["source"], []).append(texts[utt["id"]])
    given = {str(SPEECH / "allison_en" / r["file"]): r["transcript"] for r in chosen}
    refs, hyps = [], []
    for source, parts in heard.items():
        refs.append(given[manifest["report"]["files"][source]])
        hyps.append(" ".join(parts))
    wer = word_error_rate(refs, hyps)
    return enroll_row("allison_en", "pocketsphinx", total, wall, report), f"{wer:.3f} over {len(refs)} recordings"


def consent_recording(speaker, pool, rng, path):
    """Write ~7 s of `speaker`'s clips from `pool` (random order, 0.5 s pauses) to `path`."""
    audio, order = [], rng.permutation(len(pool))
    for index in order:
        clip, _ = sf.read(SPEECH / speaker / pool[index]["file"], dtype="float32")
        audio += [clip, np.zeros(8000, np.float32)]
        if sum(map(len, audio)) >= 7 * 16000:
            break
    sf.write(path, np.concatenate(audio), 16000)


def consent_scores(held_out, profiles, trials):
    """{(profile speaker, consent speaker): [similarity of each consent recording to the profile]}."""
    from voicefake.enroll.enrollment import _consent_audio
    from voicefake.speaker import similarity

    rng = np.random.default_rng(0)
    scratch = Path(tempfile.mkdtemp(prefix="consent-"))
    scores = {(p, c): [] for p in profiles for c in profiles}
    for consent_speaker, pool in held_out.items():
        for trial in range(trials):
            path = scratch / f"{consent_speaker}-{trial}.wav"
            consent_recording(consent_speaker, pool, rng, path)
            _, embedding = _consent_audio(path)
            for profile_speaker, centre in profiles.items():
                scores[(profile_speaker, consent_speaker)].append(similarity(embedding, centre))
    return scores


def print_consent_table(scores, trials):
    from voicefake.enroll import consent as consents

    threshold = consents.SPEAKER_THRESHOLD
    print(f"consent speaker check (threshold {threshold}, {trials} consent recordings of ~7 s per speaker):\n")
    table = []
    for (profile_speaker, consent_speaker), values in scores.items():
        values = np.array(values)
        if profile_speaker == consent_speaker:
            errors = f"false reject {np.mean(values < threshold):.0%}"
        else:
            errors = f"false accept {np.mean(values >= threshold):.0%}"
        table.append((profile_speaker, consent_speaker,
                      f"{values.min():.3f} / {np.median(values):.3f} / {values.max():.3f}", errors))
    print_table(CONSENT_HEADER, table)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 25])
    parser.add_argument("--asr-minutes", type=float, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--mixed-minutes", type=float, default=5, help="target minutes of the mixed-speaker case (0: skip)")
    parser.add_argument("--only-mixed", action="store_true", help="run the mixed-speaker case only")
    return parser.parse_args()


def main():
    args = parse_args()
    if not SPEECH.is_dir():
        sys.exit(f"bench needs the real recordings in {SPEECH}")
    os.environ["VOICEFAKE_HOME"] = tempfile.mkdtemp(prefix="voicefake-bench-")
    for module in ("voicefake", "voicefake.asr", "voicefake.config", "voicefake.enroll.consent",
                   "voicefake.enroll.dataset", "voicefake.enroll.enrollment", "voicefake.speaker"):
        importlib.import_module(module)  # loaded before anything is timed

    print(f"machine: {os.cpu_count()} cores, load average before start {os.getloadavg()[0]:.1f}\n")
    if args.mixed_minutes:
        mixed_case(args.mixed_minutes)
    if args.only_mixed:
        return
    rows_enroll, profiles, held_out = enroll_given(args.minutes)
    wer_line = "n/a"
    if args.asr_minutes:  # pocketsphinx instead of the given transcripts (English only)
        row, wer_line = enroll_asr(args.asr_minutes)
        rows_enroll.append(row)
    print_table(ENROLL_HEADER, rows_enroll)
    print(f"\npocketsphinx word error rate against the given transcripts (allison_en, {args.asr_minutes:g} min): {wer_line}\n")
    print_consent_table(scores=consent_scores(held_out, profiles, args.trials), trials=args.trials)


if __name__ == "__main__":
    main()
