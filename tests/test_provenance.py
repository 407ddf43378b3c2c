"""Safe by default: every way voicefake makes audio leaves the watermark in it."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import voicefake
from tests.helpers import draw_face
from voicefake.io.media import read_media
from voicefake.provenance import watermark


def run(*args):
    return subprocess.run([sys.executable, "-m", "voicefake.cli", *args], capture_output=True, text=True, timeout=300)


def detect_file(path):
    audio = read_media(path, watermark.SAMPLE_RATE)
    return watermark.detect(audio, watermark.SAMPLE_RATE)


def test_api_chunks_carry_the_mark_and_name_the_voice(voice):
    chunks = list(voice.synthesize("Every chunk is marked. Even this one, and the next. And the last one."))
    for chunk in chunks:
        found = watermark.detect(chunk.audio, chunk.sample_rate)
        assert found.found and found.payload.voice_hash == watermark.voice_hash("joe")


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg"])
def test_cli_say_output_is_detected_by_cli_detect(tmp_path, ext):
    out = tmp_path / f"out.{ext}"
    assert run("say", "Marked speech, in every format we write.", "-o", str(out)).returncode == 0
    result = run("detect", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["watermarked"] and report["audio"]["voice"] == "joe" and report["audio"]["confidence"] > 0.99


@pytest.mark.slow
def test_detect_says_no_for_unmarked_audio_and_errors_for_bad_files(tmp_path, voice):
    import soundfile as sf

    from voicefake.tts.text import text_to_sentences

    (sentence,) = text_to_sentences("Raw speech straight from the graph.", voice.phoneme_id_map)
    raw = np.asarray(voice.piper.phoneme_ids_to_audio(sentence.phoneme_ids)).reshape(-1)
    sf.write(tmp_path / "raw.wav", raw, 22050)
    assert run("detect", str(tmp_path / "raw.wav")).returncode == 1
    (tmp_path / "junk.mp3").write_bytes(b"not audio at all" * 100)
    broken = run("detect", str(tmp_path / "junk.mp3"))
    assert broken.returncode == 2 and "cannot read" in broken.stderr
    (tmp_path / "cut.wav").write_bytes((tmp_path / "raw.wav").read_bytes()[:30])
    assert run("detect", str(tmp_path / "cut.wav")).returncode == 2


@pytest.mark.slow
def test_app_speech_is_marked():
    from voicefake.app import ui as app

    class Silent:  # gr.Progress outside a request
        def tqdm(self, iterable, **_):
            return iterable

    path = app.speak("The page marks its speech too.", "joe", 1.0, progress=Silent())
    assert detect_file(path).found


@pytest.mark.slow
def test_lipsync_soundtrack_is_marked_even_for_outside_audio(tmp_path, voice):
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), draw_face())
    from voicefake.tts.text import text_to_sentences

    (sentence,) = text_to_sentences("Speech that came from somewhere else, recorded on another day, in another room.",
                                    voice.phoneme_id_map)  # > 3 s, the length the mark is specified for
    outside = np.asarray(voice.piper.phoneme_ids_to_audio(sentence.phoneme_ids), dtype=np.float32).reshape(-1)
    assert not watermark.detect(outside, 22050).found
    out = tmp_path / "out.mp4"
    voicefake.lipsync(str(face), (outside, 22050), str(out), progress=False)
    assert detect_file(out).found
    out2 = tmp_path / "said.mp4"
    text = "Spoken, lip-synced and marked: the soundtrack keeps the mark of the voice that said it."  # > 3 s
    voicefake.speak_video(str(face), text, str(out2), voice="joe", progress=False)
    found = detect_file(out2)
    assert found.found and found.payload.voice_hash == watermark.voice_hash("joe")
    from voicefake.provenance.detect import detect_file as detect_everything

    for video, voice_name in ((out, "lipsync"), (out2, "joe")):  # the frames carry the soundtrack's payload
        report = detect_everything(video)
        assert report.video.found and report.video.voice == voice_name, report.to_dict()


@pytest.mark.slow
def test_detect_on_a_short_crop_says_too_short_to_decide(tmp_path, voice):
    import soundfile as sf

    text = "A marked file, long enough to hold the mark several times over. Then a piece of it is cut out."
    marked = np.concatenate([c.audio for c in voice.synthesize(text, noise=0.0, noise_w=0.0)])
    assert len(marked) > 5 * 22050 and watermark.detect(marked, 22050).found
    # a 1 s crop from the middle (the first one the detector misses, as it does most 1 s crops)
    starts = range(len(marked) // 3, len(marked) - 22050, 5000)
    start = next(a for a in starts if not watermark.detect(marked[a:a + 22050], 22050).found)
    sf.write(tmp_path / "crop.wav", marked[start:start + 22050], 22050)
    result = run("detect", str(tmp_path / "crop.wav"))
    assert result.returncode == 1, result.stderr
    assert "too short to decide (1.0 s; the mark needs at least 3 s)" in result.stdout, result.stdout
    assert "not found (" not in result.stdout
    result = run("detect", str(tmp_path / "crop.wav"), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["watermarked"] is False and report["decided"] is False
    assert report["reason"] == "too short to decide (1.0 s; the mark needs at least 3 s)"
    assert report["audio"]["too_short"] and report["audio"]["seconds"] == 1.0
    # long enough and unmarked: a plain "not found", decided
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "noise.wav", (0.1 * rng.standard_normal(4 * 22050)).astype(np.float32), 22050)
    result = run("detect", str(tmp_path / "noise.wav"), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["decided"] is True and "reason" not in report
    assert not report["audio"]["too_short"]
