"""Atomic outputs: whole or absent, unique temporary names, the umask's mode, private files kept private."""

import os
import stat
from pathlib import Path

import pytest
import torch

from voicefake.errors import VoicefakeError
from voicefake.io.atomic import atomic_output, output_error
from voicefake.tts import train


@pytest.fixture
def umask():
    """Set the process umask for a test, restored afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def test_a_committed_file_gets_the_umask_mode(tmp_path, umask):
    for mask, expected in [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)]:
        umask(mask)
        target = tmp_path / f"out-{mask:o}.bin"
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"data")
        assert target.read_bytes() == b"data" and mode(target) == expected
    umask(0o022)
    with atomic_output(tmp_path / "secret", mode=0o600) as tmp:
        tmp.write_bytes(b"private")
    assert mode(tmp_path / "secret") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-2.bin", "out-22.bin", "out-77.bin", "secret"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, ValueError])
def test_any_exception_removes_the_temporary_file_and_keeps_the_old_one(tmp_path, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise error()
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_temporary_names_are_unique_and_hidden(tmp_path):
    target = tmp_path / "checkpoint.pt"
    first, second = atomic_output(target), atomic_output(target)
    a, b = first.__enter__(), second.__enter__()
    assert a != b and a.parent == b.parent == tmp_path
    assert a.name.startswith(".checkpoint.pt.") and a.name.endswith(".part")
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert target.read_bytes() == b"second" and list(tmp_path.iterdir()) == [target]


def test_an_exclusive_output_never_replaces(tmp_path):
    target = tmp_path / "key.pem"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError):
        with atomic_output(target, mode=0o600, exclusive=True) as tmp:
            tmp.write_bytes(b"second")
    assert target.read_bytes() == b"first" and list(tmp_path.iterdir()) == [target]


def test_unwritable_places_are_one_line_errors(tmp_path):
    with pytest.raises(VoicefakeError, match=r"^cannot write /proc/x\.bin: No such file"):
        with atomic_output("/proc/x.bin"):
            pass
    error = output_error(tmp_path / "o.wav", OSError(28, "No space left on device"))
    assert str(error) == f"cannot write {tmp_path / 'o.wav'}: No space left on device (free some space or choose " \
                         "another output path)"


def test_private_files_stay_private_under_a_permissive_umask(umask):
    from voicefake.config import voicefake_home
    from voicefake.enroll.consent import issue_challenge
    from voicefake.provenance import manifest as provenance

    umask(0o000)
    challenge = issue_challenge("ann")
    assert mode(voicefake_home() / "challenges" / f"{challenge.id}.json") == 0o600
    provenance.signing_key()
    assert mode(provenance.keys_dir() / provenance.SIGNER_FILE) == 0o600
    assert mode(provenance.root_certificate()) == 0o644  # public


@pytest.mark.slow
def test_checkpoints_are_atomic_and_a_damaged_one_is_named(tmp_path, umask):
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    path = tmp_path / "checkpoint.pt"
    train.Checkpoint(step=3, seconds=1.0, settings={}, history=[]).save(path, model, optimizer)
    assert mode(path) == 0o644 and list(tmp_path.iterdir()) == [path]
    assert train.Checkpoint.load(path, torch.nn.Linear(4, 4)).step == 3
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"\0" * 1000, whole.replace(b"step", b"stop")):
        path.write_bytes(damaged)
        with pytest.raises(VoicefakeError, match=r"checkpoint .* is damaged .*--restart"):
            train.Checkpoint.load(path, torch.nn.Linear(4, 4))
