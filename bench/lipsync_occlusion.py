"""Lip-sync with fingers over half the mouth: do the fingers come out as they went in?

    .venv/bin/python bench/lipsync_occlusion.py            # both shared faces, ~8 s of speech
    .venv/bin/python bench/lipsync_occlusion.py --seconds 4

For each face in ../shared/data/faces (the portrait; the clip's frames, in order) three skin-coloured
fingers are drawn over one half of the mouth in every frame, where a clean tracking pass found the
mouth: shaded like round fingers, dark grooves between them, the face's own cheek colour (the
hardest case: the occluder looks like the face). The occluded face is lip-synced to the bundled
voice, and each output frame is compared with its occluded input frame:

- occluder change: the 95th percentile of |output - input| (max over BGR) over the finger pixels
  of the frame near the mouth (a box of the mouth's width around it); the goal is <= 6 levels
  of 255 (codec noise). The same figure for a codec-only
  copy (the occluded input encoded at the same quality) says what the codec alone costs, and
  a lip-sync to silence (no mouth redrawn: the visible label, the video mark and the codec) what
  everything but the new mouth costs.
- the open half: the mean change over the uncovered half of the lips, to show the mouth moved.

The "before" run draws the new mouth with the per-pixel occlusion mask switched off.
"""

from __future__ import annotations

import argparse
import importlib
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "faces"
GOAL = 6.0
TEXT = (
    "Maybe we should open up a bottle of wine, or bake a big blueberry pie. "
    "The weather is lovely today, so we will walk along the beach and watch the waves."
)


def fingers(frame: np.ndarray, points: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """`frame` with three fingers rising from below over one half of the mouth; and their pixel mask."""
    h, w = frame.shape[:2]
    left, right = points[48], points[54]
    centre, width = (left + right) / 2, float(np.hypot(*(right - left)))
    cheek = points[29].astype(int) + [int((points[2][0] - points[30][0]) / 2), 0]
    tone = frame[cheek[1] - 3 : cheek[1] + 4, cheek[0] - 3 : cheek[0] + 4].reshape(-1, 3).mean(axis=0)
    mask, shade = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    finger = 0.27 * width
    for k, lift in enumerate((0.1, 0.0, 0.15)):
        cx = centre[0] + side * (0.05 * width + (k + 0.5) * finger)
        tip = centre[1] - (0.45 - lift) * width + finger / 2
        one = np.zeros((h, w), np.uint8)
        bottom = int(centre[1] + 1.2 * width)  # a hand, not poles: it ends below the chin
        cv2.rectangle(one, (int(cx - finger / 2 + 1), int(tip)), (int(cx + finger / 2 - 1), bottom), 255, -1)
        cv2.ellipse(one, (int(cx), int(tip)), (int(finger / 2 - 1), int(finger / 2)), 0, 180, 360, 255, -1)
        across = np.clip((np.arange(w)[None, :] - cx) / (finger / 2), -1, 1)
        shade = np.where(one > 0, 0.75 + 0.3 * np.cos(across * np.pi / 2), shade)
        mask[one > 0] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 0.8)[..., None]
    grain = np.random.default_rng(0).normal(0, 1.5, (h, w, 1))  # skin grain
    hand = tone * shade[..., None] * 1.05 + grain
    out = np.clip(frame * (1 - mask) + hand * mask, 0, 255).astype(np.uint8)
    near = np.zeros((h, w), bool)  # judged near the mouth, where the new mouth could land on it
    near[
        max(0, int(centre[1] - 0.6 * width)) : int(centre[1] + 0.8 * width),
        max(0, int(left[0] - 0.5 * width)) : int(right[0] + 0.5 * width),
    ] = True
    return out, (mask[..., 0] > 0.99) & near


def read_frames(path: Path, count: int) -> tuple[list[np.ndarray], Fraction]:
    from voicefake.io.video import frames_in_order, open_face_media

    media = open_face_media(path)
    return list(frames_in_order(media, range(count if media.still else min(count, media.frames)))), media.fps


def write_frames(path: Path, frames: list[np.ndarray], fps: Fraction, quality: int) -> Path:
    from voicefake.io.video import VideoWriter

    silence = np.zeros(int(len(frames) / fps * VideoWriter.AUDIO_RATE), np.float32)
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, fps, silence, VideoWriter.AUDIO_RATE, quality=quality) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def occluded_input(face: Path, seconds: float, out: Path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """The face with fingers drawn in (a png, or an mp4 at CRF 1), its frames and their finger masks."""
    from voicefake.lipsync.face import detect_faces

    still = face.suffix.lower() == ".png"
    frames, fps = read_frames(face, 1 if still else int(seconds * 30) + 30)
    covered, masks = [], []
    for k, frame in enumerate(frames):
        faces = detect_faces(frame)
        side = -1 if (k // 50) % 2 == 0 else 1  # the hand changes sides every 2 s
        drawn, mask = fingers(frame, faces[0], side) if faces else (frame, np.zeros(frame.shape[:2], bool))
        covered.append(drawn)
        masks.append(mask)
    if still:
        path = out / f"{face.stem}-fingers.png"
        cv2.imwrite(str(path), covered[0])
        return path, covered, masks
    path = write_frames(out / f"{face.stem}-fingers.mp4", covered, fps, quality=1)
    return path, read_frames(path, len(covered))[0], masks


def codec_copy(frames: list[np.ndarray], out: Path) -> list[np.ndarray]:
    """The frames through the H.264 encoder at lip-sync's own quality, and back."""
    return read_frames(write_frames(out / "codec-copy.mp4", frames, Fraction(25), quality=14), len(frames))[0]


def silent_copy(path: Path, seconds: float, out: Path) -> list[np.ndarray]:
    """Lip-sync to silence: no mouth is redrawn, so this is the label, the video mark and the codec alone."""
    import voicefake

    result = out / "silent.mp4"
    report = voicefake.lipsync(path, (np.zeros(int(seconds * 16000), np.float32), 16000), result, progress=False)
    return read_frames(result, report.frames)[0]


def p95_change(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.percentile(np.abs(a.astype(np.int16) - b).max(axis=2)[mask], 95)) if mask.any() else np.nan


def judge(name: str, outputs, inputs, masks, synced, codec, silent) -> dict:
    pick = lambda k: pick_input(k, inputs)  # noqa: E731 - a photo is one input frame
    shown = [k for k in range(len(outputs)) if synced[k] and masks[pick(k)].any()]
    changes = np.array([p95_change(outputs[k], inputs[pick(k)], masks[pick(k)]) for k in shown])
    noise = np.array([p95_change(codec[pick(k)], inputs[pick(k)], masks[pick(k)]) for k in shown])
    marked = np.array([p95_change(silent[k], inputs[pick(k)], masks[pick(k)]) for k in shown])
    return {
        "face": name,
        "frames": len(shown),
        "median p95": float(np.median(changes)),
        "frames <= 6": float(np.mean(changes <= GOAL)),
        "worst p95": float(changes.max()),
        "codec median p95": float(np.median(noise)),
        "silent median p95": float(np.median(marked)),
    }


def run(face: Path, speech, seconds: float, out: Path, masked: bool) -> dict:
    import voicefake

    mouth = importlib.import_module("voicefake.lipsync.mouth")
    real = mouth.covering_mask
    if not masked:
        mouth.covering_mask = lambda *args: None
    try:
        path, inputs, masks = occluded_input(face, seconds, out)
        result = out / f"{face.stem}-{'after' if masked else 'before'}.mp4"
        report = voicefake.lipsync(path, speech, result, progress=False)
    finally:
        mouth.covering_mask = real
    outputs = read_frames(result, report.frames)[0]
    silent = silent_copy(path, report.duration, out)
    figures = judge(face.name, outputs, inputs, masks, report.synced, codec_copy(inputs, out), silent)
    k = int(np.argmax(report.opening))  # the widest new mouth: where painting over fingers would show most
    figures["stills"] = (
        mouth_crop(inputs[pick_input(k, inputs)], masks[pick_input(k, inputs)]),
        mouth_crop(outputs[k], masks[pick_input(k, inputs)]),
    )
    return figures


def pick_input(k: int, inputs: list) -> int:
    return k if len(inputs) > 1 else 0


def mouth_crop(frame: np.ndarray, mask: np.ndarray, size: int = 220) -> np.ndarray:
    """A square around the judged region (the fingers near the mouth), scaled to `size`."""
    ys, xs = np.nonzero(mask)
    cx, cy = (int(xs.mean()), int(ys.mean())) if len(xs) else (frame.shape[1] // 2, frame.shape[0] // 2)
    half = max(40, int(1.3 * max(np.ptp(xs) if len(xs) else 0, np.ptp(ys) if len(ys) else 0)))
    y0, x0 = max(0, cy - half), max(0, cx - half)
    return cv2.resize(frame[y0 : cy + half, x0 : cx + half], (size, size), interpolation=cv2.INTER_AREA)


def write_docs_still(rows: list[list[np.ndarray]]) -> None:
    """docs/lipsync_occlusion.png: per face, input | mask off (before) | per-pixel mask (now)."""
    image = np.vstack([np.hstack(row) for row in rows])
    cv2.imwrite(str(ROOT / "docs" / "lipsync_occlusion.png"), image)


def main() -> None:
    import voicefake

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / "occlusion"
    out.mkdir(parents=True, exist_ok=True)
    voice = voicefake.load_voice("joe")
    speech = [c for c in voice.synthesize(TEXT)]
    keep = []
    for chunk in speech:
        keep.append(chunk)
        if sum(len(c.audio) / c.sample_rate for c in keep) >= args.seconds:
            break
    print("| face | mask | frames | occluder change p95 (median) | frames <= 6 | worst | codec alone | mark + codec |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for face in (FACES / "astronaut.png", FACES / "WolfgangLanger_Pexels.mp4"):
        for masked in (False, True):
            f = run(face, keep, sum(len(c.audio) / c.sample_rate for c in keep), out, masked)
            if masked:
                rows[-1].append(f["stills"][1])
            else:
                rows.append(list(f["stills"]))
            print(
                f"| {f['face']} | {'per pixel' if masked else 'off (before)'} | {f['frames']} | {f['median p95']:.0f} "
                f"| {f['frames <= 6']:.0%} | {f['worst p95']:.0f} | {f['codec median p95']:.0f} | {f['silent median p95']:.0f} |",
                flush=True,
            )
    write_docs_still(rows)


if __name__ == "__main__":
    main()
