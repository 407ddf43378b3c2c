"""Audio constants and audio files: every file voicefake writes goes through here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from voicefake.config import SAMPLE_RATE
from voicefake.errors import VoicefakeError
from voicefake.io.atomic import atomic_output, check_writable, output_error
from voicefake.provenance import manifest as provenance

# extension -> (libsndfile container, sample encoding)
OUTPUT_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".ogg": ("OGG", "VORBIS"),
}


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, before any synthesis, if `path` cannot receive an audio file."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        raise VoicefakeError(f"unsupported output format {ext or '(no extension)'!r} in {path}: use one of {known}")
    return check_writable(path, "out.wav")


class AudioWriter:
    """Stream float audio chunks into a file that appears only when writing succeeds.

    Chunks go to a hidden temporary file beside the target, renamed into place on a clean
    exit and deleted on any error, so a failed or interrupted job leaves no partial file.
    Every file is tagged as AI-generated (software, comment, date, voice) and wav/flac/mp3 also
    carry a signed C2PA manifest (see provenance.py), both added before the rename.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, *, voice: str | None = None):
        self.path = check_output_path(path)
        self.sample_rate = sample_rate
        self.voice = voice  # recorded in the tags and the C2PA manifest when given
        self.frames = 0
        self._tmp: str | None = None
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> AudioWriter:
        container, subtype = OUTPUT_FORMATS[self.path.suffix.lower()]
        self._output = atomic_output(self.path)
        self._tmp = str(self._output.__enter__())
        self.created = provenance.now_utc()
        self._tags = provenance.make_tags("speech", self.voice, self.created)
        try:
            self._file = sf.SoundFile(self._tmp, "w", self.sample_rate, 1, subtype, format=container)
            if container != "MP3":  # libsndfile's MP3 writer keeps only ID3v1: tagged in __exit__ instead
                provenance.tag_soundfile(self._file, self._tags)
        except BaseException as error:
            if self._file is not None:
                self._file.close()
            self._output.discard()
            if isinstance(error, Exception):
                raise output_error(self.path, error) from error
            raise
        return self

    def write(self, audio: np.ndarray) -> None:
        """Append mono float samples in [-1, 1]."""
        try:
            self._file.write(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0))
        except Exception as error:  # a full disk, a vanished folder: one line, not a libsndfile traceback
            raise output_error(self.path, error) from error
        self.frames += len(audio)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            try:
                self._file.close()
            except Exception:
                if exc_type is None:
                    raise
            if exc_type is None:
                if self.frames == 0:
                    raise VoicefakeError(f"nothing to write to {self.path}: no audio was produced")
                ext = self.path.suffix.lower()
                if ext == ".mp3":
                    provenance.tag_file(self._tmp, ext, self._tags)
                if ext in provenance.SIGNABLE:
                    provenance.sign(self._tmp, ext, title=self.path.name, kind="speech", voice=self.voice,
                                    created=self.created)
                self._output.commit()
        except Exception as error:
            raise output_error(self.path, error) from error
        finally:
            self._output.discard()


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                voice: str | None = None) -> Path:
    """Write a whole mono float waveform to wav/flac/mp3/ogg, chosen by the extension."""
    with AudioWriter(path, sample_rate, voice=voice) as writer:
        writer.write(audio)
    return writer.path


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read any audio file as mono float32, resampled to `sample_rate` when given."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise VoicefakeError(f"cannot read audio from {path}: {error}") from error
    audio = audio.mean(axis=1)
    if sample_rate and rate != sample_rate:
        import soxr

        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
        rate = sample_rate
    return audio, rate
