"""Video watermark: invisible, and still found after H.264 CRF 28 and a half-size downscale.

    .venv/bin/python bench/video_watermark.py [--segments 12]

Cuts 2 s segments (50 frames) from the real clip in ../shared/data/faces and makes still
"videos" of the portrait (several sizes, mirrored), marks each with a random payload the way
lip-sync does (videomark.FrameMarker), re-encodes them, and reports the detection rate, how
often the payload itself is read back, the picture quality (PSNR against the unmarked frames)
and the cost per frame; unmarked copies of the same segments under the same re-encodings give
the false-positive side (the detector's z-score: unmarked video should sit near N(0, 1)).
"""

import argparse
import io
import time
from pathlib import Path

import av
import cv2
import numpy as np

from voicefake.provenance import videomark
from voicefake.provenance.watermark import Payload

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
SEGMENT = 50  # frames: 2 s at 25 fps
TRANSFORMS = {"as written (CRF 14)": (14, 1.0), "CRF 28": (28, 1.0), "CRF 28, half size": (28, 0.5)}


def encode_decode(frames: list[np.ndarray], crf: int, scale: float = 1.0) -> list[np.ndarray]:
    """An H.264 (yuv420p) round trip at `crf`, after resizing by `scale`."""
    h, w = frames[0].shape[:2]
    w2, h2 = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            frame = cv2.resize(frame, (w2, h2), interpolation=cv2.INTER_AREA)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def segments(count: int) -> list[tuple[str, list[np.ndarray]]]:
    """Real-clip segments (moving) and portrait stills (static) for the bench."""
    out = []
    with av.open(str(FACES / "WolfgangLanger_Pexels.mp4")) as container:
        clip = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    clip = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in clip]  # 1080p -> 540p
    for start in np.linspace(0, len(clip) - SEGMENT, count).astype(int):
        out.append(("clip", clip[start : start + SEGMENT]))
    portrait = cv2.imread(str(FACES / "astronaut.png"))
    for size in (384, 512, 768):
        for flip in (False, True):
            still = cv2.resize(portrait, (size, size), interpolation=cv2.INTER_AREA)
            out.append(("portrait", [cv2.flip(still, 1) if flip else still] * SEGMENT))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=12, help="segments of the real clip")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: dict = {}
    null_scores, psnr, cost = [], {"clip": [], "portrait": []}, []
    for kind, frames in segments(args.segments):
        payload = Payload(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 20)))
        marker = videomark.FrameMarker(payload)
        started = time.perf_counter()
        marked = [marker(f) for f in frames]
        cost.append((time.perf_counter() - started) / len(frames) * 1000)
        psnr[kind].append(np.mean([cv2.PSNR(a, b) for a, b in zip(frames, marked)]))
        for name, (crf, scale) in TRANSFORMS.items():
            found = videomark.detect_frames(encode_decode(marked, crf, scale))
            row = results.setdefault((kind, name), {"found": 0, "payload": 0, "n": 0, "z": []})
            row["n"] += 1
            row["found"] += found.found
            row["payload"] += found.payload == payload
            row["z"].append(found.score)
            null_scores.append(videomark.detect_frames(encode_decode(frames, crf, scale)).score)
    print("| source | transform | detected | payload read | z-score (median) |\n|---|---|---|---|---|")
    for (kind, name), row in results.items():
        print(f"| {kind} | {name} | {row['found']}/{row['n']} | {row['payload']}/{row['n']} | {np.median(row['z']):.1f} |")
    null = np.array(null_scores)
    flagged = int((null >= videomark.MIN_PRESENCE).sum())
    print(f"\nunmarked: {flagged}/{len(null)} flagged; z mean {null.mean():.2f}, std {null.std():.2f}, max {null.max():.2f}"
          f" (threshold {videomark.MIN_PRESENCE})")
    print(f"PSNR vs unmarked: clip {np.mean(psnr['clip']):.1f} dB, portrait {np.mean(psnr['portrait']):.1f} dB")
    print(f"marking cost: {np.median(cost):.1f} ms per frame (median)")


if __name__ == "__main__":
    main()
