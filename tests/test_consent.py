"""Consent: challenges, the phrase check (real pocketsphinx on real synthesized speech), the
speaker check (real resemblyzer on real speakers from ../shared), and refusals that write nothing."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import voicefake
from tests.helpers import SENTENCES, join, real_clips, speak, write
from voicefake.enroll import consent as consents
from voicefake.enroll.consent import (
    DeclaredLicence,
    find_challenge,
    issue_challenge,
    require_consent,
)
from voicefake.enroll.enrollment import ConsentRefused, enroll
from voicefake.errors import VoicefakeError


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
    voices = voicefake.config.voicefake_home() / "voices"
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


@pytest.mark.slow
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


@pytest.mark.parametrize(
    "heard, word",
    [
        ("i do not agree that my voice is cloned", "not"),
        ("i don't agree that my voice is cloned", "don't"),
        ("i agree that my voice is never cloned", "never"),
        ("i disagree that my voice is cloned", "disagree"),
        # a misheard random sentence (seen in CI: "jumps near" heard as "don't snoop") refuses nothing
        ("i agree that my voice is clone with voicefake the white fish don't snoop war table", None),
    ],
)
def test_a_refusal_is_a_negation_of_agreeing_not_any_negative_word(heard, word):
    assert consents.refusal(heard) == word


@pytest.mark.slow
def test_verified_consent_is_recorded_and_the_challenge_works_once(tmp_path, voice, joe_clips):
    challenge = issue_challenge("ann")
    recording = write(tmp_path / "consent.wav", speak(voice, challenge.text))
    report = enroll("ann", [joe_clips], consent=recording)
    assert report.enrolled and report.consent.startswith("verified")
    record = require_consent("ann")
    assert record["verified"] and record["passed"] and record["phrase_checked"]
    assert record["scores"]["speaker_similarity"] >= consents.SPEAKER_THRESHOLD
    assert (voicefake.config.voicefake_home() / "voices/ann/consent/recording.flac").is_file()
    with pytest.raises(VoicefakeError, match="already used"):
        find_challenge("ann", challenge.id)


@pytest.mark.slow
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
        path = voicefake.config.voicefake_home() / "challenges" / f"{challenge.id}.json"
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


@pytest.mark.slow
def test_cli_refused_consent_exits_2_with_the_report(tmp_path, voice, joe_clips):
    issued = subprocess.run([sys.executable, "-m", "voicefake.cli", "consent-phrase", "ann", "--json"],
                            capture_output=True, text=True)
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


@pytest.mark.slow
@pytest.mark.needs_shared
def test_someone_else_reading_the_phrase_is_refused(tmp_path, voice):
    """A real woman's recordings, with the challenge read by a different (synthetic male) speaker."""
    chosen = real_clips("allison_en", min_seconds=2.0, max_seconds=11.0, limit=12)
    challenge = issue_challenge("allison")
    impostor = write(tmp_path / "consent.wav", speak(voice, challenge.text))
    with pytest.raises(ConsentRefused, match="not the person in the enrollment audio") as error:
        enroll("allison", [p for p, _ in chosen], consent=impostor, transcripts=chosen[0][0].parent.parent / "metadata.csv")
    assert error.value.report.consent.startswith("refused")
    assert nothing_written("allison")


@pytest.mark.slow
@pytest.mark.needs_shared
def test_non_english_checks_the_speaker_only(tmp_path):
    """Russian enrollment: the phrase check is English-only; the speaker match decides, on real speakers."""
    russian = real_clips("ivrvoice_ru", min_seconds=2.0, max_seconds=11.0, limit=16)
    enrolled, held_out = russian[:12], russian[12:]
    metadata = russian[0][0].parent.parent / "metadata.csv"
    her = write(tmp_path / "her.wav", join([p for p, _ in held_out], 16000, gap=0.5), 16000)
    allison_clips = [p for p, _ in real_clips("allison_en", 3.0, 11.0, limit=3)]
    allison = write(tmp_path / "allison.wav", join(allison_clips, 16000, 0.5), 16000)

    issue_challenge("olga")
    with pytest.raises(ConsentRefused, match="not the person"):
        enroll("olga", [p for p, _ in enrolled], consent=allison, transcripts=metadata, language="ru")
    assert nothing_written("olga")

    report = enroll("olga", [p for p, _ in enrolled], consent=her, transcripts=metadata, language="ru")
    assert report.enrolled and any("English-only" in note for note in report.notes)
    record = require_consent("olga")
    assert record["passed"] and not record["phrase_checked"] and "phrase_accuracy" not in record["scores"]
    assert record["scores"]["speaker_similarity"] > 0.9


# --- synthetic speech and replays -------------------------------------------------------------


@pytest.mark.slow
def test_voicefake_speech_is_refused_as_consent_and_as_enrollment_audio(tmp_path, voice, joe_clips):
    """voicefake's own (watermarked) speech is nobody's consent and nobody's voice to enroll."""
    challenge = issue_challenge("ann")
    marked_consent = write(tmp_path / "consent.wav", speak(voice, challenge.text, marked=True))
    with pytest.raises(ConsentRefused, match="consent.wav is synthetic speech made by voicefake") as error:
        enroll("ann", [joe_clips], consent=marked_consent)
    assert "the voice 'joe'" in str(error.value) and len(str(error.value).splitlines()) == 1
    assert nothing_written("ann")

    # enrollment audio: one marked file among real (unmarked) ones refuses the whole enrollment
    marked = tmp_path / "marked"
    marked.mkdir()
    write(marked / "fake.wav", np.concatenate([speak(voice, text, marked=True) for text in SENTENCES[6:9]]))
    reading = write(tmp_path / "reading.wav", speak(voice, challenge.text))  # an unmarked reading
    with pytest.raises(ConsentRefused, match="fake.wav is synthetic speech made by voicefake") as error:
        enroll("ann", [joe_clips, marked], consent=reading, transcripts=joe_clips / "metadata.csv")
    assert "the voice 'joe'" in str(error.value) and error.value.report.consent.startswith("refused")
    assert nothing_written("ann")
    with pytest.raises(ConsentRefused, match="synthetic speech made by voicefake"):  # a declared licence too
        enroll("corpus", [marked], consent=DeclaredLicence("CC0, made by voicefake"))
    assert nothing_written("corpus")


@pytest.mark.slow
def test_consent_recording_used_before_is_refused(tmp_path, voice, joe_clips):
    import soxr

    first = issue_challenge("ann")
    reading = speak(voice, first.text)
    enroll("ann", [joe_clips], consent=write(tmp_path / "consent.wav", reading))
    issue_challenge("ann2")
    # the same recording again, for another voice: resampled, quieter, cut 0.3 s later
    copy = soxr.resample(reading[int(0.3 * 22050):] * 0.5, 22050, 16000).astype(np.float32)
    with pytest.raises(ConsentRefused, match="copy of the one voice 'ann' was enrolled with"):
        enroll("ann2", [joe_clips], consent=write(tmp_path / "copy.wav", copy, 16000))
    assert nothing_written("ann2")


@pytest.mark.slow
def test_consent_taken_from_the_enrollment_audio_is_refused_without_the_phrase_check(tmp_path, voice, joe_clips):
    """Other languages have no phrase check: any clip of the speaker would match the speaker, so a
    consent recording cut from the enrollment audio is refused as a replay."""
    issue_challenge("ann")
    clips = sorted(joe_clips.glob("s*.wav"))
    import soundfile as sf

    taken = np.concatenate([sf.read(clips[2], dtype="float32")[0], sf.read(clips[3], dtype="float32")[0]])
    with pytest.raises(ConsentRefused, match=r"copy of enrollment audio \(s[23].wav"):
        enroll("ann", [joe_clips], consent=write(tmp_path / "taken.flac", taken * 0.7),
               transcripts=joe_clips / "metadata.csv", language="es")
    assert nothing_written("ann")
    # a new recording of the same speaker is not a replay
    fresh = write(tmp_path / "fresh.wav", speak(voice, "Estoy de acuerdo. Sí, claramente, de acuerdo."))
    report = enroll("ann", [joe_clips], consent=fresh, transcripts=joe_clips / "metadata.csv", language="es")
    assert report.enrolled and require_consent("ann")["passed"]
