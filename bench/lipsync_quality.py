"""Lip-sync quality and speed on the shared faces, with speech from the bundled voice.

    .venv/bin/python bench/lipsync_quality.py            # both faces, prints a table
    .venv/bin/python bench/lipsync_quality.py --quick    # shorter speech
    .venv/bin/python bench/lipsync_quality.py --setup-mediapipe   # once: the second judge's own venv

The second landmark judge (MediaPipe Face Mesh) pins numpy<2 and protobuf<5, so it lives in a venv
of its own, bench/.venv-mediapipe (git-ignored); --setup-mediapipe makes it, or by hand:

    python3.11 -m venv bench/.venv-mediapipe
    bench/.venv-mediapipe/bin/pip install mediapipe==0.10.21 opencv-python-headless

Without it the MediaPipe columns say so and the rest is measured as usual.

For each face (../shared/data/faces: the astronaut portrait and the Pexels clip) the speech is
lip-synced in a child process pinned to 2 CPU cores (its wall time, CPU time and peak memory are
measured from the outside), then the output is judged frame by frame against the input:

- sync: the mouth opening that dlib's 68-point model measures on each OUTPUT frame (detected
  afresh, no tracking), correlated with the audio's mouth-opening track (from the synthesis's
  phoneme timings; also from the sound alone, an independent estimate) at lags of -5..5 frames:
  Pearson r at the best lag, and that lag. The same on the untouched input frames (no sync).
- sync by a second judge: the inner-lip gap that MediaPipe Face Mesh measures on each output
  frame (bench/mediapipe_judge.py, run in its own venv), over the outer eye corners' distance,
  against the same audio track on the same synced frames: r at lag 0 and at the best lag; and on
  the input clip.
- identity kept: distance between dlib's ResNet face descriptors (128-d) of the input frame and
  the output frame, on every 5th synced frame, mean (and max); 0.6 means another person.
- mouth flicker: the mean absolute change of the grey mouth box (around the input's lips, padded)
  between consecutive synced frames, output over input; on the still portrait the input does not
  change at all, so the output's own figure (grey levels) is given instead.
- nothing else changes: SSIM (grey, Gaussian window) between output and input over the face box
  less the lower face (nose to chin inside the jaw line, where lips and jaw are meant to move).
- sharpness: variance of the Laplacian in the mouth box, output / input.
- speed: output frames per second, tracking, rendering and H.264 encoding included; peak memory.

A side-by-side still (input | output) goes to bench/out/ and a small copy to docs/lipsync.png.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "faces"
OUT = ROOT / "bench" / "out"
DOCS = ROOT / "docs" / "lipsync.png"
FACES = {"portrait": SHARED / "astronaut.png", "video": SHARED / "WolfgangLanger_Pexels.mp4"}
TEXT = (
    "Good morning! My name is Joe, and I am reading this to test the lip sync. "
    "Maybe we should open up a bottle of wine, or bake a big blueberry pie. "
    "Peter picked a peck of pickled peppers; how many did he pick? "
    "The weather is lovely today, so we will walk along the beach and watch the waves."
)
GOALS = {"sync_r": 0.7, "lag": 1, "ssim": 0.98, "sharpness": 0.8, "fps": 25.0, "identity": 0.30, "flicker": 1.0}
MEDIAPIPE_VENV = ROOT / "bench" / ".venv-mediapipe"
MEDIAPIPE_PYTHON = MEDIAPIPE_VENV / "bin" / "python"
MEDIAPIPE_PACKAGES = ["mediapipe==0.10.21", "opencv-python-headless"]


def child(face: str, speech: str, out: str, result: str) -> None:
    """Run in a separate process, on 2 cores: lip-sync and write the report as JSON."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    import voicefake

    with open(speech, "rb") as f:
        chunks = pickle.load(f)
    started = time.perf_counter()
    report = voicefake.lipsync(face, chunks, out, progress=False)
    elapsed = time.perf_counter() - started
    data = {k: v for k, v in vars(report).items() if k not in ("opening", "synced", "output")}
    data.update(opening=report.opening.tolist(), synced=report.synced.tolist(), elapsed=elapsed)
    # peak memory of this process image (VmHWM), not counting the parent it was forked from
    status = Path("/proc/self/status").read_text()
    data["peak_mb"] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
    Path(result).write_text(json.dumps(data))


def run_child(face: Path, speech: Path, out: Path) -> dict:
    result = out.with_suffix(".json")
    cmd = [sys.executable, __file__, "--child", str(face), str(speech), str(out), str(result)]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.Popen(cmd, env=env)
    started = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"lip-sync of {face.name} failed (status {status})")
    data = json.loads(result.read_text())
    data.update(process_wall=wall, cpu=usage.ru_utime + usage.ru_stime)
    return data


def decode(path: Path) -> list[np.ndarray]:
    import av

    from voicefake.io.video import to_bgr

    with av.open(str(path)) as container:
        return [to_bgr(f) for f in container.decode(video=0)]


def input_frames(face: Path, count: int) -> list[np.ndarray]:
    """The input frames in the order the output shows them (trimmed or played back and forth)."""
    import cv2

    if face.suffix.lower() == ".png":
        return [cv2.imread(str(face))] * count
    frames = decode(face)
    return [frames[i] for i in input_order(len(frames), count)]


def input_order(frames: int, count: int) -> list[int]:
    """Which input frame each of `count` output frames shows, from a clip of `frames`."""
    from voicefake.io.video import ping_pong

    return list(range(count)) if count <= frames else ping_pong(frames, count)


def landmarks(frame: np.ndarray) -> np.ndarray | None:
    from voicefake.lipsync.face import detect_faces

    faces = detect_faces(frame, upsample=0) or detect_faces(frame, upsample=1)
    return faces[0] if faces else None


def best_lag(measured: np.ndarray, track: np.ndarray, mask: np.ndarray, lags=range(-5, 6)) -> tuple[float, int]:
    """Pearson r of measured[k] against track[k - lag] over usable frames, at the best lag."""
    best = (-1.0, 0)
    for lag in lags:
        a = measured[max(0, lag) : len(measured) + min(0, lag)]
        b = track[max(0, -lag) : len(track) + min(0, -lag)]
        m = mask[max(0, lag) : len(mask) + min(0, lag)] & ~np.isnan(a)
        if m.sum() < 10 or np.std(a[m]) == 0 or np.std(b[m]) == 0:
            continue
        r = float(np.corrcoef(a[m], b[m])[0, 1])
        best = max(best, (r, lag))
    return best


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    a, b = a.astype(np.float64), b.astype(np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))


def add_ssims(found: dict, k: int, gray_out, gray_in, p_in, p_out, input_frame) -> None:
    """SSIM of the face outside the lower face (and of the whole frame outside it) on frame `k`;
    on the first 40 frames also what the codec alone costs (the input through the same encoder)."""
    import cv2

    mask = face_outside_lower_face(p_in, p_out, gray_in.shape)
    if mask.any():
        ssim = ssim_map(gray_out, gray_in)
        found["ssims"].append(float(ssim[mask].mean()))
        found["frame_ssims"].append(float(ssim[face_outside_lower_face(p_in, p_out, gray_in.shape, False)].mean()))
        if k < 40:  # what the codec alone costs: the input frame through the same encoder
            codec = cv2.cvtColor(reencode(input_frame), cv2.COLOR_BGR2GRAY)
            found["codec_ssims"].append(float(ssim_map(codec, gray_in)[mask].mean()))


def add_sharpness(found: dict, gray_out, gray_in, p_in, p_out) -> None:
    """Variance of the Laplacian in the mouth box (both frames' lips, padded) and on the lips alone."""
    import cv2

    lo = np.minimum(p_in[48:60].min(axis=0), p_out[48:60].min(axis=0))
    hi = np.maximum(p_in[48:60].max(axis=0), p_out[48:60].max(axis=0))
    pad = 0.25 * (hi - lo)
    (x0, y0), (x1, y1) = np.floor(lo - pad).astype(int), np.ceil(hi + pad).astype(int)
    lap_out = cv2.Laplacian(gray_out, cv2.CV_64F)
    lap_in = cv2.Laplacian(gray_in, cv2.CV_64F)
    found["sharp_out"].append(lap_out[y0:y1, x0:x1].var())
    found["sharp_in"].append(lap_in[y0:y1, x0:x1].var())
    found["lips_out"].append(lap_out[lip_band(p_out, gray_out.shape)].var())  # the lips alone: no teeth either way
    found["lips_in"].append(lap_in[lip_band(p_in, gray_in.shape)].var())


def compare_frames(outputs, inputs, synced) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mouth opening measured on every output and input frame (NaN without a face), and on synced
    frames with a face in both: SSIMs (every other frame), sharpness and face-descriptor distances
    (every 5th frame), as lists by name; also the input's landmarks on every frame (None without a face)."""
    import cv2

    from voicefake.lipsync.face import mouth_opening

    n = len(outputs)
    measured_out, measured_in = np.full(n, np.nan), np.full(n, np.nan)
    keys = ("ssims", "frame_ssims", "codec_ssims", "sharp_out", "sharp_in", "lips_out", "lips_in", "identity")
    found = {key: [] for key in keys}
    found["points_in"] = []
    for k in range(n):
        p_out, p_in = landmarks(outputs[k]), landmarks(inputs[k])
        found["points_in"].append(p_in)
        if p_out is not None:
            measured_out[k] = mouth_opening(p_out)
        if p_in is not None:
            measured_in[k] = mouth_opening(p_in)
        if p_out is None or p_in is None or not synced[k]:
            continue
        gray_out = cv2.cvtColor(outputs[k], cv2.COLOR_BGR2GRAY)
        gray_in = cv2.cvtColor(inputs[k], cv2.COLOR_BGR2GRAY)
        if k % 2 == 0:  # SSIM of the face outside the lower face, every other frame
            add_ssims(found, k, gray_out, gray_in, p_in, p_out, inputs[k])
        add_sharpness(found, gray_out, gray_in, p_in, p_out)
        if k % 5 == 0:  # identity kept: face-descriptor distance, every 5th frame
            found["identity"].append(float(np.linalg.norm(descriptor(outputs[k], p_out) - descriptor(inputs[k], p_in))))
    return measured_out, measured_in, found


DESCRIBER: list = []


def descriptor(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """dlib's 128-d ResNet face descriptor of the face with these 68 landmarks (the points of dlib's
    68-point shape predictor, shape_predictor_68_face_landmarks.dat, as detect_faces gives them)."""
    import cv2
    import dlib

    from voicefake.lipsync.face import model_file

    if not DESCRIBER:
        DESCRIBER.append(dlib.face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat")))
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    box = dlib.rectangle(int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1)))
    shape = dlib.full_object_detection(box, [dlib.point(int(round(x)), int(round(y))) for x, y in points])
    rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return np.array(DESCRIBER[0].compute_face_descriptor(rgb, shape))


def mouth_flicker(outputs, inputs, synced, points_in) -> tuple[float, float]:
    """Mean absolute change of the grey mouth box between consecutive synced frames, in the output
    and in the input: the box around the input's lip landmarks on the later frame, padded by a
    quarter of its size on every side, the same pixels in both videos."""
    changes_out, changes_in = [], []
    for k in range(1, len(outputs)):
        p = points_in[k]
        if p is None or not (synced[k] and synced[k - 1]):
            continue
        lo, hi = p[48:60].min(axis=0), p[48:60].max(axis=0)
        pad = 0.25 * (hi - lo)
        h, w = outputs[k].shape[:2]
        x0, y0 = np.maximum(np.floor(lo - pad).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(hi + pad).astype(int), (w, h))
        for frames, changes in ((outputs, changes_out), (inputs, changes_in)):
            now, before = (grey_box(frames[j], y0, y1, x0, x1) for j in (k, k - 1))
            changes.append(float(np.abs(now - before).mean()))
    return mean_or_nan(changes_out), mean_or_nan(changes_in)


def grey_box(frame: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float64)


def mediapipe_openings(path: Path, count: int) -> np.ndarray | None:
    """Mouth opening on each of the first `count` frames of `path` by MediaPipe Face Mesh (NaN
    without a face), by bench/mediapipe_judge.py in its own venv; None without that venv."""
    if not MEDIAPIPE_PYTHON.exists():
        return None
    result = OUT / f"mediapipe_{path.stem}.json"
    judge = ROOT / "bench" / "mediapipe_judge.py"
    cmd = [str(MEDIAPIPE_PYTHON), str(judge), str(path), str(result), str(count)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"MediaPipe judge failed on {path.name}:\n{proc.stderr[-2000:]}", flush=True)
        return None
    values = json.loads(result.read_text())["opening"]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def mediapipe_sync(face: Path, out: Path, target: np.ndarray, synced: np.ndarray) -> dict:
    """MediaPipe's sync figures: r at lag 0 and at the best lag on the output (and on the input clip)."""
    n = len(target)
    found = dict.fromkeys(("mp_r_lag0", "mp_r", "mp_lag", "mp_no_face", "mp_input_r", "mp_input_lag"))
    measured = mediapipe_openings(out, n)
    if measured is None:
        return found
    measured = np.concatenate([measured, np.full(n, np.nan)])[:n]  # frames the judge could not read: no face
    found["mp_r_lag0"] = best_lag(measured, target, synced, lags=[0])[0]
    found["mp_r"], found["mp_lag"] = best_lag(measured, target, synced)
    found["mp_no_face"] = int(np.isnan(measured[synced]).sum())
    if face.suffix.lower() != ".png":  # the input clip, in the order the output shows it
        source = mediapipe_openings(face, n)
        if source is not None and len(source):
            measured_in = source[input_order(len(source), n)]
            found["mp_input_r"], found["mp_input_lag"] = best_lag(measured_in, target, synced)
    return found


def silent_frame_change(outputs, inputs, target, synced) -> float:
    """Quivering in silence: change between consecutive output frames in the mouth box where the
    audio keeps the mouth closed and the input does not move (a photo); NaN where there is none."""
    n = len(outputs)
    still = [
        k
        for k in range(1, n)
        if target[k] < 0.02
        and target[k - 1] < 0.02
        and synced[k]
        and synced[k - 1]
        and np.array_equal(inputs[k], inputs[k - 1])
    ]
    quiver = float("nan")
    if still:
        p = landmarks(inputs[still[0]])
        if p is not None:
            (x0, y0), (x1, y1) = (
                np.floor(p[48:60].min(axis=0) - 4).astype(int),
                np.ceil(p[48:60].max(axis=0) + 4).astype(int),
            )
            quiver = float(
                np.mean(
                    [
                        np.abs(outputs[k][y0:y1, x0:x1].astype(float) - outputs[k - 1][y0:y1, x0:x1]).mean()
                        for k in still
                    ]
                )
            )
    return quiver


def mean_or_nan(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")


def ratio_or_nan(numerators: list, denominators: list) -> float:
    return float(np.mean(numerators) / max(np.mean(denominators), 1e-9)) if denominators else float("nan")


def judge(name: str, face: Path, out: Path, data: dict, audio: np.ndarray, rate: int) -> dict:
    from voicefake.lipsync.visemes import track_from_audio

    outputs = decode(out)
    inputs = input_frames(face, len(outputs))
    n = len(outputs)
    target = np.array(data["opening"])
    acoustic = track_from_audio(audio, rate, data["fps"], n).opening
    synced = np.array(data["synced"], dtype=bool)
    measured_out, measured_in, found = compare_frames(outputs, inputs, synced)
    quiver = silent_frame_change(outputs, inputs, target, synced)
    flicker_out, flicker_in = mouth_flicker(outputs, inputs, synced, found["points_in"])
    everywhere = np.ones(n, dtype=bool)
    r_out, lag_out = best_lag(measured_out, target, synced)
    r_in, lag_in = best_lag(measured_in, target, synced)
    r_all, lag_all = best_lag(measured_out, target, everywhere)
    r_acoustic, lag_acoustic = best_lag(measured_out, acoustic, synced)
    save_still(name, inputs, outputs, target, synced)
    return {
        "face": name,
        "size": f"{data['width']}x{data['height']}",
        "frames": n,
        "synced": int(synced.sum()),
        "sync_r": r_out,
        "lag": lag_out,
        "sync_r_all_frames": r_all,
        "lag_all_frames": lag_all,
        "sync_r_vs_acoustic": r_acoustic,
        "lag_vs_acoustic": lag_acoustic,
        "input_r": r_in,
        "input_lag": lag_in,
        "ssim": mean_or_nan(found["ssims"]),
        "ssim_codec_alone": mean_or_nan(found["codec_ssims"]),
        "ssim_whole_frame": mean_or_nan(found["frame_ssims"]),
        "sharpness": ratio_or_nan(found["sharp_out"], found["sharp_in"]),
        "lip_sharpness": ratio_or_nan(found["lips_out"], found["lips_in"]),
        "silent_frame_change": quiver,
        **mediapipe_sync(face, out, target, synced),
        "identity_distance": mean_or_nan(found["identity"]),
        "identity_distance_max": max(found["identity"], default=float("nan")),
        "identity_frames": len(found["identity"]),
        "mouth_flicker_out": flicker_out,
        "mouth_flicker_in": flicker_in,
        "mouth_flicker_ratio": flicker_out / flicker_in if flicker_in > 0 else float("nan"),
        "fps": n / data["elapsed"],
        "fps_process": n / data["process_wall"],
        "cpu_s_per_frame": data["cpu"] / n,
        "peak_mb": data["peak_mb"],
        "report": {
            k: data.get(k) for k in ("no_face_frames", "covered_frames", "turned_frames", "mouth_interior", "bank_frames")
        },
    }


def face_outside_lower_face(p_in: np.ndarray, p_out: np.ndarray, shape, face_only: bool = True) -> np.ndarray:
    """The face (inside the hull of the 68 landmarks: brows, cheeks, jaw line) less the lower face: the
    hull of the jaw line and nostrils of input and output, grown by 0.1 inter-ocular distance.
    With face_only=False: the whole frame less the lower face (neck, hair and background count too)."""
    import cv2

    from voicefake.lipsync.face import interocular

    mask = np.zeros(shape, np.uint8)
    if face_only:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(p_in).astype(np.int32)), 1)
    else:
        mask[:] = 1
    lower = np.concatenate([p_in[2:15], p_in[31:36], p_out[2:15], p_out[31:36]])
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lower).astype(np.int32)), 0)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.1 * interocular(p_in))))
    return (mask > 0) & ~label_area(shape)


def label_area(shape) -> np.ndarray:
    """Where the visible 'AI-generated' label goes (a wanted change), grown by a few pixels."""
    import cv2

    from voicefake.lipsync.pipeline import draw_label

    marked = draw_label(np.full((*shape, 3), 255, np.uint8)).min(axis=2) < 255
    return cv2.dilate(marked.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0


def lip_band(points: np.ndarray, shape) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points[48:60]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(points[60:68]).astype(np.int32)], 0)
    return mask > 0


def reencode(frame: np.ndarray) -> np.ndarray:
    """`frame` after a round trip through the output encoder (H.264 CRF 14, as lipsync writes)."""
    import tempfile

    from voicefake.io.video import VideoWriter

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.mp4"
        with VideoWriter(
            path, frame.shape[1], frame.shape[0], 25, np.zeros(4800, np.float32), 48000, quality=14
        ) as writer:
            for _ in range(3):
                writer.write(frame)
        return decode(path)[1]


STILLS: dict[str, np.ndarray] = {}


def save_still(name: str, inputs, outputs, target, synced) -> None:
    """Input | output crops of the face on the synced frame with the widest target opening."""
    import cv2

    k = int(np.argmax(np.where(synced, target, -1)))
    p = landmarks(inputs[k])
    if p is None:
        return
    centre = p[27:68].mean(axis=0)
    half = int(1.1 * (p[:, 0].max() - p[:, 0].min()) / 2 + 8)
    h, w = inputs[k].shape[:2]
    x0, y0 = int(max(0, centre[0] - half)), int(max(0, centre[1] - half))
    x1, y1 = int(min(w, centre[0] + half)), int(min(h, centre[1] + half))
    pair = [cv2.resize(f[y0:y1, x0:x1], (300, 300), interpolation=cv2.INTER_AREA) for f in (inputs[k], outputs[k])]
    for image, label in zip(pair, ("input", "lip-synced")):
        cv2.putText(image, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    STILLS[name] = np.hstack(pair)
    cv2.imwrite(str(OUT / f"side_by_side_{name}.png"), np.hstack([inputs[k], outputs[k]]))


def write_docs_image() -> None:
    import cv2

    if not STILLS:
        return
    grid = np.vstack(list(STILLS.values()))
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT / "lipsync.png"), grid)
    small = grid
    while True:  # the README copy must stay under 300 KB
        ok, data = cv2.imencode(".png", small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if len(data) < 300_000 or small.shape[1] < 200:
            break
        small = cv2.resize(small, None, fx=0.85, fy=0.85, interpolation=cv2.INTER_AREA)
    DOCS.write_bytes(data.tobytes())


def print_table(rows: list[dict]) -> None:
    columns = [
        "face", "size", "frames (synced)", "sync r @ lag", "r all frames", "r vs acoustic track", "input r",
        "MediaPipe r @0 / @ lag", "MediaPipe input r",
        "SSIM face outside lower face (codec alone)", "SSIM whole frame outside lower face",
        "sharpness mouth box / lips", "identity distance (max)", "mouth flicker out / in",
        "fps (whole process)", "CPU s/frame", "peak MB",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        still = r["face"] == "portrait"
        cells = [
            r["face"], r["size"], f"{r['frames']} ({r['synced']})", f"{r['sync_r']:.2f} @ {r['lag']:+d}",
            f"{r['sync_r_all_frames']:.2f} @ {r['lag_all_frames']:+d}",
            f"{r['sync_r_vs_acoustic']:.2f} @ {r['lag_vs_acoustic']:+d}",
            "n/a (a still)" if still else f"{r['input_r']:.2f} @ {r['input_lag']:+d}",
            *mediapipe_cells(r, still),
            f"{r['ssim']:.3f} ({r['ssim_codec_alone']:.3f})", f"{r['ssim_whole_frame']:.3f}",
            f"{r['sharpness']:.2f}x / {r['lip_sharpness']:.2f}x",
            f"{r['identity_distance']:.3f} ({r['identity_distance_max']:.3f})",
            f"{r['mouth_flicker_out']:.2f} (input still: 0)" if still else f"{r['mouth_flicker_ratio']:.2f}x",
            f"{r['fps']:.1f} ({r['fps_process']:.1f})", f"{r['cpu_s_per_frame']:.3f}", f"{r['peak_mb']:.0f}",
        ]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in rows:
        if r["silent_frame_change"] == r["silent_frame_change"]:
            print(
                f"{r['face']}: mean change of the mouth box between consecutive silent frames: "
                f"{r['silent_frame_change']:.2f} grey levels (0 = no quivering)"
            )
    print(
        "mouth flicker: mean |change| of the grey mouth box between consecutive synced frames, output / input; "
        "on the still portrait the input never changes, so the output's own figure in grey levels"
    )
    if any(r["mp_r"] is None for r in rows):
        print(f"MediaPipe columns skipped: no {MEDIAPIPE_VENV.relative_to(ROOT)}; make it with --setup-mediapipe")
    print(
        f"goals: sync r >= {GOALS['sync_r']} with |lag| <= {GOALS['lag']}, SSIM >= {GOALS['ssim']}, "
        f"sharpness >= {GOALS['sharpness']}x, identity distance <= {GOALS['identity']} (0.6: another person), "
        f"mouth flicker <= {GOALS['flicker']}x the input's, >= {GOALS['fps']} fps at 640x360 on 2 cores"
    )


def mediapipe_cells(r: dict, still: bool) -> list[str]:
    if r["mp_r"] is None:
        return ["skipped (no venv)", "skipped (no venv)"]
    synced = f"{r['mp_r_lag0']:.2f} / {r['mp_r']:.2f} @ {r['mp_lag']:+d}"
    if still:
        return [synced, "n/a (a still)"]
    if r["mp_input_r"] is None:
        return [synced, "failed"]
    return [synced, f"{r['mp_input_r']:.2f} @ {r['mp_input_lag']:+d}"]


def setup_mediapipe() -> None:
    """Make bench/.venv-mediapipe with MediaPipe's pinned numpy and protobuf, apart from the project's."""
    python = shutil.which("python3.11") or sys.executable
    print(f"making {MEDIAPIPE_VENV} with {python}", flush=True)
    subprocess.run([python, "-m", "venv", str(MEDIAPIPE_VENV)], check=True)
    subprocess.run([str(MEDIAPIPE_PYTHON), "-m", "pip", "install", *MEDIAPIPE_PACKAGES], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one sentence of speech instead of four")
    parser.add_argument("--setup-mediapipe", action="store_true", help=f"make {MEDIAPIPE_VENV.name} for the second judge")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.setup_mediapipe:
        setup_mediapipe()
        return
    if not MEDIAPIPE_PYTHON.exists():
        print(f"no {MEDIAPIPE_VENV}: the MediaPipe sync columns are skipped; make it with --setup-mediapipe", flush=True)
    if not SHARED.is_dir():
        raise SystemExit(f"benchmark data missing: {SHARED}")
    import voicefake

    OUT.mkdir(parents=True, exist_ok=True)
    text = TEXT.split(". ")[0] + "." if args.quick else TEXT
    chunks = list(voicefake.load_voice("joe").synthesize(text))
    speech = OUT / "speech.pkl"
    speech.write_bytes(pickle.dumps(chunks))
    audio = np.concatenate([c.audio for c in chunks])
    voicefake.write_audio(OUT / "speech.wav", audio, chunks[0].sample_rate)
    print(f"speech: {len(audio) / chunks[0].sample_rate:.1f} s from voice joe, {len(chunks)} sentences", flush=True)
    rows = []
    for name, face in FACES.items():
        out = OUT / f"lipsync_{name}.mp4"
        data = run_child(face, speech, out)
        rows.append(judge(name, face, out, data, audio, chunks[0].sample_rate))
        print(json.dumps(rows[-1]), flush=True)
    write_docs_image()
    print()
    print_table(rows)
    print(f"stills: {OUT}/side_by_side_*.png, {DOCS.relative_to(ROOT)} ({DOCS.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
