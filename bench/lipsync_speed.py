"""Lip-sync speed by resolution: the whole `voicefake.lipsync()` call on the same clip at 640x360,
1920x1080 and 3840x2160, as frames per second and as a ratio to the 640x360 run in this process.

The input is the dev clip (../shared/data/faces/WolfgangLanger_Pexels.mp4), 5 s of it, scaled
up with bicubic interpolation and encoded once (H.264, crf 18) before any timing; the speech is
the bundled voice. Goals (issue 15): 1080p >= 25 fps, 4K >= 10 fps on 2 cores.

    .venv/bin/python bench/lipsync_speed.py [--seconds 5] [--sizes 640x360 1920x1080 3840x2160]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "faces" / "WolfgangLanger_Pexels.mp4"
TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."


def scaled_copy(size: tuple[int, int], seconds: float, folder: Path) -> Path:
    """The dev clip's first `seconds`, resized to `size` and encoded: the input every run reads."""
    import av
    import cv2

    out = folder / f"input-{size[0]}x{size[1]}.mp4"
    with av.open(str(CLIP)) as source, av.open(str(out), "w") as target:
        fps = source.streams.video[0].average_rate
        stream = target.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index, frame in enumerate(source.decode(video=0)):
            if index >= seconds * float(fps):
                break
            image = cv2.resize(frame.to_ndarray(format="bgr24"), size, interpolation=cv2.INTER_CUBIC)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return out


def timed_run(face: Path, chunks, out: Path) -> tuple[int, float]:
    """(frames written, seconds) of one whole lip-sync call."""
    import voicefake

    started = time.perf_counter()
    report = voicefake.lipsync(face, chunks, out, progress=False)
    return report.frames, time.perf_counter() - started


def bench_setup(doc: str, seconds: float, sizes: list[str], prefix: str):
    """The command line of a lip-sync speed bench (--seconds, --sizes), its speech and a scratch
    folder: (args, sizes as (width, height), the bundled voice's chunks, folder)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=seconds, help=f"length of the input clip (default {seconds:g})")
    parser.add_argument("--sizes", nargs="+", default=sizes)
    args = parser.parse_args()
    if not CLIP.is_file():
        sys.exit(f"bench needs the dev clip {CLIP}")
    os.environ["VOICEFAKE_HOME"] = tempfile.mkdtemp(prefix="voicefake-bench-")
    import voicefake

    chunks = list(voicefake.load_voice().synthesize(TEXT))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    return args, sizes, chunks, Path(tempfile.mkdtemp(prefix=prefix))


def main() -> None:
    args, sizes, chunks, folder = bench_setup(__doc__, 5.0, ["640x360", "1920x1080", "3840x2160"], "lipsync-speed-")
    inputs = {size: scaled_copy(size, args.seconds, folder) for size in sizes}
    timed_run(inputs[sizes[0]], chunks, folder / "warm-up.mp4")  # models loaded, caches warm
    print(f"{sum(c.duration for c in chunks):.1f} s of speech; {os.cpu_count()} CPU cores\n")
    print("| input | frames | seconds | fps (whole process) | vs first size |")
    print("|---|---|---|---|---|")
    reference = None
    for size in sizes:
        frames, seconds = timed_run(inputs[size], chunks, folder / f"out-{size[0]}x{size[1]}.mp4")
        fps = frames / seconds
        reference = reference or fps
        print(f"| {size[0]}x{size[1]} | {frames} | {seconds:.1f} | {fps:.1f} | {fps / reference:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
