"""Robustness, quality and false-positive benchmark of voicefake.watermark.

    .venv/bin/python bench/watermark_robustness.py                 # full run (several minutes)
    .venv/bin/python bench/watermark_robustness.py --real 40 --synth 10 --fp-pieces 100   # quick look

Marked clips of 3-10 s: audible (> -55 dBFS) pieces of the real recordings in ../shared/data/speech (16 kHz,
resampled to 22050 Hz) and sentences synthesized with the bundled "joe" voice. Each marked clip
goes through every transform and is given to detect(); a clip counts as detected when
detect().found is true, and as bit-exact when the payload read back equals the embedded one.
Transforms: MP3 / AAC at 64 kbit/s (PyAV), resampled to 16 / 8 kHz (detected at that rate),
white noise at 20 dB SNR, gain +-6 dB (float, not clipped), a random 3 s crop, the clip between
3-10 s of other unmarked real speech on each side, and "chunked": the clip cut into chunks
(real: random 0.5-3 s; synthesized: its own sentence chunks), each marked by its own embed()
call, then concatenated.
False positives: detect() on all of ../shared/data/speech cut into 3-10 s pieces, unmarked
(silence files included), and on the unmarked synthesized clips.
Prints figures only; it asserts nothing. Needs `pesq` and `av` (PyAV) for the quality and codec rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPEECH = ROOT.parent / "shared" / "data" / "speech"
SR = 22050

from voicefake import watermark as wm  # noqa: E402

TRANSFORMS = [
    "none", "mp3_64k", "aac_64k", "resample_16k", "resample_8k", "noise_20dB",
    "gain_+6dB", "gain_-6dB", "crop_3s", "in_long_speech", "chunked",
]


# ----------------------------------------------------------------------------- transforms

def codec_roundtrip(x: np.ndarray, sr: int, codec: str, bitrate: int = 64000) -> np.ndarray:
    import av

    fmt = {"libmp3lame": "mp3", "aac": "adts"}[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        st = out.add_stream(codec, rate=sr)
        st.bit_rate = bitrate
        st.layout = "mono"
        fs = st.codec_context.frame_size or 1152
        sfmt = st.codec_context.format.name
        pcm = np.clip(x, -1, 1).astype(np.float32)
        for i in range(0, len(pcm), fs):
            blk = pcm[i:i + fs]
            if sfmt.startswith("s16"):
                arr = (blk * 32767).astype(np.int16)[None]
            elif sfmt.startswith("s32"):
                arr = (blk.astype(np.float64) * 2147483647).astype(np.int32)[None]
            else:
                arr = blk[None]
            frame = av.AudioFrame.from_ndarray(arr, format=sfmt, layout="mono")
            frame.sample_rate = sr
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    buf.seek(0)
    parts = []
    with av.open(buf, "r") as inp:
        for frame in inp.decode(audio=0):
            a = frame.to_ndarray()
            if a.dtype == np.int16:
                a = a.astype(np.float32) / 32768
            elif a.dtype == np.int32:
                a = (a / 2147483648.0).astype(np.float32)
            parts.append(a.reshape(-1) if a.shape[0] == 1 else a.mean(axis=0))
    return np.concatenate(parts).astype(np.float32)


def transform(name: str, marked: np.ndarray, chunked: np.ndarray, filler, rng) -> tuple[np.ndarray, int]:
    """-> (audio, sample rate) given to detect()."""
    if name == "none":
        return marked, SR
    if name == "mp3_64k":
        return codec_roundtrip(marked, SR, "libmp3lame"), SR
    if name == "aac_64k":
        return codec_roundtrip(marked, SR, "aac"), SR
    if name == "resample_16k":
        return soxr.resample(marked, SR, 16000), 16000
    if name == "resample_8k":
        return soxr.resample(marked, SR, 8000), 8000
    if name == "noise_20dB":
        p = float(np.mean(marked.astype(np.float64) ** 2))
        return (marked + rng.normal(0, np.sqrt(p / 100), len(marked))).astype(np.float32), SR
    if name == "gain_+6dB":
        return marked * np.float32(10 ** (6 / 20)), SR      # float, not clipped
    if name == "gain_-6dB":
        return marked * np.float32(10 ** (-6 / 20)), SR
    if name == "crop_3s":
        n = 3 * SR
        a = int(rng.integers(0, max(len(marked) - n, 0) + 1))
        return marked[a:a + n], SR
    if name == "in_long_speech":
        before, after = filler
        return np.concatenate([before, marked, after]), SR
    if name == "chunked":
        return chunked, SR
    raise ValueError(name)


# ----------------------------------------------------------------------------- data

def real_pieces(rng, min_s=3.0, max_s=10.0):
    """All of ../shared/data/speech, per corpus concatenated in file order, cut into 3-10 s pieces (22050 Hz)."""
    pieces = []
    for corpus in sorted(p for p in SPEECH.iterdir() if (p / "wavs").is_dir()):
        files = sorted((corpus / "wavs").glob("*.flac"))
        audio = []
        for f in files:
            a, sr = sf.read(f, dtype="float32", always_2d=True)
            audio.append(soxr.resample(a.mean(axis=1), sr, SR) if sr != SR else a.mean(axis=1))
        x = np.concatenate(audio)
        pos = 0
        while len(x) - pos >= min_s * SR:
            n = int(rng.uniform(min_s, max_s) * SR)
            pieces.append((corpus.name, x[pos:pos + n]))
            pos += n
    return pieces


def synth_clips(n: int, rng):
    """n clips of 3-10 s, each a list of independently synthesized sentence chunks (joe voice)."""
    from voicefake import load_voice

    voice = load_voice("joe")
    rows = list(csv.reader(open(SPEECH / "allison_en" / "metadata.csv"), delimiter="|"))
    texts = [r[1] for r in rows if len(r) >= 3 and r[0].startswith("wavs/")]
    rng.shuffle(texts)
    clips, i = [], 0
    while len(clips) < n and i < len(texts):
        chunks, dur = [], 0.0
        while dur < 3.0 and i < len(texts):
            for c in voice.synthesize(texts[i]):
                chunks.append(c.audio.astype(np.float32))
                dur += len(c.audio) / SR
            i += 1
        total, kept = 0, []
        for c in chunks:
            if total >= 10 * SR:
                break
            c = c[:10 * SR - total]
            kept.append(c)
            total += len(c)
        if total >= 3 * SR:
            clips.append(kept)
    return clips


# ----------------------------------------------------------------------------- work

def pesq_wb(ref: np.ndarray, deg: np.ndarray) -> float:
    from pesq import pesq

    return float(pesq(16000, soxr.resample(ref, SR, 16000), soxr.resample(deg, SR, 16000), "wb"))


def run_marked(job):
    idx, kind, chunks, filler, seed = job
    rng = np.random.default_rng(seed)
    clip = np.concatenate(chunks)
    payload = wm.Payload(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 20)))
    t = time.perf_counter()
    marked = wm.embed(clip, SR, payload)
    t_embed = time.perf_counter() - t
    chunked = np.concatenate([wm.embed(c, SR, payload) for c in chunks])
    err = marked.astype(np.float64) - clip
    snr = 10 * np.log10(np.sum(clip.astype(np.float64) ** 2) / max(np.sum(err ** 2), 1e-20))
    quality = pesq_wb(clip, marked)
    res = {}
    t_det = None
    for name in TRANSFORMS:
        audio, sr = transform(name, marked, chunked, filler, rng)
        t = time.perf_counter()
        d = wm.detect(audio, sr)
        if name == "none":
            t_det = time.perf_counter() - t
        res[name] = (d.found, d.payload == payload)
    return dict(kind=kind, seconds=len(clip) / SR, snr=snr, pesq=quality, res=res,
                t_embed=t_embed, t_detect=t_det, nchunks=len(chunks))


def run_unmarked(job):
    kind, audio = job
    d = wm.detect(audio, SR)
    return kind, d.found, d.score


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

    t0 = time.time()
    pieces = real_pieces(rng)
    synth = synth_clips(args.synth, rng) if args.synth else []
    print(f"data: {len(pieces)} real 3-10 s pieces ({sum(len(p) for _, p in pieces) / SR / 60:.1f} min), "
          f"{len(synth)} synthesized clips; {time.time() - t0:.0f} s", flush=True)

    def filler():
        a, b = rng.choice(len(pieces), 2, replace=False)
        return pieces[a][1][-int(rng.uniform(3, 10) * SR):], pieces[b][1][:int(rng.uniform(3, 10) * SR)]

    def split_chunks(x):
        out, pos = [], 0
        while pos < len(x):
            n = int(rng.uniform(0.5, 3.0) * SR)
            if len(x) - pos - n < 0.5 * SR:
                n = len(x) - pos
            out.append(x[pos:pos + n])
            pos += n
        return out

    jobs = []
    # silence (the corpora's silence__N files, -80 dBFS) cannot carry a mark: not used as marked clips
    audible = [i for i, (_, x) in enumerate(pieces) if 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20) > -55]
    sel = rng.choice(audible, min(args.real, len(audible)), replace=False)
    for i, k in enumerate(sel):
        jobs.append((i, "real", split_chunks(pieces[k][1]), filler(), args.seed * 1000 + i))
    for i, chunks in enumerate(synth):
        jobs.append((len(jobs), "synth", chunks, filler(), args.seed * 1000 + 500 + i))
    unmarked = [(name, x) for name, x in pieces]
    if args.fp_pieces:
        unmarked = [unmarked[i] for i in rng.choice(len(unmarked), min(args.fp_pieces, len(unmarked)), replace=False)]
    unmarked += [("joe_synth", np.concatenate(c)) for c in synth]

    with ProcessPoolExecutor(args.workers) as ex:
        t0 = time.time()
        marked = list(ex.map(run_marked, jobs, chunksize=1))
        t_marked = time.time() - t0
        t0 = time.time()
        fp = list(ex.map(run_unmarked, unmarked, chunksize=4))
        t_fp = time.time() - t0

    print(f"\nmarked clips: {len(marked)} ({sum(m['kind'] == 'real' for m in marked)} real, "
          f"{sum(m['kind'] == 'synth' for m in marked)} synthesized), "
          f"{np.mean([m['seconds'] for m in marked]):.1f} s mean length; {t_marked:.0f} s")
    print(f"\n{'transform':<16}{'detected':>10}{'bit-exact':>11}{'real det':>10}{'synth det':>11}")
    for name in TRANSFORMS:
        det = np.array([m["res"][name][0] for m in marked])
        exact = np.array([m["res"][name][1] for m in marked])
        real = np.array([m["kind"] == "real" for m in marked])
        r_det = f"{det[real].mean():.1%}" if real.any() else "-"
        s_det = f"{det[~real].mean():.1%}" if (~real).any() else "-"
        print(f"{name:<16}{det.mean():>10.1%}{exact.mean():>11.1%}{r_det:>10}{s_det:>11}")
    snr = np.array([m["snr"] for m in marked])
    pq = np.array([m["pesq"] for m in marked])
    print(f"\nquality vs unmarked: PESQ-WB mean {pq.mean():.2f} min {pq.min():.2f};  "
          f"SNR mean {snr.mean():.1f} dB min {snr.min():.1f} dB")
    audio_s = sum(m["seconds"] for m in marked)
    print(f"speed: embed RTF {sum(m['t_embed'] for m in marked) / audio_s:.4f} (one call per clip), "
          f"detect {sum(m['t_detect'] for m in marked) / audio_s * 10:.2f} s per 10 s of audio "
          f"(with {args.workers} worker processes on a shared machine)")
    print(f"\nfalse positives on unmarked audio ({t_fp:.0f} s):")
    for kind in sorted({k for k, _, _ in fp}):
        f = [found for k, found, _ in fp if k == kind]
        print(f"  {kind:<14}{sum(f):>4} / {len(f):<5} = {np.mean(f):.2%}")
    f = [found for _, found, _ in fp]
    print(f"  {'all':<14}{sum(f):>4} / {len(f):<5} = {np.mean(f):.2%}")
    scores = np.array([s for _, _, s in fp])
    print(f"  presence score on unmarked: median {np.median(scores):.2f}, 99th pct {np.percentile(scores, 99):.2f}, "
          f"max {scores.max():.2f}")


if __name__ == "__main__":
    main()
