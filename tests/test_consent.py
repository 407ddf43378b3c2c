"""Consent: challenges, the phrase check (real pocketsphinx on real synthesized speech), the
speaker check (real resemblyzer on real speakers from ../shared), and refusals that write nothing."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import voicefake
from voicefake import consent as consents
from voicefake.consent import DeclaredLicence, find_challenge, issue_challenge, require_consent
from voicefake.enroll import ConsentRefused, enroll
from voicefake.errors import VoicefakeError

from speech_samples import SENTENCES, join, real_clips, speak, write


@pytest.fixture(scope="module")
def joe_clips(tmp_path_factory, voice):
    folder = tmp_path_factory.mktemp("joe")
    lines = []
    for i, text in enumerate(SENTENCES[:6]):
        write(folder / f"s{i}.wav", speak(voice, text))
        lines.append(f"s{i}|{text}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def nothing_written(name):
    voices = voicefake.voice.voicefake_home() / "voices"
    staging = voices / ".staging"
    return not (voices / name).exists() and (not staging.exists() or not list(staging.iterdir()))


def test_challenges_are_random_stored_and_expire():
    first, second = issue_challenge("ann"), issue_challenge("ann")
    assert first.id != second.id and first.sentence != second.sentence
    assert first.text.startswith(consents.STATEMENT)
    assert find_challenge("ann").id == second.id  # the latest by default
    assert find_challenge("ann", first.id).id == first.id
    with pytest.raises(VoicefakeError, match="expired"):
        find_challenge("ann", first.id, now=first.expires + 1)
    with pytest.raises(VoicefakeError, match="issued for 'ann', not 'bob'"):
        find_challenge("bob", first.id)
    with pytest.raises(VoicefakeError, match="no challenge was issued for 'bob'"):
        find_challenge("bob")
    with pytest.raises(VoicefakeError, match="no challenge 0badbeef"):
        find_challenge("ann", "0badbeef")
    with pytest.raises(VoicefakeError, match="not a challenge id"):
        find_challenge("ann", "../../etc")
    with pytest.raises(VoicefakeError):
        DeclaredLicence("")


def test_phrase_check_hears_the_right_challenge_and_not_another(voice):
    """Calibration on generated speech: the reader's own challenge passes, any other fails."""
    import soxr

    challenges = [issue_challenge("cal") for _ in range(4)]
    own, other = [], []
    for i, challenge in enumerate(challenges):
        audio16 = soxr.resample(speak(voice, challenge.text), 22050, 16000).astype(np.float32)
        heard, heard_slots = consents.hear(audio16), consents.hear(audio16, slots=True)
        mine = consents.score_phrase(heard, heard_slots, challenge.text)
        wrong = consents.score_phrase(heard, heard_slots, challenges[(i + 1) % 4].text)
        own.append(mine.phrase_accuracy)
        other.append(wrong.phrase_accuracy)
        assert mine.passed, (challenge.text, heard)
        assert not wrong.passed
    assert min(own) >= consents.PHRASE_THRESHOLD > max(other)


def test_verified_consent_is_recorded_and_the_challenge_works_once(tmp_path, voice, joe_clips):
    challenge = issue_challenge("ann")
    recording = write(tmp_path / "consent.wav", speak(voice, challenge.text))
    report = enroll("ann", [joe_clips], consent=recording)
    assert report.enrolled and report.consent.startswith("verified")
    record = require_consent("ann")
    assert record["verified"] and record["passed"] and record["phrase_checked"]
    assert record["scores"]["speaker_similarity"] >= consents.SPEAKER_THRESHOLD
    assert (voicefake.voice.voicefake_home() / "voices/ann/consent/recording.flac").is_file()
    with pytest.raises(VoicefakeError, match="already used"):
        find_challenge("ann", challenge.id)


@pytest.mark.parametrize("case", ["another phrase", "refusal", "expired", "not issued", "other name", "missing file"])
def test_refused_consent_says_why_and_writes_nothing(tmp_path, voice, joe_clips, case):
    challenge = issue_challenge("ann")
    text, expected = challenge.text, None
    if case == "another phrase":  # an old recording for another challenge
        text = f"{consents.STATEMENT} {consents.random_sentence()}"
        expected = "phrase was not heard"
    elif case == "refusal":
        text = challenge.text.replace("I agree", "I do not agree")
        expected = "'not'"
    elif case == "expired":
        path = voicefake.voice.voicefake_home() / "challenges" / f"{challenge.id}.json"
        data = json.loads(path.read_text())
        data["expires"] = time.time() - 1
        path.write_text(json.dumps(data))
        expected = "expired"
    elif case == "not issued":
        challenge_id, expected = "0badbeef", "no challenge 0badbeef"
    elif case == "other name":
        challenge_id, expected = issue_challenge("bob").id, "issued for 'bob'"
    recording = tmp_path / "consent.wav"
    if case != "missing file":
        write(recording, speak(voice, text))
    else:
        expected = "does not exist"
    with pytest.raises(ConsentRefused, match=expected) as error:
        enroll("ann", [joe_clips], consent=recording, challenge=challenge_id if case in ("not issued", "other name") else None)
    assert len(str(error.value).splitlines()) == 1
    assert nothing_written("ann")


def test_cli_refused_consent_exits_2_with_the_report(tmp_path, voice, joe_clips):
    issued = subprocess.run([sys.executable, "-m", "voicefake.cli", "consent-phrase", "ann", "--json"], capture_output=True, text=True)
    wrong = write(tmp_path / "consent.wav", speak(voice, f"{consents.STATEMENT} {consents.random_sentence()}"))
    result = subprocess.run(
        [sys.executable, "-m", "voicefake.cli", "enroll", "ann", str(joe_clips), "--consent", str(wrong)],
        capture_output=True, text=True, timeout=300,
    )
    assert issued.returncode == 0 and result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "consent refused" in errors[0], result.stderr
    assert "NOT enrolled" in result.stdout and "consent:       refused" in result.stdout
    assert nothing_written("ann")


def test_someone_else_reading_the_phrase_is_refused(tmp_path, voice):
    """A real woman's recordings, with the challenge read by a different (synthetic male) speaker."""
    chosen = real_clips("allison_en", min_seconds=2.0, max_seconds=11.0, limit=12)
    challenge = issue_challenge("allison")
    impostor = write(tmp_path / "consent.wav", speak(voice, challenge.text))
    with pytest.raises(ConsentRefused, match="not the person in the enrollment audio") as error:
        enroll("allison", [p for p, _ in chosen], consent=impostor, transcripts=chosen[0][0].parent.parent / "metadata.csv")
    assert error.value.report.consent.startswith("refused")
    assert nothing_written("allison")


def test_non_english_checks_the_speaker_only(tmp_path):
    """Russian enrollment: the phrase check is English-only; the speaker match decides, on real speakers."""
    russian = real_clips("ivrvoice_ru", min_seconds=2.0, max_seconds=11.0, limit=16)
    enrolled, held_out = russian[:12], russian[12:]
    metadata = russian[0][0].parent.parent / "metadata.csv"
    her = write(tmp_path / "her.wav", join([p for p, _ in held_out], 16000, gap=0.5), 16000)
    allison = write(tmp_path / "allison.wav", join([p for p, _ in real_clips("allison_en", 3.0, 11.0, limit=3)], 16000, 0.5), 16000)

    issue_challenge("olga")
    with pytest.raises(ConsentRefused, match="not the person"):
        enroll("olga", [p for p, _ in enrolled], consent=allison, transcripts=metadata, language="ru")
    assert nothing_written("olga")

    report = enroll("olga", [p for p, _ in enrolled], consent=her, transcripts=metadata, language="ru")
    assert report.enrolled and any("English-only" in note for note in report.notes)
    record = require_consent("olga")
    assert record["passed"] and not record["phrase_checked"] and "phrase_accuracy" not in record["scores"]
    assert record["scores"]["speaker_similarity"] > 0.9
