"""Wav2Lip (Prajwal et al., 2020) in PyTorch: the generator, the SyncNet lip-sync expert, their mel
features, and a loader for the official checkpoints, which users place in `pretrained/`.

No weights ship with voicefake or are ever downloaded. Parameter names follow the official
release exactly (`face_encoder_blocks.0.0.conv_block.0.weight`...), so its `wav2lip.pth` /
`wav2lip_gan.pth` (`{"state_dict": ...}` saved under DataParallel, keys prefixed `module.`) load.
Checkpoints are read with `weights_only=True` only: files that pickle a whole module are refused,
since unpickling them can run any code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from voicefake.errors import VoicefakeError

IMG_SIZE = 96  # the generator's face crop
MEL_STEP = 16  # mel frames per video frame window (0.2 s)
MEL_FPS = 80.0  # mel frames per second (16 kHz, hop 200)
AUDIO_RATE = 16000


# ---------------------------------------------------------------- layers (names match the official ones)


class ConvBlock(nn.Module):
    """Conv + BatchNorm + ReLU, optionally residual (`Conv2d` in the official code)."""

    def __init__(self, cin: int, cout: int, kernel, stride, padding, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        return self.act(out + x if self.residual else out)


class UpBlock(nn.Module):
    """Transposed conv + BatchNorm + ReLU (`Conv2dTranspose` in the official code)."""

    def __init__(self, cin: int, cout: int, kernel, stride, padding, output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _stage(cin: int, cout: int, kernel, stride, padding, residuals: int) -> list[nn.Module]:
    """One strided conv, then `residuals` residual 3x3 convs at the new width."""
    return [ConvBlock(cin, cout, kernel, stride, padding)] + [
        ConvBlock(cout, cout, 3, 1, 1, residual=True) for _ in range(residuals)
    ]


def _audio_encoder(last_residuals: int) -> nn.Sequential:
    """Mel window (1 x 80 x 16) -> 512 x 1 x 1; the generator and SyncNet differ by one residual."""
    return nn.Sequential(
        *_stage(1, 32, 3, 1, 1, 2),
        *_stage(32, 64, 3, (3, 1), 1, 2),
        *_stage(64, 128, 3, 3, 1, 2),
        *_stage(128, 256, 3, (3, 2), 1, last_residuals),
        ConvBlock(256, 512, 3, 1, 0),
        ConvBlock(512, 512, 1, 1, 0),
    )


class Wav2Lip(nn.Module):
    """Generator: a 96x96 face whose lower half is masked, a reference face, and a mel window in;
    the face with a mouth for that audio out. U-Net: face encoder, audio encoder, decoder with skips."""

    def __init__(self):
        super().__init__()
        # (in, out, residual convs) per encoder stage; each halves the size: 96 48 24 12 6 3
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),
                nn.Sequential(*_stage(16, 32, 3, 2, 1, 2)),
                nn.Sequential(*_stage(32, 64, 3, 2, 1, 3)),
                nn.Sequential(*_stage(64, 128, 3, 2, 1, 2)),
                nn.Sequential(*_stage(128, 256, 3, 2, 1, 2)),
                nn.Sequential(*_stage(256, 512, 3, 2, 1, 1)),
                nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),  # 1x1
            ]
        )
        self.audio_encoder = _audio_encoder(last_residuals=1)

        def up(cin: int, cout: int, residuals: int, first: bool = False) -> nn.Sequential:
            head = UpBlock(cin, cout, 3, 1, 0) if first else UpBlock(cin, cout, 3, 2, 1, 1)
            return nn.Sequential(head, *[ConvBlock(cout, cout, 3, 1, 1, residual=True) for _ in range(residuals)])

        # each decoder stage sees its input concatenated with the encoder features of its size
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),
                up(1024, 512, 1, first=True),  # 3x3
                up(1024, 512, 2),  # 6
                up(768, 384, 2),  # 12
                up(512, 256, 2),  # 24
                up(320, 128, 2),  # 48
                up(160, 64, 2),  # 96
            ]
        )
        self.output_block = nn.Sequential(ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """audio (B, 1, 80, 16) and faces (B, 6, 96, 96) in [0, 1] -> (B, 3, 96, 96); or with a time
        axis: audio (B, T, 1, 80, 16), faces (B, 6, T, 96, 96) -> (B, 3, T, 96, 96)."""
        timed = faces.dim() == 5
        if timed:
            b, t = audio.shape[:2]
            audio = audio.transpose(0, 1).reshape(b * t, *audio.shape[2:])
            faces = faces.permute(2, 0, 1, 3, 4).reshape(b * t, faces.shape[1], *faces.shape[3:])
        skips = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(audio)
        for block in self.face_decoder_blocks:
            x = torch.cat([block(x), skips.pop()], dim=1)
        out = self.output_block(x)
        if timed:
            out = out.reshape(t, b, *out.shape[1:]).permute(1, 2, 0, 3, 4)
        return out


class SyncNet(nn.Module):
    """The lip-sync expert (`SyncNet_color`): embeds 5 lower-half face frames (15 x 48 x 96) and the
    matching mel window; in sync, the two unit vectors point the same way."""

    def __init__(self):
        super().__init__()
        self.face_encoder = nn.Sequential(
            ConvBlock(15, 32, 7, 1, 3),
            *_stage(32, 64, 5, (1, 2), 1, 2),
            *_stage(64, 128, 3, 2, 1, 3),
            *_stage(128, 256, 3, 2, 1, 2),
            *_stage(256, 512, 3, 2, 1, 2),
            ConvBlock(512, 512, 3, 2, 1),
            ConvBlock(512, 512, 3, 1, 0),
            ConvBlock(512, 512, 1, 1, 0),
        )
        self.audio_encoder = _audio_encoder(last_residuals=2)

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio embedding, face embedding), each (B, 512) of unit length."""
        a = self.audio_encoder(audio).flatten(1)
        v = self.face_encoder(faces).flatten(1)
        return F.normalize(a, p=2, dim=1), F.normalize(v, p=2, dim=1)


def sync_probability(audio_emb: torch.Tensor, face_emb: torch.Tensor) -> torch.Tensor:
    """How likely each pair is in sync: their cosine similarity, clamped into (0, 1) as in training."""
    return F.cosine_similarity(audio_emb, face_emb).clamp(1e-6, 1 - 1e-6)


# ---------------------------------------------------------------- features


_mel_basis: np.ndarray | None = None


def mel_spectrogram(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The (80, frames) log-mel features Wav2Lip was trained on: 16 kHz, pre-emphasis 0.97, 800-point
    STFT with hop 200 (80 frames/s), 55-7600 Hz, dB relative to 20 dB, scaled to [-4, 4]."""
    global _mel_basis
    import librosa
    import soxr
    from scipy.signal import lfilter

    audio = np.asarray(audio, dtype=np.float32)
    if sample_rate != AUDIO_RATE:
        audio = soxr.resample(audio, sample_rate, AUDIO_RATE).astype(np.float32)
    emphasized = lfilter([1, -0.97], [1], audio)
    spec = np.abs(librosa.stft(y=emphasized, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect"))
    if _mel_basis is None:
        _mel_basis = librosa.filters.mel(sr=AUDIO_RATE, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    db = 20 * np.log10(np.maximum(1e-5, _mel_basis @ spec)) - 20
    return np.clip(8 * ((db + 100) / 100) - 4, -4, 4).astype(np.float32)


def mel_window(mel: np.ndarray, frame: int, fps: float) -> np.ndarray:
    """The 16 mel frames (0.2 s) that drive video frame `frame`, as the official code picks them."""
    start = int(frame * MEL_FPS / fps)
    if start + MEL_STEP > mel.shape[1]:
        start = max(0, mel.shape[1] - MEL_STEP)
    window = mel[:, start : start + MEL_STEP]
    if window.shape[1] < MEL_STEP:  # audio shorter than 0.2 s
        window = np.pad(window, ((0, 0), (0, MEL_STEP - window.shape[1])), constant_values=-4.0)
    return window


# ---------------------------------------------------------------- checkpoints


def _state_dict_of(obj) -> dict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "generator"):
            if key in obj and isinstance(obj[key], dict):
                return _state_dict_of(obj[key])
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise VoicefakeError("unrecognised checkpoint: expected {'state_dict': ...} or a state dict")


def _refusal(path: Path, error: Exception) -> str:
    """Why torch's weights-only loader rejected `path`, in one line."""
    if isinstance(error, pickle.UnpicklingError) or "TorchScript" in str(error):
        return (
            f"{path} is not a plain state-dict checkpoint (it holds pickled code or TorchScript, which voicefake "
            "never runs): re-save it with torch.save({'state_dict': model.state_dict()}, ...) and use that file"
        )
    return f"cannot read checkpoint {path}: {str(error).splitlines()[0][:160]}"


def load_checkpoint(path: str | os.PathLike, model_class: type[nn.Module] = Wav2Lip) -> nn.Module:
    """Load official-format weights into a fresh `Wav2Lip` (or `SyncNet`), in eval mode on the CPU.

    Accepts `{"state_dict": ...}` (DataParallel `module.` prefixes stripped) or a bare state dict.
    Never a full unpickle (a planted file could run code): anything else is refused.
    """
    from voicefake.io.media import check_input_file

    path = check_input_file(path, "checkpoint", "a Wav2Lip checkpoint file (.pth)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise VoicefakeError(_refusal(path, error)) from error
    state = {k.removeprefix("module."): v for k, v in _state_dict_of(obj).items()}
    model = model_class()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        what = f"{len(missing)} missing" if missing else f"{len(wrong)} of another shape"
        first = (missing or wrong)[0]
        raise VoicefakeError(
            f"{path} is not a {model_class.__name__} checkpoint ({what} parameters, e.g. {first}): "
            "use the official 96x96 Wav2Lip weights (wav2lip.pth or wav2lip_gan.pth)"
        )
    model.load_state_dict({k: state[k] for k in expected})
    return model.eval()


def save_checkpoint(model: nn.Module, path: str | os.PathLike, optimizer=None, step: int = 0, epoch: int = 0) -> None:
    """Save as the official training code does (under DataParallel: keys prefixed `module.`)."""
    from voicefake.io.atomic import atomic_output

    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    with atomic_output(path) as partial:
        torch.save(
            {
                "state_dict": state,
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "global_step": step,
                "global_epoch": epoch,
            },
            partial,
        )


# ---------------------------------------------------------------- rendering


def face_box(points: np.ndarray, shape) -> tuple[int, int, int, int]:
    """The face crop Wav2Lip sees, from 68 landmarks: cheek to cheek, a little forehead above the
    brows to just under the chin (like the official detector boxes, padded 10 px at the bottom)."""
    h, w = shape[:2]
    x0, x1 = points[:, 0].min(), points[:, 0].max()
    y0, y1 = points[17:27, 1].min(), points[:, 1].max()
    box = (x0 - 0.05 * (x1 - x0), y0 - 0.25 * (y1 - y0), x1 + 0.05 * (x1 - x0), y1 + 0.06 * (y1 - y0))
    return (
        int(max(0, np.floor(box[0]))),
        int(max(0, np.floor(box[1]))),
        int(min(w, np.ceil(box[2]))),
        int(min(h, np.ceil(box[3]))),
    )


class Wav2LipRenderer:
    """Lip-sync frames with the generator: crop the face, predict its lower half, blend it back
    under a feathered jaw-shaped mask (not the whole box, which is what makes Wav2Lip's box visible)."""

    def __init__(self, model: Wav2Lip, audio: np.ndarray, sample_rate: int, fps: float):
        self.model = model.eval()
        self.mel = mel_spectrogram(audio, sample_rate)
        self.fps = fps

    def render(self, frame: np.ndarray, points: np.ndarray, index: int, strength: float = 1.0) -> np.ndarray:
        """A copy of `frame` with the mouth predicted for output frame `index`."""
        import cv2

        if strength <= 0:
            return frame
        bx0, by0, bx1, by1 = face_box(points, frame.shape)
        if bx1 - bx0 < 16 or by1 - by0 < 16:
            return frame
        crop = frame[by0:by1, bx0:bx1]
        face = cv2.resize(crop, (IMG_SIZE, IMG_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        masked = face.copy()
        masked[IMG_SIZE // 2 :] = 0.0
        faces = torch.from_numpy(np.concatenate([masked, face], axis=2)).permute(2, 0, 1)[None]
        audio = torch.from_numpy(mel_window(self.mel, index, self.fps))[None, None]
        with torch.inference_mode():
            pred = self.model(audio, faces)[0].permute(1, 2, 0).numpy()
        pred = cv2.resize(pred * 255.0, (bx1 - bx0, by1 - by0), interpolation=cv2.INTER_CUBIC)
        # blend only the jaw region below the nose, feathered
        mask = np.zeros((by1 - by0, bx1 - bx0), np.float32)
        region = np.concatenate([points[2:15], points[[35, 33, 31]]]) - [bx0, by0]
        cv2.fillPoly(mask, [np.round(region).astype(np.int32)], 1.0)
        feather = max(1.0, 0.04 * (bx1 - bx0))
        mask = cv2.GaussianBlur(mask, (0, 0), feather)[..., None] * float(strength)
        out = frame.copy()
        out[by0:by1, bx0:bx1] = np.clip(crop * (1 - mask) + pred * mask, 0, 255).astype(np.uint8)
        return out
