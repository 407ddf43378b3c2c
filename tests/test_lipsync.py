"""Lip-sync end to end: the real face tracker and renderer on a drawn face and on the shared portrait,
the output file itself (frames, rate, length, audio), bad input, and the Wav2Lip checkpoint format."""

import os
import sys
import types
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

import voicefake
from tests.helpers import RATE, draw_face, make_video, shared_data, vowel
from voicefake import VoicefakeError
from voicefake.io.video import to_bgr
from voicefake.lipsync.face import detect_faces, mouth_opening
from voicefake.lipsync.pipeline import lipsync
from voicefake.lipsync.visemes import (
    LEAD_S,
    PhonemeTiming,
    timings_from_chunks,
    track_from_audio,
    track_from_phonemes,
)


def open_close_audio(cycles: int = 3, half: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Alternating speech-like bursts and silences; also the 0/1 pattern per 25 fps video frame."""
    parts = []
    for _ in range(cycles):
        parts += [vowel(half), np.zeros(int(half * RATE), np.float32)]
    audio = np.concatenate(parts)
    frames = int(round(len(audio) / RATE * 25))
    pattern = np.array([(int(k / 25 / half) % 2 == 0) for k in range(frames)], dtype=float)
    return audio, pattern


def read_video(path):
    """(frames BGR list, fps, video seconds, audio seconds or None, audio codec)."""
    import av

    with av.open(str(path)) as container:
        v = container.streams.video[0]
        fps = v.average_rate
        frames = [to_bgr(f) for f in container.decode(v)]
    with av.open(str(path)) as container:
        a = container.streams.audio[0] if container.streams.audio else None
        audio_s = float(a.duration * a.time_base) if a is not None and a.duration else None
        codec = a.codec_context.name if a is not None else None
        video_s = float(container.duration / 1e6) if container.duration else None
    return frames, fps, video_s, audio_s, codec


def openings(frames) -> np.ndarray:
    out = []
    for frame in frames:
        faces = detect_faces(frame, upsample=0)
        out.append(mouth_opening(faces[0]) if faces else np.nan)
    return np.array(out)


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("faces") / "drawn.png"
    cv2.imwrite(str(path), draw_face())
    return path


def test_the_drawn_face_is_a_face_to_the_tracker():
    faces = detect_faces(draw_face())
    assert len(faces) == 1
    assert mouth_opening(faces[0]) < 0.03  # drawn closed


@pytest.mark.slow
def test_mouth_follows_an_open_close_pattern(face_png, tmp_path):
    audio, pattern = open_close_audio()
    out = tmp_path / "talk.mp4"
    report = lipsync(face_png, (audio, RATE), out, label=False, progress=False)
    assert report.engine == "classic" and report.mouth_source == "audio" and report.speech
    assert report.mouth_interior == "procedural"  # the drawn face never opens its mouth
    frames, fps, video_s, audio_s, codec = read_video(out)
    assert fps == 25 and len(frames) == len(pattern) == report.frames == 75
    assert frames[0].shape == (320, 320, 3)
    assert codec == "aac" and abs(audio_s - 3.0) < 0.05 and abs(video_s - 3.0) < 0.1
    measured = openings(frames)
    assert not np.isnan(measured).any()
    assert measured[pattern == 1].mean() > measured[pattern == 0].mean() + 0.08
    assert np.corrcoef(measured, pattern)[0, 1] > 0.8
    assert np.percentile(measured[pattern == 0], 90) < 0.05  # closed again in every silence


@pytest.mark.parametrize("sound", ["silence", "noise"])
def test_no_speech_keeps_the_mouth_closed_and_the_picture_as_it_was(sound, face_png, tmp_path):
    out = tmp_path / "quiet.mp4"
    audio = (
        np.zeros(RATE, np.float32)
        if sound == "silence"
        else np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32)
    )
    report = lipsync(face_png, (audio, RATE), out, label=False, progress=False)
    assert not report.speech and report.frames == 25
    frames = read_video(out)[0]
    assert np.nanmax(openings(frames[::6])) < 0.03
    original = cv2.imread(str(face_png))
    diff = np.abs(cv2.GaussianBlur(frames[12], (0, 0), 1.5).astype(float) - cv2.GaussianBlur(original, (0, 0), 1.5))
    # only the codec and the invisible watermark (about 1.5 levels on average) touched it, mouth included
    assert diff.mean() < 2.5 and diff[180:240, 110:210].mean() < 3.0, (diff.mean(), diff[180:240, 110:210].mean())


def test_label_is_drawn_unless_switched_off(face_png, tmp_path):
    audio = (np.zeros(RATE // 5, np.float32), RATE)
    lipsync(face_png, audio, tmp_path / "labelled.mp4", progress=False)
    lipsync(face_png, audio, tmp_path / "plain.mp4", label=False, progress=False)
    labelled, plain = read_video(tmp_path / "labelled.mp4")[0][0], read_video(tmp_path / "plain.mp4")[0][0]
    corner = (slice(290, 320), slice(220, 320))
    assert np.abs(labelled[corner].astype(float) - plain[corner].astype(float)).mean() > 20
    assert np.abs(labelled[:200].astype(float) - plain[:200].astype(float)).mean() < 1.0


def test_video_with_faceless_frames_is_played_back_and_forth(tmp_path):
    face = draw_face(256)
    blank = np.full_like(face, 90)
    frames = [np.roll(face, k // 2, axis=1) for k in range(14)] + [blank] * 6
    source = tmp_path / "clip.mp4"
    make_video(source, frames, Fraction(30))
    audio, _ = open_close_audio(cycles=1, half=0.75)  # 1.5 s = 45 frames at 30 fps, the clip has 20
    out = tmp_path / "long.mp4"
    report = lipsync(source, (audio, RATE), out, label=False, progress=False)
    order = [0, *range(1, 20), *range(18, 0, -1), *range(7)]  # ping-pong
    assert report.frames == 45 and report.fps == 30
    assert report.no_face_frames == sum(1 for i in order[:45] if i >= 14)
    got, fps, *_ = read_video(out)
    assert fps == 30 and len(got) == 45
    for k, i in enumerate(order[:45]):
        if i >= 14:  # no face: the frame passes through untouched
            assert np.abs(got[k].astype(float) - 90).mean() < 2.0
    # the played-back part mirrors the forward part
    assert np.abs(got[25].astype(float) - got[13].astype(float))[:100].mean() < 3.0


@pytest.mark.parametrize("case", ["text", "no-face", "empty-audio", "bad-audio", "folder", "extension", "face-index"])
def test_bad_input_is_one_clear_error_and_no_file(case, face_png, tmp_path):
    face, audio, out = face_png, (vowel(0.3), RATE), tmp_path / "out.mp4"
    if case == "text":
        face = tmp_path / "notes.mp4"
        face.write_text("this is not a video")
    elif case == "no-face":
        face = tmp_path / "wall.png"
        cv2.imwrite(str(face), np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    elif case == "empty-audio":
        audio = (np.zeros(0, np.float32), RATE)
    elif case == "bad-audio":
        audio = tmp_path / "speech.wav"
        audio.write_bytes(b"RIFF....garbage")
    elif case == "folder":
        out = tmp_path / "missing" / "out.mp4"
    elif case == "extension":
        out = tmp_path / "out.avi"
    with pytest.raises(VoicefakeError) as error:
        lipsync(face, audio, out, progress=False, face_index=3 if case == "face-index" else None)
    message = str(error.value)
    assert "\n" not in message and len(message) < 300
    expected = {
        "text": "not an image or a video",
        "no-face": "no face found",
        "empty-audio": "empty",
        "bad-audio": "cannot read audio",
        "folder": "does not exist",
        "extension": ".mp4",
        "face-index": "no face number 3",
    }[case]
    assert expected in message
    assert not list(tmp_path.glob("*.mp4*")) or case == "text"  # nothing written (the text case made its input)
    assert not list(tmp_path.glob(".*part"))


def test_unwritable_output_leaves_nothing(face_png, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        # a folder without write permission, or (as root, who may write anywhere) one nobody can create files in
        target = folder / "out.mp4" if not os.access(folder, os.W_OK) else Path("/proc/voicefake-out.mp4")
        with pytest.raises(VoicefakeError, match="cannot write"):
            lipsync(face_png, (vowel(0.3), RATE), target, progress=False)
    finally:
        folder.chmod(0o700)
    assert not list(folder.iterdir())


@pytest.mark.slow
def test_two_faces_largest_by_default_or_by_index(tmp_path):
    canvas = np.full((320, 640, 3), 120, np.uint8)
    canvas[40:280, 40:280] = draw_face(240)  # smaller, on the left
    canvas[:, 320:] = draw_face(320)  # larger, on the right
    photo = tmp_path / "two.png"
    cv2.imwrite(str(photo), canvas)
    audio = (vowel(0.6), RATE)
    mouths = sorted((detect_faces(canvas)), key=lambda p: p[0, 0])  # left, right
    changed = {}
    for name, index in (("default", None), ("left", 0), ("right", 1)):
        lipsync(photo, audio, tmp_path / f"{name}.mp4", face_index=index, label=False, progress=False)
        opening = [
            mouth_opening(p)
            for p in sorted(detect_faces(read_video(tmp_path / f"{name}.mp4")[0][8]), key=lambda p: p[0, 0])
        ]
        changed[name] = "left" if opening[0] > opening[1] else "right"
        assert max(opening) > 0.1 and min(opening) < 0.03  # one mouth talks, the other stays closed
    assert len(mouths) == 2 and changed == {"default": "right", "left": "left", "right": "right"}
    with pytest.raises(VoicefakeError, match="no face number 2"):
        lipsync(photo, audio, tmp_path / "none.mp4", face_index=2, progress=False)


def test_interrupted_job_leaves_no_partial_file(face_png, tmp_path, monkeypatch):

    from voicefake.lipsync import pipeline as module

    def broken(frame, index, fps):
        if index == 5:
            raise KeyboardInterrupt
        return frame

    monkeypatch.setattr(module, "FRAME_FILTERS", [broken])
    with pytest.raises(KeyboardInterrupt):
        lipsync(face_png, (vowel(1.0), RATE), tmp_path / "out.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_phoneme_track_closes_for_bilabials_and_opens_for_vowels():
    timings, t = [], 0.0
    for phoneme, duration in [("^", 0.05), ("m", 0.08), ("a", 0.2), ("p", 0.08), ("a", 0.2), ("$", 0.3)]:
        timings.append(PhonemeTiming(phoneme, t, duration))
        t += duration
    track = track_from_phonemes(timings, 25, int(round(t * 25)))
    frame_of = lambda seconds: int((seconds - LEAD_S) * 25)  # noqa: E731  (the mouth leads the sound)
    assert track.opening[frame_of(0.23)] > 0.5 and track.opening[frame_of(0.47)] > 0.5  # the two "a"s
    assert track.opening[frame_of(0.37)] < 0.05  # "p": lips shut
    assert track.opening[-2:].max() < 0.05  # silence at the end
    assert track_from_audio(np.zeros(RATE), RATE, 25, 25).has_speech is False


@pytest.mark.slow
def test_speak_video_uses_the_synthesis_timings(face_png, tmp_path):
    out = tmp_path / "hello.mp4"
    report = voicefake.speak_video(face_png, "Hello, mama.", out, voice="joe", label=False, progress=False)
    assert report.mouth_source == "phonemes"
    frames, fps, video_s, audio_s, codec = read_video(out)
    assert codec == "aac" and fps == 25 and len(frames) == report.frames and abs(len(frames) / 25 - audio_s) < 0.05
    measured = openings(frames)
    assert measured.max() > 0.15 and measured[-3:].max() < 0.03  # "ma" opens wide, closed at the end
    assert np.corrcoef(measured, report.opening)[0, 1] > 0.8


def test_cli_lipsync_and_speak_video(face_png, tmp_path):
    from voicefake.cli import main

    speech = tmp_path / "speech.wav"
    voicefake.write_audio(speech, vowel(0.6), RATE)
    assert main(["-q", "lipsync", str(face_png), str(speech), "-o", str(tmp_path / "a.mp4")]) == 0
    assert main(["-q", "speak-video", str(face_png), "Hi.", "-o", str(tmp_path / "b.mp4"), "--face-index", "0"]) == 0
    assert len(read_video(tmp_path / "a.mp4")[0]) == 15 and read_video(tmp_path / "b.mp4")[3] > 0.2


def test_cli_errors_are_one_line(face_png, tmp_path, capsys):
    from voicefake.cli import main

    assert main(["lipsync", str(face_png), str(tmp_path / "none.wav"), "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voicefake: error: cannot read audio")


@pytest.mark.slow
@pytest.mark.needs_shared
def test_shared_portrait(tmp_path, voice):
    portrait = shared_data() / "faces" / "astronaut.png"
    chunks = list(voice.synthesize("Maybe we should open up a bottle of wine.", noise=0.3, noise_w=0.3))
    out = tmp_path / "astronaut.mp4"
    report = lipsync(portrait, chunks, out, progress=False)
    assert report.mouth_source == "phonemes" and report.mouth_interior == "harvested"  # she smiles with teeth
    frames, fps, video_s, audio_s, codec = read_video(out)
    assert len(frames) == report.frames == round(sum(c.duration for c in chunks) * 25)
    assert frames[0].shape == (512, 512, 3) and codec == "aac"
    measured = openings(frames)
    track = track_from_phonemes(timings_from_chunks(chunks), 25, len(frames))
    assert np.corrcoef(measured, track.opening)[0, 1] > 0.7
    original = cv2.imread(str(portrait)).astype(float)
    eyes = (slice(80, 115), slice(180, 270))  # the upper face is left alone: codec and invisible mark only
    assert np.abs(frames[len(frames) // 2][eyes].astype(float) - original[eyes]).mean() < 4.5


# ---------------------------------------------------------------- the neural engine


@pytest.fixture(scope="module")
def random_wav2lip(tmp_path_factory):
    """A randomly initialised generator and its checkpoint, saved as the official training code does."""
    import torch

    from voicefake.lipsync.wav2lip import Wav2Lip, save_checkpoint

    torch.manual_seed(0)
    model = Wav2Lip().eval()
    path = tmp_path_factory.mktemp("weights") / "wav2lip.pth"
    save_checkpoint(model, path, torch.optim.Adam(model.parameters(), lr=1e-4), step=7, epoch=1)
    return model, path


@pytest.mark.slow
def test_wav2lip_official_checkpoint_round_trip(random_wav2lip, tmp_path):
    import torch

    from voicefake.lipsync.wav2lip import (
        SyncNet,
        Wav2Lip,
        load_checkpoint,
        save_checkpoint,
    )

    model, path = random_wav2lip
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    assert "module.face_encoder_blocks.0.0.conv_block.0.weight" in saved["state_dict"]
    assert "module.output_block.1.weight" in saved["state_dict"]
    loaded = load_checkpoint(path)
    audio, faces = torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96)
    with torch.no_grad():
        expected = model(audio, faces)
        assert expected.shape == (2, 3, 96, 96)
        assert torch.equal(loaded(audio, faces), expected)
        timed = loaded(audio[:1, None].repeat(1, 5, 1, 1, 1), faces[:1, :, None].repeat(1, 1, 5, 1, 1))
        assert timed.shape == (1, 3, 5, 96, 96)
        assert torch.allclose(timed[:, :, 0], expected[:1], atol=1e-5)

    # a whole pickled module, saved by the official code (class path models.wav2lip.Wav2Lip): loading it
    # would mean a full unpickle, which can run code, so it is refused
    official = types.ModuleType("models.wav2lip")
    official.Wav2Lip = type("Wav2Lip", (Wav2Lip,), {"__module__": "models.wav2lip"})
    sys.modules["models"], sys.modules["models.wav2lip"] = types.ModuleType("models"), official
    try:
        pickled = official.Wav2Lip()
        pickled.load_state_dict(model.state_dict())
        torch.save(pickled, tmp_path / "wav2lip_module.pt")
    finally:
        del sys.modules["models"], sys.modules["models.wav2lip"]
    with pytest.raises(VoicefakeError, match="not a plain state-dict checkpoint") as refused:
        load_checkpoint(tmp_path / "wav2lip_module.pt")
    assert "\n" not in str(refused.value)

    sync = SyncNet().eval()
    save_checkpoint(sync, tmp_path / "syncnet.pth")
    with torch.no_grad():
        a, v = load_checkpoint(tmp_path / "syncnet.pth", SyncNet)(torch.randn(3, 1, 80, 16), torch.rand(3, 15, 48, 96))
    assert a.shape == v.shape == (3, 512) and torch.allclose(a.norm(dim=1), torch.ones(3))
    with pytest.raises(VoicefakeError, match="not a Wav2Lip checkpoint"):
        load_checkpoint(tmp_path / "syncnet.pth")


@pytest.mark.slow
def test_wav2lip_weights_in_pretrained_are_picked_automatically(random_wav2lip, face_png, tmp_path):
    import shutil

    pretrained = Path(os.environ["VOICEFAKE_HOME"]) / "pretrained"
    pretrained.mkdir(parents=True)
    shutil.copy(random_wav2lip[1], pretrained / "wav2lip_gan.pth")
    out = tmp_path / "neural.mp4"
    report = lipsync(face_png, (vowel(0.24), RATE), out, label=False, progress=False)
    assert report.engine == "wav2lip" and report.frames == 6 == len(read_video(out)[0])
    original = cv2.GaussianBlur(cv2.imread(str(face_png)), (0, 0), 1.5).astype(float)
    frame = cv2.GaussianBlur(read_video(out)[0][5], (0, 0), 1.5).astype(float)
    assert np.abs(frame - original)[:120].mean() < 2.5  # random weights draw noise, but only below the nose (mark: ~1.5)
    assert np.abs(frame - original)[190:240, 120:200].mean() > 5.0
    classic = lipsync(face_png, (vowel(0.24), RATE), tmp_path / "c.mp4", engine="classic", progress=False)
    assert classic.engine == "classic"


def test_wav2lip_engine_without_weights_says_what_to_do(face_png, tmp_path):
    from voicefake.lipsync.pipeline import find_wav2lip_weights

    if find_wav2lip_weights() is not None:
        pytest.skip("Wav2Lip weights are installed here")
    with pytest.raises(VoicefakeError, match="cannot download them"):
        lipsync(face_png, (vowel(0.3), RATE), tmp_path / "x.mp4", engine="wav2lip", progress=False)


def test_training_recipe_prepares_lrs2_style_data(tmp_path):
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
    import train_wav2lip as recipe

    from voicefake.io.video import VideoWriter
    from voicefake.lipsync.wav2lip import SyncNet

    clip = tmp_path / "main" / "speaker1" / "00001.mp4"
    clip.parent.mkdir(parents=True)
    audio = np.concatenate([vowel(0.4), np.zeros(RATE // 2, np.float32)] * 2)
    face = draw_face(256)
    with VideoWriter(clip, 256, 256, Fraction(25), audio, RATE) as writer:
        for k in range(int(len(audio) / RATE * 25)):
            writer.write(np.roll(face, k % 3, axis=1))
    recipe.main(["prepare", str(tmp_path / "main"), str(tmp_path / "data")])
    prepared = tmp_path / "data" / "speaker1" / "00001"
    assert (prepared / "audio.wav").exists() and len(list(prepared.glob("*.jpg"))) == 45
    clips = recipe.Clips(tmp_path / "data")
    faces, mel, label = clips.sync_sample()
    assert faces.shape == (15, 48, 96) and mel.shape == (1, 80, 16) and label.item() in (0.0, 1.0)
    inputs, mels, window, truth = clips.generator_sample()
    assert inputs.shape == (6, 5, 96, 96) and mels.shape == (5, 1, 80, 16) and truth.shape == (3, 5, 96, 96)
    assert float(inputs[:3, :, 48:].abs().max()) == 0.0  # the lower half is hidden from the generator
    with torch.no_grad():
        loss = recipe.expert_loss(SyncNet().eval(), truth[None], window[None])
    assert loss.item() > 0


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_cli_lipsync_stopped_by_a_signal_leaves_no_file(face_png, tmp_path, signame):
    import signal
    import subprocess
    import time

    import soundfile as sf

    sf.write(tmp_path / "speech.wav", vowel(40.0), RATE)  # a thousand frames: long enough to be stopped
    out = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "voicefake.cli", "lipsync", str(face_png), str(tmp_path / "speech.wav"), "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob(".out.mp4.*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.mp4.*")), "the partial file never appeared"
    time.sleep(1.0)  # let the encoder thread get going
    process.send_signal(getattr(signal, signame))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + getattr(signal, signame), stderr
    assert "Traceback" not in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["speech.wav"]


# ---------------------------------------------------------------- the stages, on frames in memory


@pytest.fixture(scope="module")
def drawn_track():
    """Eight frames of a drawn face drifting right, then four without a face, tracked (stage 1)."""
    from voicefake.lipsync.track import track_face

    face = draw_face(256)
    frames = [np.roll(face, k, axis=1) for k in range(8)] + [np.full_like(face, 90)] * 4
    return frames, track_face(frames, 25, harvest=True)


def test_track_stage_follows_the_face_frame_by_frame(drawn_track):
    frames, track = drawn_track
    assert len(track) == 12 and track.landmarks.shape == (12, 68, 2)
    assert track.found.tolist() == [True] * 8 + [False] * 4
    assert np.isnan(track.landmarks[8:]).all() and not np.isnan(track.landmarks[:8]).any()
    nose_x = track.landmarks[:8, 30, 0]
    assert np.all(np.diff(nose_x) > 0) and 5 < nose_x[-1] - nose_x[0] < 10  # it drifted 7 px right
    assert np.abs(track.yaw).max() < 0.1 and not track.occluded.any()  # frontal, nothing in front of the mouth
    assert track.interior is not None and track.interior.source == "procedural"  # the drawn mouth never opens


def test_plan_stage_opens_the_mouth_for_sound_and_keeps_it_shut_in_silence(drawn_track):
    from voicefake.lipsync.plan import plan_mouth

    _, track = drawn_track
    audio, pattern = open_close_audio()  # 0.5 s bursts and silences: 75 frames, the clip has 12
    plan = plan_mouth(track, audio, RATE, 25, len(pattern))
    assert len(plan) == 75 and plan.order[:24] == [*range(12), *range(10, -1, -1), 1]  # played back and forth
    assert plan.source == "audio" and plan.speech
    middle = np.array([4 <= k % 12.5 < 9 for k in range(75)])  # the middle of each burst and silence
    assert plan.opening[middle & (pattern == 1)].min() > 0.5
    assert plan.opening[middle & (pattern == 0)].max() < 0.05
    assert np.corrcoef(plan.opening, pattern)[0, 1] > 0.9
    # full strength on the face, none where there is no face, ramped in between
    shown = np.array(plan.order)
    assert np.all(plan.strength[shown < 6] > 0.95) and np.all(plan.strength[shown >= 8] == 0)
    assert np.all((plan.strength[shown == 7] > 0) & (plan.strength[shown == 7] < 0.5))
    quiet = plan_mouth(track, np.zeros(RATE, np.float32), RATE, 25, 25)
    assert not quiet.speech and quiet.opening.max() < 0.05


def test_render_stage_changes_only_the_mouth(drawn_track):
    from voicefake.lipsync.plan import MouthPlan
    from voicefake.lipsync.render import make_renderer, render_frame

    frames, track = drawn_track
    plan = MouthPlan(
        order=[3, 9],
        opening=np.array([1.0, 1.0]),
        spread=np.zeros(2),
        strength=np.array([1.0, 0.0]),
        source="audio",
        speech=True,
    )
    renderer = make_renderer("classic", track)
    assert renderer.interior == "procedural"
    before = frames[3].copy()
    after = render_frame(frames[3], 0, track, plan, renderer)
    assert np.array_equal(frames[3], before)  # a new frame, the input untouched
    assert render_frame(frames[9], 1, track, plan, renderer) is frames[9]  # no face: passed through
    assert mouth_opening(detect_faces(after)[0]) > 0.15 > 0.03 > mouth_opening(detect_faces(before)[0])
    diff = np.abs(after.astype(float) - before).max(axis=2)
    points = track.landmarks[3]
    (x0, y0), (x1, y1) = points[48:68].min(axis=0), points[48:68].max(axis=0)
    margin = (x1 - x0) / 2
    near = np.zeros(diff.shape, bool)
    near[int(y0 - margin) : int(y1 + margin), int(x0 - margin) : int(x1 + margin)] = True
    assert diff[near].mean() > 10 and diff[~near].mean() < 2
    assert diff[: int(points[17:27, 1].min())].max() == 0  # above the brows: not one pixel changed


@pytest.mark.slow
def test_a_1080p_video_is_lip_synced_at_full_size_and_marked(tmp_path):
    """The high-resolution path: a 1920x1080 clip with a face of ordinary size comes out at its
    own size and rate, the mouth follows the sound, the mark is found, and the picture away from
    the mouth is only re-encoded."""
    from voicefake.provenance.detect import detect_file

    canvas = np.full((1080, 1920, 3), 70, np.uint8)
    canvas[380:700, 800:1120] = draw_face(320)
    audio, pattern = open_close_audio(cycles=2, half=0.4)
    source = tmp_path / "hd.mp4"
    make_video(source, [canvas] * len(pattern), Fraction(25))
    out = tmp_path / "hd-out.mp4"
    report = lipsync(source, (audio, RATE), out, progress=False)
    frames, fps, *_ = read_video(out)
    assert frames[0].shape == (1080, 1920, 3) and fps == 25 and len(frames) == report.frames == len(pattern)
    measured = openings([frame[380:700, 800:1120] for frame in frames])
    assert np.corrcoef(measured, pattern)[0, 1] > 0.8
    assert detect_file(out).found
    away = (slice(100, 300), slice(200, 600))  # far from the face: codec noise and the faint mark only
    assert np.abs(frames[len(frames) // 2][away].astype(float) - canvas[away]).mean() < 3


@pytest.mark.slow
def test_a_1080p_video_stays_4_2_0_and_comes_out_as_the_bgr_path_would(tmp_path, monkeypatch):
    """The fast path of a plain 4:2:0 video: no whole frame is ever converted to BGR (tracking runs on
    a shrunk copy, the mouth and the label on crops, the mark on the luma), and the picture is what
    the frame-by-frame BGR path (which a FRAME_FILTER forces) makes of it, within the codec's noise."""
    from voicefake.io import video
    from voicefake.lipsync import pipeline

    canvas = np.full((1080, 1920, 3), 70, np.uint8)
    canvas[380:700, 800:1120] = draw_face(320)
    audio, pattern = open_close_audio(cycles=1, half=0.5)
    source = tmp_path / "hd.mp4"
    make_video(source, [canvas] * len(pattern), Fraction(25))
    with monkeypatch.context() as patch:
        patch.setattr(video, "to_bgr", lambda frame: pytest.fail("a whole frame was converted to BGR"))
        lipsync(source, (audio, RATE), tmp_path / "fast.mp4", progress=False)
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "FRAME_FILTERS", [lambda frame, index, fps: frame])
        lipsync(source, (audio, RATE), tmp_path / "bgr.mp4", progress=False)
    fast, bgr = read_video(tmp_path / "fast.mp4")[0], read_video(tmp_path / "bgr.mp4")[0]
    assert len(fast) == len(bgr) == len(pattern)
    face = (slice(380, 700), slice(800, 1120))
    measured = openings([frame[face] for frame in fast])
    assert np.corrcoef(measured, pattern)[0, 1] > 0.8
    apart = np.abs(measured - openings([frame[face] for frame in bgr]))
    assert apart.mean() < 0.02 and apart.max() < 0.08, apart  # dlib's own noise on two encodings' noise
    for a, b in zip(fast[::6], bgr[::6]):
        diff = np.abs(a.astype(float) - b)
        assert diff.mean() < 1.0 and diff[face].mean() < 2.0, (diff.mean(), diff[face].mean())
        assert diff[980:1060, 1600:].mean() < 3  # the label, drawn on its crop, is the same label


@pytest.mark.parametrize("side", [-1, 1])
def test_fingers_over_half_the_mouth_stay_in_front_of_the_new_mouth(side):
    """Per-pixel occlusion: skin-coloured fingers over one half of the mouth come out as they went in
    (95th percentile of change <= 6 levels: without the mask the warp and the painted mouth move them
    by 7-26), while the uncovered half opens."""
    from voicefake.lipsync.mouth import MouthInterior, MouthRenderer

    face = draw_face(256)
    clear = detect_faces(face)[0]
    left, right = clear[48, 0], clear[54, 0]
    middle = (left + right) / 2
    x0, x1 = (int(middle), int(right + 12)) if side > 0 else (int(left - 12), int(middle))
    fingers = np.zeros(face.shape[:2], bool)
    fingers[int(clear[33, 1] + 4) :, x0:x1] = True
    covered = face.copy()
    covered[fingers] = (150, 170, 200)
    for groove in np.linspace(x0, x1, 4)[1:-1].astype(int):
        covered[int(clear[33, 1] + 10) :, groove - 1 : groove + 1] = (110, 125, 150)
    points = detect_faces(covered)[0]
    out = MouthRenderer(MouthInterior.procedural(face, clear)).render(covered, points, 1.0, 0.0)
    change = np.abs(out.astype(int) - covered).max(axis=2)
    assert np.percentile(change[fingers], 95) <= 6
    lips = slice(int(clear[51, 1]), int(clear[57, 1]))
    free = slice(int(left), int(middle)) if side > 0 else slice(int(middle), int(right))
    assert change[lips, free].mean() > 30  # the other half of the mouth did open


def test_frames_shaped_on_worker_threads_come_back_in_order_and_errors_reach_the_caller():
    import threading
    import time

    from voicefake.io.video import map_in_order

    seen_threads = set()

    def work(item, index):
        seen_threads.add(threading.current_thread().name)
        time.sleep(0.002 * (item % 3))  # finish out of order
        return item * 10 + index

    assert list(map_in_order(work, iter(range(20)), threads=2)) == [k * 11 for k in range(20)]
    assert len(seen_threads) == 2
    assert list(map_in_order(work, iter(range(5)), threads=1)) == [k * 11 for k in range(5)]

    def fails(item, index):
        if index == 7:
            raise ValueError("frame 7")
        return item

    out = []
    with pytest.raises(ValueError, match="frame 7"):
        for item in map_in_order(fails, iter(range(20)), threads=2):
            out.append(item)
    assert out == list(range(7))
    shaped = map_in_order(work, iter(range(100)), threads=2)
    assert next(shaped) == 0
    shaped.close()  # stopping early leaves no thread behind
    assert not any(t.name.startswith("voicefake-worker") for t in threading.enumerate())
