"""What an enrollment found, kept and rejected: the report, its utterances and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voicefake.enroll.gates import REASONS
from voicefake.errors import VoicefakeError


class EnrollmentError(VoicefakeError):
    """Enrollment failed; `.report` tells what was found before it stopped."""

    def __init__(self, message: str, report: EnrollReport | None = None):
        super().__init__(message)
        self.report = report


class ConsentRefused(EnrollmentError):
    """The consent recording did not pass. Nothing was written."""


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

