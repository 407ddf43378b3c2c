"""Frames kept as the decoder gives them, 4:2:0 (I420), so that a high-resolution video is never
converted to BGR whole: only the regions lip-sync changes (the mouth, the label) are converted to
BGR, edited, and converted back; the watermark goes into the luma plane directly.

The colours are BT.601, limited range, converted by OpenCV: the same as `to_bgr`'s plain path and
VideoWriter's encoding, so a region converted here is exactly what converting the whole frame
would give there (chroma is per 2 x 2 block, and every region starts and ends on even pixels).
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels


class Yuv420:
    """One I420 frame: `data` is OpenCV's layout, (height * 3 / 2, width) uint8: Y, then U, then V."""

    def __init__(self, data: np.ndarray):
        self.data = data
        self.height, self.width = data.shape[0] * 2 // 3, data.shape[1]

    @classmethod
    def from_planes(cls, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> Yuv420:
        """A frame made of copies of the three planes (views of another frame, e.g.)."""
        frame = cls(np.empty((y.shape[0] * 3 // 2, y.shape[1]), np.uint8))
        for plane, source in zip(frame.planes(), (y, u, v)):
            plane[:] = source
        return frame

    @classmethod
    def from_video_frame(cls, frame) -> Yuv420:
        """A decoded yuv420p `av.VideoFrame`, copied plane by plane (one copy; PyAV's to_ndarray makes two)."""
        out = cls(np.empty((frame.height * 3 // 2, frame.width), np.uint8))
        for plane, source in zip(out.planes(), frame.planes):
            plane[:] = _plane_array(source)
        return out

    def to_video_frame(self):
        """This frame as a new yuv420p `av.VideoFrame` (for the encoder), copied plane by plane."""
        import av

        out = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, target in zip(self.planes(), out.planes):
            _plane_array(target)[:] = plane
        return out

    @classmethod
    def from_bgr(cls, image: np.ndarray) -> Yuv420:
        """`image` (BGR uint8, even sides) converted."""
        return cls(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420))

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the frame as BGR, as a frame array would have it."""
        return self.height, self.width, 3

    @property
    def y(self) -> np.ndarray:
        """The luma plane (a view)."""
        return self.data[: self.height]

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Y, U, V as views: (h, w), (h/2, w/2), (h/2, w/2)."""
        h, w = self.height, self.width
        chroma = self.data[h:].reshape(2, h // 2, w // 2)
        return self.data[:h], chroma[0], chroma[1]

    def copy(self) -> Yuv420:
        return Yuv420(self.data.copy())

    def to_bgr(self) -> np.ndarray:
        return cv2.cvtColor(self.data, cv2.COLOR_YUV2BGR_I420)

    def rotated(self, quarter_turns: int) -> Yuv420:
        """The frame turned counter-clockwise by 90 degrees `quarter_turns` times."""
        if quarter_turns % 4 == 0:
            return self
        return Yuv420.from_planes(*(np.ascontiguousarray(np.rot90(p, quarter_turns)) for p in self.planes()))

    def crop(self, box: Box) -> Yuv420:
        """The region `box` (even edges), copied."""
        x0, y0, x1, y1 = box
        y, u, v = self.planes()
        half = slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2)
        return Yuv420.from_planes(y[y0:y1, x0:x1], u[half], v[half])

    def crop_bgr(self, box: Box) -> np.ndarray:
        """The region `box` (even edges) as BGR."""
        return self.crop(box).to_bgr()

    def paste_bgr(self, box: Box, image: np.ndarray) -> None:
        """Write BGR `image` (even sides) into the region `box` (even edges), in place."""
        x0, y0, x1, y1 = box
        part = Yuv420.from_bgr(image).planes()
        for plane, new, step in zip(self.planes(), part, (1, 2, 2)):
            plane[y0 // step : y1 // step, x0 // step : x1 // step] = new


def _plane_array(plane) -> np.ndarray:
    """A view of an `av.VideoPlane`'s pixels, without the padding at the end of each line."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def even_box(box: Box, width: int, height: int) -> Box:
    """`box` grown to even edges (whole chroma blocks) and clipped to a picture of this (even) size."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return max(0, x0 // 2 * 2), max(0, y0 // 2 * 2), min(width, -(-x1 // 2) * 2), min(height, -(-y1 // 2) * 2)


def edit_region(frame: Yuv420, box: Box, edit) -> None:
    """Let `edit(bgr, (x0, y0)) -> bgr` change the region `box` of `frame`, in place: it gets the
    region as BGR (and must not change it) and the region's corner; the rectangle of pixels it
    changed, to whole chroma blocks, is converted back. The rest of the frame stays as decoded."""
    x0, y0, x1, y1 = box = even_box(box, frame.width, frame.height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    before = frame.crop_bgr(box)
    after = edit(before, (x0, y0))
    changed = None if after is before else changed_box(before, after)
    if changed is not None:
        cx0, cy0, cx1, cy1 = even_box(changed, x1 - x0, y1 - y0)
        frame.paste_bgr((x0 + cx0, y0 + cy0, x0 + cx1, y0 + cy1), np.ascontiguousarray(after[cy0:cy1, cx0:cx1]))


def changed_box(before: np.ndarray, after: np.ndarray) -> Box | None:
    """The smallest box holding every pixel that differs between two images of one size, or None."""
    height, width = before.shape[:2]
    differs = cv2.absdiff(before, after).reshape(height, -1)  # 2-D max() is fast; any() over channels is not
    rows = np.flatnonzero(differs.max(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(differs.max(axis=0).reshape(width, -1).max(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
