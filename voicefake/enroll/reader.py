"""Reading recordings into utterances: stream each file, cut it at pauses, measure every cut
(level, clipping, noise, speech probability, speaker), find the main voice and split off other
speakers' turns. `EnrollmentJob` holds one job's state; enrollment.py runs the job around it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from voicefake import speaker
from voicefake.config import ANALYSIS_RATE, SAMPLE_RATE
from voicefake.enroll import gates, speech
from voicefake.enroll.report import EnrollReport, Utterance
from voicefake.enroll.speech import PAD
from voicefake.errors import VoicefakeError

log = logging.getLogger("voicefake")


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

class EnrollmentJob:
    """One enrollment's state while its files are read: the staging folder, the report, every
    utterance cut so far (kept or rejected, and why), and the checks that ran on the audio."""

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
        if utt.seconds < gates.MIN_UTTERANCE:
            utt.reason = "too short"
        elif speech.clipped_fraction(audio22) > gates.CLIP_LIMIT:
            utt.reason = "clipping"
        elif len(p) and float(np.mean(p)) < gates.SPEECH_PROB_LIMIT:
            utt.reason = "non-speech"
        elif utt.snr < gates.SNR_LIMIT:
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
        finds): the stretches under windows below gates.PARTIAL_LIMIT become pieces rejected as another
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
            chosen = windows[windows @ centre >= gates.PARTIAL_LIMIT]
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
            if is_other or piece.seconds < gates.MIN_UTTERANCE:
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
    gates.PARTIAL_SURE, and those below gates.PARTIAL_LIMIT next to another low one (see gates.PARTIAL_LIMIT)."""
    below = sims < gates.PARTIAL_LIMIT
    beside = np.zeros_like(below)  # a neighbouring window is below too
    beside[1:] |= below[:-1]
    beside[:-1] |= below[1:]
    return below & ((sims < gates.PARTIAL_SURE) | beside)

def _main_voice(embeddings: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, similarities, members) of the voice that speaks most among utterance d-vectors
    `embeddings` (unit, weighted by `weights`, their seconds): a median, iterated over its members."""
    pair = embeddings @ embeddings.T
    # the utterance with the most speech around it (same-voice neighbours, by duration) seeds the voice
    seed = int(np.argmax(((pair >= gates.SEED_LIMIT) * weights[None, :]).sum(axis=1)))
    members = pair[seed] >= gates.SEED_LIMIT
    for _ in range(5):
        centre = speaker.unit(np.median(embeddings[members], axis=0))
        sims = embeddings @ centre
        new = sims >= gates.SPEAKER_LIMIT
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

def mark_says(detection) -> str:
    """What a voicefake watermark found in a recording says, for a refusal: which voice, when."""
    from voicefake.provenance.detect import MarkReport

    mark = MarkReport.from_detection(detection)
    if mark.voice_hash is None:
        return "its watermark is there, its payload unreadable"
    voice = f"the voice {mark.voice!r}" if mark.voice else f"an unknown voice (hash {mark.voice_hash:04x})"
    return f"its watermark names {voice}, made around {mark.created}"
