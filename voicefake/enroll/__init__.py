"""Enrollment: recordings of one consenting person -> a clean training set and a voice profile.

    consent.py      challenge phrases, checking a consent recording, the consent record
    speech.py       voice activity, utterance cutting, level and quality measures
    gates.py        the quality thresholds, with how each was calibrated
    reader.py       the files streamed into measured utterances, other speakers split off
    report.py       what was found, kept and rejected
    dataset.py      transcripts: read, match to files, transcribe, metadata.csv
    fingerprint.py  is a recording a replay of an earlier one
    enrollment.py   the whole job: consent, gather, read, finish
"""

from voicefake.enroll.enrollment import (
    ConsentRefused,
    EnrollmentError,
    EnrollReport,
    enroll,
    remove_voice,
)

__all__ = ["ConsentRefused", "EnrollReport", "EnrollmentError", "enroll", "remove_voice"]
