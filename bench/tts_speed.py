"""Synthesis speed and intelligibility of the bundled voice: voicefake (API, CLI) vs raw Piper.

    .venv/bin/python bench/tts_speed.py [--clone OUT/voice.onnx]

With `--clone`, an exported clone (it speaks through the universal HiFi-GAN, which is inside its
graph) is timed the same way as the raw Piper graph.

Everything is measured in this one process on the same 10 sentences and the same ONNX file;
each figure is the median of REPEATS runs. Prints a markdown table for the README.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

import voicefake
from voicefake.asr import HARVARD_SENTENCES, transcribe, word_error_rate

REPEATS = 3
SENTENCES = HARVARD_SENTENCES[:10]
PARAGRAPH = " ".join(SENTENCES[:5])


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clone", help="an exported clone's .onnx, timed beside the bundled voice")
    args = parser.parse_args()
    voice = voicefake.load_voice("joe")
    model_path = str(voice.info.model_path)
    sample_rate = voice.sample_rate

    from piper import PiperVoice

    piper_voice = PiperVoice.load(model_path)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    ids = [piper_voice.phonemes_to_ids(p) for s in SENTENCES for p in piper_voice.phonemize(s)]
    scales = np.array([0.667, 1.0, 0.8], dtype=np.float32)

    def raw_onnx(session=session):
        out = []
        for sentence_ids in ids:
            x = np.array([sentence_ids], dtype=np.int64)
            out.append(session.run(None, {"input": x, "input_lengths": np.array([x.shape[1]]), "scales": scales})[0])
        return sum(a.size for a in out)

    def piper_api():
        return sum(c.audio_float_array.size for s in SENTENCES for c in piper_voice.synthesize(s))

    def voicefake_api():
        return sum(c.audio.size for s in SENTENCES for c in voice.synthesize(s))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cli.wav"

        def voicefake_cli():
            cmd = [sys.executable, "-m", "voicefake.cli", "-q", "say", "-", "-o", str(out)]
            subprocess.run(cmd, input="\n".join(SENTENCES), text=True, check=True)
            import soundfile

            return soundfile.info(str(out)).frames

        engines = {
            "raw onnxruntime (Piper graph)": raw_onnx,
            "piper-tts PiperVoice": piper_api,
            "voicefake API": voicefake_api,
            "voicefake CLI (whole process)": voicefake_cli,
        }
        if args.clone:
            clone_session = onnxruntime.InferenceSession(args.clone, providers=["CPUExecutionProvider"])
            engines["raw onnxruntime, a clone (universal HiFi-GAN)"] = lambda: raw_onnx(clone_session)
        for fn in engines.values():
            fn()  # warm-up
        times = {name: [] for name in engines}
        samples = {}
        for _ in range(REPEATS):
            for name, fn in engines.items():
                seconds, samples[name] = timed(fn)
                times[name].append(seconds)

    rtf = {name: statistics.median(times[name]) / (samples[name] / sample_rate) for name in engines}
    base = rtf["raw onnxruntime (Piper graph)"]
    print(f"10 sentences, {samples['voicefake API'] / sample_rate:.1f} s of speech, median of {REPEATS} runs\n")
    print("| engine | RTF | vs raw onnxruntime |\n|---|---|---|")
    for name in engines:
        print(f"| {name} | {rtf[name]:.4f} | {rtf[name] / base:.2f}x |")

    print(f"\ntime to first audio chunk, 5-sentence paragraph: {first_chunk_ms(voice):.0f} ms (median of 5)")
    print_intelligibility(voice, sample_rate)


def first_chunk_ms(voice) -> float:
    """Median over 5 runs of the time to the first audio chunk of PARAGRAPH, in ms."""
    first = []
    for _ in range(5):
        start = time.perf_counter()
        next(voice.synthesize(PARAGRAPH))
        first.append(time.perf_counter() - start)
    return statistics.median(first) * 1000


def print_intelligibility(voice, sample_rate: int) -> None:
    """pocketsphinx word error rate on SENTENCES, deterministic and with the default noise."""

    def heard(**settings):
        return [transcribe(np.concatenate([c.audio for c in voice.synthesize(s, **settings)]), sample_rate) for s in SENTENCES]

    exact = heard(noise=0, noise_w=0)
    sampled = [word_error_rate(SENTENCES, heard()) for _ in range(REPEATS)]
    runs = ", ".join(f"{w:.3f}" for w in sampled)
    print("pocketsphinx word error rate on the 10 sentences (the baseline clones are compared with):")
    print(f"  deterministic (noise 0): {word_error_rate(SENTENCES, exact):.3f}")
    print(f"  default noise, mean of {REPEATS} runs: {statistics.mean(sampled):.3f} (runs: {runs})")
    for sentence, words in zip(SENTENCES, exact):
        print(f"  {sentence!r} -> {words!r}")


if __name__ == "__main__":
    main()
