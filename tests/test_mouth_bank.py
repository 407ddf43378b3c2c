"""The mouth bank (issue 15): a talking video's own mouths, chosen by shape and continuity and drawn in
place of the painted mouth; a photo, or a video that never opens its mouth, keeps the classic renderer.

The real tracker, planner and renderer on the shared talking clip (skipped without ../shared) and on
drawn faces."""

import numpy as np
import pytest

from tests.helpers import draw_face, shared_data
from voicefake.lipsync.face import mouth_opening
from voicefake.lipsync.visemes import MAX_OPENING

CLIP_FRAMES = 375  # 15 s: she covers her mouth often; this much holds ~50 clear, sharp frames, talking


@pytest.fixture(scope="module")
def clip():
    """The first 15 s of the shared talking clip, tracked for the classic renderer (bank included)."""
    from voicefake.io.video import iter_frames, open_face_media
    from voicefake.lipsync.track import track_face

    media = open_face_media(shared_data() / "faces" / "WolfgangLanger_Pexels.mp4")
    frames = []
    for frame in iter_frames(media):
        frames.append(frame)
        if len(frames) == CLIP_FRAMES:
            break
    return frames, track_face(frames, float(media.fps), harvest=True)


@pytest.mark.needs_shared
def test_the_bank_holds_the_clips_clear_talking_mouths(clip):
    frames, track = clip
    bank = track.bank
    assert bank is not None and len(bank) >= 25
    assert all(track.found[f] and not track.occluded[f] for f in bank.frames)
    assert np.abs(track.yaw[bank.frames]).max() < 0.25
    openings = np.array([mouth_opening(p) for p in bank.landmarks])
    assert openings.min() < 0.02 and bank.reach > 0.15  # closed and wide-open mouths alike
    assert bank.bytes < 20e6  # small crops around the lips, not frames


@pytest.mark.needs_shared
def test_the_banks_choice_matches_the_asked_opening_in_runs_of_real_frames(clip):
    """Ask a closed-mouth frame for the openings of the bank's own frames, forwards then backwards:
    the mouths chosen open as much as asked, and mostly continue with the next real frame."""
    from voicefake.lipsync.bank import choose_mouths
    from voicefake.lipsync.mouth import target_shape

    _, track = clip
    bank = track.bank
    openings = np.array([mouth_opening(p) for p in bank.landmarks])
    asked = [*range(len(bank)), *range(len(bank) - 1, -1, -1)]
    base = track.landmarks[bank.frames[int(np.argmin(openings))]]  # a closed mouth, to be opened
    targets = np.stack([target_shape(base, openings[e] / MAX_OPENING, 0.0) for e in asked])
    choice = choose_mouths(bank, targets)
    assert (choice >= 0).mean() > 0.9
    drawn = choice >= 0
    wanted = np.array([mouth_opening(t) for t in targets])
    got = np.array([mouth_opening(bank.landmarks[e]) for e in choice[drawn]])
    assert np.abs(got - wanted[drawn]).mean() < 0.02  # inter-ocular units: a few pixels
    assert np.corrcoef(got, wanted[drawn])[0, 1] > 0.9
    steps = [(a, b) for a, b in zip(choice[:-1], choice[1:]) if a >= 0 and b >= 0]
    flowing = [b == a or (b == a + 1 and bank.follows[b]) for a, b in steps]
    assert np.mean(flowing) > 0.6  # runs of real consecutive mouths, not a new cut every frame

    # Shown frames' own mouths are a choice too: asked to close, each keeps its own (the classic warp
    # closes it); asked to open as wide as the widest bank mouths, a closed one takes a bank mouth.
    own = bank.landmarks[asked]
    closing = np.stack([target_shape(p, 0.0, 0.0) for p in own])
    assert (choose_mouths(bank, closing, own=own) == -1).all()
    shut = own[np.array([mouth_opening(p) for p in own]) < 0.02]
    opening = np.stack([target_shape(p, bank.reach / MAX_OPENING, 0.0) for p in shut])
    assert (choose_mouths(bank, opening, own=shut) >= 0).mean() > 0.9


def test_a_photo_or_a_mouth_that_never_opens_keeps_the_classic_renderer():
    from voicefake.lipsync.render import make_renderer
    from voicefake.lipsync.track import track_face

    face = draw_face(256)
    photo = track_face([face], 25, still=True, harvest=True)
    assert photo.bank is None and make_renderer("classic", photo).bank is None
    video = track_face([np.roll(face, k % 3, axis=1) for k in range(40)], 25, harvest=True)
    assert video.found.all() and video.bank is None  # 40 frames, but the drawn mouth never opens


@pytest.mark.needs_shared
def test_the_photo_on_the_shared_faces_keeps_the_classic_renderer():
    import cv2

    from voicefake.lipsync.track import track_face

    portrait = cv2.imread(str(shared_data() / "faces" / "astronaut.png"))
    track = track_face([portrait], 25, still=True, harvest=True)
    assert track.found.all() and track.bank is None and track.interior.source == "harvested"


def _open_choice(track, plan):
    """An output frame the bank draws, at full strength, with a mouth much more open than the frame's own."""
    for k in np.flatnonzero((plan.mouths >= 0) & (plan.strength > 0.99)):
        own = mouth_opening(track.landmarks[plan.order[k]])
        if mouth_opening(track.bank.landmarks[plan.mouths[k]]) > own + 0.1:
            return int(k)
    raise AssertionError("the plan never opens a closed mouth with the bank")


@pytest.mark.needs_shared
def test_the_bank_render_stays_in_the_render_region_and_behind_fingers(clip):
    from tests.helpers import RATE, vowel
    from voicefake.lipsync.plan import plan_mouth
    from voicefake.lipsync.render import make_renderer, render_frame, render_region

    frames, track = clip
    audio = np.concatenate([vowel(0.4), np.zeros(int(0.2 * RATE), np.float32)] * 20)
    plan = plan_mouth(track, audio, RATE, 25.0, len(frames))
    assert plan.mouths is not None
    drawn, wide = (plan.mouths >= 0) & (plan.strength > 0), plan.opening > 0.5
    assert drawn.sum() >= 10 and drawn[wide].mean() > 2 * drawn[~wide].mean()  # the bank opens mouths
    renderer = make_renderer("classic", track)
    k = _open_choice(track, plan)
    frame = frames[plan.order[k]]
    out = render_frame(frame, k, track, plan, renderer)
    x0, y0, x1, y1 = render_region(k, track, plan)
    change = np.abs(out.astype(int) - frame).max(axis=2)
    outside = np.ones(change.shape, bool)
    outside[max(0, y0) : y1, max(0, x0) : x1] = False
    assert change[outside].max() == 0 and change[~outside].mean() > 1

    # skin-coloured fingers with grooves over the image-right half of the mouth stay in front of it
    points = track.landmarks[plan.order[k]]
    middle, right = (points[48, 0] + points[54, 0]) / 2, points[54, 0]
    fingers = np.zeros(frame.shape[:2], bool)
    fingers[int(points[33, 1] + 4) : int(points[8, 1]), int(middle) : int(right + 10)] = True
    covered = frame.copy()
    covered[fingers] = (150, 170, 200)
    for groove in np.linspace(middle, right + 10, 4)[1:-1].astype(int):
        covered[int(points[33, 1] + 10) : int(points[8, 1]), groove - 1 : groove + 1] = (110, 125, 150)
    drawn = track.bank.render(covered, points, int(plan.mouths[k]))
    moved = np.abs(drawn.astype(int) - covered).max(axis=2)
    assert np.percentile(moved[fingers], 95) <= 6
    lips = slice(int(points[51, 1]), int(points[57, 1]))
    assert moved[lips, int(points[48, 0]) : int(middle)].mean() > 15  # the uncovered half did change


def test_the_bank_keeps_every_other_frame_when_its_crops_outgrow_the_memory_cap(monkeypatch):
    from voicefake.lipsync import bank as bank_module
    from voicefake.lipsync.face import TEMPLATE_68

    points = (TEMPLATE_68 * 80 + [160, 90]).astype(np.float32)  # a frontal face, 80 px between the eyes
    frame = np.random.default_rng(0).integers(0, 255, (320, 320, 3), np.uint8)
    bank = bank_module.MouthBank()
    bank.add(0, frame, points)
    one = bank.bytes
    monkeypatch.setattr(bank_module, "MAX_BYTES", 10 * one)  # room for ten crops
    for i in range(1, 100):
        bank.add(i, frame, points)
    assert bank.bytes <= 10 * one and bank.stride == 16 and len(bank) == 7  # frames 0, 16, ..., 96
    assert all(f % bank.stride == 0 for f in bank.frames)
    assert bank.follows[1:].all()  # each is "the next" at this stride: runs of them still count as motion


@pytest.mark.needs_shared
def test_a_video_followed_on_a_shrunk_copy_keeps_its_mouths_at_full_size(clip):
    """Over pipeline.TRACK_SIDE a video is followed on a shrunk copy; the bank cuts its mouths from the
    full 4:2:0 frame (only the crop converted; the checks run on the shrunk frame), and its landmarks
    are scaled to match."""
    import cv2

    from voicefake.io.yuv import Yuv420
    from voicefake.lipsync.bank import MouthBank
    from voicefake.lipsync.face import scaled_points

    frames, track = clip
    small, full = track.bank, MouthBank()
    for f in small.frames[:4]:
        big = cv2.resize(frames[f], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        full.add(f, frames[f], track.landmarks[f], Yuv420.from_bgr(big), (2.0, 2.0))
        (x0, y0), crop = full.origins[-1], full.crops[-1]
        assert abs(crop.shape[0] - 2 * small.crops[len(full) - 1].shape[0]) <= 4  # twice the pixels each way
        assert np.abs(crop.astype(int) - big[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]).mean() < 3
    assert full.redness[-1] == pytest.approx(small.redness[len(full) - 1], abs=0.5)  # measured on the small frame
    scaled = small.scaled((2.0, 2.0))
    assert np.allclose(scaled.landmarks, scaled_points(small.landmarks, (2.0, 2.0)))
    assert scaled.crops is small.crops and np.array_equal(small.landmarks, track.bank.landmarks)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_a_whole_lipsync_of_the_talking_clip_draws_mouths_from_its_bank(tmp_path, voice):
    """The whole `lipsync()` call, end to end: the bank is built in pass 1 and draws in pass 2, and
    the report counts only frames really drawn from it. About 18 s of speech, longer than the clip
    (15.6 s): pass 1 follows a clip only as far as the audio goes, and 13 s of it hold too few clear
    mouths for a bank (measured: none drawn)."""
    import av

    from voicefake.lipsync import lipsync

    texts = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
             "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
             "The box was thrown beside the parked truck.", "Four hours of steady work faced us."]
    chunks = [c for text in texts for c in voice.synthesize(text)]
    out = tmp_path / "bank.mp4"
    report = lipsync(shared_data() / "faces" / "WolfgangLanger_Pexels.mp4", chunks, out, progress=False)
    assert report.mouth_interior == "harvested"
    assert 5 <= report.bank_frames < report.face_frames  # some from the bank, most warped as before
    with av.open(str(out)) as written:
        assert written.streams.video[0].frames == report.frames
