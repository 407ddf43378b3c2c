"""Calibration of the replay check (voicefake/enroll/fingerprint.py): share of differing fingerprint bits
of copies of a recording against different recordings.

    .venv/bin/python bench/consent_replay.py [--trials 25]

Copies: a real clip (../shared/data/speech/allison_en, 3-11 s) cut at a random sample offset,
quieter, through 8 kHz, through MP3 32k (and cut), with noise at 30 dB SNR, each looked for inside
a longer recording that holds the clip between two others. Different: other clips of the same
speaker and of the other speaker against that recording; and the bundled voice saying the same
sentence twice (sampled synthesis: the same speaker and words, another recording).
"""

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "speech"


def rows(speaker):
    with open(SPEECH / speaker / "metadata.csv", encoding="utf-8") as handle:
        return [SPEECH / speaker / r["file"] for r in csv.DictReader(handle, delimiter="|")
                if 3 <= float(r["duration_s"]) <= 11 and not r["transcript"].startswith("(")]


def mp3(audio, rate=16000):
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = 32000
        frame = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        for piece in resampler.resample(frame):
            for packet in stream.encode(piece):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]).astype(np.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=25)
    args = parser.parse_args()
    if not SPEECH.is_dir():
        sys.exit(f"bench needs the real recordings in {SPEECH}")
    import soxr

    import voicefake
    from voicefake.asr import HARVARD_SENTENCES
    from voicefake.enroll import fingerprint as fp

    rng = np.random.default_rng(0)
    allison, russian = rows("allison_en"), rows("ivrvoice_ru")

    def load(path):
        return sf.read(path, dtype="float32")[0]

    copies, different = {}, {"same speaker": [], "other speaker": [], "same sentence synthesized twice": []}
    for _ in range(args.trials):
        clip = load(allison[rng.integers(len(allison))])
        offset = int(rng.integers(1, 255))
        filler = load(allison[rng.integers(len(allison))])
        reference = fp.fingerprint(np.concatenate([filler, clip, filler]))
        variants = {
            "cut at a sample offset": clip[offset:],
            "gain -10 dB": clip * 0.3,
            "through 8 kHz": soxr.resample(soxr.resample(clip, 16000, 8000), 8000, 16000),
            "MP3 32k, cut": mp3(clip)[offset:],
            "noise 30 dB": clip + rng.normal(0, np.sqrt(np.mean(clip ** 2)) / 31.6, len(clip)).astype(np.float32),
        }
        for name, audio in variants.items():
            copies.setdefault(name, []).append(fp.best_match(fp.fingerprint(audio), reference)[0])
        for name, pool in (("same speaker", allison), ("same speaker", allison), ("other speaker", russian)):
            different[name].append(fp.best_match(fp.fingerprint(load(pool[rng.integers(len(pool))])), reference)[0])
    voice = voicefake.load_voice("joe")
    for text in HARVARD_SENTENCES[:10]:
        a, b = (soxr.resample(np.concatenate([c.audio for c in voice.synthesize(text)]), 22050, 16000) for _ in range(2))
        different["same sentence synthesized twice"].append(fp.best_match(fp.fingerprint(a), fp.fingerprint(b))[0])
    print(f"share of differing bits, best 2 s window (threshold {fp.MATCH_BER}):\n")
    print("| pair | n | min | median | max | judged a copy |")
    print("|---|---|---|---|---|---|")
    for kind, table in (("copy", copies), ("different", different)):
        for name, values in table.items():
            values = np.array(values)
            print(f"| {kind}: {name} | {len(values)} | {values.min():.3f} | {np.median(values):.3f} | {values.max():.3f} "
                  f"| {np.mean(values <= fp.MATCH_BER):.0%} |")


if __name__ == "__main__":
    main()
