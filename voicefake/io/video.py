"""Video in and out with PyAV (FFmpeg inside the wheel): stream frames, never hold a whole video.

Reading: a photo or any video FFmpeg decodes; frames come as BGR uint8 arrays in display order,
optionally in an arbitrary order of indices (for ping-pong looping) with bounded memory.
Writing: H.264 + AAC mp4 into a hidden file beside the target, renamed into place only on success.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from voicefake.errors import VoicefakeError
from voicefake.io.atomic import atomic_output, check_writable, output_error
from voicefake.io.yuv import Yuv420
from voicefake.provenance import manifest as provenance

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v"}
STILL_FPS = Fraction(25)  # a photo becomes a video at this rate
MAX_SIDE = 4096  # "up to 4K": larger inputs are refused rather than exhausting memory
BLOCK_BYTES = 64 * 2**20  # frames held at once when playing a video backwards


@dataclass
class FaceMedia:
    """A photo or a video to lip-sync, as probed (frame count is exact once `scan` has run)."""

    path: Path
    still: bool
    width: int
    height: int
    fps: Fraction
    frames: int
    rotation: int = 0  # degrees counter-clockwise the frames must be turned to display upright
    plain: bool = False  # even-sized BT.601 limited-range 4:2:0 (or a photo of even sides): to_yuv costs nothing
    pts: list = field(default_factory=list)  # presentation time of each frame, for seeking

    @property
    def duration(self) -> float:
        """Length in seconds (a photo: 0)."""
        return 0.0 if self.still else self.frames / float(self.fps)


def open_face_media(path: str | os.PathLike) -> FaceMedia:
    """Probe a photo or a video; a clear error for anything else."""
    import cv2

    from voicefake.io.media import check_input_file

    path = check_input_file(path, "face", "a video or a photo showing a face")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.suffix.lower() in IMAGE_EXTS else None
    if image is not None:
        h, w = image.shape[:2]
        _check_size(path, w, h)
        return FaceMedia(path, True, w, h, STILL_FPS, 1, plain=w % 2 == 0 and h % 2 == 0)
    import av

    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams.video if not _is_cover_art(s)]
            if not streams:
                raise VoicefakeError(
                    f"{path} has no video: give a video (mp4, mov, webm, avi, mkv) or a photo (png, jpg)"
                )
            stream = streams[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
            frames = stream.frames  # from the header; some containers (webm, mkv) leave it 0
            if not frames and stream.duration and stream.time_base:
                frames = int(round(float(stream.duration * stream.time_base * fps)))
            rotation, plain = 0, False
            for frame in container.decode(stream):  # one frame: proves it decodes, tells the rotation
                rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
                plain = _plain_i420(frame)
                break
            else:
                raise VoicefakeError(f"{path} has a video stream with no frames")
    except VoicefakeError:
        raise
    except Exception as error:  # FFmpeg's own errors: not a media file, truncated, unknown codec
        image_hint = " (or an image OpenCV cannot read)" if path.suffix.lower() in IMAGE_EXTS else ""
        raise VoicefakeError(f"{path} is not an image or a video{image_hint}: {_short(error)}") from error
    if rotation in (90, 270):
        w, h = h, w
    _check_size(path, w, h)
    if fps <= 0 or fps > 240:
        fps = Fraction(25)
    fps = Fraction(fps).limit_denominator(100000)
    return FaceMedia(path, False, w, h, fps, int(frames or 0), rotation, plain=plain and rotation % 90 == 0)


def _is_cover_art(stream) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except AttributeError:
        return False


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:160] if str(error) else type(error).__name__


def _check_size(path: Path, w: int, h: int) -> None:
    if not w or not h:
        raise VoicefakeError(f"{path}: the video has no picture size")
    if max(w, h) > MAX_SIDE:
        raise VoicefakeError(
            f"{path} is {w}x{h}: frames up to 4K ({MAX_SIDE} px a side) are supported; scale it down first"
        )


def _upright(image, rotation: int):
    if image is None:  # no full-size frame kept (see shrinker)
        return None
    if isinstance(image, tuple):  # a shrunk frame and its full-size original
        return tuple(_upright(part, rotation) for part in image)
    if isinstance(image, Yuv420):
        return image.rotated(rotation // 90)
    if rotation == 90:
        return np.ascontiguousarray(np.rot90(image, 1))
    if rotation == 180:
        return np.ascontiguousarray(image[::-1, ::-1])
    if rotation == 270:
        return np.ascontiguousarray(np.rot90(image, 3))
    return image


def _plain_i420(frame) -> bool:
    """Even-sized limited-range 4:2:0, BT.601 or untagged: what OpenCV converts, both ways, exactly."""
    return (
        frame.format.name == "yuv420p"
        and frame.width % 2 == 0
        and frame.height % 2 == 0
        and frame.color_range != 2
        and frame.colorspace in (0, 2, 5, 6)
    )


def to_bgr(frame) -> np.ndarray:
    """A decoded frame as BGR uint8. Plain limited-range 4:2:0 (nearly every video) is converted by
    OpenCV, exactly the inverse of how VideoWriter encodes (FFmpeg's default converter is off by
    1-4 levels each way, enough to show as a colour shift after a round trip)."""

    if _plain_i420(frame):
        return Yuv420.from_video_frame(frame).to_bgr()
    if frame.colorspace == 1:  # BT.709 (HD): tell FFmpeg, which assumes BT.601 otherwise
        return frame.reformat(format="bgr24", src_colorspace="ITU709", dst_colorspace="ITU601").to_ndarray()
    return frame.to_ndarray(format="bgr24")


def to_yuv(frame) -> Yuv420:
    """A decoded frame as I420 (BT.601, limited range): as decoded where it is plain, no conversion."""
    if _plain_i420(frame):
        return Yuv420.from_video_frame(frame)
    return Yuv420.from_bgr(to_bgr(frame))


def shrinker(media: FaceMedia, side: int, keep_full: bool = False):
    """A converter of decoded frames to BGR, shrunk (INTER_AREA, by a whole factor) to fit `side`: the full-size
    frame is never converted; and the factor (x, y) from the shrunk, upright frame back to full size.
    `keep_full`: every frame comes as (shrunk BGR, the full frame): the Yuv420 as decoded where a plain
    4:2:0 frame was shrunk, else None; for what must be cut out of it at full size (the mouth bank's mouths)."""
    import cv2

    # by a whole factor: OpenCV's INTER_AREA is several times faster then, and as good
    scale = 1.0 if media.still else 1.0 / -(-max(media.width, media.height) // side)
    width, height = max(2, round(media.width * scale / 2) * 2), max(2, round(media.height * scale / 2) * 2)
    factor = (media.width / width, media.height / height)
    if media.rotation in (90, 270):
        width, height = height, width  # the frames as stored, before they are turned upright

    def shrink(frame):
        return shrunk_and_full(frame) if keep_full else shrunk_and_full(frame)[0]

    def shrunk_and_full(frame) -> tuple[np.ndarray, Yuv420 | None]:
        if scale == 1.0:
            return to_bgr(frame), None
        if not _plain_i420(frame):
            return cv2.resize(to_bgr(frame), (width, height), interpolation=cv2.INTER_AREA), None
        full = Yuv420.from_video_frame(frame)
        small = [cv2.resize(p, (width // s, height // s), interpolation=cv2.INTER_AREA)
                 for p, s in zip(full.planes(), (1, 2, 2))]
        return Yuv420.from_planes(*small).to_bgr(), full

    return shrink, factor


def iter_frames(media: FaceMedia, record: bool = False, convert=to_bgr) -> Iterator:
    """Every frame in display order (a photo: once), each made by `convert` (to_bgr, to_yuv, a
    shrinker) and turned upright. `record` notes each frame's timestamp and the count."""
    import cv2

    if media.still:
        image = cv2.imread(str(media.path), cv2.IMREAD_COLOR)
        yield Yuv420.from_bgr(image) if convert is to_yuv else image
        return
    import av

    if record:
        media.pts = []
    count = 0
    with av.open(str(media.path)) as container:
        stream = next(s for s in container.streams.video if not _is_cover_art(s))
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if record:
                media.pts.append(frame.pts)
            count += 1
            yield _upright(convert(frame), media.rotation)
    if record:
        media.frames = count


def sample_frames(media: FaceMedia, count: int, after: float = 0.0, convert=to_bgr) -> Iterator:
    """About `count` frames spread evenly over the video from `after` seconds on, each found by a
    seek to the keyframe before its time: a cheap look at parts of a video not decoded in full."""
    import av

    if media.still or count <= 0:
        return
    with av.open(str(media.path)) as container:
        stream = next(s for s in container.streams.video if not _is_cover_art(s))
        if not stream.time_base:
            return
        end = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        if end <= after:
            return
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        for t in np.linspace(after, end, count + 2)[1:-1]:
            try:
                container.seek(int((start + t) / stream.time_base), stream=stream, backward=True, any_frame=False)
                frame = next(container.decode(stream), None)
            except (av.error.FFmpegError, StopIteration):
                continue
            if frame is not None:
                yield _upright(convert(frame), media.rotation)


def frames_in_order(media: FaceMedia, order: Sequence[int], convert=to_bgr) -> Iterator:
    """Frames at the given indices, e.g. a ping-pong 0..N-1, N-2..0, 1.. sequence, each made by
    `convert` (to_bgr or to_yuv; the same object may come more than once: do not change it).

    Forward runs stream; backward runs are decoded in blocks of at most BLOCK_BYTES, from the
    keyframe before each block, and played in reverse: memory stays bounded whatever the length.
    """
    import cv2

    if media.still:
        image = cv2.imread(str(media.path), cv2.IMREAD_COLOR)
        image = Yuv420.from_bgr(image) if convert is to_yuv else image
        for _ in order:
            yield image
        return
    k = 0
    while k < len(order):
        step = 1 if k + 1 >= len(order) or order[k + 1] >= order[k] else -1
        end = k + 1
        while end < len(order) and order[end] - order[end - 1] == step:
            end += 1
        run = order[k:end]
        if step == 1:
            yield from _forward(media, run[0], len(run), convert)
        else:
            yield from _backward(media, run[-1], run[0], convert)
        k = end


def _seek_decode(media: FaceMedia, first: int, convert=to_bgr) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) from frame `first` on, seeking to the keyframe before it when timestamps allow."""
    import av

    with av.open(str(media.path)) as container:
        stream = next(s for s in container.streams.video if not _is_cover_art(s))
        stream.thread_type = "AUTO"
        index_of = {}
        if first > 0 and len(media.pts) == media.frames and None not in media.pts[: first + 1]:
            index_of = {p: i for i, p in enumerate(media.pts)}
            container.seek(media.pts[first], stream=stream, backward=True, any_frame=False)
        index = 0
        for frame in container.decode(stream):
            if index_of:
                if frame.pts not in index_of:
                    continue
                index = index_of[frame.pts]
                if index > first:  # the seek overshot (an odd container): decode from the start
                    yield from _seek_decode_from_start(media, first, convert)
                    return
                index_of = {}
            if index >= first:
                yield index, _upright(convert(frame), media.rotation)
            index += 1


def _seek_decode_from_start(media: FaceMedia, first: int, convert) -> Iterator[tuple[int, np.ndarray]]:
    import av

    with av.open(str(media.path)) as container:
        stream = next(s for s in container.streams.video if not _is_cover_art(s))
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= first:
                yield index, _upright(convert(frame), media.rotation)


def _forward(media: FaceMedia, first: int, count: int, convert) -> Iterator[np.ndarray]:
    produced = 0
    last = None
    for _, frame in _seek_decode(media, first, convert):
        last = frame
        yield frame
        produced += 1
        if produced == count:
            return
    while produced < count and last is not None:  # fewer frames than the scan counted: hold the last
        yield last
        produced += 1


def _backward(media: FaceMedia, low: int, high: int, convert) -> Iterator[np.ndarray]:
    """Frames high, high-1, ..., low."""
    frame_bytes = media.width * media.height * (3 if convert is to_bgr else 1.5)  # to_yuv: 4:2:0, half of BGR
    per_block = max(1, int(BLOCK_BYTES // max(1, frame_bytes)))  # fewer blocks, fewer decodes from a keyframe
    top = high
    while top >= low:
        bottom = max(low, top - per_block + 1)
        block = []
        for index, frame in _seek_decode(media, bottom, convert):
            block.append(frame)
            if index >= top:
                break
        while len(block) < top - bottom + 1 and block:
            block.append(block[-1])
        yield from reversed(block)
        top = bottom - 1


def prefetch(frames: Iterator, depth: int = 3) -> Iterator:
    """Run a frame iterator on a worker thread, `depth` frames ahead (decoding works without the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((end, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            q.put((end, error))

    worker = threading.Thread(target=produce, name="voicefake-decoder", daemon=True)
    worker.start()
    try:
        while True:
            item, error = q.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def map_in_order(work, items: Iterator, threads: int, ahead: int = 2) -> Iterator:
    """`work(item, index)` for each item, on `threads` worker threads at once (at most `threads` *
    `ahead` in flight), yielded in the items' order. One thread: no pool, called here."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    if threads <= 1:
        yield from (work(item, index) for index, item in enumerate(items))
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="voicefake-worker")
    pending: deque = deque()
    try:
        for index, item in enumerate(items):
            pending.append(pool.submit(work, item, index))
            if len(pending) >= threads * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # the consumer stopped early, or a work item failed
            future.cancel()
        pool.shutdown(wait=True)


def ping_pong(frames: int, count: int) -> list[int]:
    """Indices of `count` output frames from a clip of `frames`: forward, then back, and so on."""
    if frames <= 1:
        return [0] * count
    period = 2 * frames - 2
    return [(k % period) if (k % period) < frames else period - (k % period) for k in range(count)]


# ---------------------------------------------------------------- writing


def check_video_output(path: str | os.PathLike) -> Path:
    """Fail before any work if `path` cannot receive an mp4."""
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise VoicefakeError(f"the output must be an .mp4 file (H.264 + AAC), not {path.name!r}")
    return check_writable(path, "out.mp4")


class VideoWriter:
    """H.264 (yuv420p) + AAC mp4 that appears at `path` only when closed without error.

    Frames and audio are interleaved as they come; `quality` is x264's CRF (lower is better); `preset`
    x264's, by default the one PRESETS gives for the frame size.
    Before the rename the file is tagged as AI-generated and gets a signed C2PA manifest (provenance.py).
    """

    AUDIO_RATE = 48000
    # x264's preset by frame size (pixels up to): past 720p the encoder is most of a lip-sync's time.
    # At CRF 14 ultrafast keeps the picture (luma PSNR to the frames it was given 51-55 dB, as
    # veryfast) and pays in size: about 3.2x veryfast's files, for a quarter of its CPU time at 1080p.
    PRESETS = ((1280 * 720, "veryfast"), (MAX_SIDE * MAX_SIDE, "ultrafast"))

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction,
        audio: np.ndarray,
        sample_rate: int,
        quality: int = 14,
        preset: str | None = None,
        *,
        voice: str | None = None,
    ):
        self.path = check_video_output(path)
        self.voice = voice  # recorded in the tags and the C2PA manifest when given
        self.width, self.height = width + width % 2, height + height % 2  # 4:2:0 needs even sizes
        self.fps = Fraction(fps)
        self.quality = quality
        self.preset = preset or next(name for pixels, name in self.PRESETS if self.width * self.height <= pixels)
        import soxr

        audio = np.asarray(audio, dtype=np.float32)
        if sample_rate != self.AUDIO_RATE and len(audio):
            audio = soxr.resample(audio, sample_rate, self.AUDIO_RATE).astype(np.float32)
        self.audio = np.clip(audio, -1.0, 1.0)
        self.frames = 0
        self._audio_pos = 0
        self._tmp: str | None = None
        self._output: atomic_output | None = None
        self._container = None
        self._worker: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._error: Exception | None = None

    def __enter__(self) -> VideoWriter:
        import av

        self.created = provenance.now_utc()
        try:
            self._output = atomic_output(self.path)
            self._tmp = str(self._output.__enter__())
            self._container = av.open(self._tmp, "w", format="mp4", options={"movflags": "+faststart"})
            video = self._container.add_stream("libx264", rate=self.fps)
            video.width, video.height = self.width, self.height
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(self.quality), "preset": self.preset}  # time base: 1/fps, set by PyAV
            video.codec_context.colorspace = 6  # BT.601 matrix (what OpenCV's conversion uses), limited range
            video.codec_context.color_range = 1
            audio = self._container.add_stream("aac", rate=self.AUDIO_RATE)
            audio.layout = "mono"
            audio.bit_rate = 128000
            self._video, self._audio_stream = video, audio
        except BaseException as error:
            self._discard()
            if isinstance(error, Exception):
                raise output_error(self.path, error) from error
            raise
        return self

    def write(self, frame: np.ndarray | Yuv420) -> None:
        """Append one BGR uint8 frame, or a Yuv420 one (of the size given at creation; it is encoded as it is).

        Encoding runs on a worker thread (FFmpeg works without the GIL), so the caller can render the
        next frame meanwhile; at most a few frames wait in between.
        """
        if self._error is not None:
            raise self._error
        if self._worker is None:
            self._queue = queue.Queue(maxsize=4)
            self._worker = threading.Thread(target=self._encode_loop, name="voicefake-encoder", daemon=True)
            self._worker.start()
        self._queue.put(frame)
        self.frames += 1

    def _encode_loop(self) -> None:
        encoded = 0
        while True:
            frame = self._queue.get()
            if frame is None or self._error is not None:
                return
            try:
                self._encode(frame, encoded)
                encoded += 1
            except Exception as error:  # reported to the writing thread on its next call
                self._error = output_error(self.path, error)

    def _encode(self, frame: np.ndarray | Yuv420, index: int) -> None:
        import cv2

        if not isinstance(frame, Yuv420):
            if frame.shape[1] != self.width or frame.shape[0] != self.height:
                frame = np.pad(
                    frame, ((0, self.height - frame.shape[0]), (0, self.width - frame.shape[1]), (0, 0)), mode="edge"
                )
            frame = Yuv420(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420))
        out = frame.to_video_frame()
        out.pts = index
        for packet in self._video.encode(out):
            self._container.mux(packet)
        self._write_audio_until(int(round((index + 1) / self.fps * self.AUDIO_RATE)))

    def _finish_worker(self) -> None:
        if self._worker is not None:
            while self._worker.is_alive():  # hand over the end marker without blocking on a dead worker
                try:
                    self._queue.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue
            self._worker.join()
            self._worker = None

    def _write_audio_until(self, sample: int) -> None:
        import av

        sample = min(sample, len(self.audio))
        step = 1024
        while self._audio_pos + step <= sample or (sample == len(self.audio) and self._audio_pos < sample):
            chunk = self.audio[self._audio_pos : self._audio_pos + step]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.AUDIO_RATE
            frame.pts = self._audio_pos
            frame.time_base = Fraction(1, self.AUDIO_RATE)
            for packet in self._audio_stream.encode(frame):
                self._container.mux(packet)
            self._audio_pos += len(chunk)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self._error = self._error or VoicefakeError("stopped")  # the worker drops what is queued
            self._finish_worker()
            if exc_type is None:
                if self._error is not None:
                    raise self._error
                if self.frames == 0:
                    raise VoicefakeError(f"nothing to write to {self.path}: no frames were produced")
                self._write_audio_until(len(self.audio))
                for packet in self._video.encode(None):
                    self._container.mux(packet)
                for packet in self._audio_stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
                self._container = None
                provenance.tag_file(self._tmp, ".mp4", provenance.make_tags("video", self.voice, self.created))
                provenance.sign(self._tmp, ".mp4", title=self.path.name, kind="video", voice=self.voice,
                                created=self.created)
                self._output.commit()
        except Exception as error:
            raise output_error(self.path, error) from error
        finally:
            self._discard()

    def _discard(self) -> None:
        """Drop the partial file. Never waits on the encoder: a second Ctrl-C (or signal) while
        `_finish_worker` joins it lands here with the worker still running, and closing the
        container under it could crash FFmpeg, so then the container is left to the process exit."""
        worker_busy = self._worker is not None and self._worker.is_alive()
        if self._container is not None and not worker_busy:
            try:
                self._container.close()
            except Exception:  # already failing: the partial file is deleted next anyway
                pass
            self._container = None
        if self._output is not None:
            self._output.discard()
