"""Consent: challenge phrases, checking a consent recording, and the record cloning depends on.

A challenge is a fixed consent statement plus a random sentence and code, issued for one voice
name with an expiry. The speaker records themself reading it; enrollment accepts the recording
only if speech recognition hears the statement and the random words, and the speaker encoder
finds the same person as in the enrollment audio. Public corpora whose speakers cannot read a
challenge are enrolled through the library with a DeclaredLicence instead ("declared, not verified").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from voicefake.config import ANALYSIS_RATE, check_name, voice_folder, voicefake_home
from voicefake.errors import VoicefakeError
from voicefake.io.atomic import write_text

STATEMENT = "I agree that my voice is cloned with voicefake."
# Random part: common, distinct words that the bundled English recogniser hears reliably, and
# single digits (recognised best of all). 10*15*10*6*10*10*10^4 = 9e9 different challenges.
COLOURS = "red blue green black white brown yellow pink gray purple".split()
ANIMALS = "dog cat horse bird fish cow bear fox duck lion mouse sheep goat frog pig".split()
VERBS = "runs walks sleeps jumps sits waits swims plays eats stands".split()
PLACES_PREP = "near under behind beside over inside".split()
SIZES = "big small old new long short warm cold tall dark".split()
PLACES = "house tree river road table car boat bridge garden window".split()
DIGITS = "zero one two three four five six seven eight nine".split()
CODE_LENGTH = 4

VALID_MINUTES = 60  # how long a challenge may be used after it is issued
# Thresholds, calibrated (bench/enroll_speed.py prints the figures; tests/test_consent.py checks them):
# - statement: share of its 9 words the open-vocabulary recogniser hears. The bundled voice reading
#   challenges scored 0.67-0.89 ("cloned" is often heard as "clone"); unrelated speech 0.0.
STATEMENT_THRESHOLD = 0.5
# - phrase: share of the 10 random words (6 words + 4 digits) heard with the challenge grammar,
#   slot by slot. 20 readings by the bundled voice scored 1.00 against their own challenge and
#   0.0-0.4 against another (chance is ~0.1; 7 of 10 by chance is ~1e-5).
PHRASE_THRESHOLD = 0.7
# - speaker: resemblyzer cosine of the consent recording's speech (~7 s) to the mean d-vector of
#   the enrollment. Real speakers (../shared, 40 trials each): own held-out speech 0.945-0.985,
#   the other speaker 0.661-0.776. Set between, nearer the impostors to tolerate a different
#   microphone for the consent recording.
SPEAKER_THRESHOLD = 0.82
MAX_CONSENT_SECONDS = 60.0
MIN_CONSENT_SPEECH = 2.0  # s of speech a consent recording must hold
NEGATIONS = {"not", "don't", "dont", "never", "didn't", "won't"}
REFUSALS = {"disagree", "refuse", "refused"}  # refusing words wherever they are heard
# A negation refuses only when it bears on the statement's verbs, within this many words before one:
# the recogniser sometimes hears "don't" in a random sentence ("jumps near" -> "don't snoop").
AGREEING_WORDS = {"agree", "agreed", "consent", "clone", "cloned"}
NEGATION_REACH = 3


@dataclass(frozen=True)
class DeclaredLicence:
    """Consent for a public corpus, declared by the caller (library and recipes only, never the CLI):
    e.g. DeclaredLicence("CC-BY-SA-3.0, asterisk-core-sounds, Allison Smith"). Stored as declared, not verified."""

    licence: str

    def __post_init__(self):
        if not isinstance(self.licence, str) or len(self.licence.strip()) < 3:
            raise VoicefakeError("DeclaredLicence needs the licence, source and speaker, e.g. 'CC-BY-SA-3.0, corpus, speaker'")


@dataclass
class Challenge:
    """One issued challenge: read `text` aloud, record it, pass the recording to `enroll`."""

    id: str
    name: str
    text: str
    issued: float  # Unix time
    expires: float
    used: float | None = None  # set when an enrollment passed with it (a challenge works once)

    @property
    def sentence(self) -> str:
        return self.text[len(STATEMENT) :].strip()

    def public(self) -> dict:
        """What `voicefake consent-phrase --json` prints."""
        return {"id": self.id, "text": self.text, "expires": _iso(self.expires)}


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _challenges_dir() -> Path:
    return voicefake_home() / "challenges"


def _write_json(path: Path, data: dict) -> None:
    """Write JSON so that readers never see half a file; private (0600): challenges are consent material."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False), mode=0o600)


def random_sentence(rng: secrets.SystemRandom | None = None) -> str:
    """The random part of a challenge, e.g. 'The red fox sleeps near the old bridge. My code is four one nine two.'"""
    rng = rng or secrets.SystemRandom()
    pick = rng.choice
    code = " ".join(pick(DIGITS) for _ in range(CODE_LENGTH))
    return (
        f"The {pick(COLOURS)} {pick(ANIMALS)} {pick(VERBS)} {pick(PLACES_PREP)} the {pick(SIZES)} {pick(PLACES)}. "
        f"My code is {code}."
    )


def issue_challenge(name: str, valid_minutes: float = VALID_MINUTES) -> Challenge:
    """Create, store and return a fresh challenge for voice `name`."""
    check_name(name)
    if not 1 <= valid_minutes <= 7 * 24 * 60:
        raise VoicefakeError(f"validity {valid_minutes} minutes is out of range: use 1 to {7 * 24 * 60}")
    now = time.time()
    challenge = Challenge(secrets.token_hex(4), name, f"{STATEMENT} {random_sentence()}", now, now + valid_minutes * 60)
    _write_json(_challenges_dir() / f"{challenge.id}.json", asdict(challenge))
    return challenge


def _load(path: Path) -> Challenge | None:
    try:
        return Challenge(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # a damaged or foreign file is not a challenge


def find_challenge(name: str, challenge_id: str | None = None, now: float | None = None) -> Challenge:
    """The challenge a consent recording answers: `challenge_id`, or the latest issued for `name`.
    Raises VoicefakeError when there is none, it is for another voice, expired or already used."""
    now = time.time() if now is None else now
    fresh = f"run `voicefake consent-phrase {name}` for a new one, record the speaker reading it, and enroll again"
    if challenge_id is not None:
        if not re.fullmatch(r"[0-9a-f]{8}", challenge_id):
            raise VoicefakeError(f"consent refused: {challenge_id!r} is not a challenge id (8 hex digits): {fresh}")
        challenge = _load(_challenges_dir() / f"{challenge_id}.json")
        if challenge is None:
            raise VoicefakeError(f"consent refused: no challenge {challenge_id} was issued here: {fresh}")
        if challenge.name != name:
            raise VoicefakeError(
                f"consent refused: challenge {challenge_id} was issued for {challenge.name!r}, not {name!r}: {fresh}"
            )
    else:
        mine = [c for c in map(_load, sorted(_challenges_dir().glob("*.json"))) if c and c.name == name]
        if not mine:
            raise VoicefakeError(f"consent refused: no challenge was issued for {name!r}: {fresh}")
        challenge = max(mine, key=lambda c: c.issued)
    if challenge.used is not None:
        raise VoicefakeError(f"consent refused: challenge {challenge.id} was already used on {_iso(challenge.used)}: {fresh}")
    if now > challenge.expires:
        raise VoicefakeError(f"consent refused: challenge {challenge.id} expired at {_iso(challenge.expires)}: {fresh}")
    return challenge


def mark_used(challenge: Challenge) -> None:
    challenge.used = time.time()
    _write_json(_challenges_dir() / f"{challenge.id}.json", asdict(challenge))


def forget_challenges(name: str) -> int:
    """Delete every challenge issued for `name`; returns how many."""
    count = 0
    for path in _challenges_dir().glob("*.json") if _challenges_dir().is_dir() else []:
        challenge = _load(path)
        if challenge and challenge.name == name:
            path.unlink(missing_ok=True)
            count += 1
    return count


# --- hearing the phrase --------------------------------------------------------------------

_CHALLENGE_GRAMMAR = "challenge"


def _challenge_grammar() -> str:
    """JSGF for any challenge: the statement (optional), then each random word from its list."""
    def one_of(words):
        return "(" + " | ".join(words) + ")"

    digit = one_of(DIGITS)
    return (
        "#JSGF V1.0;\ngrammar challenge;\n"
        f"public <challenge> = [{' '.join(_tokens(STATEMENT))}] the {one_of(COLOURS)} {one_of(ANIMALS)} "
        f"{one_of(VERBS)} {one_of(PLACES_PREP)} the {one_of(SIZES)} {one_of(PLACES)} [my code is] "
        f"{' '.join([digit] * CODE_LENGTH)};\n"
    )


def hear(audio16: np.ndarray, slots: bool = False) -> str:
    """What pocketsphinx hears: with the general language model, or with `slots` the challenge
    grammar, where each random word is one of its list (a far easier task, so a real reading is
    recognised reliably, while a reading of another challenge is heard as what it says)."""
    from voicefake.asr import transcribe

    grammar = (_CHALLENGE_GRAMMAR, _challenge_grammar()) if slots else None
    return transcribe(audio16, ANALYSIS_RATE, grammar=grammar)


def _tokens(text: str) -> list[str]:
    from voicefake.asr import normalize_words

    return normalize_words(text).split()


def matched_words(expected: str, heard: str) -> list[bool]:
    """For each word of `expected`: did the recogniser hear it, in order (edit-distance alignment)?"""
    import jiwer

    reference = _tokens(expected)
    hypothesis = _tokens(heard) or ["<nothing>"]
    hits = [False] * len(reference)
    for chunk in jiwer.process_words(" ".join(reference), " ".join(hypothesis)).alignments[0]:
        if chunk.type == "equal":
            for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                hits[k] = True
    return hits


@dataclass
class PhraseCheck:
    heard: str
    statement_accuracy: float  # share of the statement's words heard
    phrase_accuracy: float  # share of the challenge's random words heard
    negation: str | None  # a refusing word that was heard ("not", "never"...)

    @property
    def passed(self) -> bool:
        return (
            self.statement_accuracy >= STATEMENT_THRESHOLD
            and self.phrase_accuracy >= PHRASE_THRESHOLD
            and self.negation is None
        )


def check_phrase(audio16: np.ndarray, expected: str) -> PhraseCheck:
    """Does 16 kHz `audio16` say `expected` (the statement followed by the random sentence)?"""
    return score_phrase(hear(audio16), hear(audio16, slots=True), expected)


def score_phrase(heard: str, heard_slots: str, expected: str) -> PhraseCheck:
    """Score what the recogniser heard (open vocabulary: `heard`; challenge grammar: `heard_slots`)
    against the `expected` challenge text: the statement and any refusal from the open
    recognition, the random words from the grammar's."""
    statement_words = len(_tokens(STATEMENT)) if expected.startswith(STATEMENT) else 0
    statement = matched_words(expected, heard)[:statement_words]
    # the grammar fixes where each random word stands, so compare slot by slot (an alignment
    # would pair equal digits across positions and overrate a reading of another challenge)
    wanted, got = _slot_words(expected), _slot_words(heard_slots)
    random_part = [a == b for a, b in zip(wanted, got)] if got else [False]
    return PhraseCheck(
        heard,
        float(np.mean(statement)) if statement else 1.0,
        float(np.sum(random_part) / max(len(wanted), 1)),
        refusal(heard),
    )


def refusal(heard: str) -> str | None:
    """The refusing word in `heard`: "disagree" anywhere, or a negation just before "agree"/"cloned"."""
    words = _tokens(heard)
    for i, word in enumerate(words):
        if word in REFUSALS:
            return word
        if word in NEGATIONS and AGREEING_WORDS & set(words[i + 1 : i + 1 + NEGATION_REACH]):
            return word
    return None


def _slot_words(text: str) -> list[str]:
    """The random words of a challenge text (colour, animal, verb, preposition, size, place, digits)."""
    words = _tokens(text)
    statement = _tokens(STATEMENT)
    if words[: len(statement)] == statement:
        words = words[len(statement) :]
    if len(words) < 8 + CODE_LENGTH:
        return []
    return words[1:5] + words[6:8] + words[-CODE_LENGTH:]


# --- records -------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def declared_record(licence: DeclaredLicence) -> dict:
    """The consent record of a public corpus."""
    return {
        "kind": "declared",
        "status": "declared, not verified",
        "passed": True,
        "verified": False,
        "licence": licence.licence,
        "time": _iso(time.time()),
    }


def describe(record: dict) -> str:
    """One line for reports and provenance."""
    if record.get("kind") == "declared":
        return f"declared licence, not verified: {record.get('licence')}"
    scores = record.get("scores", {})
    phrase = (
        f"phrase {scores.get('phrase_accuracy', 0):.2f} (statement {scores.get('statement_accuracy', 0):.2f})"
        if record.get("phrase_checked")
        else "phrase not checked (English only)"
    )
    verdict = "verified" if record.get("passed") else "refused"
    return (
        f"{verdict}: challenge {record.get('challenge_id')}, {phrase}, "
        f"same speaker {scores.get('speaker_similarity', 0):.2f} (threshold {SPEAKER_THRESHOLD:.2f})"
    )


def require_consent(name: str) -> dict:
    """The passing consent record of voice `name` (cloning calls this first).

    Raises VoicefakeError, saying how to fix it, when the voice has no passing record.
    Declared licences pass, with record["verified"] False.
    """
    folder = voice_folder(name)  # refuses a bad name (`../voices/anna`) before it goes near a path
    how = (
        f"run `voicefake consent-phrase {name}`, record the speaker reading the phrase, then "
        f"`voicefake enroll {name} RECORDINGS... --consent THAT_RECORDING`"
    )
    if not (folder / "manifest.json").is_file():
        raise VoicefakeError(f"voice {name!r} is not enrolled: {how}")
    try:
        record = json.loads((folder / "consent.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise VoicefakeError(f"voice {name!r} has no consent record: remove it (`voicefake remove {name}`) and {how}") from None
    if not record.get("passed"):
        raise VoicefakeError(f"voice {name!r} has no passing consent record: remove it (`voicefake remove {name}`) and {how}")
    return record
