import numpy as np
import pytest

import voicefake
from voicefake.errors import VoicefakeError

PARAGRAPH = ("The sun rose over the hills. Birds began to sing. A farmer walked to the barn. "
             "The cows were waiting. It was a quiet morning.")


def test_bundled_voice_is_listed():
    voices = {v.name: v for v in voicefake.list_voices()}
    assert voices["joe"].state == "bundled" and voices["joe"].model_path.exists()


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(VoicefakeError, match="unknown voice 'nobody'.*joe"):
        voicefake.load_voice("nobody")


def test_synthesize_streams_one_chunk_per_sentence(voice):
    chunks = voice.synthesize(PARAGRAPH)
    first = next(chunks)  # a generator: the first sentence is ready before the others are made
    rest = list(chunks)
    assert len(rest) == 4
    for chunk in [first, *rest]:
        assert chunk.sample_rate == 22050 and chunk.audio.dtype == np.float32
        assert 0.5 < chunk.duration < 5
        assert 0.05 < np.abs(chunk.audio).max() <= 1.0  # real speech, not silence
        assert chunk.phonemes[0] == "^" and chunk.phonemes[-1] == "$"
        assert len(chunk.phonemes) == len(chunk.phoneme_durations)
        assert sum(chunk.phoneme_durations) == pytest.approx(chunk.duration, abs=1e-6)


def test_speech_has_energy_where_vowels_are_and_pauses_where_punctuation_is(voice):
    (chunk,) = voice.synthesize("Well, yes.", noise=0, noise_w=0)
    starts = np.concatenate([[0], np.cumsum(chunk.phoneme_durations)[:-1]])
    rms = {}
    for phoneme, start, length in zip(chunk.phonemes, starts, chunk.phoneme_durations):
        part = chunk.audio[int(start * 22050) : int((start + length) * 22050)]
        rms.setdefault(phoneme, []).append(float(np.sqrt(np.mean(part**2))) if len(part) else 0.0)
    vowel_energy = max(rms["ɛ"])
    assert vowel_energy > 3 * max(rms["^"])  # the timings line up with the sound itself


def test_speed_and_determinism(voice):
    text = "Speed changes the length of speech."
    normal = np.concatenate([c.audio for c in voice.synthesize(text, noise=0, noise_w=0)])
    again = np.concatenate([c.audio for c in voice.synthesize(text, noise=0, noise_w=0)])
    fast = np.concatenate([c.audio for c in voice.synthesize(text, speed=2.0, noise=0, noise_w=0)])
    assert np.array_equal(normal, again)
    assert 0.45 < len(fast) / len(normal) < 0.65  # frames are rounded up per phoneme


@pytest.mark.parametrize("kwargs", [{"speed": 0}, {"speed": 10}, {"noise": -1}, {"noise_w": 5}])
def test_out_of_range_settings_are_refused(voice, kwargs):
    with pytest.raises(VoicefakeError, match="out of range"):
        voice.synthesize("Hello.", **kwargs)


def test_long_text_streams_without_making_it_all_first(voice):
    text = " ".join(f"This is sentence number {i}." for i in range(300))  # about 9,000 characters
    chunks = voice.synthesize(text)
    assert next(chunks).duration > 0.5  # the first chunk comes without synthesizing the rest


def test_a_generated_voice_goes_through_every_serving_step(tiny_voice):
    """The tiny voice (random weights, built in this session) is found, loaded from ONNX, speaks
    with phoneme timings, and carries the watermark naming it, as every cloned voice does."""
    from voicefake.provenance import watermark

    assert {v.name: v.state for v in voicefake.list_voices()}["tiny"] == "cloned"
    chunks = list(tiny_voice.synthesize(PARAGRAPH))
    assert len(chunks) == 5
    for chunk in chunks:
        assert chunk.sample_rate == 22050 and np.isfinite(chunk.audio).all()
        assert len(chunk.phonemes) == len(chunk.phoneme_durations)
        assert sum(chunk.phoneme_durations) == pytest.approx(chunk.duration, abs=1e-6)
    found = watermark.detect(np.concatenate([c.audio for c in chunks]), 22050)
    assert found.found and found.payload.voice_hash == watermark.voice_hash("tiny")
