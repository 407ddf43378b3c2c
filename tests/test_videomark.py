"""The invisible video watermark: invisible, survives H.264 CRF 28 and half size, never cries wolf."""


import av
import cv2
import numpy as np
import pytest

from bench.video_watermark import encode_decode as reencode  # the bench's H.264 round trip
from tests.helpers import draw_face
from voicefake.provenance import videomark
from voicefake.provenance.watermark import Payload

PAYLOAD = Payload(0xBEEF, 12345)


def moving_face(frames: int = 30) -> list[np.ndarray]:
    """A generated face drifting across a textured background, 480 x 320."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (320, 480, 3), dtype=np.uint8), (0, 0), 6)
    out = []
    for k in range(frames):
        frame = background.copy()
        face = draw_face(240, shift=(0, 0))
        x = 40 + 4 * k
        frame[40:280, x : x + 240] = face
        out.append(frame)
    return out


@pytest.fixture(scope="module")
def marked():
    frames = moving_face()
    return frames, [videomark.embed_frame(f, PAYLOAD) for f in frames]


@pytest.mark.slow
def test_mark_is_invisible(marked):
    frames, marks = marked
    psnr = np.mean([cv2.PSNR(a, b) for a, b in zip(frames, marks)])
    assert psnr >= 38.0, f"PSNR {psnr:.1f} dB"
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(frames, marks)) <= 10


@pytest.mark.parametrize("crf, scale", [(14, 1.0), (28, 1.0), (28, 0.5)])
def test_payload_survives_reencoding_and_downscaling(marked, crf, scale):
    found = videomark.detect_frames(reencode(marked[1], crf, scale))
    assert found.found and found.payload == PAYLOAD, found


def test_unmarked_video_is_not_flagged(marked):
    assert not videomark.detect_frames(marked[0]).found
    assert not videomark.detect_frames(reencode(marked[0], 28)).found
    rng = np.random.default_rng(1)
    for _ in range(20):  # noise and flat frames of odd sizes
        frame = rng.integers(0, 255, (int(rng.integers(64, 400)), int(rng.integers(64, 400)), 3), dtype=np.uint8)
        assert videomark.detect_frames([frame, cv2.GaussianBlur(frame, (0, 0), 3)]).score < videomark.MIN_PRESENCE
    assert not videomark.detect_frames([np.full((240, 320, 3), 128, np.uint8)]).found


@pytest.mark.needs_shared
def test_real_faces_unmarked_are_not_flagged_and_marked_are_found(shared):
    with av.open(str(shared / "data" / "faces" / "WolfgangLanger_Pexels.mp4")) as container:
        clip = [f.to_ndarray(format="bgr24") for _, f in zip(range(50), container.decode(video=0))]
    photo = cv2.imread(str(shared / "data" / "faces" / "astronaut.png"))
    assert not videomark.detect_frames(clip).found
    assert not videomark.detect_frames([photo]).found
    assert videomark.detect_frames(reencode([videomark.embed_frame(f, PAYLOAD) for f in clip], 28, 0.5)).found
    assert videomark.detect_frames(reencode([videomark.embed_frame(photo, PAYLOAD)] * 25, 28)).found


def test_a_single_frame_and_grey_frames_work(marked):
    grey = cv2.cvtColor(marked[0][3], cv2.COLOR_BGR2GRAY)
    assert videomark.embed_frame(grey, PAYLOAD).shape == grey.shape
    assert videomark.detect_frames([videomark.embed_frame(grey, PAYLOAD)]).found
    assert not videomark.detect_frames([]).found


@pytest.mark.parametrize("crf", [14, 28])
def test_the_mark_written_into_the_luma_plane_is_the_same_mark(marked, crf):
    """embed_luma (lip-sync's 4:2:0 path) changes the luma as embed_frame's BGR change would, and
    its payload is read back after H.264."""
    frames, via_bgr = marked
    height = frames[0].shape[0]
    luma = [cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420) for f in frames]
    for data in luma:
        data[:height] = videomark.embed_luma(data[:height], PAYLOAD)
    found = videomark.detect_frames(reencode([cv2.cvtColor(d, cv2.COLOR_YUV2BGR_I420) for d in luma], crf))
    assert found.found and found.payload == PAYLOAD, found
    plain = cv2.cvtColor(frames[0], cv2.COLOR_BGR2YUV_I420)[:height].astype(float)
    direct = luma[0][:height] - plain
    expected = cv2.cvtColor(via_bgr[0], cv2.COLOR_BGR2YUV_I420)[:height] - plain
    assert np.corrcoef(direct.ravel(), expected.ravel())[0, 1] > 0.8
    assert abs(np.abs(direct).mean() - np.abs(expected).mean()) < 0.2 * np.abs(expected).mean()


def test_a_marker_remakes_its_field_on_a_cut_and_every_few_frames(marked):
    """FrameMarker reuses a recent frame's field (most of the mark's cost), but never across a cut."""
    frames = marked[0]
    clip = frames[:2] + [255 - f for f in frames[2:8]]  # a cut before frame 2
    marker = videomark.FrameMarker(PAYLOAD)
    out = [marker(f) for f in clip]
    height, width = clip[0].shape[:2]

    def marked_with_field_of(k: int, frame: np.ndarray) -> np.ndarray:
        field = videomark._mark_field(videomark._canvas(clip[k]), height, width, PAYLOAD, marker.presence_only)
        return videomark._add_steps(frame, videomark._steps(field, frame.shape))

    made = [0, *range(2, len(clip), videomark.REFRESH_FRAMES)]  # the first frame, the cut, then every few
    for k in range(len(clip)):
        last = max(m for m in made if m <= k)
        assert np.array_equal(out[k], marked_with_field_of(last, clip[k])), k
    assert not np.array_equal(out[1], marked_with_field_of(1, clip[1]))  # the field was reused: it differs
    assert np.array_equal(out[0], videomark.embed_frame(clip[0], PAYLOAD, marker.presence_only))
    found = videomark.detect_frames(reencode(out, 28))
    assert found.found and found.payload == PAYLOAD, found
