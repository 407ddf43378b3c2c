"""4:2:0 frames (voicefake.io.yuv): a region converted to BGR and back is exactly what converting the
whole frame gives there, and an edit writes back only the pixels it changed."""

import cv2
import numpy as np

from voicefake.io.yuv import Yuv420, changed_box, edit_region


def textured(height: int = 96, width: int = 160) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def test_a_region_converts_both_ways_exactly_as_the_whole_frame():
    frame = Yuv420.from_bgr(textured())
    whole = frame.to_bgr()
    box = (10, 6, 74, 50)
    assert np.array_equal(frame.crop_bgr(box), whole[6:50, 10:74])
    edited = whole.copy()
    edited[6:50, 10:74] = 255 - edited[6:50, 10:74]
    frame.paste_bgr(box, np.ascontiguousarray(edited[6:50, 10:74]))
    assert np.array_equal(frame.data, Yuv420.from_bgr(edited).data)


def test_an_edit_writes_back_only_what_it_changed():
    frame = Yuv420.from_bgr(textured())
    before = frame.copy()

    def dot(crop, origin):
        out = crop.copy()
        out[21 - origin[1], 31 - origin[0]] = (0, 0, 255)
        return out

    edit_region(frame, (5, 7, 101, 61), lambda crop, origin: crop)  # nothing changed: nothing written
    assert np.array_equal(frame.data, before.data)
    edit_region(frame, (5, 7, 101, 61), dot)  # an odd box: grown to whole chroma blocks
    changed = frame.to_bgr() != before.to_bgr()
    assert changed[21, 31].any() and changed.any(axis=2).sum() <= 4  # the dot's 2 x 2 chroma block at most
    assert changed_box(before.y, frame.y) == (31, 21, 32, 22)
    assert changed_box(before.y, before.y) is None


def test_a_turned_frame_is_the_turned_picture():
    frame = Yuv420.from_bgr(textured(64, 96))
    for turns in (1, 2, 3):
        assert np.array_equal(frame.rotated(turns).to_bgr(), np.rot90(frame.to_bgr(), turns))


def test_a_frame_goes_to_and_from_pyav_planes_exactly():
    """Plane by plane, past the padding PyAV puts at the end of each line (a width that is not a
    multiple of its alignment)."""
    data = np.random.default_rng(3).integers(0, 256, (3 * 90 // 2, 118), dtype=np.uint8)
    video_frame = Yuv420(data).to_video_frame()
    assert video_frame.planes[0].line_size > 118
    assert np.array_equal(video_frame.to_ndarray(format="yuv420p"), data)
    assert np.array_equal(Yuv420.from_video_frame(video_frame).data, data)
