"""Cloning as a user meets it: consent first, clear refusals, and a cloned voice that speaks and exports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import voicefake
from tests.helpers import SENTENCES, speak
from voicefake.enroll.consent import DeclaredLicence
from voicefake.enroll.enrollment import enroll
from voicefake.errors import VoicefakeError
from voicefake.tts.clone import clone_voice, export_voice

pytestmark = pytest.mark.slow  # servers, enrollment and training: minutes in all


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


# --- a voice the CLI may clone: verified consent and over a minute of speech ------------------


@pytest.fixture(scope="module")
def verified_source(tmp_path_factory, voice, model_cache):
    """A voice "ann" enrolled once with verified consent (the bundled voice reads the challenge) and
    about 80 s of speech (12 sentences, each clip two of them), in a home of its own."""
    import shutil

    from voicefake.enroll.consent import issue_challenge

    home = tmp_path_factory.mktemp("verified-home")
    clips = tmp_path_factory.mktemp("verified-clips")
    sentences = [speak(voice, t, speed=0.75) for t in SENTENCES[:12]]  # unmarked: enrollment refuses voicefake output
    lines = []
    for i in range(12):
        j = (i + 1) % 12
        sf.write(clips / f"p{i}.wav", np.concatenate([sentences[i], sentences[j]]), 22050)
        lines.append(f"p{i}|{SENTENCES[i]} {SENTENCES[j]}")
    (clips / "metadata.txt").write_text("\n".join(lines) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VOICEFAKE_HOME", str(home))
        patch.setenv("VOICEFAKE_CACHE", str(model_cache))
        challenge = issue_challenge("ann")
        consent = clips.parent / "ann-consent.wav"
        sf.write(consent, speak(voice, challenge.text), 22050)
        report = enroll("ann", [clips], consent=consent, transcripts=clips / "metadata.txt", progress=False)
    assert report.enrolled and report.consent.startswith("verified"), report.lines()
    shutil.rmtree(home / "keys", ignore_errors=True)
    return home / "voices" / "ann"


@pytest.fixture
def verified_voice(verified_source):
    """"ann", copied into this test's own $VOICEFAKE_HOME."""
    import shutil

    target = voicefake.config.voicefake_home() / "voices" / "ann"
    shutil.copytree(verified_source, target)
    return target


def test_restart_with_bad_arguments_keeps_the_checkpoint(verified_voice):
    checkpoint = verified_voice / "checkpoint.pt"
    checkpoint.write_bytes(b"an earlier run's training")
    for args, expected in [(["--restart", "--minutes", "0"], "out of range"),
                           (["--restart", "--minutes", "-5"], "out of range"),
                           (["--restart", "--device", "tpu"], "unknown device"),
                           (["--restart", "--resume"], "contradict")]:
        result = run("clone", "ann", *args)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert checkpoint.read_bytes() == b"an earlier run's training", args
    with pytest.raises(VoicefakeError, match="out of range"):  # the API checks in the same order
        clone_voice("ann", minutes=0, restart=True)
    assert checkpoint.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_resume_from_a_damaged_checkpoint_says_so_and_suggests_restart(verified_voice, tmp_path, damage):
    import torch

    checkpoint = verified_voice / "checkpoint.pt"
    if damage == "garbage":
        checkpoint.write_bytes(np.random.default_rng(0).bytes(100_000))
    else:
        torch.save({"model": {"w": torch.zeros(50_000)}, "optimizer": {}, "step": 3}, tmp_path / "whole.pt")
        whole = (tmp_path / "whole.pt").read_bytes()
        checkpoint.write_bytes(whole[: len(whole) // 2])
    result = run("clone", "ann", "--resume")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "damaged" in errors[0] and "--restart" in errors[0], result.stderr
    assert checkpoint.exists()  # nothing is deleted without --restart


def test_sigterm_during_cli_clone_saves_the_checkpoint(verified_voice):
    import re
    import signal
    import threading
    import time

    import torch

    process = subprocess.Popen([sys.executable, "-m", "voicefake.cli", "clone", "ann", "--minutes", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(b) for b in iter(lambda: process.stderr.read1(4096), b"")],
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while not re.search(rb"step [1-9]", seen) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, seen.decode(errors="replace")
    steps = [int(s) for s in re.findall(rb"step (\d+)", seen)]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == 128 + signal.SIGTERM
    reader.join(timeout=10)
    stderr = seen.decode(errors="replace")
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr, stderr
    assert "--resume" in stderr, stderr
    checkpoint = verified_voice / "checkpoint.pt"
    assert checkpoint.exists(), stderr
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["step"] >= max(steps)
    assert not list(verified_voice.glob(".*.part"))


def test_voice_names_that_are_paths_are_refused_everywhere(verified_voice, tmp_path):
    bad = "../voices/ann"
    for args in (["clone", bad, "--minutes", "1"], ["clone", bad, "--resume"], ["export", bad, str(tmp_path / "out")],
                 ["say", "Hello.", "--voice", bad, "-o", str(tmp_path / "o.wav")], ["remove", bad],
                 ["consent-phrase", bad]):
        result = run(*args)
        assert result.returncode == 2 and "bad voice name" in result.stderr, (args, result.stderr)
    for call in (lambda: clone_voice(bad, max_steps=1), lambda: export_voice(bad, tmp_path / "out"),
                 lambda: voicefake.load_voice(bad)):
        with pytest.raises(VoicefakeError, match="bad voice name"):
            call()
    assert not (verified_voice / "checkpoint.pt").exists() and not (tmp_path / "out").exists()
    assert sorted(p.name for p in verified_voice.parent.iterdir()) == ["ann"]
