"""Where lip-sync spends its time: each stage of `voicefake.lipsync()` run alone, one after another
on one thread, on the same scaled copies of the dev clip as bench/lipsync_speed.py.

Per stage: milliseconds per frame of wall-clock and of the process's CPU time (a shared machine
inflates the first, hardly the second). The stages, as the pipeline runs them on a plain 4:2:0
video: pass 1 decodes each frame to a BGR copy shrunk to pipeline.TRACK_SIDE ("decode 1") and
follows the face in it ("track"); pass 2 decodes it again, as I420 ("decode 2"), reshapes the
mouth on a BGR crop of a copy ("copy", "mouth"), draws the label ("label"), marks the luma ("watermark") and
encodes it with the soundtrack ("encode"). The real job decodes and encodes on threads of their own
and shapes two frames at once (pipeline.SHAPING_THREADS).

    .venv/bin/python bench/lipsync_stages.py [--seconds 3] [--sizes 1920x1080 3840x2160]
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lipsync_speed import bench_setup, scaled_copy  # noqa: E402


class Clock:
    """Wall and process-CPU seconds spent per stage name."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, call, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        result = call(*args)
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu
        return result

    def each(self, name: str, items):
        """The items of an iterator, the time spent making each counted under `name`."""
        items = iter(items)
        while True:
            item = self.run(name, next, items, None)
            if item is None:
                return
            yield item


def stage_times(face: Path, chunks) -> tuple[int, Clock]:
    """(frames, Clock) of each lip-sync stage over the clip at `face`, one stage at a time."""
    from voicefake.io.video import VideoWriter, iter_frames, open_face_media, shrinker, to_yuv
    from voicefake.lipsync.face import _dlib_models
    from voicefake.lipsync.pipeline import TRACK_SIDE, _audio_input, _marked_soundtrack, label_yuv, render_yuv
    from voicefake.lipsync.plan import plan_mouth
    from voicefake.lipsync.render import make_renderer, render_frame, render_region
    from voicefake.lipsync.track import FaceFollower
    from voicefake.provenance.videomark import FrameMarker

    _dlib_models()  # loaded before the clock starts
    clock = Clock()
    samples, rate, timings = _audio_input(chunks)
    samples, payload = _marked_soundtrack(samples, rate)
    media = open_face_media(face)
    shrink, factor = shrinker(media, TRACK_SIDE)
    follower = FaceFollower(harvest=True)
    for frame in clock.each("decode 1", iter_frames(media, convert=shrink)):
        clock.run("track", follower.add, frame)
    fps = float(media.fps)
    track = follower.finish(fps).scaled(factor)
    frames = list(clock.each("decode 2", iter_frames(media, convert=to_yuv)))
    plan = plan_mouth(track, samples, rate, fps, len(frames), timings)
    render = partial(render_frame, track=track, plan=plan, renderer=make_renderer("classic", track))
    region = partial(render_region, track=track, plan=plan)
    mark = FrameMarker(payload)
    out = Path(tempfile.mkdtemp(prefix="lipsync-stages-")) / "out.mp4"
    with VideoWriter(out, media.width, media.height, media.fps, samples, rate) as writer:
        for k, frame in enumerate(frames):  # as shape_frame and mark_frame do with a Yuv420 frame
            frame = clock.run("copy", frame.copy)
            clock.run("mouth", render_yuv, frame, k, render, region)
            clock.run("label", label_yuv, frame)
            frame.y[:] = clock.run("watermark", mark.mark_luma, frame.y)
            clock.run("encode", writer._encode, frame, k)  # on this thread
            writer.frames += 1
    return len(frames), clock


def main() -> None:
    args, sizes, chunks, folder = bench_setup(__doc__, 3.0, ["1920x1080", "3840x2160"], "lipsync-stages-")
    for size in sizes:
        spec = f"{size[0]}x{size[1]}"
        frames, clock = stage_times(scaled_copy(size, args.seconds, folder), chunks)
        print(f"\n{spec}, {frames} frames: ms per frame, wall (process CPU)")
        for name in clock.wall:
            print(f"  {name:10s} {1000 * clock.wall[name] / frames:7.1f} ({1000 * clock.cpu[name] / frames:7.1f})")
        total_cpu = sum(clock.cpu.values())
        print(f"  {'total':10s} {1000 * sum(clock.wall.values()) / frames:7.1f} ({1000 * total_cpu / frames:7.1f})")


if __name__ == "__main__":
    main()
