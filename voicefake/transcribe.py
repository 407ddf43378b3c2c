"""Offline English speech recognition (pocketsphinx, bundled model) and word error rate."""

from __future__ import annotations

import re
import threading

import numpy as np

ASR_SAMPLE_RATE = 16000

_decoder = None
_decoder_lock = threading.Lock()


def transcribe(audio: np.ndarray, sample_rate: int) -> str:
    """Words pocketsphinx hears in mono float `audio`, lower case."""
    global _decoder
    import soxr

    if sample_rate != ASR_SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, ASR_SAMPLE_RATE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    with _decoder_lock:
        if _decoder is None:
            from pocketsphinx import Decoder

            _decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
        _decoder.start_utt()
        _decoder.process_raw(pcm, full_utt=True)
        _decoder.end_utt()
        hypothesis = _decoder.hyp()
    return hypothesis.hypstr if hypothesis else ""


def normalize_words(text: str) -> str:
    """Lower case, letters, digits and apostrophes only: what WER compares."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate of `hypotheses` against `references` (both normalised first)."""
    import jiwer

    return jiwer.wer([normalize_words(r) for r in references], [normalize_words(h) or "<empty>" for h in hypotheses])
