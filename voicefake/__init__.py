"""voicefake: clone a voice, speak any text in it, lip-sync a face to it - offline, watermarked, consent first.

    voice = voicefake.load_voice("joe")
    for chunk in voice.synthesize("Hello there."):
        ...  # chunk.audio, chunk.sample_rate, chunk.phonemes, chunk.phoneme_durations

The pipeline, one folder per stage: speaker.py (who is speaking) -> enroll/ (consent and a
training set) -> tts/ (the voice, with its vocoder) -> lipsync/ (a face that speaks it) ->
provenance/ (marks on every output). io/ reads and writes files, config.py holds the shared
settings, cli.py and app/ are the two front ends.
"""


from voicefake.config import SAMPLE_RATE
from voicefake.config import VERSION as __version__  # noqa: F401  (the package version)
from voicefake.enroll import EnrollReport, enroll, remove_voice
from voicefake.enroll.consent import DeclaredLicence, issue_challenge, require_consent
from voicefake.errors import VoicefakeError
from voicefake.io import audio
from voicefake.io.audio import read_audio, write_audio
from voicefake.lipsync import LipsyncReport, lipsync, speak_video
from voicefake.tts import text
from voicefake.tts.voice import AudioChunk, Voice, VoiceInfo, list_voices, load_voice

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "DeclaredLicence",
    "EnrollReport",
    "LipsyncReport",
    "Voice",
    "VoiceInfo",
    "VoicefakeError",
    "audio",
    "enroll",
    "issue_challenge",
    "lipsync",
    "list_voices",
    "load_voice",
    "read_audio",
    "remove_voice",
    "require_consent",
    "speak_video",
    "text",
    "write_audio",
]
