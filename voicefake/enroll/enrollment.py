"""Enrollment: turn recordings of one person into a clean training set, a voice profile and a
consent record, under $VOICEFAKE_HOME/voices/NAME/.

    report = voicefake.enroll("ann", ["interview.m4a", "clips/"], consent="ann_consent.wav")

The folder is built in $VOICEFAKE_HOME/voices/.staging/ and renamed into place only when
everything passed, so a failure or a crash never leaves a half-written voice.

What a voice folder holds:
  wavs/NAME_00001.wav ...   22.05 kHz mono 16-bit utterances, 1-12 s, loudness-normalised
  metadata.csv              LJSpeech `id|text|text` lines
  phonemes.csv              `id|phonemes` (espeak-ng, the same front end as synthesis)
  profile.npz               mean and per-utterance resemblyzer d-vectors, F0 histogram
  consent.json              the consent record (consent/ holds the consent recording)
  manifest.json             written last: what was found, kept and rejected, and why
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voicefake import speaker
from voicefake.config import (
    ANALYSIS_RATE,
    DEFAULT_VOICE,
    SAMPLE_RATE,
    check_name,
    voice_folder,
    voices_dir,
)
from voicefake.enroll import speech
from voicefake.enroll.consent import Challenge, DeclaredLicence
from voicefake.enroll.speech import PAD
from voicefake.errors import VoicefakeError

log = logging.getLogger("voicefake")

MIN_UTTERANCE = 1.0  # s; shorter utterances teach a voice little
CLIP_LIMIT = 0.001  # share of samples at |x| >= 0.97; clean speech peaking at full scale has ~0.0001
# speech.snr_db: the real clean clips in ../shared (671 clips >= 1 s) score 20.7-60 dB (1st
# percentile 25); the same speech with white noise added at 15 / 10 / 5 dB scores 13.6 / 9.0 / 4.3.
SNR_LIMIT = 15.0
SPEECH_PROB_LIMIT = 0.6  # mean silero-vad probability an utterance must reach (music and noise score ~0.0)
# resemblyzer cosine of one utterance to the voice's centre (median d-vector); below = another
# speaker. Calibrated on ../shared clips >= 1 s: at 0.75 the speaker's own clips are rejected
# 0.3-3.6% of the time (mostly 1-2 s clips), the other speaker's clips accepted 0.3-0.8%.
SPEAKER_LIMIT = 0.75
SEED_LIMIT = 0.70  # utterance-to-utterance cosine that counts as the same voice when finding the main one
# resemblyzer cosine of a 1.6 s window of an utterance (a partial d-vector) to the voice's centre;
# below = someone else speaks in that window, and the utterance is split around it (a cut between
# two speakers' turns separated by a short pause holds both). A window between PARTIAL_SURE and
# PARTIAL_LIMIT counts only next to another low one: another person's turn lowers several
# windows in a row, while the speaker's own rare low windows stand alone. Calibrated on 29 min
# of ../shared speech in 7 recordings (each real speaker with ~14% turns of the other and of the
# bundled voice after 0.2-0.4 s pauses, twice each way; the test's mixture, where every cut holds
# another voice; 5 min of each speaker alone), windows scored against the recentred voice (see
# split_at_speaker_changes): the speaker's own 0.76-0.81 at the 1st percentile, min 0.69, of
# 2,568 windows 4 taken for another voice; windows mostly of another voice 0.71-0.76 at the 99th
# percentile, 2 of 235 missed. At 0.70 alone, 3% of the kept speech was still another voice's;
# at 0.80 a tenth of the speaker's own was lost. Similarity between neighbouring windows (a
# change detector without a reference) separated them far worse: same speaker down to 0.52,
# across a change up to 0.64.
PARTIAL_LIMIT = 0.75
PARTIAL_SURE = 0.70
MIN_KEPT_SECONDS = 10.0
MIN_KEPT_UTTERANCES = 3
RECOMMENDED_MINUTES = 5.0
ESPEAK_VOICES = {"en": "en-us", "en-us": "en-us", "en-gb": "en-gb-x-rp", "fr": "fr-fr", "pt": "pt-br"}

REASONS = {  # rejection reason -> how the report words it
    "unreadable": "unreadable file",
    "no speech": "no speech found (silence, noise or music)",
    "too short": f"too short (< {MIN_UTTERANCE:.0f} s)",
    "clipping": "clipping",
    "low snr": f"low SNR (< {SNR_LIMIT:.0f} dB: noise or music behind the voice)",
    "non-speech": "music or non-speech",
    "speaker": "another speaker (outlier from the voice's median)",
    "no transcript": "no transcript",
    "no words": "no words recognised",
}


class EnrollmentError(VoicefakeError):
    """Enrollment failed; `.report` tells what was found before it stopped."""

    def __init__(self, message: str, report: EnrollReport | None = None):
        super().__init__(message)
        self.report = report


class ConsentRefused(EnrollmentError):
    """The consent recording did not pass. Nothing was written."""



def espeak_voice_for(language: str) -> str:
    """espeak-ng voice for a language code ("en" -> "en-us"); fails clearly for unknown ones."""
    from voicefake.tts.text import phonemize

    voice = ESPEAK_VOICES.get(language.lower(), language.lower())
    try:
        phonemize("a", voice)
    except Exception as error:
        raise VoicefakeError(f"unknown language {language!r}: give a code espeak-ng knows, such as en, es, fr, de, ru") from error
    return voice


@dataclass
class Utterance:
    id: str
    source: int  # index into the report's files
    start: float  # seconds in the source
    seconds: float
    reason: str | None = None
    text: str | None = None
    heard: str | None = None
    snr: float = 0.0
    embedding: np.ndarray | None = None
    f0: np.ndarray | None = None
    similarity: float | None = None
    phonemes: str = ""
    partials: np.ndarray | None = None  # partial d-vectors, one per 1.6 s window (speaker.PARTIAL_RATE a second)
    windows: np.ndarray | None = None  # their [start, stop) in 16 kHz samples from the utterance's start


@dataclass
class EnrollReport:
    """What enrollment found, kept and rejected. `lines()` is the human report."""

    name: str
    language: str = "en"
    files: list[str] = field(default_factory=list)
    seconds_found: float = 0.0
    seconds_speech: float = 0.0
    seconds_kept: float = 0.0
    utterances_kept: int = 0
    rejected: dict[str, list[float]] = field(default_factory=dict)  # reason -> [count, seconds]
    problems: list[str] = field(default_factory=list)  # per-file lines (unreadable, damaged...)
    consistency: float | None = None
    transcripts: str = ""
    consent: str = ""
    notes: list[str] = field(default_factory=list)
    enrolled: bool = False
    folder: str | None = None
    wall_seconds: float = 0.0
    max_buffer_seconds: float = 0.0  # longest stretch of audio held in memory (streaming bound)

    def reject(self, reason: str, seconds: float) -> None:
        entry = self.rejected.setdefault(reason, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def lines(self) -> list[str]:
        head = f"enrolled voice {self.name!r} in {self.folder}" if self.enrolled else f"voice {self.name!r} NOT enrolled"
        out = [head, f"  audio found:   {self.seconds_found / 60:.1f} min in {len(self.files)} file(s)"]
        out.append(f"  speech found:  {self.seconds_speech / 60:.1f} min")
        out.append(f"  speech kept:   {self.seconds_kept / 60:.1f} min in {self.utterances_kept} utterances")
        if self.rejected:
            out.append("  rejected:")
            for reason, (count, seconds) in sorted(self.rejected.items(), key=lambda kv: -kv[1][1]):
                out.append(f"    {REASONS.get(reason, reason)}: {int(count)} ({seconds / 60:.1f} min)")
        out += [f"    {problem}" for problem in self.problems[:10]]
        if len(self.problems) > 10:
            out.append(f"    ... and {len(self.problems) - 10} more file problems")
        if self.consistency is not None:
            out.append(f"  speaker consistency: {self.consistency:.2f} (mean similarity of kept utterances to the profile)")
        if self.transcripts:
            out.append(f"  transcripts:   {self.transcripts}")
        if self.consent:
            out.append(f"  consent:       {self.consent}")
        out += [f"  note: {note}" for note in self.notes]
        return out

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "language": self.language,
            "files": self.files,
            "seconds_found": round(self.seconds_found, 2),
            "seconds_speech": round(self.seconds_speech, 2),
            "seconds_kept": round(self.seconds_kept, 2),
            "utterances_kept": self.utterances_kept,
            "rejected": {k: {"count": int(v[0]), "seconds": round(v[1], 2)} for k, v in self.rejected.items()},
            "problems": self.problems,
            "speaker_consistency": None if self.consistency is None else round(self.consistency, 4),
            "transcripts": self.transcripts,
            "consent": self.consent,
            "notes": self.notes,
        }



def _staging_root() -> Path:
    return voices_dir() / ".staging"


def _clear_abandoned_staging() -> None:
    """Remove staging folders of enrollments whose process is gone (a crash, a kill)."""
    root = _staging_root()
    for folder in root.glob("*") if root.is_dir() else []:
        try:
            pid = int(folder.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


class _Tail:
    """The recent audio of one stream, addressed by absolute sample index; older audio is dropped."""

    def __init__(self):
        self.audio = np.zeros(0, np.float32)
        self.offset = 0  # absolute index of audio[0]

    @property
    def end(self) -> int:
        return self.offset + len(self.audio)

    def append(self, block: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, block])

    def get(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, self.offset), min(stop, self.end)
        return self.audio[start - self.offset : max(start, stop) - self.offset]

    def drop_before(self, index: int) -> None:
        index = min(max(index, self.offset), self.end)
        self.audio = self.audio[index - self.offset :]
        self.offset = index


class _Enrollment:
    def __init__(self, name: str, staging: Path, report: EnrollReport, espeak: str, progress: bool):
        self.name = name
        self.staging = staging
        self.report = report
        self.espeak = espeak
        self.progress = progress
        self.utterances: list[Utterance] = []
        self.keep_pieces = False  # keep rejected pieces' audio too (to place a file's text over its pieces)
        self.synthetic: tuple[Path, object] | None = None  # (file, watermark.Detection): voicefake's own speech
        self.consent_print = None  # fingerprint of the consent speech, to find it replayed in the enrollment audio
        self.replayed: tuple[Path, float] | None = None  # (file, seconds): where the consent recording was found
        (staging / "wavs").mkdir(parents=True)
        (staging / "scratch").mkdir()

    # --- streaming one file ---------------------------------------------------------------

    def process_file(self, index: int, path: Path, bar) -> list[Utterance]:
        import soxr

        from voicefake.io.media import stream_audio

        detector = speech.SpeechDetector()
        segmenter = speech.Segmenter()
        to16k = soxr.ResampleStream(SAMPLE_RATE, ANALYSIS_RATE, 1, dtype="float32")
        wide, narrow = _Tail(), _Tail()  # 22.05 kHz and 16 kHz
        probs = _Tail()  # speech probability per VAD frame
        found: list[Utterance] = []
        seconds = 0.0
        last_end = 0  # 16 kHz index where the previous utterance ended (pads must not overlap it)
        marks = _MarkProbe()  # the whole file is checked for voicefake's watermark as it streams

        def take(cuts: list[speech.Cut]) -> None:
            nonlocal last_end
            for cut in cuts:
                start16 = max(cut.start * speech.VAD_FRAME - int(PAD * ANALYSIS_RATE), last_end, 0)
                stop16 = min(cut.end * speech.VAD_FRAME + int(PAD * ANALYSIS_RATE), narrow.end)
                last_end = stop16
                found.append(self.measure(index, path, start16, stop16, cut, wide, narrow, probs))

        try:
            for block in stream_audio(path, SAMPLE_RATE):
                seconds += len(block) / SAMPLE_RATE
                bar.update(len(block) / SAMPLE_RATE)
                wide.append(block)
                marks.push(block)
                if marks.found is not None:
                    break  # voicefake's own speech: enroll() refuses it, no need to read on
                block16 = to16k.resample_chunk(block)
                narrow.append(block16)
                frame_probs = detector(block16)
                probs.append(frame_probs)
                take(segmenter.push(frame_probs))
                self._forget(segmenter, wide, narrow, probs, last_end)
            take(segmenter.finish())
        except VoicefakeError as error:
            if seconds == 0.0:
                self.report.problems.append(f"{path.name}: {error}")
                self.report.reject("unreadable", 0.0)
                return []
            take(segmenter.finish())  # keep what decoded before the damage
            self.report.problems.append(f"{path.name}: damaged after {seconds:.1f} s; kept what came before ({error})")
        marks.finish()
        if marks.found is not None:
            self.synthetic = (path, marks.found)
        self.report.seconds_found += seconds
        if not found:
            self.report.reject("no speech", seconds)
        return found

    def _forget(self, segmenter, wide: _Tail, narrow: _Tail, probs: _Tail, last_end: int) -> None:
        """Drop audio no open utterance can still need: memory stays bounded for any file length."""
        keep_frame = segmenter.frames - 2  # nothing open: keep a little for the next utterance's pad
        if segmenter._open is not None:
            keep_frame = segmenter._open.start
        if segmenter._region is not None:
            keep_frame = min(keep_frame, segmenter._region)
        keep16 = max(0, keep_frame * speech.VAD_FRAME - int(PAD * ANALYSIS_RATE) - speech.VAD_FRAME)
        narrow.drop_before(keep16)
        wide.drop_before(int(keep16 * SAMPLE_RATE / ANALYSIS_RATE))
        probs.drop_before(keep16 // speech.VAD_FRAME)
        held = len(wide.audio) / SAMPLE_RATE
        self.report.max_buffer_seconds = max(self.report.max_buffer_seconds, held)

    def measure(self, index, path, start16, stop16, cut, wide: _Tail, narrow: _Tail, probs: _Tail) -> Utterance:
        """Quality gates for one utterance; keepers are written to wavs/ and embedded."""
        audio16 = narrow.get(start16, stop16)
        start22 = int(start16 * SAMPLE_RATE / ANALYSIS_RATE)
        audio22 = wide.get(start22, start22 + int(len(audio16) * SAMPLE_RATE / ANALYSIS_RATE))
        utt_id = f"{self.name}_{len(self.utterances) + 1:05d}"
        utt = Utterance(utt_id, index, start16 / ANALYSIS_RATE, len(audio16) / ANALYSIS_RATE)
        self.utterances.append(utt)
        self.report.seconds_speech += utt.seconds
        if self.consent_print is not None and self.replayed is None:
            from voicefake.enroll import fingerprint

            ber, _ = fingerprint.best_match(self.consent_print, fingerprint.fingerprint(audio16))
            if ber <= fingerprint.MATCH_BER:
                self.replayed = (path, utt.start)
        p = probs.get(cut.start, cut.end)
        # VAD frames wholly inside the utterance, for the pause-based noise estimate
        first = -(-start16 // speech.VAD_FRAME)
        last = (start16 + len(audio16)) // speech.VAD_FRAME
        utt.snr = speech.snr_db(audio16, probs.get(first, last), first * speech.VAD_FRAME - start16)
        if utt.seconds < MIN_UTTERANCE:
            utt.reason = "too short"
        elif speech.clipped_fraction(audio22) > CLIP_LIMIT:
            utt.reason = "clipping"
        elif len(p) and float(np.mean(p)) < SPEECH_PROB_LIMIT:
            utt.reason = "non-speech"
        elif utt.snr < SNR_LIMIT:
            utt.reason = "low snr"
        import soundfile as sf

        if utt.reason:
            self.report.reject(utt.reason, utt.seconds)
            if self.keep_pieces:
                sf.write(self.staging / "scratch" / f"{utt.id}.wav", audio16, ANALYSIS_RATE, subtype="PCM_16")
            return utt

        clean16 = speech.normalise(audio16)
        utt.embedding, utt.partials, utt.windows = speaker.embed_partials(clean16)
        f0 = speech.pitch(clean16)
        utt.f0 = f0[:: max(1, len(f0) // 300)]  # a sample is plenty for statistics
        sf.write(self.staging / "wavs" / f"{utt.id}.wav", speech.normalise(audio22), SAMPLE_RATE, subtype="PCM_16")
        return utt

    def drop(self, utt: Utterance, reason: str) -> None:
        utt.reason = reason
        self.report.reject(reason, utt.seconds)
        (self.staging / "wavs" / f"{utt.id}.wav").unlink(missing_ok=True)

    def piece(self, utt: Utterance) -> Path | None:
        """Where an utterance's audio was written, kept or not (None for pieces not written)."""
        for folder in ("wavs", "scratch"):
            path = self.staging / folder / f"{utt.id}.wav"
            if path.exists():
                return path
        return None

    def kept(self) -> list[Utterance]:
        return [u for u in self.utterances if u.reason is None]

    # --- whole-voice steps ----------------------------------------------------------------

    def reject_other_speakers(self) -> None:
        """Find the voice that speaks most and reject utterances far from it (a second person)."""
        keep = self.kept()
        if len(keep) < 2:
            return
        weights = np.array([u.seconds for u in keep])
        _, sims, members = _main_voice(np.stack([u.embedding for u in keep]), weights)
        for utt, sim, member in zip(keep, sims, members):
            utt.similarity = float(sim)
            if not member:
                self.drop(utt, "speaker")
        share = float(weights[~members].sum() / weights.sum())
        if share > 0.2:
            self.report.notes.append(
                f"{share:.0%} of the clean speech sounded like someone else and was left out; "
                "give recordings of this one person only"
            )

    def split_at_speaker_changes(self, by_file: dict[int, list[Utterance]]) -> None:
        """Cut the windows where someone else speaks out of each utterance (`by_file` follows).

        A cut between pauses can hold two speakers' turns when they are separated by a short
        pause; judged whole, such an utterance is kept (or lost) whole. Each utterance's 1.6 s
        windows are compared with the voice that speaks most (the same centre the outlier filter
        finds): the stretches under windows below PARTIAL_LIMIT become pieces rejected as another
        speaker, the rest new utterances (cut at the quietest moment within 0.4 s inside), which
        the outlier filter then judges again. Costs nothing for utterances with one speaker."""
        keep = self.kept()
        if len(keep) < 2:
            return
        centre, _, _ = _main_voice(np.stack([u.embedding for u in keep]), np.array([u.seconds for u in keep]))
        # when most cuts hold a second voice, their d-vectors, and so that centre, lean toward it:
        # recentre on the mean of the windows that sound like the speaker. (Where every cut held
        # another voice, the other's windows scored up to 0.80 against the first centre, above
        # the speaker's own 0.78; against the recentred one up to 0.75, the speaker's 0.81+. A
        # median of windows instead of the mean took three times as many of the speaker's own
        # windows for another voice.)
        windows = np.concatenate([u.partials for u in keep if u.partials is not None])
        for _ in range(2):
            chosen = windows[windows @ centre >= PARTIAL_LIMIT]
            if not len(chosen):
                break
            centre = speaker.unit(chosen.mean(axis=0))
        count = 0
        for index, utts in by_file.items():
            pieces: list[Utterance] = []
            for utt in utts:
                parts = self._split(utt, centre) if utt.reason is None and utt.partials is not None else None
                pieces += parts or [utt]
                count += parts is not None
            by_file[index] = pieces
        if count:
            self.report.notes.append(f"{count} utterance(s) held another speaker's turn as well: it was cut out")

    def _split(self, utt: Utterance, centre: np.ndarray) -> list[Utterance] | None:
        """`utt` in pieces around its windows of another voice, or None when it has one voice."""
        import itertools

        import soundfile as sf

        low = _other_voice_windows(utt.partials @ centre)
        if not low.any() or low.all():
            return None  # one voice: the outlier filter keeps or drops it whole
        length = utt.seconds
        other = np.zeros(int(np.ceil(length / 0.01)) + 1, bool)  # 10 ms grid: another voice here?
        for start, stop in utt.windows[low] / ANALYSIS_RATE:
            other[int(start / 0.01) : int(np.ceil(stop / 0.01))] = True
        edges = np.flatnonzero(np.diff(other.astype(np.int8))) + 1
        bounds = [0, *edges.tolist(), len(other)]
        runs = [(a * 0.01, min(b * 0.01, length), bool(other[a])) for a, b in itertools.pairwise(bounds)]
        wav_path = self.staging / "wavs" / f"{utt.id}.wav"
        audio22, rate = sf.read(wav_path, dtype="float32")
        energy = speech.frame_energies(audio22, int(0.02 * rate))  # 20 ms frames

        def quiet(lo: float, hi: float) -> float:
            """The quietest 20 ms moment between lo and hi seconds."""
            a, b = int(lo / 0.02), max(int(hi / 0.02), int(lo / 0.02) + 1)
            return (a + int(np.argmin(energy[a:b]))) * 0.02 + 0.01 if a < len(energy) else lo

        # move each edge of another voice's stretch into the speaker's own, to a pause near it
        for k in range(1, len(runs)):
            (a0, b0, o0), (a1, b1, o1) = runs[k - 1], runs[k]
            cut = quiet(max(a0, b0 - 0.4), b0) if o1 else quiet(a1, min(b1, a1 + 0.4))
            runs[k - 1], runs[k] = (a0, cut, o0), (cut, b1, o1)
        runs = [run for run in runs if run[1] - run[0] >= 0.02]  # a stretch the moves left empty
        position = next(i for i, u in enumerate(self.utterances) if u is utt)  # (== would compare arrays)
        self.utterances.pop(position)
        wav_path.unlink(missing_ok=True)
        pieces = []
        for k, (a, b, is_other) in enumerate(runs):
            piece = Utterance(f"{utt.id}_{k + 1}", utt.source, utt.start + a, b - a, snr=utt.snr)
            audio = audio22[int(a * rate) : int(b * rate)]
            if is_other or piece.seconds < MIN_UTTERANCE:
                piece.reason = "speaker" if is_other else "too short"
                self.report.reject(piece.reason, piece.seconds)
                sf.write(self.staging / "scratch" / f"{piece.id}.wav", audio, rate, subtype="PCM_16")  # to place texts
            else:
                self._embed(piece, audio, rate)
                sf.write(self.staging / "wavs" / f"{piece.id}.wav", speech.normalise(audio), rate, subtype="PCM_16")
            pieces.append(piece)
        self.utterances[position:position] = pieces
        return pieces

    @staticmethod
    def _embed(utt: Utterance, audio: np.ndarray, rate: int) -> None:
        import soxr

        clean16 = speech.normalise(soxr.resample(audio, rate, ANALYSIS_RATE).astype(np.float32))
        utt.embedding, utt.partials, utt.windows = speaker.embed_partials(clean16)
        f0 = speech.pitch(clean16)
        utt.f0 = f0[:: max(1, len(f0) // 300)]


def _other_voice_windows(sims: np.ndarray) -> np.ndarray:
    """Which windows, by their similarities to the voice's centre, hold another voice: those below
    PARTIAL_SURE, and those below PARTIAL_LIMIT next to another low one (see PARTIAL_LIMIT)."""
    below = sims < PARTIAL_LIMIT
    beside = np.zeros_like(below)  # a neighbouring window is below too
    beside[1:] |= below[:-1]
    beside[:-1] |= below[1:]
    return below & ((sims < PARTIAL_SURE) | beside)


def _main_voice(embeddings: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, similarities, members) of the voice that speaks most among utterance d-vectors
    `embeddings` (unit, weighted by `weights`, their seconds): a median, iterated over its members."""
    pair = embeddings @ embeddings.T
    # the utterance with the most speech around it (same-voice neighbours, by duration) seeds the voice
    seed = int(np.argmax(((pair >= SEED_LIMIT) * weights[None, :]).sum(axis=1)))
    members = pair[seed] >= SEED_LIMIT
    for _ in range(5):
        centre = speaker.unit(np.median(embeddings[members], axis=0))
        sims = embeddings @ centre
        new = sims >= SPEAKER_LIMIT
        if not new.any() or (new == members).all():
            break
        members = new
    return centre, sims, members


class _MarkProbe:
    """Checks a stream of 22.05 kHz audio for voicefake's watermark as it is read: in windows of
    34 s overlapping by 4 s (any 3 s of marked speech, what the mark needs, lies whole in one).
    Detection costs 0.03-0.07 s per second of audio (as much as the rest of enrollment without
    transcription), so it runs in a thread beside the stream, on another core: one window at a
    time, at most two held."""

    WINDOW, OVERLAP = 34 * SAMPLE_RATE, 4 * SAMPLE_RATE

    def __init__(self):
        self.held: list[np.ndarray] = []
        self.size = 0
        self.fresh = 0  # samples not checked yet
        self.found = None  # the watermark.Detection, once a mark is found
        self._pending = None  # the window being checked (a Future)
        self._thread = None

    def push(self, block: np.ndarray) -> None:
        self._collect(wait=False)
        if self.found is None:
            self.held.append(block)
            self.size += len(block)
            self.fresh += len(block)
            if self.size >= self.WINDOW:
                self._check()

    def finish(self) -> None:
        if self.found is None and self.fresh:
            self._check()
        self._collect(wait=True)
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    def _check(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from voicefake.provenance import watermark

        self._collect(wait=True)  # one window at a time
        if self.found is not None:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="voicefake-mark")
        audio = np.concatenate(self.held)
        self._pending = self._thread.submit(watermark.detect, audio, SAMPLE_RATE)
        tail = audio[-self.OVERLAP :]
        self.held, self.size, self.fresh = [tail], len(tail), 0

    def _collect(self, wait: bool) -> None:
        if self._pending is not None and (wait or self._pending.done()):
            detection, self._pending = self._pending.result(), None
            if detection.found:
                self.found = detection


def _mark_says(detection) -> str:
    """What a voicefake watermark found in a recording says, for a refusal: which voice, when."""
    from voicefake.provenance.detect import MarkReport

    mark = MarkReport.from_detection(detection)
    if mark.voice_hash is None:
        return "its watermark is there, its payload unreadable"
    voice = f"the voice {mark.voice!r}" if mark.voice else f"an unknown voice (hash {mark.voice_hash:04x})"
    return f"its watermark names {voice}, made around {mark.created}"


def _refuse_fakes(job: _Enrollment, report: EnrollReport) -> None:
    """Refuse the enrollment when a file is voicefake's own speech or holds the consent recording."""
    if job.synthetic is not None:
        path, detection = job.synthetic
        why = f"{path.name} is synthetic speech made by voicefake ({_mark_says(detection)})"
        report.consent = f"refused: {why}"
        raise ConsentRefused(
            f"consent refused: {why}: enroll recordings of a real person who agrees to be cloned, not voicefake output",
            report,
        )
    if job.replayed is not None:
        path, start = job.replayed
        why = f"the consent recording is a copy of enrollment audio ({path.name}, near {start:.1f} s)"
        report.consent = f"refused: {why}"
        raise ConsentRefused(
            f"consent refused: {why}: the speaker must read the challenge in a new recording of its own", report
        )


def _consent_used_before(consent_audio: np.ndarray) -> str | None:
    """The voice on this machine whose consent recording this one is a copy of (re-encoded, cut,
    louder...), else None. A consent recording is a reading of one challenge, used once."""
    import soundfile as sf

    from voicefake.enroll import fingerprint

    mine = fingerprint.fingerprint(consent_audio)
    root = voices_dir()
    for recording in sorted(root.glob("*/consent/recording.flac")) if root.is_dir() else []:
        try:
            audio, rate = sf.read(recording, dtype="float32")
        except (OSError, RuntimeError):
            continue
        if rate == ANALYSIS_RATE and fingerprint.is_copy(mine, fingerprint.fingerprint(audio)):
            return recording.parent.parent.name
    return None


def _probe_total(files: list[Path]) -> float | None:
    from voicefake.io.media import media_duration

    total = 0.0
    for path in files:
        duration = media_duration(path)
        if duration is None:
            return None
        total += duration
    return total


def _consent_audio(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Speech of a consent recording at 16 kHz (pauses trimmed), normalised, and its d-vector."""
    from voicefake.enroll.consent import MAX_CONSENT_SECONDS, MIN_CONSENT_SPEECH
    from voicefake.io.media import read_media

    if not path.exists():  # a folder is reported by read_media
        raise ConsentRefused(f"consent recording {path} does not exist: record the speaker reading the challenge phrase")
    try:
        audio = read_media(path, ANALYSIS_RATE, max_seconds=MAX_CONSENT_SECONDS)
    except VoicefakeError as error:
        raise ConsentRefused(f"consent refused: {error}") from error
    from voicefake.provenance import watermark

    detection = watermark.detect(audio, ANALYSIS_RATE)  # the whole recording, pauses included
    if detection.found:
        raise ConsentRefused(
            f"consent refused: the consent recording {path.name} is synthetic speech made by voicefake "
            f"({_mark_says(detection)}): the person whose voice is enrolled must read the challenge themself"
        )
    detector, segmenter = speech.SpeechDetector(), speech.Segmenter()
    cuts = segmenter.push(detector(audio)) + segmenter.finish()
    pad = int(PAD * ANALYSIS_RATE)
    pieces = [audio[max(0, c.start * speech.VAD_FRAME - pad) : c.end * speech.VAD_FRAME + pad] for c in cuts]
    voiced = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    if len(voiced) < MIN_CONSENT_SPEECH * ANALYSIS_RATE:
        raise ConsentRefused(
            f"consent refused: {path} holds {len(voiced) / ANALYSIS_RATE:.1f} s of speech, "
            f"need the whole challenge read aloud (at least {MIN_CONSENT_SPEECH:.0f} s)"
        )
    clean = speech.normalise(voiced)
    return clean, speaker.embed_utterance(clean)


@dataclass
class _Consent:
    """What the consent stage settled: the record consent.json keeps and, for a consent recording,
    what the enrollment audio is compared with later (replay, speaker match)."""

    record: dict
    issued: Challenge | None = None  # the challenge read aloud: marked used once the voice is in place
    audio: np.ndarray | None = None  # the consent speech, 16 kHz, pauses trimmed
    embedding: np.ndarray | None = None  # its d-vector; None for a DeclaredLicence


@dataclass
class _Sources:
    """The enrollment audio found and the texts given for it."""

    files: list[Path]
    texts: dict[int, str | None]  # file index -> its given text, None where none was given
    transcripts: str  # where the given texts came from ("" when none were given)


def enroll(
    name: str,
    audio_paths,
    consent,
    transcripts=None,
    language: str = "en",
    challenge: str | None = None,
    progress: bool = False,
) -> EnrollReport:
    """Enroll voice `name` from recordings of one person (files or folders, any common format).

    `consent` is the path of a recording of the speaker reading the challenge from
    `voicefake consent-phrase NAME` (`challenge` picks one by id; default the latest), or a
    DeclaredLicence for a public corpus. `transcripts`: a metadata file (`file|text`), a folder
    of .txt files or, for one recording, a .txt file; without them English is transcribed.
    Returns the report; raises EnrollmentError (ConsentRefused for refused consent) with
    `.report` attached, having written nothing.
    """
    started = time.perf_counter()
    check_name(name)
    if name == DEFAULT_VOICE:
        raise VoicefakeError(f"{DEFAULT_VOICE!r} is the bundled voice: choose another name")
    if voice_folder(name).exists():
        raise VoicefakeError(f"voice {name!r} already exists: remove it first (`voicefake remove {name}`) or choose another name")
    if isinstance(audio_paths, (str, os.PathLike)):
        audio_paths = [audio_paths]
    espeak = espeak_voice_for(language)
    english = espeak.startswith("en")
    report = EnrollReport(name, language)

    # consent first: a stale challenge or a recording without the phrase fails before any long work
    agreed = _check_consent(name, consent, challenge, language, english, report)
    sources = _gather(audio_paths, consent, transcripts, language, english, report)
    staging = _fresh_staging(name)
    try:
        job = _Enrollment(name, staging, report, espeak, progress)
        _read(job, sources, agreed)
        return _finish(job, agreed, started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- consent ------------------------------------------------------------------------------


def _check_consent(name: str, consent, challenge: str | None, language: str, english: bool, report: EnrollReport) -> _Consent:
    """A DeclaredLicence's record, or a consent recording checked against its challenge (not
    used before, the phrase read and agreed to); raises ConsentRefused, writing nothing."""
    from voicefake.enroll import consent as consents

    if isinstance(consent, DeclaredLicence):
        return _Consent(consents.declared_record(consent))
    if not isinstance(consent, (str, os.PathLike)):
        raise VoicefakeError(
            "consent must be the path of a consent recording or DeclaredLicence('licence, source, speaker')"
        )
    consent_path = Path(consent)
    issued = _find_challenge(name, challenge)
    consent_audio, consent_embedding = _consent_audio(consent_path)
    record = _recording_record(issued, consent_path, language, english)
    used_by = _consent_used_before(consent_audio)
    if used_by is not None:
        why = f"the consent recording is a copy of the one voice {used_by!r} was enrolled with"
        report.consent = f"refused: {why}"
        raise ConsentRefused(
            f"consent refused: {why}: a consent recording answers one challenge, once; "
            f"record the speaker reading exactly: {issued.text!r}",
            report,
        )
    if english:
        _check_phrase(consent_audio, issued, record, report)
    else:
        report.notes.append("the consent phrase check is English-only: for this language only the speaker match was checked")
    return _Consent(record, issued, consent_audio, consent_embedding)


def _recording_record(issued: Challenge, path: Path, language: str, english: bool) -> dict:
    """The consent record of a recording, not passed yet: the speaker match comes at the end."""
    from voicefake.enroll import consent as consents

    return {
        "kind": "recording",
        "challenge_id": issued.id,
        "phrase": issued.text,
        "issued": consents._iso(issued.issued),
        "expires": consents._iso(issued.expires),
        "audio_sha256": consents.file_sha256(path),
        "audio_file": "consent/recording.flac",
        "language": language,
        "phrase_checked": english,
        "verified": True,
        "passed": False,
        "scores": {},
        "thresholds": {
            "statement": consents.STATEMENT_THRESHOLD,
            "phrase": consents.PHRASE_THRESHOLD,
            "speaker": consents.SPEAKER_THRESHOLD,
        },
    }


def _check_phrase(consent_audio: np.ndarray, issued: Challenge, record: dict, report: EnrollReport) -> None:
    """Refuse a consent recording that does not read the challenge, or reads it with a negation."""
    from voicefake.enroll import consent as consents

    check = consents.check_phrase(consent_audio, issued.text)
    record["heard"] = check.heard
    record["scores"].update(
        statement_accuracy=round(check.statement_accuracy, 3), phrase_accuracy=round(check.phrase_accuracy, 3)
    )
    if check.passed:
        return
    why = (
        f"the recording says {check.negation!r}: the speaker must agree"
        if check.negation
        else f"the challenge phrase was not heard (statement {check.statement_accuracy:.2f}, "
        f"random words {check.phrase_accuracy:.2f}; "
        f"need {consents.STATEMENT_THRESHOLD:.2f} and {consents.PHRASE_THRESHOLD:.2f})"
    )
    report.consent = f"refused: {why}"
    raise ConsentRefused(
        f"consent refused: {why}; heard {check.heard!r}. Record the speaker reading exactly: {issued.text!r}",
        report,
    )


# --- gather -------------------------------------------------------------------------------


def _gather(audio_paths: list, consent, transcripts, language: str, english: bool, report: EnrollReport) -> _Sources:
    """The media files to enroll (the consent recording left out) and the texts given for them."""
    from voicefake.enroll.dataset import load_transcripts
    from voicefake.io.media import find_media

    files = find_media(list(audio_paths))
    if isinstance(consent, (str, os.PathLike)):  # a consent recording kept among the recordings is not enrollment audio
        files = [f for f in files if f.resolve() != Path(consent).resolve()]
    if not files:
        raise VoicefakeError(f"no audio or video files found in {', '.join(map(str, audio_paths))}")
    report.files = [str(f) for f in files]
    given = load_transcripts(transcripts, files, [Path(p) for p in audio_paths if Path(p).is_dir()])
    texts = {i: given.lookup(f) for i, f in enumerate(files)}
    if not english and not any(texts.values()):
        raise VoicefakeError(
            f"pocketsphinx transcribes English only: for --language {language} give --transcripts FILE "
            "(`file|text` lines, or a .txt per recording)"
        )
    return _Sources(files, texts, given.source)


def _fresh_staging(name: str) -> Path:
    """An empty path in the staging area for this enrollment (made by _Enrollment)."""
    _clear_abandoned_staging()
    _staging_root().mkdir(parents=True, exist_ok=True)
    staging = _staging_root() / f"{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


# --- read ---------------------------------------------------------------------------------


def _read(job: _Enrollment, sources: _Sources, agreed: _Consent) -> None:
    """Stream the files through the quality gates (refusing voicefake's own speech and a replayed
    consent recording), cut out other speakers, then give each kept utterance text and phonemes."""
    report, english = job.report, job.espeak.startswith("en")
    if agreed.embedding is not None and not english:
        # without the phrase check (not English), any clip of the person would pass the speaker
        # check: refuse one taken from the enrollment audio. (With the phrase check, a consent
        # reading found in the enrollment audio was recorded after the challenge: no replay.)
        from voicefake.enroll.fingerprint import fingerprint

        job.consent_print = fingerprint(agreed.audio)
    by_file = _stream_files(job, sources)
    if not job.kept():
        raise EnrollmentError(
            f"no usable speech left in {len(sources.files)} file(s): give clear recordings of one person speaking", report
        )
    job.split_at_speaker_changes(by_file)
    _spread_given_texts(job, by_file, sources.texts, english, job.progress)
    job.reject_other_speakers()
    _transcribe_rest(job, english, job.progress)
    if sources.transcripts and any(sources.texts.values()):
        rest = "" if all(sources.texts.values()) else "; the rest transcribed by pocketsphinx"
        report.transcripts = sources.transcripts + rest
    elif english:
        report.transcripts = "transcribed by pocketsphinx (English)"
    _phonemize(job)


def _stream_files(job: _Enrollment, sources: _Sources) -> dict[int, list[Utterance]]:
    """Each file's utterances, read file by file under one progress bar; refuses as soon as a file
    is voicefake's own speech or holds the consent recording."""
    from tqdm import tqdm

    english = job.espeak.startswith("en")
    total = _probe_total(sources.files)
    bar_format = _BAR if total else None  # the length of some streams is unknown until decoded
    by_file: dict[int, list[Utterance]] = {}
    with tqdm(total=total, desc="reading", unit="s", disable=not job.progress, leave=False, bar_format=bar_format) as bar:
        for index, path in enumerate(sources.files):
            bar.set_postfix_str(path.name[-30:])
            job.keep_pieces = english and sources.texts.get(index) is not None
            by_file[index] = job.process_file(index, path, bar)
            _refuse_fakes(job, job.report)
    return by_file


# --- finish -------------------------------------------------------------------------------


def _finish(job: _Enrollment, agreed: _Consent, started: float) -> EnrollReport:
    """Check there is enough speech and that the consent speaker is the enrolled one, write the
    voice in staging and rename it into place: the one step that makes it appear, whole."""
    from voicefake.enroll import consent as consents

    report, record = job.report, agreed.record
    keep = job.kept()
    centre = _profile_centre(report, keep)
    if agreed.embedding is not None:
        _confirm_consent_speaker(job, agreed, centre)
    record["time"] = consents._iso(time.time())
    report.consent = consents.describe(record)
    _write_voice(job, keep, centre, record)  # a module global looked up now (tests replace it)
    target = voice_folder(job.name)
    if target.exists():
        raise VoicefakeError(f"voice {job.name!r} was created by another process meanwhile: nothing was changed")
    os.rename(job.staging, target)  # the one step that makes the voice appear, whole
    report.wall_seconds = time.perf_counter() - started
    report.enrolled = True
    report.folder = str(target)
    if agreed.issued is not None:
        consents.mark_used(agreed.issued)
    return report


def _profile_centre(report: EnrollReport, keep: list[Utterance]) -> np.ndarray:
    """The voice's centre d-vector, once enough speech is kept (else EnrollmentError)."""
    report.utterances_kept = len(keep)
    report.seconds_kept = sum(u.seconds for u in keep)
    if report.seconds_kept < MIN_KEPT_SECONDS or len(keep) < MIN_KEPT_UTTERANCES:
        raise EnrollmentError(
            f"no usable speech left: {report.seconds_kept:.0f} s in {len(keep)} utterances passed the checks, "
            f"need at least {MIN_KEPT_SECONDS:.0f} s in {MIN_KEPT_UTTERANCES}: give more clean speech of this person",
            report,
        )
    embeddings = np.stack([u.embedding for u in keep])
    centre = speaker.unit(embeddings.mean(axis=0))
    report.consistency = float(np.mean(embeddings @ centre))
    if report.seconds_kept < RECOMMENDED_MINUTES * 60:
        report.notes.append(f"cloning works best with {RECOMMENDED_MINUTES:.0f}+ minutes of kept speech")
    return centre


def _confirm_consent_speaker(job: _Enrollment, agreed: _Consent, centre: np.ndarray) -> None:
    """Refuse when the consent recording is not the voice enrolled; else keep it in staging."""
    import soundfile as sf

    from voicefake.enroll import consent as consents

    report, record = job.report, agreed.record
    score = speaker.similarity(agreed.embedding, centre)
    record["scores"]["speaker_similarity"] = round(score, 3)
    if score < consents.SPEAKER_THRESHOLD:
        record["passed"] = False
        report.consent = f"refused: {consents.describe(record)}"
        raise ConsentRefused(
            f"consent refused: the consent recording is not the person in the enrollment audio "
            f"(speaker similarity {score:.2f}, need {consents.SPEAKER_THRESHOLD:.2f}): "
            "the person whose voice is enrolled must read the challenge",
            report,
        )
    record["passed"] = True
    (job.staging / "consent").mkdir()
    sf.write(job.staging / "consent" / "recording.flac", agreed.audio, ANALYSIS_RATE)


_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}] {postfix}"


def _find_challenge(name: str, challenge: str | None) -> Challenge:
    from voicefake.enroll.consent import find_challenge

    try:
        return find_challenge(name, challenge)
    except ConsentRefused:
        raise
    except VoicefakeError as error:
        raise ConsentRefused(str(error)) from error


def _spread_given_texts(
    job: _Enrollment, by_file: dict[int, list[Utterance]], texts: dict, english: bool, progress: bool
) -> None:
    """A file's given text goes to its one utterance, or is spread over its pieces: where
    pocketsphinx heard the words (English), else in proportion to the pieces' lengths."""
    from tqdm import tqdm

    from voicefake.enroll.dataset import spread_text, transcribe_files

    split = {i: utts for i, utts in by_file.items() if texts.get(i) is not None and len(utts) > 1}
    for index, utts in by_file.items():
        if texts.get(index) is not None and len(utts) == 1:
            utts[0].text = texts[index]
    heard: dict[str, str] = {}
    if english and split:
        pieces = [(u.id, str(path)) for utts in split.values() for u in utts if (path := job.piece(u))]
        with tqdm(total=len(pieces), desc="placing texts", unit="utt", disable=not progress, leave=False) as bar:
            heard = dict(zip([i for i, _ in pieces], transcribe_files([p for _, p in pieces], bar.update)))
    for index, utts in split.items():
        hints = [heard.get(u.id, "") for u in utts] if english else None
        for utt, part in zip(utts, spread_text(texts[index], [u.seconds for u in utts], hints)):
            utt.text = part
    shutil.rmtree(job.staging / "scratch", ignore_errors=True)


def _transcribe_rest(job: _Enrollment, english: bool, progress: bool) -> None:
    """pocketsphinx for kept utterances without a given text (English); others are dropped."""
    from tqdm import tqdm

    from voicefake.enroll.dataset import transcribe_files

    need = [u for u in job.kept() if u.text is None]
    if need and english:
        paths = [str(job.staging / "wavs" / f"{u.id}.wav") for u in need]
        with tqdm(total=len(paths), desc="transcribing", unit="utt", disable=not progress, leave=False) as bar:
            for utt, heard in zip(need, transcribe_files(paths, bar.update)):
                utt.text = heard
    for utt in job.kept():
        if utt.text is None:
            job.drop(utt, "no transcript")
        elif not utt.text.strip():
            job.drop(utt, "no words")


def _phonemize(job: _Enrollment) -> None:
    import unicodedata

    from voicefake.tts.text import clean_text, phonemize

    english = job.espeak.startswith("en")
    for utt in job.kept():
        try:
            # clean_text keeps Latin script only (what the bundled English voice reads); other
            # languages go to espeak-ng as they are, in their own script
            text = clean_text(utt.text) if english else unicodedata.normalize("NFC", utt.text)
            sentences = phonemize(text, job.espeak)
        except VoicefakeError:
            sentences = []
        phonemes = " ".join("".join(s) for s in sentences).strip()
        if not phonemes:
            job.drop(utt, "no transcript")
        else:
            utt.phonemes = phonemes


def _write_voice(job: _Enrollment, keep: list[Utterance], centre: np.ndarray, record: dict) -> None:
    from voicefake.enroll.dataset import write_metadata

    staging, report = job.staging, job.report
    write_metadata(staging / "metadata.csv", [(u.id, u.text, u.text) for u in keep])
    write_metadata(staging / "phonemes.csv", [(u.id, u.phonemes) for u in keep])
    f0 = np.concatenate([u.f0 for u in keep if u.f0 is not None and len(u.f0)] or [np.zeros(0, np.float32)])
    np.savez(
        staging / "profile.npz",
        mean_embedding=centre,
        embeddings=np.stack([u.embedding for u in keep]),
        utterance_ids=np.array([u.id for u in keep]),
        f0_hz=f0,
    )
    with open(staging / "consent.json", "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, ensure_ascii=False)
    manifest = {
        "format": 1,
        "name": job.name,
        "state": "enrolled",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "language": report.language,
        "espeak_voice": job.espeak,
        "sample_rate": SAMPLE_RATE,
        "utterance_count": len(keep),
        "consent": {"kind": record["kind"], "verified": record["verified"], "summary": report.consent},
        "profile": {
            "encoder": "resemblyzer GE2E 256-d",
            "f0": _f0_stats(f0),
            "speaker_consistency": round(report.consistency, 4),
        },
        "sources": [
            {"file": f, "utterances": sum(1 for u in keep if u.source == i)} for i, f in enumerate(report.files)
        ],
        "utterances": [
            {
                "id": u.id,
                "source": u.source,
                "start_s": round(u.start, 3),
                "seconds": round(u.seconds, 3),
                "snr_db": round(u.snr, 1),
                "speaker_similarity": None if u.similarity is None else round(u.similarity, 3),
            }
            for u in keep
        ],
        "report": report.as_dict(),
    }
    with open(staging / "manifest.json", "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)


def _f0_stats(f0: np.ndarray) -> dict:
    """The pitch summary the manifest shows (empty when no utterance had voiced frames)."""
    if not len(f0):
        return {}
    log_f0 = np.log(f0)
    return {
        "median_hz": round(float(np.median(f0)), 1),
        "mean_hz": round(float(np.exp(log_f0.mean())), 1),
        "std_semitones": round(float(log_f0.std() * 12 / np.log(2)), 2),
        "p5_hz": round(float(np.percentile(f0, 5)), 1),
        "p95_hz": round(float(np.percentile(f0, 95)), 1),
    }


def remove_voice(name: str) -> Path:
    """Delete voice `name` and everything derived from it (dataset, profile, consent record,
    checkpoints, exported model, the challenges issued for it)."""
    from voicefake.enroll.consent import forget_challenges

    check_name(name)
    folder = voice_folder(name)
    if name == DEFAULT_VOICE:
        raise VoicefakeError(f"{DEFAULT_VOICE!r} is the bundled voice and cannot be removed")
    if not folder.is_dir():
        voices = folder.parent.glob("*") if folder.parent.is_dir() else []
        known = sorted(p.name for p in voices if p.is_dir() and not p.name.startswith("."))
        raise VoicefakeError(f"no voice {name!r} to remove" + (f" (your voices: {', '.join(known)})" if known else ""))
    # rename first so the voice disappears at once, even if deleting many files is interrupted
    _staging_root().mkdir(parents=True, exist_ok=True)
    doomed = _staging_root() / f"removing-{name}-{os.getpid()}"
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    forget_challenges(name)
    return folder
