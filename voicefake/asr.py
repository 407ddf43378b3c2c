"""Offline English speech recognition (pocketsphinx, bundled model) and word error rate."""

from __future__ import annotations

import re
import threading

import numpy as np

from voicefake.config import ANALYSIS_RATE

# Harvard sentences (IEEE 1969, public domain): the fixed texts intelligibility is measured on.
# Benchmarks and tests take the first 10-20; clone.py validates on the last 3, kept apart from them.
HARVARD_SENTENCES = [
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
]

OPEN_SEARCH = "open"  # the general English language model
_decoder = None
_grammars: set[str] = set()
_decoder_lock = threading.Lock()


def _make_decoder():
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=ANALYSIS_RATE, loglevel="FATAL")
    decoder.add_word("voicefake", "V OY S F EY K", True)  # the consent statement names the tool
    decoder.add_lm(OPEN_SEARCH, decoder.get_lm(decoder.current_search()))
    return decoder


def transcribe(audio: np.ndarray, sample_rate: int, grammar: tuple[str, str] | None = None) -> str:
    """Words pocketsphinx hears in mono float `audio`, lower case: with the general language model,
    or with `grammar` = (name, JSGF text) only the sentences that grammar allows."""
    global _decoder
    import soxr

    if len(audio) == 0:
        return ""  # pocketsphinx fails on an empty buffer
    if sample_rate != ANALYSIS_RATE:
        audio = soxr.resample(audio, sample_rate, ANALYSIS_RATE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    with _decoder_lock:
        _decoder = _decoder or _make_decoder()
        search = OPEN_SEARCH
        if grammar is not None:
            search, jsgf = grammar
            if search not in _grammars:
                _decoder.add_jsgf_string(search, jsgf)
                _grammars.add(search)
        _decoder.activate_search(search)
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
