"""Safety of lip-sync input and output: planted weights, short face tracks, output over input, folders."""

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

import voicefake
from tests.helpers import RATE, draw_face, make_video, shared_data, vowel
from voicefake import VoicefakeError
from voicefake.cli import main
from voicefake.lipsync.pipeline import lipsync


class RunsCode:
    """Unpickling this makes a folder: proof that loading a file ran its code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def plant(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": RunsCode(marker)}, path)
    return path


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("faces") / "drawn.png"
    cv2.imwrite(str(path), draw_face(256))
    return path


@pytest.fixture
def speech(tmp_path):
    return voicefake.write_audio(tmp_path / "speech.wav", vowel(0.24), RATE)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---------------------------------------------------------------- weights


def test_weights_planted_in_the_current_folder_are_never_loaded(face_png, tmp_path, monkeypatch):
    from voicefake.lipsync.pipeline import find_wav2lip_weights, pretrained_dirs

    work, marker = tmp_path / "work", tmp_path / "ran"
    plant(work / "pretrained" / "wav2lip.pth", marker)
    monkeypatch.chdir(work)
    assert work / "pretrained" not in pretrained_dirs()
    found = find_wav2lip_weights()
    assert found is None or found.parent != work / "pretrained"
    report = lipsync(face_png, (vowel(0.24), RATE), tmp_path / "out.mp4", progress=False)
    assert not marker.exists()
    if found is None:
        assert report.engine == "classic"


@pytest.mark.parametrize("command", ["lipsync", "speak-video"])
def test_a_checkpoint_that_would_run_code_is_refused(command, face_png, speech, tmp_path, capsys):
    marker = tmp_path / "ran"
    weights = plant(tmp_path / "anywhere" / "evil.pth", marker)
    second = str(speech) if command == "lipsync" else "Hi."
    status = main([command, str(face_png), second, "-o", str(tmp_path / "out.mp4"), "--weights", str(weights)])
    assert status == 2
    assert "is not a plain state-dict checkpoint" in one_error_line(capsys)
    assert not marker.exists() and not (tmp_path / "out.mp4").exists()
    from voicefake.lipsync.wav2lip import load_checkpoint

    with pytest.raises(VoicefakeError, match="not a plain state-dict checkpoint"):
        load_checkpoint(weights)  # the API too
    assert not marker.exists()


@pytest.mark.slow
def test_a_state_dict_checkpoint_given_with_weights_is_used(face_png, speech, tmp_path, capsys):
    import torch

    from voicefake.lipsync.wav2lip import Wav2Lip, save_checkpoint

    torch.manual_seed(0)
    weights = tmp_path / "mine" / "generator.pth"  # any name, any folder: the user named it
    weights.parent.mkdir()
    save_checkpoint(Wav2Lip(), weights)
    out = tmp_path / "neural.mp4"
    assert main(["lipsync", str(face_png), str(speech), "-o", str(out), "--weights", str(weights)]) == 0
    assert "engine wav2lip" in capsys.readouterr().err and out.is_file()


# ---------------------------------------------------------------- short face tracks


def reference_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """The renormalised Gaussian, written out point by point."""
    t = np.arange(len(x))
    weights = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    weights[np.abs(t[:, None] - t[None, :]) > max(1, int(3 * sigma))] = 0
    return weights @ x / weights.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n", range(1, 9))
def test_smoothing_works_on_runs_of_any_length(n):
    from voicefake.lipsync.face import TEMPLATE_68, _gaussian_filter, smooth_track

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 6))
    for sigma in (0.8, 1.5, 2.5, 5.0):
        assert np.allclose(_gaussian_filter(x, sigma), reference_gaussian(x, sigma))
    face = (TEMPLATE_68 * 60 + 160).astype(np.float32)
    still = np.repeat(face[None], n, axis=0)
    jitter = still + rng.normal(0, 0.5, still.shape).astype(np.float32)
    for fps in (12, 25, 30, 60):
        assert np.allclose(smooth_track(still, fps), still, atol=1e-3)  # a still face stays put
        smoothed = smooth_track(jitter, fps)
        assert smoothed.shape == still.shape and np.abs(smoothed - still).max() < 2.5


def test_a_face_seen_for_only_four_frames_is_lip_synced(tmp_path):
    face = draw_face(256)
    blank = np.full_like(face, 90)
    source = tmp_path / "glimpse.mp4"
    make_video(source, [blank] * 5 + [np.roll(face, k, axis=1) for k in range(4)] + [blank] * 6, Fraction(25))
    report = lipsync(source, (vowel(0.6), RATE), tmp_path / "out.mp4", label=False, progress=False)
    assert report.frames == 15 and report.face_frames == 4 and report.no_face_frames == 11


def test_an_upside_down_drawn_face_is_a_clear_error(tmp_path):
    source = tmp_path / "flipped.mp4"
    make_video(source, [np.ascontiguousarray(draw_face(256)[::-1, ::-1])] * 6, Fraction(25))
    with pytest.raises(VoicefakeError, match="no face found"):
        lipsync(source, (vowel(0.24), RATE), tmp_path / "out.mp4", progress=False)


@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.parametrize("flip", ["rotated", "mirrored"])
def test_an_upside_down_real_clip_does_not_crash(flip, tmp_path):
    """Upside down, the detector finds the face in a few scattered frames only (runs of 4-5 here)."""
    import av

    from voicefake.io.video import to_bgr

    clip = shared_data() / "faces" / "WolfgangLanger_Pexels.mp4"
    if not clip.is_file():
        pytest.skip(f"shared data not available: {clip} is missing")
    turn = (slice(None, None, -1), slice(None, None, -1)) if flip == "rotated" else (slice(None, None, -1),)
    with av.open(str(clip)) as container:
        frames = [np.ascontiguousarray(to_bgr(f)[turn]) for _, f in zip(range(30), container.decode(video=0))]
    source = tmp_path / "upside-down.mp4"
    make_video(source, frames, Fraction(24000, 1001))
    report = lipsync(source, (vowel(1.25), RATE), tmp_path / "out.mp4", progress=False)
    assert report.frames == 30 and report.face_frames > 0


# ---------------------------------------------------------------- output over input


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink", "audio"])
def test_output_over_an_input_is_refused_and_the_input_kept(spelling, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "v.mp4", [draw_face(256)] * 8, Fraction(25))
    voicefake.write_audio(tmp_path / "speech.wav", vowel(0.3), RATE)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    out = {"same": "v.mp4", "dot": f"./../{tmp_path.name}/v.mp4", "audio": "./speech.wav"}.get(spelling, "out.mp4")
    if spelling == "symlink":
        os.symlink(tmp_path / "v.mp4", out)
    elif spelling == "hardlink":
        os.link(tmp_path / "v.mp4", out)
    assert main(["lipsync", "v.mp4", "speech.wav", "-o", out]) == 2
    assert "is the input file" in one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name in before} == before
    assert not list(tmp_path.glob(".*part"))


def test_speak_video_over_its_face_is_refused(face_png, tmp_path, capsys):
    face = tmp_path / "face.mp4"
    make_video(face, [draw_face(256)] * 8, Fraction(25))
    before = face.read_bytes()
    assert main(["speak-video", str(face), "Hello.", "-o", str(face)]) == 2
    assert "is the input file" in one_error_line(capsys) and face.read_bytes() == before


# ---------------------------------------------------------------- a folder where a file is expected


@pytest.mark.parametrize("which", ["face", "audio", "weights"])
def test_a_folder_for_a_lipsync_input_says_so(which, face_png, speech, tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    face, audio = (folder, speech) if which == "face" else (face_png, folder if which == "audio" else speech)
    extra = ["--weights", str(folder)] if which == "weights" else []
    assert main(["lipsync", str(face), str(audio), "-o", str(tmp_path / "out.mp4"), *extra]) == 2
    line = one_error_line(capsys)
    assert f"{folder} is a folder, not a file: give " in line, line


def test_a_folder_given_to_detect_says_so(tmp_path, capsys):
    assert main(["detect", str(tmp_path)]) == 2
    assert "is a folder, not a file" in one_error_line(capsys)


def test_a_folder_as_the_consent_recording_says_so(tmp_path):
    from voicefake.enroll.consent import issue_challenge
    from voicefake.enroll.enrollment import ConsentRefused, enroll

    issue_challenge("ann")
    with pytest.raises(ConsentRefused, match="is a folder, not a file"):
        enroll("ann", [tmp_path], consent=tmp_path)


def test_check_input_file(tmp_path):
    from voicefake.io.media import check_input_file

    (tmp_path / "a.wav").write_bytes(b"x")
    assert check_input_file(tmp_path / "a.wav") == tmp_path / "a.wav"
    with pytest.raises(VoicefakeError, match="is a folder, not a file: give a video, photo or audio file"):
        check_input_file(tmp_path)
    with pytest.raises(VoicefakeError, match="cannot read audio .*: no such file"):
        check_input_file(tmp_path / "none.wav", "audio")
