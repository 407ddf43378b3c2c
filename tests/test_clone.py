"""Cloning as a user meets it: consent first, clear refusals, and a cloned voice that speaks and exports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import voicefake
from voicefake.clone import clone_voice, export_voice
from voicefake.consent import DeclaredLicence
from voicefake.enroll import enroll
from voicefake.errors import VoicefakeError

from speech_samples import SENTENCES, speak


def run(*args):
    return subprocess.run([sys.executable, "-m", "voicefake.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture
def declared_voice(tmp_path, voice):
    """A voice enrolled through the API from 30 s of generated speech, under a declared licence."""
    folder = tmp_path / "clips"
    folder.mkdir()
    lines = []
    for i, text in enumerate(SENTENCES[:10]):
        sf.write(folder / f"s{i}.wav", speak(voice, text), 22050)
        lines.append(f"s{i}|{text}")
    (folder / "metadata.txt").write_text("\n".join(lines) + "\n")
    enroll("gen", [folder], consent=DeclaredLicence("CC0, generated for tests"), transcripts=folder / "metadata.txt")
    return "gen"


def test_cli_refuses_unknown_and_unconsented_voices():
    result = run("clone", "nobody")
    assert result.returncode == 2 and "not enrolled" in result.stderr and "consent-phrase" in result.stderr


def test_cli_never_clones_a_declared_licence_voice(declared_voice):
    result = run("clone", declared_voice)
    assert result.returncode == 2 and "declared licence" in result.stderr


def test_too_little_speech_is_refused_with_the_number(declared_voice):
    with pytest.raises(VoicefakeError, match=r"only 0\.\d minutes of usable speech.*at least 1 minute"):
        clone_voice(declared_voice)


def test_a_cloned_voice_speaks_exports_and_resumes(declared_voice, tmp_path):
    path = clone_voice(declared_voice, max_steps=1)  # one real training step: the plumbing, not the quality
    info = {v.name: v for v in voicefake.list_voices()}[declared_voice]
    assert info.state == "cloned" and info.model_path == path
    provenance = json.loads(path.with_suffix(".onnx.json").read_text())["voicefake"]
    assert provenance["licence"].startswith("declared licence, not verified") and provenance["steps"] == 1

    with pytest.raises(VoicefakeError, match="--resume"):
        clone_voice(declared_voice, max_steps=2)
    assert clone_voice(declared_voice, max_steps=2, resume=True) == path

    out = tmp_path / "hello.wav"
    result = run("say", "Hello from a cloned voice.", "--voice", declared_voice, "-o", str(out))
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(out)
    assert rate == 22050 and np.abs(audio).max() > 0.05

    exported = export_voice(declared_voice, tmp_path / "piper")
    assert exported.name == "gen.onnx" and exported.with_suffix(".onnx.json").exists()
    piper = subprocess.run([sys.executable, "-m", "piper", "-m", str(exported), "-f", str(tmp_path / "p.wav")],
                           input="Piper speaks it too.", capture_output=True, text=True, timeout=120)
    assert piper.returncode == 0, piper.stderr
    assert sf.info(str(tmp_path / "p.wav")).duration > 0.5


def test_export_refuses_voices_that_are_not_cloned(declared_voice, tmp_path):
    with pytest.raises(VoicefakeError, match="enrolled: only cloned voices"):
        export_voice(declared_voice, tmp_path)
    with pytest.raises(VoicefakeError, match="bundled"):
        export_voice("joe", tmp_path)
