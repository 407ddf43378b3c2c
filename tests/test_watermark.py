"""The audio watermark: payload coding, imperceptibility, robustness, false positives, edge cases."""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.signal import resample_poly

from bench.watermark_robustness import (
    codec_roundtrip,
    pitch_shift,
    rerecord,
    speed,
    time_stretch,
)
from voicefake.provenance import watermark as wm

SR = wm.SAMPLE_RATE
TEXTS = [
    "The quick brown fox jumps over the lazy dog, and then it runs back home to sleep.",
    "Please leave your message after the tone, and we will call you back as soon as possible.",
]
FILLER_TEXT = "Our office hours are from nine in the morning until five in the afternoon, Monday to Friday."
PAYLOAD = wm.Payload(voice_hash=wm.voice_hash("joe"), timestamp=12345)


def unmarked_chunks(voice, text):
    """Sentences from the raw ONNX graph: speech without the mark that Voice.synthesize adds.
    Without sampling noise, so every run tests the same audio (with it, the payload read under 20 dB
    of noise failed in one CI run: the bench reads it in 99.5-100 % of clips, not always)."""
    from piper.config import SynthesisConfig

    from voicefake.tts.text import text_to_sentences

    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return [np.asarray(voice.piper.phoneme_ids_to_audio(s.phoneme_ids, fixed), dtype=np.float32).reshape(-1)
            for s in text_to_sentences(text, voice.phoneme_id_map)]


def speak(voice, text):
    return np.concatenate(unmarked_chunks(voice, text)).astype(np.float32)


def snr_db(ref, test):
    ref = ref.astype(np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((test.astype(np.float64) - ref) ** 2))


@pytest.fixture(scope="module")
def clips(voice):
    """[(unmarked, marked)] for two generated sentences of ~4-6 s."""
    out = []
    for text in TEXTS:
        audio = speak(voice, text)
        assert len(audio) > 3 * SR
        out.append((audio, wm.embed(audio, SR, PAYLOAD)))
    return out


@pytest.fixture(scope="module")
def filler(voice):
    return speak(voice, FILLER_TEXT)


def real_pieces(shared, n=8, seed=0):
    """n pieces of 3-10 s of real speech at 22050 Hz (from ../shared, never copied)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    pieces = []
    for corpus in ("allison_en", "ivrvoice_ru"):
        files = sorted((shared / "data" / "speech" / corpus / "wavs").glob("*.flac"))
        files = [f for f in files if not f.name.startswith("silence")]
        order = rng.permutation(len(files))
        buf, total = [], 0
        for i in order:
            a, sr = sf.read(files[i], dtype="float32")
            buf.append(a)
            total += len(a)
            if total >= 10 * sr:
                x = np.concatenate(buf)
                x = resample_poly(x, 441, 320) if sr == 16000 else x
                pieces.append(x[: int(rng.uniform(3, 10) * SR)].astype(np.float32))
                buf, total = [], 0
                if len(pieces) % (n // 2) == 0:
                    break
    return pieces


# ----------------------------------------------------------------------------- payload

def test_payload_round_trip():
    p = wm.Payload.now("joe")
    assert p.voice_hash == wm.voice_hash("joe")
    assert 0 <= p.voice_hash < 1 << 16 and 0 <= p.timestamp < 1 << 20
    now = datetime.now(UTC)
    assert timedelta(0) <= now - p.created() < timedelta(hours=1)
    assert p.created().tzinfo is not None
    assert wm.Payload.from_bits(p.to_bits()) == p
    assert len(p.to_bits()) >= 32
    assert wm.voice_hash("joe") == wm.voice_hash("joe") != wm.voice_hash("jane")
    assert wm.Payload(0, 0).created() == datetime(2025, 1, 1, tzinfo=UTC)
    for bad in [(-1, 0), (1 << 16, 0), (0, -1), (0, 1 << 20), (1.5, 0)]:
        with pytest.raises(ValueError):
            wm.Payload(*bad)


def test_channel_code_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(5):
        p = wm.Payload(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 20)))
        code = wm._codeword(p)
        assert len(code) == wm._N_CODED
        soft = (1.0 - 2.0 * code) + rng.normal(0, 0.6, len(code))    # noisy channel
        bits, _agree = wm._decode(soft[None])
        assert wm._check(bits[0]) == p
        bits[0, 7] ^= 1                                                # one flipped bit: CRC says no
        assert wm._check(bits[0]) is None


# ----------------------------------------------------------------------------- marked speech

def test_marked_speech_is_detected_and_imperceptible(clips):
    for audio, marked in clips:
        assert marked.dtype == np.float32 and marked.shape == audio.shape
        assert np.all(np.abs(marked) <= 1.0)
        assert snr_db(audio, marked) >= 30.0
        d = wm.detect(marked, SR)
        assert d.found and d.payload == PAYLOAD and d.confidence > 0.99
        assert d.payload.created() == datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=12345)


def test_pesq_at_least_4(clips):
    pesq = pytest.importorskip("pesq")
    for audio, marked in clips:
        ref, deg = resample_poly(audio, 320, 441), resample_poly(marked, 320, 441)
        assert pesq.pesq(16000, ref, deg, "wb") >= 4.0


def test_embedding_is_deterministic(clips):
    audio, marked = clips[0]
    assert np.array_equal(wm.embed(audio, SR, PAYLOAD), marked)
    other = wm.embed(audio, SR, wm.Payload(1, 2))
    assert not np.array_equal(other, marked)
    assert wm.detect(other, SR).payload == wm.Payload(1, 2)


TRANSFORMS = {
    "mp3_64k": lambda x, rng, fill: (codec_roundtrip(x, SR, "libmp3lame"), SR),
    "aac_64k": lambda x, rng, fill: (codec_roundtrip(x, SR, "aac"), SR),
    "resample_16k": lambda x, rng, fill: (resample_poly(x, 320, 441).astype(np.float32), 16000),
    "resample_8k": lambda x, rng, fill: (resample_poly(x, 160, 441).astype(np.float32), 8000),
    "noise_20dB": lambda x, rng, fill: (x + rng.normal(0, np.sqrt(np.mean(x ** 2) / 100), len(x)).astype(np.float32), SR),
    "gain_+6dB": lambda x, rng, fill: (x * np.float32(2.0), SR),
    "gain_-6dB": lambda x, rng, fill: (x * np.float32(0.5), SR),
    "crop_3s": lambda x, rng, fill: (x[(a := int(rng.integers(0, len(x) - 3 * SR))):a + 3 * SR], SR),
    "in_longer_speech": lambda x, rng, fill: (np.concatenate([fill, x, fill[::-1]]), SR),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_survives_transform(clips, filler, name):
    rng = np.random.default_rng(7)
    for _, marked in clips:
        audio, sr = TRANSFORMS[name](marked, rng, filler)
        d = wm.detect(audio, sr)
        assert d.found, f"{name}: not detected (score {d.score:.2f})"
        assert d.payload == PAYLOAD


@pytest.mark.needs_shared
def test_mark_inside_real_speech(clips, shared):
    before, after = real_pieces(shared, n=2, seed=3)
    d = wm.detect(np.concatenate([before, clips[1][1], after]), SR)
    assert d.found and d.payload == PAYLOAD


# ----------------------------------------------------------------------------- edits that warp or smear time

@pytest.fixture(scope="module")
def spoken(voice):
    """Two sentences from Voice.synthesize (marked one by one, as users get them; deterministic) and the payload."""
    chunks = list(voice.synthesize(" ".join(TEXTS), noise=0.0, noise_w=0.0))
    audio = np.concatenate([c.audio for c in chunks])
    payload = wm.detect(audio, SR).payload
    assert len(chunks) == 2 and payload is not None and payload.voice_hash == wm.voice_hash("joe")
    return audio, payload


def assert_present(d, payload, name):
    """Found; the payload, if reported, is the right one, else flagged unreadable."""
    assert d.found, f"{name}: not detected (score {d.score:.2f})"
    assert d.payload in (None, payload), f"{name}: wrong payload"
    assert d.payload_unreadable == (d.payload is None)
    assert d.verdict == ("marked" if d.payload else "present, payload unreadable")


@pytest.mark.slow
@pytest.mark.parametrize("rate", [0.90, 1.10])
def test_survives_time_stretch(spoken, rate):
    audio, payload = spoken
    assert_present(wm.detect(time_stretch(audio, rate), SR), payload, f"stretch {rate}")


@pytest.mark.parametrize("steps", [-2, 1])
def test_survives_pitch_shift(spoken, steps):
    audio, payload = spoken
    d = wm.detect(pitch_shift(audio, steps), SR)
    assert_present(d, payload, f"pitch {steps:+d}")


@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_speed_change_keeps_the_payload(spoken, factor):
    """Pitch and tempo together: the sync search finds the shift, resampling back restores the payload."""
    audio, payload = spoken
    d = wm.detect(speed(audio, factor), SR)
    assert d.found and d.payload == payload and not d.payload_unreadable


def test_survives_rerecording(spoken):
    audio, payload = spoken
    for seed in range(2):   # two rooms
        assert_present(wm.detect(rerecord(audio, np.random.default_rng(seed)), SR), payload, f"room {seed}")


@pytest.mark.slow
def test_one_short_sentence_survives_rerecording(voice):
    """One sentence alone (4.3-4.6 s) in four rooms: the weak case of the bench (short synthesized
    clips). The sync detector's detrending over four pattern nodes gives z 7.0-9.5 here (over two
    nodes, before: 5.8-7.7, one room missed)."""
    for text in TEXTS:
        audio = np.concatenate([c.audio for c in voice.synthesize(text, noise=0.0, noise_w=0.0)])
        payload = wm.detect(audio, SR).payload
        for seed in range(4):
            assert_present(wm.detect(rerecord(audio, np.random.default_rng(seed)), SR), payload, f"room {seed}")


@pytest.mark.slow
def test_survives_chained_edits(spoken):
    audio, payload = spoken
    d = wm.detect(codec_roundtrip(speed(audio, 1.05), SR, "libmp3lame"), SR)
    assert d.found and d.payload == payload
    assert_present(wm.detect(time_stretch(pitch_shift(audio, 2), 0.95), SR), payload, "pitch + stretch")
    rerecorded = rerecord(audio, np.random.default_rng(2))
    assert_present(wm.detect(codec_roundtrip(rerecorded, SR, "aac"), SR), payload, "re-recorded + AAC")


def test_presence_alone_is_reported_as_unreadable(spoken):
    """After a pitch shift the payload layer is gone: found, no payload, a distinct flag."""
    d = wm.detect(pitch_shift(spoken[0], 2), SR)
    assert d.found and d.payload is None and d.payload_unreadable
    assert d.verdict == "present, payload unreadable" and 0.5 < d.confidence <= 1.0


def test_chunks_marked_with_their_position_continue_the_sync(voice):
    """Chunks marked with their stream position (`start`) continue one sync pattern; bad positions raise.
    Both sentences (9 s): one alone (4.6 s, z 6.4-7.1 as the synthesis varies) is too close to the threshold."""
    x = speak(voice, " ".join(TEXTS))
    with pytest.raises(ValueError):
        wm.embed(x, SR, PAYLOAD, start=-1)
    half = len(x) // 2
    joined = np.concatenate([wm.embed(x[:half], SR, PAYLOAD), wm.embed(x[half:], SR, PAYLOAD, start=half)])
    assert wm.detect(pitch_shift(joined, -1), SR).found


@pytest.mark.slow
def test_unmarked_speech_under_edits_not_flagged(clips, filler):
    rng = np.random.default_rng(5)
    for x in [clips[0][0], clips[1][0], filler]:
        for edited in (time_stretch(x, 0.9), pitch_shift(x, 2), speed(x, 1.05), rerecord(x, rng)):
            d = wm.detect(edited, SR)
            assert not d.found and d.payload is None and not d.payload_unreadable and d.score < wm._S_Z


# ----------------------------------------------------------------------------- false positives

def test_unmarked_generated_speech_not_flagged(clips, filler):
    for audio, _ in clips:
        d = wm.detect(audio, SR)
        assert not d.found and d.payload is None and d.confidence < 0.5
    assert not wm.detect(filler, SR).found


@pytest.mark.slow
@pytest.mark.needs_shared
def test_unmarked_real_speech_not_flagged(shared):
    pieces = real_pieces(shared, n=8)
    assert len(pieces) == 8
    for x in pieces:
        d = wm.detect(x, SR)
        assert not d.found and d.payload is None
    x = resample_poly(pieces[0], 320, 441)
    assert not wm.detect(x, 16000).found


# ----------------------------------------------------------------------------- streaming / chunks

def test_concatenated_independent_chunks(voice):
    text = ("Good morning. This is a short announcement. The library will close early today, "
            "at four o'clock. Thank you.")
    chunks = unmarked_chunks(voice, text)
    assert len(chunks) >= 3
    file = np.concatenate([wm.embed(c, SR, PAYLOAD) for c in chunks])
    d = wm.detect(file, SR)
    assert d.found and d.payload == PAYLOAD
    # and any 3 s window of it
    d = wm.detect(file[len(file) // 2 - 3 * SR // 2:][: 3 * SR], SR)
    assert d.found and d.payload == PAYLOAD


def test_concatenated_random_short_chunks(clips):
    audio = np.concatenate([clips[0][0], clips[1][0]])
    rng = np.random.default_rng(11)
    cuts = np.cumsum(rng.uniform(0.5, 3.0, 20) * SR).astype(int)
    pieces = np.split(audio, cuts[cuts < len(audio) - SR // 2])
    assert min(len(p) for p in pieces) >= SR // 2
    file = np.concatenate([wm.embed(p, SR, PAYLOAD) for p in pieces])
    d = wm.detect(file, SR)
    assert d.found and d.payload == PAYLOAD


def test_other_sample_rates(clips):
    audio = clips[0][0]
    for sr, up, down in [(16000, 320, 441), (44100, 2, 1)]:
        x = resample_poly(audio, up, down).astype(np.float32)
        marked = wm.embed(x, sr, PAYLOAD)
        assert marked.shape == x.shape and snr_db(x, marked) >= 30
        d = wm.detect(marked, sr)
        assert d.found and d.payload == PAYLOAD


# ----------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize("n", [0, 1, 100, 4000, SR // 2, SR])
def test_short_audio_is_handled(clips, n):
    x = clips[0][0][SR // 2:SR // 2 + n]
    marked = wm.embed(x, SR, PAYLOAD)
    assert marked.shape == x.shape and marked.dtype == np.float32
    if np.any(marked != x):
        assert snr_db(x, marked) >= 30
    d = wm.detect(marked, SR)
    assert isinstance(d, wm.Detection) and d.payload in (None, PAYLOAD)
    assert 0.0 <= d.confidence <= 1.0


def test_silence_and_odd_inputs():
    zeros = np.zeros(5 * SR, np.float32)
    assert np.array_equal(wm.embed(zeros, SR, PAYLOAD), zeros)
    d = wm.detect(zeros, SR)
    assert not d.found and d.payload is None and d.confidence == 0.0
    tiny = (np.random.default_rng(0).normal(0, 1e-5, 5 * SR)).astype(np.float32)  # -100 dBFS hiss
    assert not wm.detect(wm.embed(tiny, SR, PAYLOAD), SR).found
    ints = (np.random.default_rng(1).normal(0, 3000, 2 * SR)).astype(np.int16)
    out = wm.embed(ints, SR, PAYLOAD)
    assert out.dtype == np.float32 and out.shape == ints.shape and np.abs(out).max() < 1
    assert not wm.detect(ints, SR).found
    assert wm.embed(ints.reshape(1, -1), SR, PAYLOAD).shape == (ints.size,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise_value_error(clips, bad):
    x = clips[0][1].copy()
    x[1234] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        wm.detect(x, SR)
    with pytest.raises(ValueError, match="NaN or infinite"):
        wm.embed(x, SR, PAYLOAD)


def test_bad_arguments():
    x = np.zeros(SR, np.float32)
    with pytest.raises(ValueError):
        wm.embed(np.zeros((SR, 2), np.float32), SR, PAYLOAD)      # stereo
    with pytest.raises(ValueError):
        wm.detect(x, 0)
    with pytest.raises(ValueError):
        wm.detect(x, 22050.5)
    with pytest.raises(ValueError):
        wm.detect(x, "22050")
    assert not wm.detect(x, 22050.0).found
    with pytest.raises(ValueError):
        wm.detect(np.array(["a", "b"]), SR)
    with pytest.raises(TypeError):
        wm.embed(x, SR, (1, 2))


# ----------------------------------------------------------------------------- cost

def test_embedding_is_cheap(clips):
    audio = np.concatenate([clips[0][0], clips[1][0]])
    best = min(_timed(wm.embed, audio, SR, PAYLOAD) for _ in range(3))
    assert best / (len(audio) / SR) < 0.01                           # real-time factor


def test_detection_time(clips):
    audio = np.concatenate([clips[0][1], clips[1][1]])[: 10 * SR]
    best = min(_timed(wm.detect, audio, SR) for _ in range(2))
    assert best < 1.5 * len(audio) / SR / 10                          # goal 1 s per 10 s; slack for a busy machine


def _timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def test_import_is_light():
    code = ("import sys, voicefake.provenance.watermark; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_only_a_speed_change_is_undone_and_a_warped_payload_is_not_trusted():
    """A frequency shift is undone (to read the payload) only with the time scale of a speed change;
    a payload read at low presence while the sync layer sees a warp came from chance, not the mark."""
    faster = 1.05
    assert wm._speed_ratio((1 / faster, 12 * np.log2(faster))) == pytest.approx(faster)
    assert wm._speed_ratio((1.0, 2.0)) is None  # pitch shift: time unchanged
    assert wm._speed_ratio((1 / faster, 0.0)) is None  # stretch: no frequency shift
    assert wm._warped(wm._S_Z + 1, (1 / 1.10, 0.0)) and wm._warped(wm._S_Z + 1, (1.0, 1.0))
    assert not wm._warped(wm._S_Z + 1, (1.0, 0.0)) and not wm._warped(wm._S_Z - 1, (1 / 1.10, 0.0))
