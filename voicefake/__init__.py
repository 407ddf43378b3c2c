"""voicefake: clone a voice, speak any text in it, lip-sync a face to it - offline, watermarked, consent first.

    voice = voicefake.load_voice("joe")
    for chunk in voice.synthesize("Hello there."):
        ...  # chunk.audio, chunk.sample_rate, chunk.phonemes, chunk.phoneme_durations
"""

from . import audio, text
from .audio import SAMPLE_RATE, read_audio, write_audio
from .consent import DeclaredLicence, issue_challenge, require_consent
from .enroll import EnrollReport, enroll, remove_voice
from .errors import VoicefakeError
from .lipsync import LipsyncReport, lipsync, speak_video
from .voice import AudioChunk, Voice, VoiceInfo, list_voices, load_voice

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "DeclaredLicence",
    "EnrollReport",
    "LipsyncReport",
    "Voice",
    "VoiceInfo",
    "VoicefakeError",
    "enroll",
    "issue_challenge",
    "lipsync",
    "list_voices",
    "load_voice",
    "read_audio",
    "remove_voice",
    "require_consent",
    "speak_video",
    "write_audio",
]
__version__ = "0.1.0"
