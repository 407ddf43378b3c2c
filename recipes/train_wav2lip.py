"""Train Wav2Lip: first the SyncNet lip-sync expert, then the generator, on LRS2-style folders.

Data, as the official preprocessing lays it out (and as `prepare` makes it from any videos):

    DATA/<speaker>/<clip>/0.jpg 1.jpg ...   one face crop per video frame (25 fps)
    DATA/<speaker>/<clip>/audio.wav         the clip's sound

Steps (the weights are saved in the official format, so `voicefake lipsync` picks them up when
the generator lands in pretrained/ as wav2lip*.pth):

    python recipes/train_wav2lip.py prepare LRS2/main DATA
    python recipes/train_wav2lip.py syncnet DATA --out checkpoints/syncnet.pth
    python recipes/train_wav2lip.py generator DATA --syncnet checkpoints/syncnet.pth --out pretrained/wav2lip.pth

The paper trains SyncNet to a loss of about 0.25 and the generator for days on a GPU; `--steps`
and `--batch` set the budget. Use only footage whose speakers agreed to it.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from voicefake.lipsync.wav2lip import (
    AUDIO_RATE,
    IMG_SIZE,
    MEL_FPS,
    MEL_STEP,
    SyncNet,
    Wav2Lip,
    face_box,
    load_checkpoint,
    mel_spectrogram,
    save_checkpoint,
    sync_probability,
)

FPS = 25  # LRS2 and the official mel/frame pairing assume it
WINDOW = 5  # frames per training window


# ---------------------------------------------------------------- data


def prepare(source: Path, data: Path) -> None:
    """Crop the tracked face of every video under `source` into DATA/<folder>/<clip>/."""
    import soundfile as sf
    from tqdm import tqdm

    from voicefake.io.media import read_media
    from voicefake.io.video import iter_frames, open_face_media
    from voicefake.lipsync.face import FaceTracker

    videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm", ".avi"})
    for video in tqdm(videos, desc="preparing", unit="clip"):
        media = open_face_media(video)
        if abs(float(media.fps) - FPS) > 0.5:
            print(f"skipping {video}: {float(media.fps):.2f} fps, not {FPS}", file=sys.stderr)
            continue
        target = data / video.parent.name / video.stem
        target.mkdir(parents=True, exist_ok=True)
        tracker = FaceTracker()
        kept = 0
        for index, frame in enumerate(iter_frames(media)):
            points = tracker(frame)
            if points is None:  # a clip with a lost face is unusable: windows need consecutive frames
                break
            x0, y0, x1, y1 = face_box(points, frame.shape)
            cv2.imwrite(str(target / f"{index}.jpg"), frame[y0:y1, x0:x1])
            kept += 1
        audio, rate = read_media(video, AUDIO_RATE), AUDIO_RATE
        if kept < 3 * WINDOW:
            for path in target.iterdir():
                path.unlink()
            target.rmdir()
            continue
        sf.write(target / "audio.wav", audio[: int(kept / FPS * rate)], rate)


class Clips:
    """Training windows from prepared clips: faces (96x96, [0, 1], BGR as OpenCV reads them) and mels."""

    def __init__(self, data: Path):
        self.clips = []
        for folder in sorted(data.glob("*/*")):
            frames = len(list(folder.glob("*.jpg")))
            if (folder / "audio.wav").exists() and frames >= 3 * WINDOW:
                self.clips.append((folder, frames))
        if not self.clips:
            raise SystemExit(f"no prepared clips in {data}: run `prepare` first (see --help)")
        self._mels: dict[Path, np.ndarray] = {}

    def mel(self, folder: Path) -> np.ndarray:
        if folder not in self._mels:
            import soundfile as sf

            audio, rate = sf.read(folder / "audio.wav", dtype="float32", always_2d=True)
            self._mels[folder] = mel_spectrogram(audio.mean(axis=1), rate)
        return self._mels[folder]

    @staticmethod
    def faces(folder: Path, start: int) -> np.ndarray:
        """(WINDOW, 96, 96, 3) float faces from frame `start` on."""
        return np.stack(
            [
                cv2.resize(cv2.imread(str(folder / f"{i}.jpg")), (IMG_SIZE, IMG_SIZE)).astype(np.float32) / 255.0
                for i in range(start, start + WINDOW)
            ]
        )

    def mel_at(self, folder: Path, frame: int) -> np.ndarray | None:
        mel = self.mel(folder)
        start = int(frame * MEL_FPS / FPS)
        return mel[:, start : start + MEL_STEP] if start + MEL_STEP <= mel.shape[1] else None

    def sync_sample(self):
        """5 lower-half faces, a mel window, and 1 if they belong together, else 0."""
        while True:
            folder, frames = random.choice(self.clips)
            start = random.randrange(frames - WINDOW)
            label = random.random() < 0.5
            other = start
            while not label and abs(other - start) < WINDOW:  # an offset the expert must call out of sync
                other = random.randrange(frames - WINDOW)
            mel = self.mel_at(folder, start if label else other)
            if mel is None:
                continue
            lower = self.faces(folder, start)[:, IMG_SIZE // 2 :]  # (5, 48, 96, 3)
            faces = torch.from_numpy(lower).permute(0, 3, 1, 2).reshape(3 * WINDOW, IMG_SIZE // 2, IMG_SIZE)
            return faces, torch.from_numpy(mel)[None], torch.tensor(float(label))

    def generator_sample(self):
        """(inputs 6x5x96x96, per-frame mels 5x1x80x16, sync mel 1x80x16, targets 3x5x96x96)."""
        while True:
            folder, frames = random.choice(self.clips)
            start = random.randrange(frames - WINDOW)
            reference = random.randrange(frames - WINDOW)  # the identity / pose input: any other window
            mels = [self.mel_at(folder, start + i) for i in range(WINDOW)]
            window = self.mel_at(folder, start)
            if window is None or any(m is None for m in mels):
                continue
            truth = self.faces(folder, start)
            masked = truth.copy()
            masked[:, IMG_SIZE // 2 :] = 0.0  # the generator must draw the lower half
            inputs = np.concatenate([masked, self.faces(folder, reference)], axis=3)  # (5, 96, 96, 6)
            return (
                torch.from_numpy(inputs).permute(3, 0, 1, 2),
                torch.from_numpy(np.stack(mels))[:, None],
                torch.from_numpy(window)[None],
                torch.from_numpy(truth).permute(3, 0, 1, 2),
            )


def batches(sample, size: int):
    while True:
        yield [torch.stack(parts) for parts in zip(*(sample() for _ in range(size)))]


# ---------------------------------------------------------------- training


def train_syncnet(args) -> None:
    clips = Clips(args.data)
    model = load_checkpoint(args.resume, SyncNet).train() if args.resume else SyncNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    for step, (faces, mels, labels) in zip(range(1, args.steps + 1), batches(clips.sync_sample, args.batch)):
        audio, video = model(mels, faces)
        loss = F.binary_cross_entropy(sync_probability(audio, video), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps:
            print(f"syncnet step {step}: loss {loss.item():.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out, optimizer, step=args.steps)
    print(f"saved {args.out}")


def expert_loss(expert: SyncNet, generated: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """How out of sync the expert finds the generated lower halves (B, 3, 5, 96, 96) with `mel`."""
    lower = generated[:, :, :, IMG_SIZE // 2 :]
    faces = lower.permute(0, 2, 1, 3, 4).reshape(lower.shape[0], 3 * WINDOW, IMG_SIZE // 2, IMG_SIZE)
    audio, video = expert(mel, faces)
    probability = sync_probability(audio, video)
    return F.binary_cross_entropy(probability, torch.ones_like(probability))


def train_generator(args) -> None:
    clips = Clips(args.data)
    expert = load_checkpoint(args.syncnet, SyncNet)  # frozen judge
    for p in expert.parameters():
        p.requires_grad_(False)
    model = load_checkpoint(args.resume).train() if args.resume else Wav2Lip()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    for step, (inputs, mels, window, truth) in zip(
        range(1, args.steps + 1), batches(clips.generator_sample, args.batch)
    ):
        generated = model(mels, inputs)
        reconstruction = F.l1_loss(generated, truth)
        # The expert's verdict joins once the picture is roughly right (the paper's schedule, simplified).
        weight = args.sync_weight if step > args.warmup else 0.0
        sync = expert_loss(expert, generated, window) if weight else torch.zeros(())
        loss = (1 - weight) * reconstruction + weight * sync
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps:
            print(f"generator step {step}: L1 {reconstruction.item():.4f}, sync {sync.item():.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out, optimizer, step=args.steps)
    print(f"saved {args.out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="see the module docstring for the data layout"
    )
    steps = parser.add_subparsers(dest="step", required=True)
    prep = steps.add_parser("prepare", help="crop faces and extract audio from a folder of 25 fps videos")
    prep.add_argument("source", type=Path)
    prep.add_argument("data", type=Path)
    for name in ("syncnet", "generator"):
        step = steps.add_parser(name, help=f"train the {name}")
        step.add_argument("data", type=Path)
        step.add_argument("--out", type=Path, required=True)
        step.add_argument("--resume", type=Path, help="continue from a checkpoint")
        step.add_argument("--steps", type=int, default=100_000)
        step.add_argument("--batch", type=int, default=64 if name == "syncnet" else 16)
        step.add_argument("--log-every", type=int, default=100)
        step.add_argument("--seed", type=int, default=0)
        if name == "generator":
            step.add_argument("--syncnet", type=Path, required=True, help="the trained expert")
            step.add_argument("--sync-weight", type=float, default=0.03)
            step.add_argument("--warmup", type=int, default=10_000, help="steps of reconstruction alone")
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.source, args.data)
        return
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    (train_syncnet if args.step == "syncnet" else train_generator)(args)


if __name__ == "__main__":
    main()
