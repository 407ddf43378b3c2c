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
from dataclasses import dataclass
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
from voicefake.enroll.reader import EnrollmentJob, mark_says
from voicefake.enroll.report import ConsentRefused, EnrollmentError, EnrollReport, Utterance
from voicefake.enroll.speech import PAD
from voicefake.errors import VoicefakeError

log = logging.getLogger("voicefake")

MIN_KEPT_SECONDS = 10.0
MIN_KEPT_UTTERANCES = 3
RECOMMENDED_MINUTES = 5.0
ESPEAK_VOICES = {"en": "en-us", "en-us": "en-us", "en-gb": "en-gb-x-rp", "fr": "fr-fr", "pt": "pt-br"}


def espeak_voice_for(language: str) -> str:
    """espeak-ng voice for a language code ("en" -> "en-us"); fails clearly for unknown ones."""
    from voicefake.tts.text import phonemize

    voice = ESPEAK_VOICES.get(language.lower(), language.lower())
    try:
        phonemize("a", voice)
    except Exception as error:
        raise VoicefakeError(f"unknown language {language!r}: give a code espeak-ng knows, such as en, es, fr, de, ru") from error
    return voice


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


def _refuse_fakes(job: EnrollmentJob, report: EnrollReport) -> None:
    """Refuse the enrollment when a file is voicefake's own speech or holds the consent recording."""
    if job.synthetic is not None:
        path, detection = job.synthetic
        why = f"{path.name} is synthetic speech made by voicefake ({mark_says(detection)})"
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
            f"({mark_says(detection)}): the person whose voice is enrolled must read the challenge themself"
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
        job = EnrollmentJob(name, staging, report, espeak, progress)
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
    """An empty path in the staging area for this enrollment (made by EnrollmentJob)."""
    _clear_abandoned_staging()
    _staging_root().mkdir(parents=True, exist_ok=True)
    staging = _staging_root() / f"{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


# --- read ---------------------------------------------------------------------------------


def _read(job: EnrollmentJob, sources: _Sources, agreed: _Consent) -> None:
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


def _stream_files(job: EnrollmentJob, sources: _Sources) -> dict[int, list[Utterance]]:
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


def _finish(job: EnrollmentJob, agreed: _Consent, started: float) -> EnrollReport:
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


def _confirm_consent_speaker(job: EnrollmentJob, agreed: _Consent, centre: np.ndarray) -> None:
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
    job: EnrollmentJob, by_file: dict[int, list[Utterance]], texts: dict, english: bool, progress: bool
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


def _transcribe_rest(job: EnrollmentJob, english: bool, progress: bool) -> None:
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


def _phonemize(job: EnrollmentJob) -> None:
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


def _write_voice(job: EnrollmentJob, keep: list[Utterance], centre: np.ndarray, record: dict) -> None:
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
