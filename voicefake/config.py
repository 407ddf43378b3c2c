"""What voicefake's parts share: where things live, how voices are named, sample rates, defaults.

Every other module may import this one; it imports nothing of voicefake's but the error type.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path
from typing import Final

from voicefake.errors import VoicefakeError

VERSION: Final = metadata.version("voicefake")  # from pyproject.toml; every output's provenance names it

# ---------------------------------------------------------------- rates
SAMPLE_RATE: Final = 22050  # the bundled voice's rate; every voice voicefake makes uses it too
HOP_LENGTH: Final = 256  # samples per spectrogram frame of the VITS decoder
ANALYSIS_RATE: Final = 16000  # silero-vad, resemblyzer, pocketsphinx, DistillMOS and Wav2Lip all listen at 16 kHz

# ---------------------------------------------------------------- synthesis defaults (Piper's)
DEFAULT_VOICE: Final = "joe"  # the bundled voice, and the base every clone starts from
NOISE_SCALE: Final = 0.667  # variation of the sound (0 = deterministic)
NOISE_W: Final = 0.8  # variation of the rhythm (0 = deterministic)

# ---------------------------------------------------------------- names and places
NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # voice names are folder names
CHECKOUT_PRETRAINED: Final = Path(__file__).resolve().parents[1] / "pretrained"  # weights we ship


def voicefake_home() -> Path:
    """Where voices, consent records and keys live: $VOICEFAKE_HOME, default ~/.voicefake."""
    return Path(os.environ.get("VOICEFAKE_HOME") or Path.home() / ".voicefake")


def cache_dir() -> Path:
    """Rebuildable files (prepared ONNX graphs): $VOICEFAKE_CACHE, default $VOICEFAKE_HOME/cache."""
    return Path(os.environ.get("VOICEFAKE_CACHE") or voicefake_home() / "cache")


def voices_dir() -> Path:
    """$VOICEFAKE_HOME/voices: one folder per enrolled or cloned voice."""
    return voicefake_home() / "voices"


def check_name(name: str) -> str:
    """Voice names are folder names: lower-case letters, digits, - and _, up to 40 characters."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise VoicefakeError(
            f"bad voice name {name!r}: use 1-40 lower-case letters, digits, - or _, starting with a letter or digit"
        )
    return name


def voice_folder(name: str) -> Path:
    """$VOICEFAKE_HOME/voices/NAME, for a valid name only (never `..` or a path)."""
    return voices_dir() / check_name(name)


def pretrained_dirs() -> list[Path]:
    """Where user-supplied weights are looked for: $VOICEFAKE_HOME/pretrained, then the checkout's pretrained/.

    Never the current folder: a file planted there must not be picked up (and loaded) unasked.
    """
    return list(dict.fromkeys([voicefake_home() / "pretrained", CHECKOUT_PRETRAINED]))
