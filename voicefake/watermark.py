"""Inaudible, robust audio watermark for everything voicefake synthesizes.

Design (our own; numpy/scipy only):

* Signal model. A 512-point STFT (hop 256) at 22050 Hz; 129-3488 Hz is split into 20
  mel-spaced bands, and 2 frames x 1 band form a *tile*. Everything lives below 3.5 kHz (so the
  mark survives resampling to 8 kHz) and in log tile energies (so it survives gain).
* Blocks. 14 rows of tiles (28 frames, 0.325 s) form a block, and every block carries the whole
  124-bit codeword: each coded bit is one *feature*, the difference of the log-energies of two
  tiles of the same band (keyed random pairing and sign), so gain and fixed per-band filtering
  (codecs, resamplers) cancel out. Tiles under a floor 10 dB below the local level count little.
* Embedding is dithered quantisation-index modulation (step 1.3 dB) of every feature: its two
  tiles are scaled until the feature sits on the lattice of its bit; the change goes mostly to
  the quieter tile (cheaper in SNR); the cheapest features are served first within an energy
  budget, and a last cap keeps SNR >= 30.2 dB. Two analysis/synthesis passes: ~0.002 x real time.
* Payload. 4-bit tool marker/version, 16-bit voice hash, 20-bit hour count since 2025-01-01,
  a keyed CRC-16 (20 check bits with the marker), K=7 rate-1/2 convolutional code.
* Detection resamples to 22050 Hz, measures tile energies on a 32-sample grid, and for every
  block phase sums per-block soft bits (weighted by how much of each feature is above the
  floor) over the whole input and over sliding windows picked by a codeword-free presence
  score, Viterbi-decodes them, refines the best alignments to 4 samples and checks marker + CRC.
  If that fails, blocks of any phase that agree with a tentative decoding are pooled along a
  piecewise-constant phase path (independently marked chunks, a mark inside unmarked audio)
  and decoded again. A mark is reported only with a valid marker and CRC.

Every block is self-contained and each `embed` call lays its own block grid, so chunks can be
marked one by one (as a streaming writer does): a 3 s window holds 8-9 blocks, and every
chunk of at least 0.34 s carries at least one full block.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from math import gcd

import numpy as np
import scipy.fft as _fft

__all__ = ["Payload", "Detection", "voice_hash", "embed", "detect", "SAMPLE_RATE"]

SAMPLE_RATE = 22050          # the rate the mark is defined at (voicefake's output rate)
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
_DMAX = 3.0                  # dB, largest change of a tile
_PMIN = 0.5                  # limits the effort spent on features with little energy
_TOL = 0.05                  # later passes only correct errors beyond TOL * DELTA
_MIN_SNR = 30.2              # dB, hard cap on the watermark energy per embed() call
_BUDGET_SNR = 30.6           # dB, energy budget: the cheapest features are embedded first

_MARKER = 0b1011             # tool marker / format version 1
_N_INFO = 40
_N_CRC = 16
_N_MSG = _N_INFO + _N_CRC    # 56
_N_CODED = 2 * (_N_MSG + 6)  # 124

_FINE = 32                   # detector's time grid, samples
_SUB = _HOP // _FINE         # 8 analyses per hop
_BLOCK_FINE = _BLOCK // _FINE  # 224

_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
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
    def now(cls, voice_name: str) -> "Payload":
        hours = int((datetime.now(timezone.utc) - _EPOCH).total_seconds() // 3600)
        return cls(voice_hash(voice_name), min(max(hours, 0), (1 << _TS_BITS) - 1))

    def created(self) -> datetime:
        """The hour the audio was made, as a UTC datetime."""
        return _EPOCH + timedelta(hours=int(self.timestamp))

    def to_bits(self) -> np.ndarray:
        v = (_MARKER << 36) | (int(self.voice_hash) << 20) | int(self.timestamp)
        return np.array([(v >> (_N_INFO - 1 - i)) & 1 for i in range(_N_INFO)], np.int8)

    @classmethod
    def from_bits(cls, bits) -> "Payload | None":
        v = 0
        for b in bits[:_N_INFO]:
            v = (v << 1) | int(b)
        if v >> 36 != _MARKER:
            return None
        return cls((v >> 20) & 0xFFFF, v & ((1 << _TS_BITS) - 1))


@dataclass
class Detection:
    found: bool
    confidence: float        # 0..1, calibrated-ish
    payload: Payload | None
    score: float             # raw detector statistic: presence z-score of the best alignment
    #                          (unmarked speech: ~2-5, the maximum over all alignments tried)


# ----------------------------------------------------------------------------- keyed layout

def _keyed_rng(tag: str) -> np.random.Generator:
    seed = hashlib.sha256(b"voicefake-watermark-v1/" + tag.encode()).digest()
    return np.random.default_rng(int.from_bytes(seed[:8], "little"))


def _mel_edges() -> np.ndarray:
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    imel = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
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


_EDGES = _mel_edges()
_TILE_A, _TILE_B, _SIGN, _BIT_OF, _DITHER, _CRC_INIT = _make_layout()
_NFEAT = len(_SIGN)
_BAND_OF_BIN = np.repeat(np.arange(_NBAND), np.diff(_EDGES))   # for bins _K0.._K1
_BAND_WIDTH = np.diff(_EDGES).astype(np.float64)
_WIN = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_NFFT) / _NFFT))  # periodic sqrt-Hann
_WIN32 = _WIN.astype(np.float32)


# ----------------------------------------------------------------------------- coding

_G = (0o133, 0o171)


def _parity(v: int) -> int:
    return bin(v).count("1") & 1


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


def _frames(x: np.ndarray, start: int, hop: int) -> np.ndarray:
    n = (len(x) - start - _NFFT) // hop + 1
    if n <= 0:
        return np.zeros((0, _NFFT))
    return np.lib.stride_tricks.as_strided(
        x[start:], shape=(n, _NFFT), strides=(x.strides[0] * hop, x.strides[0]), writeable=False)


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


# ----------------------------------------------------------------------------- embedding

def embed(audio: np.ndarray, sample_rate: int, payload: Payload) -> np.ndarray:
    """Return the marked audio (same length, float32). Works for any length; very short (<~1 s) audio may carry a partial mark.

    Deterministic: the same input always gives the same output. Each call places its own grid
    of 0.325 s blocks (centred in the audio), so sentence chunks can be marked independently.
    Silence (below about -69 dBFS) is left as it is.
    """
    if not isinstance(payload, Payload):
        raise TypeError("payload must be a watermark.Payload")
    sr = _check_rate(sample_rate)
    x_in = _as_mono(audio)
    n_in = len(x_in)
    x = _resample(x_in, sr, SAMPLE_RATE)
    n = len(x)
    nblk = ((n - _NFFT) // _HOP + 1) // _BLOCK_FRAMES if n >= _NFFT else 0
    if nblk == 0 or not np.any(x):
        return x_in.astype(np.float32)

    code = _codeword(payload)
    bits = code[_BIT_OF].astype(np.float64)                     # per feature
    nfr = nblk * _BLOCK_FRAMES
    span = (nfr - 1) * _HOP + _NFFT
    lead = (n - span) // 2          # centre the blocks: chunk edges are often silence
    xs = x[lead:lead + span].astype(np.float32)
    band_rows = np.repeat(np.arange(_ROWS), _TF)                 # frame in block -> tile row
    spec = _rfft(_frames(xs, 0, _HOP)[:nfr])                     # (nfr, bins) of the input
    target = None
    resid = np.zeros(span, np.float32)
    for it in range(2):
        if it:
            spec = spec + _rfft(_frames(resid, 0, _HOP)[:nfr])   # STFT is linear: analyse x + resid
        e_band = _band_energy(spec).reshape(nblk, _ROWS, _TF, _NBAND).sum(axis=2)
        y, s, rel = _features(e_band.reshape(nblk, _ROWS * _NBAND))
        if target is None:
            centre = bits * (_DELTA / 2) + _DITHER
            target = np.round((y - centre) / _DELTA) * _DELTA + centre
        err = target - y
        if it:
            err = np.sign(err) * np.maximum(np.abs(err) - _TOL * _DELTA, 0.0) * chosen
        # share each feature's change over its two tiles, mostly to the quieter one
        w = s * np.minimum(rel * 0.1, 1e3) ** -_GAMMA              # (nblk, tiles)
        wa, wb = w[:, _TILE_A], w[:, _TILE_B]
        sa, sb = s[:, _TILE_A], s[:, _TILE_B]
        proj = (sa * wa + sb * wb) / np.sqrt(2.0)
        k = err * _SIGN / np.maximum(proj, _PMIN)
        d = np.zeros_like(s)
        d[:, _TILE_A] = wa * k
        d[:, _TILE_B] = -wb * k
        d = np.clip(d, -_DMAX, _DMAX)
        gain = 10.0 ** (d / 20.0) - 1.0                          # (nblk, ROWS*NBAND)
        if not it:
            # energy each feature costs; spend the budget on the cheapest ones
            tiles = e_band.reshape(nblk, _ROWS * _NBAND)
            cost = tiles[:, _TILE_A] * gain[:, _TILE_A] ** 2 + tiles[:, _TILE_B] * gain[:, _TILE_B] ** 2
            budget = (_NFFT / 2) * float(np.einsum("i,i->", x, x)) * 10 ** (-_BUDGET_SNR / 10)
            order = np.argsort(cost, axis=None, kind="stable")
            n_ok = int(np.searchsorted(np.cumsum(cost.reshape(-1)[order]), budget, side="right"))
            chosen = np.zeros(cost.size)
            chosen[order[:n_ok]] = 1.0
            chosen = chosen.reshape(cost.shape)
            keep = np.ones_like(gain)
            keep[:, _TILE_A] = chosen
            keep[:, _TILE_B] = chosen
            gain *= keep
        gain = gain.astype(np.float32)
        g = gain.reshape(nblk, _ROWS, _NBAND)[:, band_rows][:, :, _BAND_OF_BIN].reshape(nfr, _K1 - _K0)
        full = np.zeros((nfr, _NFFT // 2 + 1), np.complex64)
        full[:, _K0:_K1] = spec * g
        fr = _fft.irfft(full, _NFFT, axis=1) * _WIN32
        ola = np.zeros((nfr + 1) * _HOP, np.float32)
        ola[:nfr * _HOP] += fr[:, :_HOP].reshape(-1)
        ola[_HOP:] += fr[:, _HOP:].reshape(-1)
        resid += ola[:span]
    resid = resid.astype(np.float64)

    e_sig = float(np.einsum("i,i->", x, x))
    e_wm = float(np.einsum("i,i->", resid, resid))
    if e_wm > e_sig * 10 ** (-_MIN_SNR / 10):
        resid *= np.sqrt(e_sig * 10 ** (-_MIN_SNR / 10) / e_wm)
    wm = np.zeros(n)
    wm[lead:lead + span] = resid
    if sr != SAMPLE_RATE:
        wm = _resample(wm, SAMPLE_RATE, sr)
        wm = np.pad(wm, (0, max(0, n_in - len(wm))))[:n_in]
    out = x_in + wm
    if np.max(np.abs(x_in)) <= 1.0:
        out = np.clip(out, -1.0, 1.0)
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- detection

_SEGMENT = 30 * SAMPLE_RATE  # long inputs are searched in overlapping segments
_OVERLAP = 4 * SAMPLE_RATE
_N_WINDOWS = 48              # sliding windows (chosen by presence) decoded per segment
_N_REFINE = 10               # best hypotheses refined to a 4-sample grid and CRC-checked
_MIN_AGREEMENT = 0.75        # soft agreement of the decoding with the observations
_FRACS = np.arange(-4, 5) / 8.0
_GATE = 2.0                  # per-block presence z above which a block joins the any-phase sum
_N_SEEDS = 3                 # tentative decodings tried in the second chance
_SWITCH = 6.0                # evidence a change of block phase must earn (chunk boundaries)


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


def _track_score(obs: np.ndarray, switch: float) -> np.ndarray:
    """Best path score of _track for a stack of grids (n, nph, nk)."""
    score = obs[:, :, 0].copy()
    for k in range(1, obs.shape[2]):
        top = score.max(axis=1, keepdims=True) - switch
        score = np.maximum(score, top) + obs[:, :, k]
    return score.max(axis=1)


def _path_soft(all_sb, path, weights):
    """Sum of the blocks along a phase path (weighted by positive evidence when given)."""
    out = np.zeros(_N_CODED)
    for k, ph in enumerate(path):
        if k < len(all_sb[ph]):
            w = 1.0 if weights is None else max(weights[ph, k], 0.0)
            out += w * all_sb[ph][k]
    return out if out.any() else None


def _detect_segment(x: np.ndarray):
    """Best (found, payload, presence z, checks) for one stretch of 22050 Hz audio."""
    E = _fine_band_energy(x)
    last = len(E) - 1 - (_BLOCK_FINE - _SUB)                    # last usable block start
    if last < 0:
        return None
    nph = min(_BLOCK_FINE, last + 1)
    hyps, softs, pz = [], [], []                                # (phase, a, b)
    win_cands = []
    gated = np.zeros(_N_CODED)
    gated_w = 0.0
    all_sb, all_pres = [], []
    for phase in range(nph):
        starts = np.arange(phase, last + 1, _BLOCK_FINE)
        y, s, _ = _features(_tiles_at(E, starts))
        sb, pres = _soft_bits(y, s)
        all_sb.append(sb)
        all_pres.append(pres)
        nblk = len(starts)
        hyps.append((phase, 0, nblk))
        softs.append(sb.sum(axis=0))
        pz.append(pres.sum() / np.sqrt(nblk))
        # blocks that look marked, whatever their phase (independently marked chunks)
        g = np.maximum(pres - _GATE, 0.0)
        if g.any():
            gated += g @ sb
            gated_w += g.sum()
        wins = _window_list(nblk)
        if wins:
            cs = np.concatenate([[0.0], np.cumsum(pres)])
            csb = np.concatenate([np.zeros((1, _N_CODED)), np.cumsum(sb, axis=0)])
            win_cands += [((cs[b] - cs[a]) / np.sqrt(b - a), phase, a, b, csb) for a, b in wins]
    if win_cands:
        win_cands.sort(key=lambda c: -c[0])
        for z, phase, a, b, csb in win_cands[:_N_WINDOWS]:
            hyps.append((phase, a, b))
            softs.append(csb[b] - csb[a])
            pz.append(z)
    gated_soft = gated if gated_w > 0 else None
    softs = np.array(softs)
    pz = np.array(pz)
    coarse_bits, agree = _decode(softs)

    # refine the most promising hypotheses (by decoding agreement and by presence) to 4 samples
    pick = list(dict.fromkeys(list(np.argsort(-agree)[:_N_REFINE]) + list(np.argsort(-pz)[:4])))
    ref_h, ref_soft, ref_z = [], [], []
    for h in pick:
        phase, a, b = hyps[h]
        starts = np.arange(phase, last + 1, _BLOCK_FINE)
        for frac in _FRACS:
            y, s, _ = _features(_tiles_at(E, starts, frac))
            sb, pres = _soft_bits(y, s)
            ref_h.append(h)
            ref_soft.append(sb[a:b].sum(axis=0))
            ref_z.append(pres[a:b].sum() / np.sqrt(b - a))
    if gated_soft is not None:
        ref_soft.append(gated_soft)
        ref_z.append(float(max(pz)))
    # piecewise-constant sync (independently marked chunks): best phase path by presence
    nk = max(len(p_) for p_ in all_pres)
    grid = np.full((nph, nk), -3.0)
    for ph, p_ in enumerate(all_pres):
        grid[ph, :len(p_)] = p_
    tracked = _path_soft(all_sb, _track(grid, _SWITCH), None)
    if tracked is not None:
        ref_soft.append(tracked)
        ref_z.append(float(max(pz)))
    bits, ragree = _decode(np.array(ref_soft))
    checks = len(ref_soft)
    order = np.argsort(-ragree)
    for i in order:
        if ragree[i] < _MIN_AGREEMENT:
            break
        p = _check(bits[i])
        if p is not None:
            return True, p, float(ref_z[i]), checks

    # Second chance: blocks from any phase that agree with a tentative decoding (a file of
    # independently marked chunks, a mark inside unmarked audio) are pooled and decoded again.
    # Tentative decodings (from every hypothesis) are scored by how many blocks, at any phase,
    # agree with them; the best few are iterated: pool agreeing blocks along a phase path, decode.
    cand = np.unique(np.concatenate([coarse_bits, bits]), axis=0)
    codes = 1.0 - 2.0 * _conv_encode_many(cand)                 # (nseed, 124)
    flat = np.concatenate(all_sb)
    flat = flat / (np.sqrt((flat ** 2).sum(axis=1, keepdims=True)) + 1e-9)
    offs = np.cumsum([0] + [len(sb) for sb in all_sb])
    zall = flat @ codes.T                                       # (blocks, nseed)
    quality = np.maximum(zall - 3.0, 0.0).sum(axis=0)

    def grid_of(z):
        g = np.full((nph, nk), -3.0)
        for ph in range(nph):
            g[ph, :offs[ph + 1] - offs[ph]] = z[offs[ph]:offs[ph + 1]]
        return g

    for si in np.argsort(-quality)[:_N_SEEDS]:
        msg, zgrid = cand[si], grid_of(zall[:, si])
        for _ in range(3):
            soft = _path_soft(all_sb, _track(zgrid, _SWITCH), zgrid)
            if soft is None:
                break
            b2, ag = _decode(soft[None])
            checks += 1
            p = _check(b2[0]) if ag[0] >= _MIN_AGREEMENT else None
            if p is not None:
                return True, p, float(max(pz)), checks
            if np.array_equal(b2[0], msg):
                break
            msg = b2[0]
            zgrid = grid_of(flat @ (1.0 - 2.0 * _conv_encode(msg)))
    return False, None, float(max(pz.max(), max(ref_z))), checks


def detect(audio: np.ndarray, sample_rate: int) -> Detection:
    """Any sample rate (resample internally), any length."""
    sr = _check_rate(sample_rate)
    x = _resample(_as_mono(audio), sr, SAMPLE_RATE)
    if len(x) < _BLOCK + _NFFT or not np.any(x):
        return Detection(False, 0.0, None, 0.0)
    step = _SEGMENT - _OVERLAP
    seg_starts = [0] if len(x) <= _SEGMENT + _OVERLAP else list(range(0, len(x) - _OVERLAP, step))
    best_z, checks = -np.inf, 0
    for a in seg_starts:
        r = _detect_segment(x[a:a + _SEGMENT] if len(seg_starts) > 1 else x)
        if r is None:
            continue
        found, payload, z, n = r
        checks += n
        if found:
            # chance that unmarked audio passes marker + CRC in any of the checks made
            conf = 1.0 - min(checks * 2.0 ** -(_N_CRC + 4), 0.5)
            return Detection(True, float(conf), payload, z)
        best_z = max(best_z, z)
    if not np.isfinite(best_z):
        return Detection(False, 0.0, None, 0.0)
    # no valid payload: presence evidence alone, capped below one half
    conf = 0.5 / (1.0 + np.exp(-(best_z - 6.0)))
    return Detection(False, float(conf), None, best_z)
