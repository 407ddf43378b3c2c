"""The `voicefake` command end to end, in a subprocess, as a user runs it."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "voicefake.cli", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg"])
def test_say_writes_every_format(tmp_path, ext):
    out = tmp_path / f"out.{ext}"
    result = run("say", "Any text, with numbers like 42 and dates. A second sentence.", "-o", str(out))
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(out)
    assert rate == 22050 and 3 < len(audio) / rate < 12
    assert np.abs(audio).max() > 0.05
    # no temporary file left ("home" is the test's $VOICEFAKE_HOME, which now keeps the signing key)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [out.name]


@pytest.mark.slow
def test_say_reads_stdin_and_takes_settings(tmp_path):
    out = tmp_path / "slow.wav"
    result = run("say", "-", "-o", str(out), "--speed", "0.5", "--noise", "0", "--noise-w", "0", stdin="Read from a pipe.")
    assert result.returncode == 0, result.stderr
    fast = tmp_path / "fast.wav"
    assert run("say", "Read from a pipe.", "-o", str(fast), "--speed", "2", "--noise", "0", "--noise-w", "0").returncode == 0
    assert sf.info(slow := str(out)).duration > 2.5 * sf.info(str(fast)).duration, slow


def test_voices_lists_the_bundled_voice():
    result = run("voices")
    assert result.returncode == 0 and result.stdout.split()[:2] == ["joe", "bundled"]


BAD = {
    "empty": (["say", "", "-o", "{out}"], "empty"),
    "whitespace": (["say", "  \n ", "-o", "{out}"], "empty"),
    "too long": (["say", "word " * 4000, "-o", "{out}"], "limit"),
    "emoji only": (["say", "😀🎉", "-o", "{out}"], "nothing speakable"),
    "other script only": (["say", "你好世界", "-o", "{out}"], "nothing speakable"),
    "unwritable": (["say", "Hello.", "-o", "/proc/voicefake/out.wav"], "cannot write"),
    "proc": (["say", "Hello.", "-o", "/proc/x.wav"], "cannot write /proc/x.wav"),  # a folder no file can be made in
    "unknown voice": (["say", "Hello.", "-o", "{out}", "--voice", "nobody"], "unknown voice"),
    "bad extension": (["say", "Hello.", "-o", "{dir}/out.xyz"], "unsupported output format"),
    "bad speed": (["say", "Hello.", "-o", "{out}", "--speed", "0"], "out of range"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, case):
    args, expected = BAD[case]
    args = [a.format(out=tmp_path / "out.wav", dir=tmp_path) for a in args]
    result = run(*args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_emoji_among_words_is_dropped_with_a_warning(tmp_path):
    out = tmp_path / "out.wav"
    result = run("say", "Hello 😀 world.", "-o", str(out))
    assert result.returncode == 0 and "warning: dropped" in result.stderr and out.exists()


@pytest.mark.slow
def test_unreadable_stdin_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "voicefake.cli", "say", "-", "-o", str(tmp_path / "o.wav")],
        input=b"\xff\xfe\xfa bad bytes", capture_output=True, timeout=60,
    )
    assert result.returncode == 2 and b"UTF-8" in result.stderr
    assert list(tmp_path.iterdir()) == []


LONG_TEXT = " ".join(f"This is sentence number {i} of a long text that keeps the voice busy for a while." for i in range(80))


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_say_stopped_by_a_signal_leaves_no_file(tmp_path, signame):
    import signal
    import time

    out = tmp_path / "out.wav"
    process = subprocess.Popen([sys.executable, "-m", "voicefake.cli", "say", LONG_TEXT, "-o", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.wav.*.part")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.wav.*.part")), "the partial file never appeared"
    process.send_signal(getattr(signal, signame))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + getattr(signal, signame), stderr
    assert f"stopped by {signame}" in stderr and "Traceback" not in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == []


@pytest.mark.slow
def test_outputs_follow_the_umask(tmp_path):
    import os
    import stat

    for umask, expected in [(0o022, 0o644), (0o027, 0o640)]:
        out = tmp_path / f"out-{umask:o}.wav"
        result = subprocess.run([sys.executable, "-m", "voicefake.cli", "say", "Hello.", "-o", str(out)],
                                capture_output=True, text=True, timeout=120, preexec_fn=lambda umask=umask: os.umask(umask))
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(out.stat().st_mode) == expected


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and permission to mount; skipped otherwise)."""
    import os

    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0 or not os.path.ismount(folder):
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_say_onto_a_full_disk_is_one_line(full_disk):
    result = run("say", "A few sentences of speech. Far more than sixty four kilobytes of it. " * 4,
                 "-o", str(full_disk / "out.wav"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0], result.stderr
    assert list(full_disk.iterdir()) == []


@pytest.mark.slow
def test_say_and_detect_with_a_generated_voice(tiny_voice, tmp_path):
    out = tmp_path / "tiny.wav"
    assert run("say", "A short sentence, spoken twice over.", "--voice", "tiny", "-o", str(out)).returncode == 0
    found = run("detect", str(out))
    assert found.returncode == 0 and "tiny" in found.stdout, found.stdout + found.stderr
