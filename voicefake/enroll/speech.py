"""Speech analysis for enrollment: voice activity (silero-vad), utterance cutting, level, quality
measures, pitch (F0) and speaker embeddings (resemblyzer d-vectors).

Everything here runs on 16 kHz mono float32 audio unless a name says otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from voicefake.config import ANALYSIS_RATE

VAD_FRAME = 512  # samples per silero-vad decision at 16 kHz (32 ms)
VAD_CONTEXT = 64  # silero-vad v5+ expects the previous 64 samples in front of each frame
FRAME_SECONDS = VAD_FRAME / ANALYSIS_RATE

SPEECH_ON, SPEECH_OFF = 0.5, 0.35  # hysteresis: start speech above ON, end it after a run below OFF
MIN_SILENCE = 0.2  # s of quiet that ends a stretch of speech
LONG_PAUSE = 0.8  # s of quiet that always ends an utterance (shorter pauses stay inside one)
MIN_SPEECH = 0.3  # s; shorter blips (clicks, breaths) are not counted as speech at all
MAX_UTTERANCE = 12.0  # s; longer stretches are cut at their quietest moment
PAD = 0.15  # s of context kept before and after each utterance

TARGET_LEVEL_DB = -20.0  # active speech level every utterance is normalised to (dBFS RMS)
PEAK_LIMIT = 0.95


class SpeechDetector:
    """Streaming silero-vad (bundled ONNX model, onnxruntime): feed 16 kHz audio, get one speech
    probability per 32 ms frame. State carries across calls, so any block size works."""

    _session = None
    _lock = threading.Lock()

    def __init__(self):
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(VAD_CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)
        self._rate = np.array(ANALYSIS_RATE, dtype=np.int64)

    @classmethod
    def _model(cls):
        with cls._lock:
            if cls._session is None:
                from importlib import resources

                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1  # a 32 ms frame is too small to split across threads
                options.inter_op_num_threads = 1
                model = resources.files("silero_vad.data").joinpath("silero_vad.onnx")
                cls._session = onnxruntime.InferenceSession(
                    model.read_bytes(), options, providers=["CPUExecutionProvider"]
                )
            return cls._session

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Speech probabilities of every whole frame completed by `audio`."""
        session = self._model()
        audio = np.concatenate([self._rest, np.asarray(audio, np.float32)])
        count = len(audio) // VAD_FRAME
        self._rest = audio[count * VAD_FRAME :]
        probs = np.empty(count, np.float32)
        for i in range(count):
            frame = audio[i * VAD_FRAME : (i + 1) * VAD_FRAME]
            x = np.concatenate([self._context, frame])[None, :]
            out, self._state = session.run(None, {"input": x, "state": self._state, "sr": self._rate})
            self._context = frame[-VAD_CONTEXT:]
            probs[i] = out.item()
        return probs


@dataclass
class Cut:
    """An utterance found by the segmenter, in VAD frames (32 ms) from the start of the file."""

    start: int
    end: int


@dataclass
class Segmenter:
    """Turns the stream of speech probabilities into 1-12 s utterances cut at pauses.

    Stretches of speech separated by short pauses are joined into one utterance (a sentence
    with commas stays whole); a long pause, or reaching MAX_UTTERANCE, ends it.
    """

    frames: int = 0  # frames seen so far
    _region: int | None = None  # start of the stretch of speech in progress
    _quiet: int = 0  # frames below SPEECH_OFF inside that stretch
    _open: Cut | None = None  # utterance being collected (closed stretches only)
    _probs: list = field(default_factory=list)  # probabilities since _open/_region began, for cutting
    _probs_from: int = 0

    min_silence: int = round(MIN_SILENCE / FRAME_SECONDS)
    long_pause: int = round(LONG_PAUSE / FRAME_SECONDS)
    min_speech: int = round(MIN_SPEECH / FRAME_SECONDS)
    max_frames: int = round((MAX_UTTERANCE - 2 * PAD) / FRAME_SECONDS)  # padded, an utterance stays within 12 s

    def push(self, probs: np.ndarray) -> list[Cut]:
        """Utterances completed by these frames."""
        done: list[Cut] = []
        for p in probs:
            i = self.frames
            self.frames += 1
            self._probs.append(float(p))
            if self._region is None:
                if p >= SPEECH_ON:
                    self._region, self._quiet = i, 0
                elif self._open is not None and i - self._open.end >= self.long_pause:
                    done.append(self._close())
            else:
                self._quiet = self._quiet + 1 if p < SPEECH_OFF else 0
                if self._quiet >= self.min_silence:
                    self._end_region(Cut(self._region, i + 1 - self._quiet), done)
                    self._region = None
                elif i + 1 - (self._open.start if self._open else self._region) > self.max_frames:
                    self._too_long(i, done)
            if self._open is None and self._region is None:
                self._probs, self._probs_from = [], self.frames
        return done

    def finish(self) -> list[Cut]:
        """Utterances still open at the end of the file."""
        done: list[Cut] = []
        if self._region is not None:
            self._end_region(Cut(self._region, self.frames - self._quiet), done)
            self._region = None
        if self._open is not None:
            done.append(self._close())
        return [c for c in done if c.end - c.start >= self.min_speech]

    def _end_region(self, region: Cut, done: list[Cut]) -> None:
        if region.end - region.start < self.min_speech and self._open is None:
            return  # a click or breath on its own
        if self._open is None:
            self._open = region
        elif region.end - self._open.start <= self.max_frames:
            self._open.end = region.end
        else:
            done.append(self._close())
            self._open = region

    def _too_long(self, i: int, done: list[Cut]) -> None:
        if self._open is not None:  # the closed part is an utterance; the stretch in progress goes on alone
            done.append(self._close(keep_from=self._region))
            return
        # one stretch of speech without a pause: cut at its least speech-like frame in the second half
        lo = self._region + self.max_frames // 2
        window = self._probs[lo - self._probs_from : i + 1 - self._probs_from]
        cut = lo + int(np.argmin(window))
        done.append(Cut(self._region, cut))
        self._region = cut
        self._probs = self._probs[cut - self._probs_from :]
        self._probs_from = cut

    def _close(self, keep_from: int | None = None) -> Cut:
        cut, self._open = self._open, None
        if keep_from is not None:
            self._probs = self._probs[keep_from - self._probs_from :]
            self._probs_from = keep_from
        return cut


def frame_energies(audio: np.ndarray, frame: int = 320) -> np.ndarray:
    """Mean square of each 20 ms frame."""
    count = len(audio) // frame
    if count == 0:
        return np.array([float(np.mean(audio**2)) if len(audio) else 0.0])
    return np.mean(audio[: count * frame].reshape(count, frame) ** 2, axis=1)


def active_level_db(audio: np.ndarray) -> float:
    """RMS level of the frames that carry speech (within 30 dB of the loudest), in dBFS."""
    energy = frame_energies(audio)
    loud = energy[energy >= energy.max() * 1e-3] if energy.max() > 0 else energy
    return float(10 * np.log10(max(float(np.mean(loud)), 1e-12)))


def normalise(audio: np.ndarray) -> np.ndarray:
    """Scale to TARGET_LEVEL_DB active speech level, lowered if needed to keep peaks under PEAK_LIMIT."""
    gain = 10 ** ((TARGET_LEVEL_DB - active_level_db(audio)) / 20)
    peak = float(np.abs(audio).max(initial=0.0)) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (audio * gain).astype(np.float32)


def clipped_fraction(audio: np.ndarray) -> float:
    """Share of samples at or near full scale: clipped recordings pile up there, speech does not."""
    return float(np.mean(np.abs(audio) >= 0.97)) if len(audio) else 0.0


def snr_db(audio: np.ndarray, probs: np.ndarray | None = None, first_frame: int = 0) -> float:
    """Signal-to-noise estimate of one utterance, in dB: the lower of two estimates.

    Spectral: per-frequency noise floor by minimum statistics (10th percentile of each bin's power
    over time, bias-corrected), which works even for speech without pauses. Pauses: when
    `probs` (silero-vad, one per VAD frame from `first_frame` samples into `audio`) marks at least
    0.2 s as non-speech, their level against the speech frames' level; tonal music behind a
    voice is sparse in frequency and escapes the spectral estimate, but fills the pauses.
    """
    n_fft, hop = 512, 160
    if len(audio) < n_fft:
        return 0.0
    count = 1 + (len(audio) - n_fft) // hop
    frames = audio[np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1))[:, 3:] ** 2  # skip DC and rumble below 90 Hz
    # the 10th percentile of an exponentially distributed periodogram is 0.105 x its mean
    noise = float(np.sum(np.percentile(power, 10, axis=0) / 0.1054))
    signal = max(float(np.sum(power.mean(axis=0))) - noise, 1e-12)
    estimate = 10 * np.log10(signal / max(noise, 1e-12))
    if probs is not None and len(probs):
        usable = min(len(probs), (len(audio) - first_frame) // VAD_FRAME)
        probs = np.asarray(probs[:usable])
        energy = np.mean(audio[first_frame : first_frame + usable * VAD_FRAME].reshape(usable, VAD_FRAME) ** 2, axis=1)
        pauses, voiced = energy[probs < 0.2], energy[probs >= SPEECH_ON]
        if len(pauses) * FRAME_SECONDS >= 0.2 and len(voiced):
            estimate = min(estimate, 10 * np.log10(max(voiced.mean(), 1e-12) / max(float(np.median(pauses)), 1e-12)))
    return float(estimate)


def pitch(audio: np.ndarray, fmin: float = 60.0, fmax: float = 500.0, hop: int = 160) -> np.ndarray:
    """F0 in Hz of the voiced 10 ms frames (YIN with an aperiodicity threshold for voicing)."""
    window = 512
    max_lag = int(ANALYSIS_RATE / fmin)
    min_lag = int(ANALYSIS_RATE / fmax)
    length = window + max_lag
    if len(audio) < length:
        return np.zeros(0, np.float32)
    count = 1 + (len(audio) - length) // hop
    index = np.arange(length)[None, :] + hop * np.arange(count)[:, None]
    frames = audio[index].astype(np.float64)
    n_fft = 1 << (2 * length - 1).bit_length()
    spectrum = np.fft.rfft(frames, n_fft)
    head = np.fft.rfft(frames[:, :window], n_fft)
    acf = np.fft.irfft(np.conj(head) * spectrum, n_fft)[:, : max_lag + 1]
    squares = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    shifted = squares[:, window : window + max_lag + 1] - squares[:, : max_lag + 1]  # energy of x[tau:tau+W]
    diff = np.maximum(squares[:, window : window + 1] + shifted - 2 * acf, 0.0)
    diff[:, 0] = 0.0
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cumulative, 1e-12)
    region = cmnd[:, min_lag : max_lag + 1]
    # first dip below 0.15 (YIN's absolute threshold), else the deepest one
    below = region < 0.15
    first = np.where(below.any(axis=1), below.argmax(axis=1), region.argmin(axis=1))
    # walk down to the bottom of that dip
    for _ in range(8):
        nxt = np.minimum(first + 1, region.shape[1] - 1)
        step = region[np.arange(count), nxt] < region[np.arange(count), first]
        first = np.where(step, nxt, first)
    lag = first + min_lag
    aperiodicity = region[np.arange(count), first]
    energy = squares[:, window] / window
    voiced = (aperiodicity < 0.2) & (energy > energy.max() * 1e-3) & (lag > min_lag) & (lag < max_lag)
    # parabolic interpolation of the dip for sub-sample precision
    rows = np.arange(count)
    left = cmnd[rows, np.maximum(lag - 1, 1)]
    mid = cmnd[rows, lag]
    right = cmnd[rows, np.minimum(lag + 1, max_lag)]
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    f0 = ANALYSIS_RATE / (lag + np.clip(shift, -1, 1))
    return f0[voiced].astype(np.float32)
