"""Robustness, quality, speed and false-positive benchmark of voicefake.watermark.

    nice -n 10 .venv/bin/python bench/watermark_robustness.py            # full run: 220 clips, all 465 pieces
    .venv/bin/python bench/watermark_robustness.py --real 20 --synth 6 --fp-pieces 40   # quick look

About 10 s of one core per marked clip or unmarked piece (2026-12: 62 clips + 50 pieces in 18 min
with --workers 1), so the full run takes about 2 h on one core, 1 h with two workers.

Marked clips of 3-10 s: audible (> -55 dBFS) pieces of the real recordings in ../shared/data/speech
(16 kHz, resampled to 22050 Hz) and sentences synthesized with the bundled "joe" voice, each with
a random payload. Every marked clip goes through every transform below and is given to
detect(): "detected" is detect().found, "payload" counts the payload read back exactly (a wrong
payload would count as a miss there), "unreadable" counts found with payload_unreadable.
"chunks": the clip cut into chunks (real: random 0.5-3 s; synthesized: its sentences), each
marked by its own embed() call with the stream position (`start`, as voice.py does).
False positives: every unmarked 3-10 s piece of ../shared/data/speech (silence files included)
under every transform that applies to unmarked audio.
Prints figures and a README-ready markdown table; asserts nothing. Needs `pesq`, `av` (PyAV)
and `librosa`. Timings are CPU time of one process with one BLAS thread (one core each).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per worker, set before numpy loads: the detection time is per core

import argparse  # noqa: E402  (after the thread settings above)
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402
from scipy.signal import butter, fftconvolve, sosfilt  # noqa: E402

from voicefake.io.audio import read_audio  # noqa: E402
from voicefake.provenance import watermark as wm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "data" / "speech"
SR = 22050
RT60 = (0.2, 0.6)            # s, room reverberation of the simulated re-recording
PHONE_BAND = (300.0, 3400.0)  # Hz
ROOM_SNR = 20.0              # dB, pink room noise
CLIP_AT = 0.5                # of the peak: the recorder clips
CODEC_RATE = 64000

# ----------------------------------------------------------------------------- transforms

def codec_roundtrip(x: np.ndarray, sr: int, codec: str, bitrate: int = CODEC_RATE) -> np.ndarray:
    """Encode with FFmpeg's libmp3lame or aac (PyAV) and decode again."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format={"libmp3lame": "mp3", "aac": "adts"}[codec]) as out:
        st = out.add_stream(codec, rate=sr)
        st.bit_rate, st.layout = bitrate, "mono"
        size, sfmt = st.codec_context.frame_size or 1152, st.codec_context.format.name
        pcm = np.clip(x, -1, 1).astype(np.float64)
        for i in range(0, len(pcm), size):
            blk = pcm[i:i + size]
            if sfmt.startswith("s16"):
                blk = (blk * 32767).astype(np.int16)
            elif sfmt.startswith("s32"):
                blk = (blk * 2147483647).astype(np.int32)
            else:
                blk = blk.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(blk[None], format=sfmt, layout="mono")
            frame.sample_rate = sr
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    buf.seek(0)
    scale = {np.dtype(np.int16): 1 / 32768, np.dtype(np.int32): 1 / 2147483648}
    with av.open(buf) as inp:
        parts = [(a := f.to_ndarray()).mean(axis=0) * scale.get(a.dtype, 1.0) for f in inp.decode(audio=0)]
    return np.concatenate(parts).astype(np.float32)


def time_stretch(x: np.ndarray, rate: float) -> np.ndarray:
    import librosa

    return librosa.effects.time_stretch(x.astype(np.float32), rate=rate)


def pitch_shift(x: np.ndarray, steps: float) -> np.ndarray:
    import librosa

    return librosa.effects.pitch_shift(x.astype(np.float32), sr=SR, n_steps=steps)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Pitch and tempo together: resampled to 1/factor as many samples, played at the same rate."""
    return soxr.resample(x.astype(np.float32), SR, SR / factor)


def pink_noise(n: int, rng) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1 / SR)
    spec = (rng.normal(size=len(f)) + 1j * rng.normal(size=len(f))) / np.sqrt(np.maximum(f, 20.0))
    return np.fft.irfft(spec, n)


def rerecord(x: np.ndarray, rng) -> np.ndarray:
    """Played in a room and recorded: reverb (exponentially decaying noise impulse response, RT60
    0.2-0.6 s), pink room noise at 20 dB SNR, a 300-3400 Hz band-pass, clipping at half the peak."""
    rt60 = rng.uniform(*RT60)
    t = np.arange(int(rt60 * SR)) / SR
    y = fftconvolve(x.astype(np.float64), rng.normal(size=len(t)) * np.exp(-6.9 * t / rt60))[:len(x)]
    y *= np.sqrt(np.mean(np.square(x, dtype=np.float64)) / max(np.mean(y ** 2), 1e-30))
    noise = pink_noise(len(y), rng)
    y += noise * np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2) * 10 ** (-ROOM_SNR / 10))
    y = sosfilt(butter(4, PHONE_BAND, btype="band", fs=SR, output="sos"), y)
    level = CLIP_AT * np.abs(y).max()
    return np.clip(y, -level, level).astype(np.float32)


def white_noise(x: np.ndarray, rng, snr_db: float = 20.0) -> np.ndarray:
    p = float(np.mean(np.square(x, dtype=np.float64)))
    return (x + rng.normal(0, np.sqrt(p * 10 ** (-snr_db / 10)), len(x))).astype(np.float32)


def crop(x: np.ndarray, rng, seconds: float = 3.0) -> np.ndarray:
    n = int(seconds * SR)
    a = int(rng.integers(0, max(len(x) - n, 0) + 1))
    return x[a:a + n]


def at_rate(x: np.ndarray, rate: int):
    return soxr.resample(x, SR, rate), rate


def edit(fn, amount):
    """Transform applying fn(x, amount) at the clip's rate."""
    return lambda x, rng: (fn(x, amount), SR)


SIMPLE = {  # name -> f(x, rng) -> (audio, rate); each applies to marked and unmarked audio alike
    "none": lambda x, rng: (x, SR),
    "MP3 64k": lambda x, rng: (codec_roundtrip(x, SR, "libmp3lame"), SR),
    "AAC 64k": lambda x, rng: (codec_roundtrip(x, SR, "aac"), SR),
    "16 kHz": lambda x, rng: at_rate(x, 16000),
    "8 kHz": lambda x, rng: at_rate(x, 8000),
    "noise 20 dB": lambda x, rng: (white_noise(x, rng), SR),
    "gain +6 dB": lambda x, rng: (x * np.float32(10 ** (6 / 20)), SR),   # float, not clipped
    "gain -6 dB": lambda x, rng: (x * np.float32(10 ** (-6 / 20)), SR),
    "3 s crop": lambda x, rng: (crop(x, rng), SR),
    **{f"stretch {r:.2f}": edit(time_stretch, r) for r in (0.90, 0.95, 1.05, 1.10)},
    **{f"pitch {s:+d}": edit(pitch_shift, s) for s in (-2, -1, 1, 2)},
    **{f"speed {r:.2f}": edit(speed, r) for r in (0.95, 1.05)},
    "re-recorded": lambda x, rng: (rerecord(x, rng), SR),
    "speed 1.05 + MP3 64k": lambda x, rng: (codec_roundtrip(speed(x, 1.05), SR, "libmp3lame"), SR),
    "pitch +2 + stretch 0.95": lambda x, rng: (time_stretch(pitch_shift(x, 2), 0.95), SR),
    "re-recorded + AAC 64k": lambda x, rng: (codec_roundtrip(rerecord(x, rng), SR, "aac"), SR),
    "stretch 1.10 + 8 kHz": lambda x, rng: at_rate(time_stretch(x, 1.10), 8000),
}
MARKED_ONLY = ["inside real speech", "chunks"]  # need the clip's context
TRANSFORMS = list(SIMPLE) + MARKED_ONLY


# ----------------------------------------------------------------------------- data

def real_pieces(rng, min_s=3.0, max_s=10.0):
    """All of ../shared/data/speech, per corpus concatenated in file order, cut into 3-10 s pieces (22050 Hz)."""
    pieces = []
    for corpus in sorted(p for p in SPEECH.iterdir() if (p / "wavs").is_dir()):
        x = np.concatenate([read_audio(f, SR)[0] for f in sorted((corpus / "wavs").glob("*.flac"))])
        pos = 0
        while len(x) - pos >= min_s * SR:
            n = int(rng.uniform(min_s, max_s) * SR)
            pieces.append((corpus.name, x[pos:pos + n]))
            pos += n
    return pieces


def synth_clips(n: int, rng):
    """n clips of 3-10 s, each the list of its sentence chunks (joe voice, unmarked: the raw graph)."""
    from voicefake import load_voice
    from voicefake.enroll.dataset import read_metadata
    from voicefake.tts.text import text_to_sentences

    voice = load_voice("joe")
    texts = [text for file, text in read_metadata(SPEECH / "allison_en" / "metadata.csv") if file.startswith("wavs/")]
    rng.shuffle(texts)
    clips, i = [], 0
    while len(clips) < n and i < len(texts):
        chunks, total = [], 0
        while total < 3 * SR and i < len(texts):
            for s in text_to_sentences(texts[i], voice.phoneme_id_map):
                a = np.asarray(voice.piper.phoneme_ids_to_audio(s.phoneme_ids), np.float32).reshape(-1)
                chunks.append(a[:max(10 * SR - total, 0)])
                total += len(chunks[-1])
            i += 1
        chunks = [c for c in chunks if len(c)]
        if total >= 3 * SR:
            clips.append(chunks)
    return clips


def split_chunks(x: np.ndarray, rng) -> list:
    """Random 0.5-3 s chunks (the last one at least 0.5 s)."""
    out, pos = [], 0
    while pos < len(x):
        n = int(rng.uniform(0.5, 3.0) * SR)
        if len(x) - pos - n < 0.5 * SR:
            n = len(x) - pos
        out.append(x[pos:pos + n])
        pos += n
    return out


# ----------------------------------------------------------------------------- work

def pesq_wb(ref: np.ndarray, deg: np.ndarray) -> float:
    from pesq import pesq

    return float(pesq(16000, soxr.resample(ref, SR, 16000), soxr.resample(deg, SR, 16000), "wb"))


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((test - ref) ** 2), 1e-30)))


def marked_input(name: str, marked, chunked, filler, rng):
    if name == "inside real speech":
        return np.concatenate([filler[0], marked, filler[1]]), SR
    if name == "chunks":
        return chunked, SR
    return SIMPLE[name](marked, rng)


def run_marked(job):
    """One clip: mark it, then detect under every transform."""
    kind, chunks, filler, seed = job
    rng = np.random.default_rng(seed)
    clip = np.concatenate(chunks)
    payload = wm.Payload(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 20)))
    t = time.process_time()
    marked = wm.embed(clip, SR, payload)
    t_embed = time.process_time() - t
    starts = np.cumsum([0] + [len(c) for c in chunks[:-1]])
    chunked = np.concatenate([wm.embed(c, SR, payload, start=int(a)) for c, a in zip(chunks, starts)])
    res, t_detect = {}, None
    for name in TRANSFORMS:
        audio, sr = marked_input(name, marked, chunked, filler, rng)
        t = time.process_time()
        d = wm.detect(audio, sr)
        if name == "none":
            t_detect = time.process_time() - t
        res[name] = (d.found, d.payload == payload, d.payload_unreadable, d.score, d.payload is not None)
    return {"kind": kind, "seconds": len(clip) / SR, "snr": snr_db(clip, marked), "pesq": pesq_wb(clip, marked),
            "res": res, "t_embed": t_embed, "t_detect": t_detect}


def run_unmarked(job):
    """One unmarked piece under every transform that applies to it: {name: (found, score)}."""
    kind, audio, seed = job
    rng = np.random.default_rng(seed)
    out = {}
    for name, fn in SIMPLE.items():
        t = time.process_time()
        d = wm.detect(*fn(audio, rng))
        out[name] = (d.found, d.score, time.process_time() - t)
    return kind, len(audio) / SR, out


# ----------------------------------------------------------------------------- report

def pct(v) -> str:
    return f"{100 * np.mean(v):.1f}%" if len(v) else "-"


def report(marked: list, fp: list, args):
    real = np.array([m["kind"] == "real" for m in marked])
    print(f"\nmarked clips: {len(marked)} ({real.sum()} real, {(~real).sum()} synthesized), "
          f"{np.mean([m['seconds'] for m in marked]):.1f} s mean; unmarked pieces: {len(fp)}\n")
    print("| transform | detected | payload read | present, payload unreadable | false positives |")
    print("|---|---|---|---|---|")
    worst = {}
    for name in TRANSFORMS:
        r = [m["res"][name] for m in marked]
        f = [out[name][0] for _, _, out in fp if name in out]
        fp_cell = f"{sum(f)} / {len(f)}" if f else "n/a"
        print(f"| {name} | {pct([x[0] for x in r])} | {pct([x[1] for x in r])} | {pct([x[2] for x in r])} | {fp_cell} |")
        worst[name] = max((out[name][1] for _, _, out in fp if name in out), default=np.nan)
        if any(x[4] and not x[1] for x in r):
            print(f"  !! {name}: a wrong payload was reported")
    snr = np.array([m["snr"] for m in marked])
    pq = np.array([m["pesq"] for m in marked])
    seconds = sum(m["seconds"] for m in marked)
    t_un = sum(out["none"][2] for _, _, out in fp) / max(sum(s for _, s, _ in fp), 1e-9)
    print(f"\nquality vs unmarked: PESQ-WB mean {pq.mean():.2f} min {pq.min():.2f}; SNR mean {snr.mean():.1f} dB "
          f"min {snr.min():.1f} dB")
    print(f"speed (one core per process, {args.workers} processes on a shared machine): embed RTF "
          f"{sum(m['t_embed'] for m in marked) / seconds:.4f}; detect {sum(m['t_detect'] for m in marked) / seconds * 10:.2f} s "
          f"per 10 s (marked), {t_un * 10:.2f} s per 10 s (unmarked)")
    low = {n: np.percentile([m["res"][n][3] for m in marked], [1, 5, 50]) for n in TRANSFORMS
           if np.mean([m["res"][n][2] for m in marked]) > 0.5}
    print("\npresence z-score of marked clips where mostly presence-only (1st / 5th percentile / median): "
          + ", ".join(f"{k} {v[0]:.1f}/{v[1]:.1f}/{v[2]:.1f}" for k, v in low.items()))
    print("largest presence z-score on unmarked audio per transform (threshold "
          f"{wm._S_Z}): " + ", ".join(f"{k} {v:.2f}" for k, v in worst.items()))
    for kind in ("real", "synth"):
        sel = real if kind == "real" else ~real
        if sel.any():
            low = {n: np.mean([marked[i]["res"][n][0] for i in np.nonzero(sel)[0]]) for n in TRANSFORMS}
            print(f"{kind}: detected below 100%: " + ", ".join(f"{n} {v:.1%}" for n, v in low.items() if v < 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=int, default=160, help="marked real clips")
    ap.add_argument("--synth", type=int, default=60, help="marked synthesized clips")
    ap.add_argument("--fp-pieces", type=int, default=0, help="limit unmarked pieces (0: all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=2025)
    args = ap.parse_args()
    if not SPEECH.is_dir():
        sys.exit(f"needs the real recordings in {SPEECH}")
    rng = np.random.default_rng(args.seed)
    pieces = real_pieces(rng)
    synth = synth_clips(args.synth, rng) if args.synth else []

    def filler():
        a, b = rng.choice(len(pieces), 2, replace=False)
        return pieces[a][1][-int(rng.uniform(3, 10) * SR):], pieces[b][1][:int(rng.uniform(3, 10) * SR)]

    # silence (the corpora's silence__N files, -80 dBFS) cannot carry a mark: not used as marked clips
    audible = [i for i, (_, x) in enumerate(pieces) if 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20) > -55]
    sel = rng.choice(audible, min(args.real, len(audible)), replace=False)
    jobs = [("real", split_chunks(pieces[k][1], rng), filler(), args.seed * 1000 + i) for i, k in enumerate(sel)]
    jobs += [("synth", c, filler(), args.seed * 1000 + 500 + i) for i, c in enumerate(synth)]
    unmarked = pieces if not args.fp_pieces else [pieces[i] for i in rng.choice(len(pieces), args.fp_pieces, replace=False)]
    fp_jobs = [(name, x, args.seed * 7 + i) for i, (name, x) in enumerate(unmarked)]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        marked = list(ex.map(run_marked, jobs, chunksize=1))
        fp = list(ex.map(run_unmarked, fp_jobs, chunksize=1))
    print(f"{len(jobs)} marked clips and {len(fp_jobs)} unmarked pieces in {(time.time() - t0) / 60:.0f} min")
    report(marked, fp, args)


if __name__ == "__main__":
    main()
