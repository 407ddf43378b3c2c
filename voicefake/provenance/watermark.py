"""Inaudible, robust audio watermark for everything voicefake synthesizes.

Two layers share one energy budget (SNR >= 30 dB against the unmarked audio); numpy/scipy only.

* Payload layer (block QIM). A 512-point STFT (hop 256) at 22050 Hz, 129-3488 Hz in 20 mel
  bands; 2 frames x 1 band form a tile, 14 rows of tiles a 0.325 s block, and every block
  carries the whole 124-bit codeword as keyed dithered quantisation (step 1.3 dB) of log-energy
  differences of two tiles of one band (gain and fixed filters cancel). Changes go mostly to the
  quieter tile, cheapest features first within a budget. Payload: 4-bit marker/version, 16-bit
  voice hash, 20-bit hour count, keyed CRC-16, K=7 rate-1/2 convolutional code. Each embed()
  call lays its own block grid (chunks can be marked one by one); the detector searches block
  phase, sliding windows and phase changes between chunks. Survives codecs, resampling, noise,
  gain and crops, but not edits that smear or warp time (stretch, pitch shift, reverb).
* Sync layer (presence under those edits). A keyed pattern of +-1 on a grid of 16 time cells
  (0.232 s) x 71 log-frequency nodes (half a semitone apart, 400-3000 Hz), smoothly
  interpolated, scales the magnitudes of a 2048-point STFT: boosts of up to 4.5 dB and cuts
  twice as deep (cuts cost less energy and are heard less), most where the spectrum is quiet
  (between harmonics, soft passages: cheap in SNR), none below -35 dB (noise would drown it)
  or in silence. It repeats every 3.7 s on the stream's clock (`start`), so consecutive chunks
  continue it. Time-stretch and speed scale its time axis, pitch shift and speed translate its
  log-frequency axis, reverb smears time but hardly frequency: hence fine in frequency, coarse
  in time. The detector folds the detrended log spectrogram (weighted as the embedding
  weights) modulo the period for a grid of time scales (0.87-1.15), correlates it with the
  pattern at every offset and frequency shift (+-2.6 semitones) and turns the map of
  correlations into robust z-scores (median, MAD); long inputs go in 12 s segments.
* Detection: payload layer first; else the sync search, and where it finds a frequency shift
  the audio is resampled back (undoing a speed change) and the payload layer tried again. A payload is
  reported only with a valid marker and CRC; a sync z-score above a threshold calibrated on
  real speech alone gives found=True with payload_unreadable=True.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import gcd

import numpy as np
import scipy.fft as _fft
from scipy.ndimage import uniform_filter

__all__ = ["SAMPLE_RATE", "Detection", "Payload", "detect", "embed", "voice_hash"]

SAMPLE_RATE = 22050          # the rate the mark is defined at (voicefake's output rate)
_MIN_TOTAL_SNR = 30.05       # dB, both layers together, per embed() call

# payload layer (QIM)
_NFFT = 512
_HOP = 256
_K0, _K1 = 3, 81             # STFT bins 129 .. 3488 Hz
_NBAND = 20
_TF = 2                      # frames per tile
_ROWS = 14                   # tile rows per block
_BLOCK_FRAMES = _TF * _ROWS  # 28 frames
_BLOCK = _BLOCK_FRAMES * _HOP  # 7168 samples = 0.325 s
_DELTA = 1.3                 # QIM step, dB
_FLOOR = 0.1                 # floor relative to the local mean tile energy (-10 dB)
_ABS_FLOOR = 3e-5            # per bin and frame: white noise at about -69 dBFS
_NBHD = 2                    # blocks each side for the local level
_GAMMA = 2.0                 # how strongly changes go to quieter tiles
_DMAX = 1.5                  # dB, largest change of a tile: the same energy spread over more tiles (3.0 before: PESQ-WB min 3.95)
_PMIN = 0.5                  # limits the effort spent on features with little energy
_TOL = 0.05                  # later passes only correct errors beyond TOL * DELTA
_MIN_SNR = (30.2, 32.8)      # dB, hard cap on the payload layer's energy: chunks up to 1.5 s
_SHARE_SECONDS = (1.5, 3.0)  # ... get the whole budget, from 3 s on it leaves room for the sync layer
_BUDGET_EXTRA = 0.4          # dB: the budget (cheapest features first) is this much under the cap

# sync layer: embedding
_S_NFFT = 2048               # 10.8 Hz bins: fine enough for half-semitone nodes at 400 Hz
_S_HOP = _S_NFFT // 2        # sqrt-Hann at 50 % overlap reconstructs exactly
_S_LO, _S_HI = 400.0, 3000.0  # Hz; shifted 2.6 semitones either way it stays in 300-3400 Hz
_S_STEP = 0.5                # semitones between pattern nodes
_S_NODES = round(12 * np.log2(_S_HI / _S_LO) / _S_STEP) + 1  # 71
_S_CELL = 20 * _HOP          # samples per time cell: 0.232 s, long enough for 0.6 s of reverb
_S_PERIOD = 16               # cells per period (3.7 s)
_S_AMAX = 4.5                # dB: largest boost of a quiet node, the audibility cap (quiet clips stop
#                              here short of the SNR target; 5 dB put some under PESQ 4)
_S_KNEE = 0.35               # nodes louder than this quantile of the audible ones get less (1 / level);
#                              0.25 left too few nodes at full change to survive re-recording's noise
_S_QUIET = 3e-4              # nodes below -35 dB (of the mean) are left alone: noise drowns them
_S_ABS_FLOOR = 1.2e-4        # per bin and frame: white noise at about -69 dBFS is left alone
_S_SNR = 33.3                # dB, the sync layer's energy
_S_CUT = 2.0                 # cuts are this much deeper than boosts (dB): cheaper and less audible
_S_KMAX = 1.0                # the SNR target may scale the shape up to this multiple: only down, so
#                              that AMAX stays the cap

# sync layer: detection
_S_PB = 4                    # phase bins per cell
_S_DHOP = _S_CELL // (2 * _S_PB)  # detector STFT hop: two frames per phase bin
_S_DU = 0.125                # semitones: detector's log-frequency grid and shift step
_S_SHIFT = 2.6               # semitones searched either way (pitch shift, speed)
_S_SCALES = (0.87, 1.15)     # time scales searched (stretch 0.9-1.1, speed 0.95-1.05, chained)
_S_DETREND = (3, 16)         # phase bins x grid steps: local mean removed from log energies; 16 steps
#                              span four nodes (8 took out much of the pattern itself), 3 bins under a cell
_S_Z = 6.0                   # presence threshold on the z-score: unmarked speech P(z > 6.0) ~ 1e-4 (an
#                              exponential tail fitted above 4.4 to 1860 z-scores of real speech, 465
#                              pieces x 4 edits, largest 5.4), ten times under the 0.1 % allowed
#                              (with the 3 x 16 detrending: largest 5.61 of 10,920 checks, 24 edits)
_S_Z_TRY = 5.0               # above this, a frequency shift found is undone and the payload retried
_S_MIN_SHIFT = 0.25          # semitones: a smaller shift found is not worth undoing
_S_SPEED_MATCH = 0.05        # octaves: |log2(time scale) + shift / 12| of a speed change (measured
#                              0.00-0.07; a pitch shift of 1-2 semitones 0.05-0.19): only those are undone
_S_SCALE_PRECISION = 0.035   # octaves: how well the time scale is found (stretch 1.05: +-0.035)
_TRUST_Z = 3.0               # a payload read at a lower presence z is checked against the sync layer:
#                              after a stretch, marker + CRC once passed by chance at z 0.6 (legit
#                              payloads: z >= 5.4 after codecs and crops, 1.5 under 20 dB of noise)
_S_SEG = 12 * SAMPLE_RATE    # longer inputs are searched in segments ...
_S_SEG_HOP = 10 * SAMPLE_RATE
_S_Z_PER_DOUBLING = 0.3      # ... with the threshold raised per doubling of their number

_MARKER = 0b1011             # tool marker / format version 1
_N_INFO = 40
_N_CRC = 16
_N_MSG = _N_INFO + _N_CRC    # 56
_N_CODED = 2 * (_N_MSG + 6)  # 124

_SEGMENT = 30 * SAMPLE_RATE  # long inputs are searched for the payload in overlapping segments
_OVERLAP = 4 * SAMPLE_RATE
_N_WINDOWS = 48              # sliding windows (chosen by presence) decoded per segment
_N_REFINE = 10               # best hypotheses refined to a 4-sample grid and CRC-checked
_MIN_AGREEMENT = 0.75        # soft agreement of the decoding with the observations
_FRACS = np.arange(-4, 5) / 8.0
_GATE = 2.0                  # per-block presence z above which a block joins the any-phase sum
_N_SEEDS = 3                 # tentative decodings tried in the second chance
_SWITCH = 6.0                # evidence a change of block phase must earn (chunk boundaries)
_FINE = 32                   # detector's time grid, samples
_SUB = _HOP // _FINE         # 8 analyses per hop
_BLOCK_FINE = _BLOCK // _FINE  # 224

_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_TS_BITS = 20


# ----------------------------------------------------------------------------- payload

def voice_hash(name: str) -> int:
    """16-bit keyed hash of a voice name (exact string, UTF-8)."""
    if not isinstance(name, str):
        raise TypeError(f"voice name must be a str, not {type(name).__name__}")
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=2, person=b"voicefake-vh").digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Payload:
    voice_hash: int      # 16 bits: hash of the voice name (use voice_hash(name))
    timestamp: int       # coarse time: hours since 2025-01-01 UTC, 20 bits (until year 2144)

    def __post_init__(self):
        if not (isinstance(self.voice_hash, (int, np.integer)) and 0 <= self.voice_hash < 1 << 16):
            raise ValueError(f"voice_hash must be an int in [0, 65535], got {self.voice_hash!r}")
        if not (isinstance(self.timestamp, (int, np.integer)) and 0 <= self.timestamp < 1 << _TS_BITS):
            raise ValueError(f"timestamp must be an int in [0, {(1 << _TS_BITS) - 1}], got {self.timestamp!r}")

    @classmethod
    def now(cls, voice_name: str) -> Payload:
        hours = int((datetime.now(UTC) - _EPOCH).total_seconds() // 3600)
        return cls(voice_hash(voice_name), min(max(hours, 0), (1 << _TS_BITS) - 1))

    def created(self) -> datetime:
        """The hour the audio was made, as a UTC datetime."""
        return _EPOCH + timedelta(hours=int(self.timestamp))

    def to_bits(self) -> np.ndarray:
        v = (_MARKER << 36) | (int(self.voice_hash) << 20) | int(self.timestamp)
        return np.array([(v >> (_N_INFO - 1 - i)) & 1 for i in range(_N_INFO)], np.int8)

    @classmethod
    def from_bits(cls, bits) -> Payload | None:
        v = 0
        for b in bits[:_N_INFO]:
            v = (v << 1) | int(b)
        if v >> 36 != _MARKER:
            return None
        return cls((v >> 20) & 0xFFFF, v & ((1 << _TS_BITS) - 1))


@dataclass
class Detection:
    found: bool              # marked: a valid payload, or the sync pattern alone
    confidence: float        # 0..1, calibrated-ish
    payload: Payload | None
    score: float             # presence z-score: the sync layer's when it was searched (unmarked
    #                          speech: about 3-5.5, threshold 6.0), else the payload layer's

    @property
    def payload_unreadable(self) -> bool:
        """Found (the sync pattern alone), but no payload: "present, payload unreadable"."""
        return bool(self.found and self.payload is None)

    @property
    def verdict(self) -> str:
        """'marked', 'present, payload unreadable' or 'not marked'."""
        if not self.found:
            return "not marked"
        return "present, payload unreadable" if self.payload_unreadable else "marked"


# ----------------------------------------------------------------------------- keyed layout

def _keyed_rng(tag: str) -> np.random.Generator:
    seed = hashlib.sha256(b"voicefake-watermark-v1/" + tag.encode()).digest()
    return np.random.default_rng(int.from_bytes(seed[:8], "little"))


def _mel_edges() -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def imel(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    lo, hi = _K0 * SAMPLE_RATE / _NFFT, _K1 * SAMPLE_RATE / _NFFT
    e = np.round(imel(np.linspace(mel(lo), mel(hi), _NBAND + 1)) * _NFFT / SAMPLE_RATE).astype(int)
    for i in range(1, len(e)):
        e[i] = max(e[i], e[i - 1] + 2)
    e[-1] = _K1
    return e


def _make_layout():
    rng = _keyed_rng("layout")
    pairs = []
    for band in range(_NBAND):
        rows = rng.permutation(_ROWS)
        pairs += [(rows[i], rows[i + 1], band) for i in range(0, _ROWS, 2)]
    order = rng.permutation(len(pairs))
    pairs = np.array([pairs[i] for i in order])                  # (140, 3): row a, row b, band
    nfeat = len(pairs)
    tile_a = pairs[:, 0] * _NBAND + pairs[:, 2]                  # flat tile index (row * NBAND + band)
    tile_b = pairs[:, 1] * _NBAND + pairs[:, 2]
    sign = rng.choice([-1.0, 1.0], nfeat)                        # feature = sign * (L_a - L_b) / sqrt 2
    # features 0..123 carry coded bits 0..123; the spare ones repeat keyed coded bits
    bit_of = np.concatenate([np.arange(_N_CODED), rng.choice(_N_CODED, nfeat - _N_CODED, replace=False)])
    dither = rng.uniform(0.0, _DELTA, nfeat)
    crc_init = int(rng.integers(0, 1 << 16))
    return tile_a, tile_b, sign, bit_of, dither, crc_init


def _bump(d):
    """Raised-cosine kernel: bumps one unit apart sum to 1, so node values interpolate smoothly."""
    d = np.abs(d)
    return np.where(d < 1.0, np.cos(0.5 * np.pi * np.minimum(d, 1.0)) ** 2, 0.0)


def _make_sync_pattern() -> np.ndarray:
    """Keyed (PERIOD, NODES) pattern, zero mean along both axes (level and fixed filters cancel)."""
    c = _keyed_rng("sync").choice([-1.0, 1.0], (_S_PERIOD, _S_NODES))
    c -= c.mean(axis=0, keepdims=True)
    return c - c.mean(axis=1, keepdims=True)


def _node_weights(u: np.ndarray) -> np.ndarray:
    """(len(u), NODES) weights of the pattern's frequency nodes at u semitones above _S_LO."""
    return _bump(u[:, None] / _S_STEP - np.arange(_S_NODES)[None])


def _semitones(freq: np.ndarray) -> np.ndarray:
    return 12.0 * np.log2(np.maximum(freq, 1.0) / _S_LO)


def _nonzero_span(w: np.ndarray) -> slice:
    cols = np.nonzero(w.any(axis=0))[0]
    return slice(int(cols[0]), int(cols[-1]) + 1)


_EDGES = _mel_edges()
_TILE_A, _TILE_B, _SIGN, _BIT_OF, _DITHER, _CRC_INIT = _make_layout()
_NFEAT = len(_SIGN)
_BAND_OF_BIN = np.repeat(np.arange(_NBAND), np.diff(_EDGES))   # for bins _K0.._K1
_BAND_WIDTH = np.diff(_EDGES).astype(np.float64)
_WIN = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_NFFT) / _NFFT))  # periodic sqrt-Hann
_WIN32 = _WIN.astype(np.float32)

_S_PATTERN = _make_sync_pattern()
_S_WIN = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_S_NFFT) / _S_NFFT))
_S_WIN32 = _S_WIN.astype(np.float32)
_S_FREQ = np.arange(_S_NFFT // 2 + 1) * SAMPLE_RATE / _S_NFFT
_S_BINS = _nonzero_span(_node_weights(_semitones(_S_FREQ)).T)      # bins the pattern touches
_S_HF = _node_weights(_semitones(_S_FREQ[_S_BINS]))                # (bins, NODES)


# ----------------------------------------------------------------------------- coding

_G = (0o133, 0o171)


def _parity(v: int) -> int:
    return v.bit_count() & 1


_OUT = np.array([[_parity(r & _G[0]), _parity(r & _G[1])] for r in range(128)], np.int8)
_PREV = np.array([[(ns >> 1) | (m << 5) for m in (0, 1)] for ns in range(64)])
_PSGN = [1.0 - 2.0 * _OUT[np.array([ns | (m << 6) for ns in range(64)])] for m in (0, 1)]  # (64, 2) each


def _crc16(bits) -> np.ndarray:
    reg = _CRC_INIT
    for b in bits:
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return np.array([(reg >> (15 - i)) & 1 for i in range(16)], np.int8)


def _conv_encode(bits) -> np.ndarray:
    state, out = 0, []
    for b in list(bits) + [0] * 6:
        reg = (state << 1) | int(b)
        out += [int(_OUT[reg, 0]), int(_OUT[reg, 1])]
        state = reg & 63
    return np.array(out, np.int8)


def _conv_encode_many(msgs: np.ndarray) -> np.ndarray:
    """Vectorised _conv_encode for (n, 56) messages -> (n, 124)."""
    n = len(msgs)
    state = np.zeros(n, np.int64)
    out = np.empty((n, _N_CODED), np.int8)
    padded = np.concatenate([msgs.astype(np.int64), np.zeros((n, 6), np.int64)], axis=1)
    for t in range(_N_MSG + 6):
        reg = (state << 1) | padded[:, t]
        out[:, 2 * t] = _OUT[reg, 0]
        out[:, 2 * t + 1] = _OUT[reg, 1]
        state = reg & 63
    return out


def _codeword(payload: Payload) -> np.ndarray:
    info = payload.to_bits()
    return _conv_encode(np.concatenate([info, _crc16(info)]))


def _viterbi(soft: np.ndarray):
    """soft: (H, 124), > 0 means coded bit 0. Returns (H, 56) bits and the path metric (H,)."""
    h = soft.shape[0]
    steps = _N_MSG + 6
    pm = np.full((h, 64), -1e30)
    pm[:, 0] = 0.0
    dec = np.empty((steps, h, 64), bool)
    for t in range(steps):
        a0, a1 = soft[:, 2 * t, None], soft[:, 2 * t + 1, None]
        c0 = pm[:, _PREV[:, 0]] + (a0 * _PSGN[0][:, 0] + a1 * _PSGN[0][:, 1])
        c1 = pm[:, _PREV[:, 1]] + (a0 * _PSGN[1][:, 0] + a1 * _PSGN[1][:, 1])
        dec[t] = c1 > c0
        pm = np.maximum(c0, c1)
    state = np.zeros(h, int)
    bits = np.empty((h, steps), np.int8)
    rows = np.arange(h)
    for t in range(steps - 1, -1, -1):
        bits[:, t] = state & 1
        state = _PREV[state, dec[t, rows, state].astype(int)]
    return bits[:, :_N_MSG], pm[:, 0]


# ----------------------------------------------------------------------------- signal helpers

def _as_mono(audio, name="audio") -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono waveform, got shape {a.shape}")
    if a.dtype.kind in "iu":
        a = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    elif a.dtype.kind != "f":
        raise ValueError(f"{name} must be float or integer samples, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return a


def _check_rate(sample_rate) -> int:
    ok = isinstance(sample_rate, (int, float, np.integer, np.floating)) and not isinstance(sample_rate, bool)
    if not ok or not np.isfinite(sample_rate) or sample_rate != int(sample_rate) or sample_rate < 1000:
        raise ValueError(f"sample_rate must be a whole number of Hz >= 1000, got {sample_rate!r}")
    return int(sample_rate)


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out or len(x) == 0:
        return x
    try:
        import soxr  # fast and exact; a dependency of librosa
        return soxr.resample(x, sr_in, sr_out).astype(np.float64)
    except ImportError:  # pragma: no cover
        from scipy.signal import resample_poly
        g = gcd(sr_in, sr_out)
        return resample_poly(x, sr_out // g, sr_in // g)


def _stretch(x: np.ndarray, ratio: float) -> np.ndarray:
    """x resampled to ratio x as many samples (played at the same rate: slower and lower)."""
    try:
        import soxr
        return soxr.resample(x, 1.0, ratio).astype(np.float64)
    except ImportError:  # pragma: no cover
        from scipy.signal import resample
        return resample(x, round(len(x) * ratio))


def _frames(x: np.ndarray, start: int, hop: int, size: int = _NFFT) -> np.ndarray:
    n = (len(x) - start - size) // hop + 1
    if n <= 0:
        return np.zeros((0, size), x.dtype)
    return np.lib.stride_tricks.as_strided(
        x[start:], shape=(n, size), strides=(x.strides[0] * hop, x.strides[0]), writeable=False)


def _rfft(frames: np.ndarray) -> np.ndarray:
    """Windowed frames -> bins _K0.._K1 (complex64)."""
    return _fft.rfft((frames * _WIN32).astype(np.float32, copy=False), axis=1)[:, _K0:_K1]


def _band_energy(spec: np.ndarray) -> np.ndarray:
    """(frames, bins) complex -> (frames, NBAND) energy."""
    p = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
    return np.add.reduceat(p, _EDGES[:-1] - _K0, axis=1)


def _features(tiles: np.ndarray):
    """tiles: (..., nblk, ROWS*NBAND) tile energies along a run of consecutive blocks.

    Returns y (..., nblk, NFEAT) features in dB, and per tile s (sensitivity 0..1) and the
    floor-relative level used to share out changes.
    """
    lev = tiles.mean(axis=-1)                                   # (..., nblk)
    n = lev.shape[-1]
    c = np.concatenate([np.zeros(lev.shape[:-1] + (1,)), np.cumsum(lev, axis=-1)], axis=-1)
    i = np.arange(n)
    lo, hi = np.maximum(i - _NBHD, 0), np.minimum(i + _NBHD + 1, n)
    lev = (c[..., hi] - c[..., lo]) / (hi - lo)
    abs_floor = np.tile(_ABS_FLOOR * _TF * _BAND_WIDTH, _ROWS)   # (ROWS*NBAND,)
    phi = _FLOOR * lev[..., None] + abs_floor
    tot = tiles + phi
    L = 10.0 * np.log10(tot)
    s = tiles / tot
    y = (L[..., _TILE_A] - L[..., _TILE_B]) * (_SIGN / np.sqrt(2.0))
    return y, s, tot / (lev[..., None] + abs_floor)


# ----------------------------------------------------------------------------- embedding: payload layer

def _qim_gains(err: np.ndarray, s: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Tile changes (dB) moving each feature by err, shared out mostly to the quieter tile."""
    w = s * np.minimum(rel * 0.1, 1e3) ** -_GAMMA              # (nblk, tiles)
    wa, wb = w[:, _TILE_A], w[:, _TILE_B]
    proj = (s[:, _TILE_A] * wa + s[:, _TILE_B] * wb) / np.sqrt(2.0)
    k = err * _SIGN / np.maximum(proj, _PMIN)
    d = np.zeros_like(s)
    d[:, _TILE_A] = wa * k
    d[:, _TILE_B] = -wb * k
    return np.clip(d, -_DMAX, _DMAX)


def _qim_snr(n: int) -> float:
    """The payload layer's cap (dB SNR) for n samples: short chunks need all of the budget."""
    a = np.clip((n / SAMPLE_RATE - _SHARE_SECONDS[0]) / (_SHARE_SECONDS[1] - _SHARE_SECONDS[0]), 0.0, 1.0)
    return float(_MIN_SNR[0] + a * (_MIN_SNR[1] - _MIN_SNR[0]))


def _cheapest(tiles: np.ndarray, gain: np.ndarray, energy: float, snr_db: float) -> np.ndarray:
    """0/1 per feature: the cheapest features whose energy fits the budget."""
    cost = tiles[:, _TILE_A] * gain[:, _TILE_A] ** 2 + tiles[:, _TILE_B] * gain[:, _TILE_B] ** 2
    budget = (_NFFT / 2) * energy * 10 ** (-(snr_db + _BUDGET_EXTRA) / 10)
    order = np.argsort(cost, axis=None, kind="stable")
    n_ok = int(np.searchsorted(np.cumsum(cost.reshape(-1)[order]), budget, side="right"))
    chosen = np.zeros(cost.size)
    chosen[order[:n_ok]] = 1.0
    return chosen.reshape(cost.shape)


def _apply_tile_gains(spec: np.ndarray, gain: np.ndarray, nblk: int) -> np.ndarray:
    """Overlap-added change of the signal whose STFT is spec when tiles are scaled by 1 + gain."""
    nfr = len(spec)
    band_rows = np.repeat(np.arange(_ROWS), _TF)                 # frame in block -> tile row
    g = gain.astype(np.float32).reshape(nblk, _ROWS, _NBAND)[:, band_rows][:, :, _BAND_OF_BIN]
    full = np.zeros((nfr, _NFFT // 2 + 1), np.complex64)
    full[:, _K0:_K1] = spec * g.reshape(nfr, _K1 - _K0)
    fr = _fft.irfft(full, _NFFT, axis=1) * _WIN32
    ola = np.zeros((nfr + 1) * _HOP, np.float32)
    ola[:nfr * _HOP] += fr[:, :_HOP].reshape(-1)
    ola[_HOP:] += fr[:, _HOP:].reshape(-1)
    return ola[:(nfr - 1) * _HOP + _NFFT]


def _qim_residual(x: np.ndarray, payload: Payload) -> np.ndarray:
    """Payload layer: the change to x (22050 Hz) that writes the codeword into every block."""
    n = len(x)
    nblk = ((n - _NFFT) // _HOP + 1) // _BLOCK_FRAMES if n >= _NFFT else 0
    out = np.zeros(n)
    if nblk == 0:
        return out
    bits = _codeword(payload)[_BIT_OF].astype(np.float64)       # per feature
    nfr = nblk * _BLOCK_FRAMES
    span = (nfr - 1) * _HOP + _NFFT
    lead = (n - span) // 2          # centre the blocks: chunk edges are often silence
    spec = _rfft(_frames(x[lead:lead + span].astype(np.float32), 0, _HOP)[:nfr])
    resid = np.zeros(span, np.float32)
    target = chosen = None
    for it in range(2):
        if it:
            spec = spec + _rfft(_frames(resid, 0, _HOP)[:nfr])   # STFT is linear: analyse x + resid
        tiles = _band_energy(spec).reshape(nblk, _ROWS, _TF, _NBAND).sum(axis=2).reshape(nblk, -1)
        y, s, rel = _features(tiles)
        if target is None:
            centre = bits * (_DELTA / 2) + _DITHER
            target = np.round((y - centre) / _DELTA) * _DELTA + centre
        err = target - y
        if it:
            err = np.sign(err) * np.maximum(np.abs(err) - _TOL * _DELTA, 0.0) * chosen
        gain = 10.0 ** (_qim_gains(err, s, rel) / 20.0) - 1.0
        if not it:
            chosen = _cheapest(tiles, gain, float(np.einsum("i,i->", x, x)), _qim_snr(n))
            keep = np.ones_like(gain)
            keep[:, _TILE_A] = chosen
            keep[:, _TILE_B] = chosen
            gain *= keep
        resid += _apply_tile_gains(spec, gain, nblk)
    out[lead:lead + span] = resid
    return _capped(out, x, _qim_snr(n))


def _capped(wm: np.ndarray, x: np.ndarray, snr_db: float) -> np.ndarray:
    e_sig, e_wm = float(np.einsum("i,i->", x, x)), float(np.einsum("i,i->", wm, wm))
    limit = e_sig * 10 ** (-snr_db / 10)
    return wm * np.sqrt(limit / e_wm) if e_wm > limit else wm


# ----------------------------------------------------------------------------- embedding: sync layer

def _sync_shape(spec: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Change in dB per frame and bin: the pattern, scaled by how cheap each node is."""
    nodes = np.arange(int(np.floor(cells[0])) - 1, int(np.ceil(cells[-1])) + 2)
    ht = _bump(cells[:, None] - nodes[None])                     # (frames, time nodes)
    energy = ht.T @ (spec.real ** 2 + spec.imag ** 2) @ _S_HF    # (time nodes, freq nodes)
    loud = energy > _S_ABS_FLOOR * np.outer(ht.sum(axis=0), _S_HF.sum(axis=0))  # not silence
    amp = _S_AMAX * _sync_weight(energy / (energy.mean() + 1e-30)) * loud
    return ht @ (amp * _S_PATTERN[nodes % _S_PERIOD]) @ _S_HF.T


def _sync_weight(level: np.ndarray) -> np.ndarray:
    """Relative change per node from its level (relative to the mean): full below the knee (a
    quantile of the audible nodes' levels), falling as 1 / level above it, none when quiet."""
    audible = level > _S_QUIET
    if not audible.any():
        return np.zeros_like(level)
    knee = np.quantile(level[audible], _S_KNEE)
    return np.where(audible, np.minimum(1.0, knee / np.maximum(level, 1e-30)), 0.0)


def _sync_gain(g_db: np.ndarray) -> np.ndarray:
    """Amplitude change (factor - 1) for a change of g_db; cuts go deeper: cheaper, less audible."""
    return 10.0 ** (np.where(g_db < 0, _S_CUT * g_db, g_db) / 20.0) - 1.0


def _sync_synth(spec: np.ndarray, gain: np.ndarray, n: int) -> np.ndarray:
    """The change of the signal when its STFT bins are scaled by 1 + gain (overlap-add, hop N/2)."""
    full = np.zeros((len(spec), _S_NFFT // 2 + 1), np.complex64)
    full[:, _S_BINS] = spec * gain
    fr = _fft.irfft(full, _S_NFFT, axis=1) * _S_WIN32
    out = np.zeros((len(fr) + 1) * _S_HOP)
    out[:len(fr) * _S_HOP] += fr[:, :_S_HOP].reshape(-1)
    out[_S_HOP:] += fr[:, _S_HOP:].reshape(-1)
    return out[_S_HOP:_S_HOP + n]


def _sync_residual(x: np.ndarray, start: float) -> np.ndarray:
    """Sync layer: the change to x (22050 Hz) writing the pattern; x begins at stream sample start."""
    n = len(x)
    padded = np.concatenate([np.zeros(_S_HOP, np.float32), x.astype(np.float32), np.zeros(_S_NFFT, np.float32)])
    frames = _frames(padded, 0, _S_HOP, _S_NFFT)
    if len(frames) < 3 or not np.any(x):
        return np.zeros(n)
    spec = _fft.rfft(frames * _S_WIN32, axis=1)[:, _S_BINS]
    pw = spec.real ** 2 + spec.imag ** 2
    cells = (start - _S_HOP + _S_NFFT / 2 + np.arange(len(frames)) * _S_HOP) / _S_CELL
    g_db = _sync_shape(spec, cells).astype(np.float32)
    # scale to the energy target, measured on the spectrum (Parseval: the STFT is a tight frame)
    target = float(np.einsum("i,i->", x, x)) * 10 ** (-_S_SNR / 10) * (_S_NFFT / 2)
    k = 1.0
    for _ in range(2):
        e = float(np.einsum("ij,ij->", pw, _sync_gain(k * g_db) ** 2))
        if e <= 0:
            return np.zeros(n)
        k = min(k * np.sqrt(target / e), _S_KMAX)
    return _capped(_sync_synth(spec, _sync_gain(k * g_db), n), x, _S_SNR - 0.1)


def _combine(w_sync: np.ndarray, w_qim: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Both layers within the total budget; any excess is taken from the sync layer first."""
    limit = float(np.einsum("i,i->", x, x)) * 10 ** (-_MIN_TOTAL_SNR / 10)
    e_q, e_s = float(np.einsum("i,i->", w_qim, w_qim)), float(np.einsum("i,i->", w_sync, w_sync))
    if e_q + e_s > limit and e_s > 0:
        w_sync = w_sync * np.sqrt(max(limit - e_q, 0.0) / e_s)
    return _capped(w_sync + w_qim, x, _MIN_TOTAL_SNR)


def embed(audio: np.ndarray, sample_rate: int, payload: Payload, start: int = 0) -> np.ndarray:
    """Return the marked audio (same length, float32). Works for any length; very short (<~1 s) audio may carry a partial mark.

    `start`: samples (at sample_rate) of the same stream before this audio, so that sentence
    chunks marked one by one and played back to back continue one sync pattern (voice.py passes
    it). Deterministic: the same input always gives the same output. Silence (below about
    -69 dBFS) is left as it is.
    """
    if not isinstance(payload, Payload):
        raise TypeError("payload must be a watermark.Payload")
    sr = _check_rate(sample_rate)
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or start < 0:
        raise ValueError(f"start must be a sample count >= 0, got {start!r}")
    x_in = _as_mono(audio)
    x = _resample(x_in, sr, SAMPLE_RATE)
    if len(x) < _NFFT or not np.any(x):
        return x_in.astype(np.float32)
    w_sync = _sync_residual(x, start * SAMPLE_RATE / sr)
    wm = _combine(w_sync, _qim_residual(x + w_sync, payload), x)
    if sr != SAMPLE_RATE:
        wm = _resample(wm, SAMPLE_RATE, sr)
        wm = np.pad(wm, (0, max(0, len(x_in) - len(wm))))[:len(x_in)]
    out = x_in + wm
    if np.max(np.abs(x_in)) <= 1.0:
        out = np.clip(out, -1.0, 1.0)
    return out.astype(np.float32)
# ----------------------------------------------------------------------------- detection: payload layer

def _fine_band_energy(x: np.ndarray) -> np.ndarray:
    """Band energies of frames starting every _FINE samples: (nfine, NBAND)."""
    nf = (len(x) - _NFFT) // _FINE + 1
    out = np.zeros((max(nf, 0), _NBAND))
    x32 = x.astype(np.float32)
    for q in range(_SUB):
        fr = _frames(x32, q * _FINE, _HOP)
        if len(fr):
            out[q::_SUB][:len(fr)] = _band_energy(_rfft(fr))
    return out


_TILE_OFFS = ((np.arange(_ROWS) * (_TF * _SUB))[:, None] + (np.arange(_TF) * _SUB)[None, :])  # (ROWS, TF)


def _tiles_at(E: np.ndarray, starts: np.ndarray, frac: float = 0.0) -> np.ndarray:
    """Tile energies of blocks beginning at fine positions starts + frac: (len(starts), ROWS*NBAND)."""
    lo = int(np.floor(frac))
    a = frac - lo
    idx = np.clip(starts[:, None, None] + lo + _TILE_OFFS[None], 0, len(E) - 1)
    t = E[idx]
    if a:
        t = (1 - a) * t + a * E[np.minimum(idx + 1, len(E) - 1)]
    return t.sum(axis=2).reshape(len(starts), _ROWS * _NBAND)


def _soft_bits(y: np.ndarray, s: np.ndarray):
    """Per block: soft values of the 124 coded bits (..., nblk, 124) and a presence z-score (..., nblk)."""
    ph = (2 * np.pi / _DELTA) * (y - _DITHER)
    rel = 0.5 * (s[..., _TILE_A] + s[..., _TILE_B])           # share of the feature above the floor
    sf = np.cos(ph) * rel
    out = sf[..., :_N_CODED].copy()
    out[..., _BIT_OF[_N_CODED:]] += sf[..., _N_CODED:]
    # codeword-free evidence: features sit on the union of both lattices
    pres = (np.cos(2 * ph) * rel).sum(axis=-1) / np.sqrt((rel ** 2).sum(axis=-1) / 2 + 1e-9)
    return out, pres


def _decode(soft: np.ndarray):
    bits, metric = _viterbi(soft)
    return bits, metric / np.maximum(np.abs(soft).sum(axis=1), 1e-12)


def _check(bits) -> Payload | None:
    info, crc = bits[:_N_INFO], bits[_N_INFO:_N_MSG]
    if not np.array_equal(_crc16(info), crc):
        return None
    return Payload.from_bits(info)


def _window_list(nblk: int):
    out = []
    w = 9
    while w < nblk:
        starts = list(range(0, nblk - w + 1, 3))
        if starts[-1] != nblk - w:
            starts.append(nblk - w)
        out += [(a, a + w) for a in starts]
        w *= 2
    return out


def _track(obs: np.ndarray, switch: float) -> np.ndarray:
    """Phase per block slot maximising the summed evidence minus `switch` per change of phase."""
    nph, nk = obs.shape
    score = obs[:, 0].copy()
    back = np.zeros((nk, nph), np.int64)
    idx = np.arange(nph)
    for k in range(1, nk):
        j = int(np.argmax(score))
        stay = score >= score[j] - switch
        back[k] = np.where(stay, idx, j)
        score = np.where(stay, score, score[j] - switch) + obs[:, k]
    path = np.empty(nk, np.int64)
    path[-1] = int(np.argmax(score))
    for k in range(nk - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    return path


def _path_soft(all_sb, path, weights):
    """Sum of the blocks along a phase path (weighted by positive evidence when given)."""
    out = np.zeros(_N_CODED)
    for k, ph in enumerate(path):
        if k < len(all_sb[ph]):
            w = 1.0 if weights is None else max(weights[ph, k], 0.0)
            out += w * all_sb[ph][k]
    return out if out.any() else None


def _phase_grid(rows, nk: int) -> np.ndarray:
    """Per-phase block values padded into a (phases, block slots) grid."""
    g = np.full((len(rows), nk), -3.0)
    for ph, r in enumerate(rows):
        g[ph, :len(r)] = r
    return g


def _scan_phases(E: np.ndarray, last: int) -> dict:
    """Every block phase: per-block soft bits and presence, whole-run and sliding-window sums."""
    scan = {"hyps": [], "softs": [], "pz": [], "sb": [], "pres": [], "gated": np.zeros(_N_CODED), "gated_w": 0.0}
    wins = []
    for phase in range(min(_BLOCK_FINE, last + 1)):
        starts = np.arange(phase, last + 1, _BLOCK_FINE)
        sb, pres = _soft_bits(*_features(_tiles_at(E, starts))[:2])
        scan["sb"].append(sb)
        scan["pres"].append(pres)
        scan["hyps"].append((phase, 0, len(starts)))
        scan["softs"].append(sb.sum(axis=0))
        scan["pz"].append(pres.sum() / np.sqrt(len(starts)))
        g = np.maximum(pres - _GATE, 0.0)      # blocks that look marked, whatever their phase
        if g.any():
            scan["gated"] += g @ sb
            scan["gated_w"] += g.sum()
        cs = np.concatenate([[0.0], np.cumsum(pres)])
        csb = np.concatenate([np.zeros((1, _N_CODED)), np.cumsum(sb, axis=0)])
        wins += [((cs[b] - cs[a]) / np.sqrt(b - a), phase, a, b, csb) for a, b in _window_list(len(starts))]
    wins.sort(key=lambda c: -c[0])
    for z, phase, a, b, csb in wins[:_N_WINDOWS]:
        scan["hyps"].append((phase, a, b))
        scan["softs"].append(csb[b] - csb[a])
        scan["pz"].append(z)
    return scan


def _refined(E: np.ndarray, last: int, scan: dict, agree: np.ndarray):
    """The most promising hypotheses re-measured on a 4-sample grid, plus the any-phase sum and
    the piecewise-constant phase path (independently marked chunks): (soft sums, their z)."""
    pz = np.array(scan["pz"])
    pick = list(dict.fromkeys(list(np.argsort(-agree)[:_N_REFINE]) + list(np.argsort(-pz)[:4])))
    soft, z = [], []
    for h in pick:
        phase, a, b = scan["hyps"][h]
        starts = np.arange(phase, last + 1, _BLOCK_FINE)
        for frac in _FRACS:
            sb, pres = _soft_bits(*_features(_tiles_at(E, starts, frac))[:2])
            soft.append(sb[a:b].sum(axis=0))
            z.append(pres[a:b].sum() / np.sqrt(b - a))
    if scan["gated_w"] > 0:
        soft.append(scan["gated"])
        z.append(float(pz.max()))
    nk = max(len(p) for p in scan["pres"])
    tracked = _path_soft(scan["sb"], _track(_phase_grid(scan["pres"], nk), _SWITCH), None)
    if tracked is not None:
        soft.append(tracked)
        z.append(float(pz.max()))
    return np.array(soft), z


def _first_valid(bits: np.ndarray, agree: np.ndarray, z) -> tuple | None:
    for i in np.argsort(-agree):
        if agree[i] < _MIN_AGREEMENT:
            break
        p = _check(bits[i])
        if p is not None:
            return p, float(z[i])
    return None


def _second_chance(scan: dict, cand: np.ndarray):
    """Blocks from any phase that agree with a tentative decoding (a file of independently marked
    chunks, a mark inside unmarked audio), pooled along a phase path and decoded again; the best
    few tentative decodings are iterated. Returns (payload or None, checks made)."""
    flat = np.concatenate(scan["sb"])
    flat = flat / (np.sqrt((flat ** 2).sum(axis=1, keepdims=True)) + 1e-9)
    offs = np.cumsum([0] + [len(sb) for sb in scan["sb"]])
    nk = max(len(p) for p in scan["pres"])
    zall = flat @ (1.0 - 2.0 * _conv_encode_many(cand)).T       # (blocks, candidates)
    quality = np.maximum(zall - 3.0, 0.0).sum(axis=0)

    def grid_of(z):
        return _phase_grid([z[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)], nk)

    checks = 0
    for si in np.argsort(-quality)[:_N_SEEDS]:
        msg, zgrid = cand[si], grid_of(zall[:, si])
        for _ in range(3):
            soft = _path_soft(scan["sb"], _track(zgrid, _SWITCH), zgrid)
            if soft is None:
                break
            b2, ag = _decode(soft[None])
            checks += 1
            p = _check(b2[0]) if ag[0] >= _MIN_AGREEMENT else None
            if p is not None:
                return p, checks
            if np.array_equal(b2[0], msg):
                break
            msg = b2[0]
            zgrid = grid_of(flat @ (1.0 - 2.0 * _conv_encode(msg)))
    return None, checks


def _detect_segment(x: np.ndarray):
    """(payload or None, presence z, checks made) for one stretch of 22050 Hz audio; None if too short."""
    E = _fine_band_energy(x)
    last = len(E) - 1 - (_BLOCK_FINE - _SUB)                    # last usable block start
    if last < 0:
        return None
    scan = _scan_phases(E, last)
    coarse_bits, agree = _decode(np.array(scan["softs"]))
    softs, z = _refined(E, last, scan, agree)
    bits, ragree = _decode(softs)
    hit = _first_valid(bits, ragree, z)
    if hit is not None:
        return hit[0], hit[1], len(softs)
    p, more = _second_chance(scan, np.unique(np.concatenate([coarse_bits, bits]), axis=0))
    z_best = float(max(scan["pz"])) if p is not None else float(max(max(scan["pz"]), max(z)))
    return p, z_best, len(softs) + more


def _detect_payload(x: np.ndarray):
    """(payload or None, presence z, checks made) of the payload layer, long inputs in segments."""
    step = _SEGMENT - _OVERLAP
    seg_starts = [0] if len(x) <= _SEGMENT + _OVERLAP else list(range(0, len(x) - _OVERLAP, step))
    best_z, checks = -np.inf, 0
    for a in seg_starts:
        r = _detect_segment(x[a:a + _SEGMENT] if len(seg_starts) > 1 else x)
        if r is None:
            continue
        p, z, n = r
        checks += n
        if p is not None:
            return p, z, checks
        best_z = max(best_z, z)
    return None, best_z, checks


# ----------------------------------------------------------------------------- detection: sync layer

def _make_fine_grid():
    """Detector's log-frequency grid (semitones above _S_LO), its weights over STFT bins, their span."""
    u = np.arange(-_S_SHIFT - _S_STEP, _semitones(np.array(_S_HI)) + _S_SHIFT + _S_STEP, _S_DU)
    f = _S_LO * 2.0 ** (u / 12.0)
    width = np.maximum(f * (2.0 ** (_S_DU / 12.0) - 1.0), SAMPLE_RATE / _S_NFFT)
    w = np.maximum(0.0, 1.0 - np.abs(_S_FREQ[None] - f[:, None]) / width[:, None])
    w /= w.sum(axis=1, keepdims=True)
    span = _nonzero_span(w)
    return u, w[:, span].astype(np.float32), span


_S_UQ, _S_FINE_W, _S_DBINS = _make_fine_grid()
_S_SHIFTS = np.arange(-round(_S_SHIFT / _S_DU), round(_S_SHIFT / _S_DU) + 1)
_S_NPH = _S_PERIOD * _S_PB


@functools.lru_cache(maxsize=1)
def _sync_templates():
    """Spectra (over phase) of the pattern, and of its square, at every shift: (phase freqs, shifts, grid)."""
    ph = np.arange(_S_NPH) / _S_PB
    ht = sum(_bump(ph[:, None] - (np.arange(_S_PERIOD)[None] + k * _S_PERIOD)) for k in (-1, 0, 1))
    tpl = np.stack([ht @ _S_PATTERN @ _node_weights(_S_UQ - s * _S_DU).T for s in _S_SHIFTS])
    return tuple(np.conj(_fft.rfft(t, axis=1)).transpose(1, 0, 2).copy() for t in (tpl, tpl ** 2))


def _sync_features(x: np.ndarray):
    """Detrended log energies on the fine grid, _S_PB rows per cell, and the weights the
    embedding rule predicts (quiet nodes carry most, silence nothing)."""
    fr = _frames(x.astype(np.float32), 0, _S_DHOP, _S_NFFT)
    spec = _fft.rfft(fr * _S_WIN32, axis=1)[:, _S_DBINS]
    pw = (spec.real ** 2 + spec.imag ** 2) @ _S_FINE_W.T
    n = len(pw) // 2
    pw = pw[:2 * n].reshape(n, 2, -1).mean(axis=1).astype(np.float64)
    mean = pw.mean() + 1e-30
    logs = 10.0 * np.log10(pw + 1e-4 * mean)
    level = uniform_filter(pw, (_S_PB, round(_S_STEP / _S_DU)), mode="nearest") / mean
    return logs - uniform_filter(logs, _S_DETREND, mode="nearest"), _sync_weight(level)


def _scale_grid(seconds: float) -> np.ndarray:
    """Time scales to try: a step that drifts by at most half a cell... over the whole input."""
    step = _S_CELL / SAMPLE_RATE / (2.0 * max(seconds, 1.0))
    lo, hi = np.log(_S_SCALES[0]), np.log(_S_SCALES[1])
    return np.exp(np.linspace(lo, hi, int(np.ceil((hi - lo) / step)) + 1))


def _sync_map(x: np.ndarray):
    """Correlation z-scores (scales, shifts, offsets) of the pattern with x, and the scales; None if too short."""
    d, w = _sync_features(x)
    n = len(d)
    sd = np.sqrt(np.sum(w * d * d) / max(np.sum(w), 1e-12))
    if n < 2 * _S_PB or sd <= 0:
        return None
    wd, ww = w * d, w * w
    t, cols = np.arange(n) / _S_PB, np.arange(n)
    scales = _scale_grid(n * _S_CELL / _S_PB / SAMPLE_RATE)
    f1, f2 = _sync_templates()
    out = np.empty((len(scales), len(_S_SHIFTS), _S_NPH))
    for i, a in enumerate(scales):
        ph = (t / a) % _S_PERIOD * _S_PB                       # phase bin each row folds into
        i0 = np.floor(ph).astype(int)
        fold = np.zeros((_S_NPH, n))
        fold[i0 % _S_NPH, cols] = 1.0 - (ph - i0)
        fold[(i0 + 1) % _S_NPH, cols] = ph - i0
        num = np.matmul(f1, _fft.rfft(fold @ wd, axis=0)[:, :, None])[..., 0]
        var = np.matmul(f2, _fft.rfft(fold @ ww, axis=0)[:, :, None])[..., 0]
        num, var = _fft.irfft(num, _S_NPH, axis=0), _fft.irfft(var, _S_NPH, axis=0)
        out[i] = (num / np.sqrt(np.maximum(var, 1e-12))).T / sd
    return out, scales


def _vertex(v: np.ndarray, i: int) -> float:
    """Sub-step position of a peak at i from its neighbours (parabola)."""
    if 0 < i < len(v) - 1:
        den = v[i - 1] - 2 * v[i] + v[i + 1]
        return float(np.clip(0.5 * (v[i - 1] - v[i + 1]) / den, -0.5, 0.5)) if den < 0 else 0.0
    return 0.0


def _sync_search(x: np.ndarray):
    """Presence z-score (minus the allowance for several segments) and the (time scale, shift in
    semitones) of the best alignment; (0, None) when too short."""
    n = len(x)
    starts = [0] if n <= _S_SEG + _S_SEG_HOP // 2 else list(range(0, n - _S_SEG + 1, _S_SEG_HOP))
    if starts[-1] + _S_SEG < n:
        starts.append(n - _S_SEG)
    best, warp = -np.inf, None
    for a in starts:
        r = _sync_map(x[a:a + _S_SEG] if len(starts) > 1 else x)
        if r is None:
            continue
        zmap, scales = r
        med = np.median(zmap)           # robust: the mark's own side peaks do not inflate the spread
        z = (zmap - med) / (1.4826 * np.median(np.abs(zmap - med)) + 1e-12)
        i, j, k = np.unravel_index(np.argmax(z), z.shape)
        if z[i, j, k] > best:
            step = np.log(scales[1] / scales[0]) if len(scales) > 1 else 0.0
            scale = float(scales[i] * np.exp(step * _vertex(z[:, j, k], i)))
            best, warp = float(z[i, j, k]), (scale, float((_S_SHIFTS[j] + _vertex(z[i, :, k], j)) * _S_DU))
    if warp is None:
        return 0.0, None
    return best - _S_Z_PER_DOUBLING * np.log2(len(starts)), warp


# ----------------------------------------------------------------------------- detection

def _speed_ratio(warp) -> float | None:
    """The resampling ratio that undoes a speed change the sync search found: a frequency shift with
    the time scale that goes with it (a pitch shift or a stretch is not undone: no payload survives it)."""
    scale, shift = warp
    if abs(shift) < _S_MIN_SHIFT or abs(np.log2(scale) + shift / 12.0) > _S_SPEED_MATCH:
        return None
    return float(2.0 ** (shift / 12.0))


def _warped(z: float, warp) -> bool:
    """Does the sync layer see the time or frequency axis moved (so no payload can be read as it is)?"""
    return z >= _S_Z and warp is not None and (abs(np.log2(warp[0])) > _S_SCALE_PRECISION or abs(warp[1]) >= _S_MIN_SHIFT)


def detect(audio: np.ndarray, sample_rate: int) -> Detection:
    """Any sample rate (resampled internally), any length (shorter than 0.35 s: never found)."""
    sr = _check_rate(sample_rate)
    x = _resample(_as_mono(audio), sr, SAMPLE_RATE)
    if len(x) < _BLOCK + _NFFT or not np.any(x):
        return Detection(False, 0.0, None, 0.0)
    payload, z_qim, checks = _detect_payload(x)
    if payload is not None and z_qim >= _TRUST_Z:
        return Detection(True, _payload_confidence(checks), payload, z_qim)
    z, warp = _sync_search(x)
    if payload is not None and not _warped(z, warp):
        return Detection(True, _payload_confidence(checks), payload, z_qim)
    ratio = _speed_ratio(warp) if warp is not None and z >= _S_Z_TRY else None
    if ratio is not None:                # resample back and read the payload after all
        payload, z_qim, more = _detect_payload(_stretch(x, ratio))
        if payload is not None and z_qim >= _TRUST_Z:
            return Detection(True, _payload_confidence(checks + more), payload, z)
    return Detection(bool(z >= _S_Z), _presence_confidence(z), None, z)


def _payload_confidence(checks: int) -> float:
    """1 - the chance that unmarked audio passes marker + CRC in any of the checks made."""
    return float(1.0 - min(checks * 2.0 ** -(_N_CRC + 4), 0.5))


def _presence_confidence(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-2.0 * (z - _S_Z))))
