"""Every output says it is synthetic in its metadata tags, and wav/flac/mp3/mp4 carry a signed C2PA
manifest that `voicefake detect` reports; damaged files give one clear error and no partial output."""

import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

import voicefake
from voicefake import VoicefakeError
from voicefake.io.video import VideoWriter
from voicefake.provenance import manifest as provenance
from voicefake.provenance import watermark

RATE = 22050
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def run(*args):
    return subprocess.run([sys.executable, "-m", "voicefake.cli", *args], capture_output=True, text=True, timeout=120)


def marked_noise(seconds: float = 1.0) -> np.ndarray:
    noise = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * RATE))).astype(np.float32)
    return watermark.embed(noise, RATE, watermark.Payload.now("joe"))


def make_mp4(path, voice=None):
    with VideoWriter(path, 64, 48, Fraction(25), marked_noise(1.0), RATE, voice=voice) as writer:
        for k in range(25):
            writer.write(np.full((48, 64, 3), 60 + 6 * k, np.uint8))
    return path


def recent(stamp: str) -> bool:
    when = datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - when) < timedelta(minutes=5)


def only_file(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name != "home") == [name]  # no temporary file beside it


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg"])
def test_audio_tags_read_back(tmp_path, ext):
    out = voicefake.write_audio(tmp_path / f"out.{ext}", marked_noise(), RATE, voice="joe")
    assert only_file(tmp_path, out.name)
    tags = provenance.read_tags(out)  # as FFmpeg reads them
    assert tags["software"].startswith(f"voicefake {voicefake.__version__}")
    assert "AI-generated" in tags["comment"] and "voicefake" in tags["comment"] and "joe" in tags["comment"]
    assert recent(tags["date"]) and "joe" in tags["artist"]
    if ext == "mp3":  # and by a second reader: mutagen for ID3, libsndfile for the others
        from mutagen.id3 import ID3

        id3 = ID3(out)
        assert str(id3["TSSE"]).startswith("voicefake ") and "AI-generated" in str(id3.getall("COMM")[0])
    else:
        with sf.SoundFile(out) as handle:
            assert handle.software.startswith("voicefake ") and "AI-generated" in handle.comment
            assert handle.date == tags["date"]
    assert sf.read(out)[0].size > 0.9 * RATE  # still plays


def test_mp4_tags_and_manifest(tmp_path):
    out = make_mp4(tmp_path / "clip.mp4", voice="joe")
    assert only_file(tmp_path, "clip.mp4")
    from mutagen.mp4 import MP4

    atoms = MP4(out).tags
    assert atoms["\xa9too"] == [provenance.software()] and "AI-generated" in atoms["\xa9cmt"][0]
    info = provenance.inspect(out)
    assert info["tags"]["software"] == provenance.software() and recent(info["tags"]["date"])
    manifest = info["c2pa"]
    assert manifest["validation"] == "Trusted" and manifest["problems"] == []
    assert manifest["actions"] == [
        {"action": "c2pa.created", "digitalSourceType": TRAINED, "softwareAgent": provenance.software()}
    ]
    assert manifest["voicefake"]["kind"] == "video" and manifest["voicefake"]["voice"] == "joe"
    import av

    from voicefake.io.media import read_media

    with av.open(str(out)) as container:  # the signed file still decodes, picture and sound
        assert sum(1 for _ in container.decode(video=0)) == 25
    assert len(read_media(out, RATE)) > 0.9 * RATE


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_audio_manifest(tmp_path, ext):
    out = voicefake.write_audio(tmp_path / f"out.{ext}", marked_noise(), RATE, voice="joe")
    info = provenance.inspect(out)
    manifest = info["c2pa"]
    assert manifest["validation"] == "Trusted", manifest
    assert manifest["claim_generator"] == provenance.software()
    assert manifest["signed_by"].startswith("voicefake signer ") and manifest["issuer"] == "voicefake"
    assert [(a["action"], a["digitalSourceType"]) for a in manifest["actions"]] == [("c2pa.created", TRAINED)]
    mine = manifest["voicefake"]
    assert mine["voice"] == "joe" and mine["kind"] == "speech" and mine["tool"] == provenance.software()
    assert mine["created"] == info["tags"]["date"].rstrip("Z") + "Z"


def test_ogg_is_tagged_but_has_no_manifest(tmp_path):
    out = voicefake.write_audio(tmp_path / "out.ogg", marked_noise(), RATE)
    info = provenance.inspect(out)
    assert info["c2pa"] is None and "AI-generated" in info["tags"]["comment"]
    with pytest.raises(VoicefakeError, match="C2PA manifests go into"):
        provenance.sign(out)


def test_files_from_elsewhere_read_without_manifest(tmp_path):
    plain = tmp_path / "plain.wav"
    sf.write(plain, np.zeros(RATE, np.float32), RATE)  # written by libsndfile alone
    assert provenance.inspect(plain) == {"tags": {}, "c2pa": None}


def test_key_is_made_once_under_home_and_reused(tmp_path, monkeypatch):
    keys = provenance.keys_dir()
    assert keys.parent == tmp_path / "home" and not keys.exists()
    first = voicefake.write_audio(tmp_path / "one.wav", marked_noise(), RATE)
    signer = keys / provenance.SIGNER_FILE
    assert stat.S_IMODE(signer.stat().st_mode) == 0o600 and stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert (keys / provenance.ROOT_FILE).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    pem, mtime = signer.read_bytes(), signer.stat().st_mtime_ns
    second = make_mp4(tmp_path / "two.mp4")
    assert signer.read_bytes() == pem and signer.stat().st_mtime_ns == mtime
    assert provenance.inspect(first)["c2pa"]["signed_by"] == provenance.inspect(second)["c2pa"]["signed_by"]
    # another install (another home, another key) still verifies the file as intact, not as its own
    monkeypatch.setenv("VOICEFAKE_HOME", str(tmp_path / "other"))
    elsewhere = provenance.inspect(first)["c2pa"]
    assert elsewhere["validation"] == "Valid" and elsewhere["problems"] == []
    assert not (tmp_path / "other").exists()  # reading makes no key


def test_changed_file_is_reported_invalid(tmp_path):
    out = voicefake.write_audio(tmp_path / "out.wav", marked_noise(), RATE)
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x40  # one sample changed after signing
    out.write_bytes(bytes(data))
    manifest = provenance.inspect(out)["c2pa"]
    assert manifest["validation"] == "Invalid" and any("dataHash.mismatch" in p for p in manifest["problems"])
    assert "INVALID" in "\n".join(provenance.describe(provenance.inspect(out)))


@pytest.mark.slow
def test_cli_detect_reports_tags_and_manifest(tmp_path):
    wav = voicefake.write_audio(tmp_path / "said.wav", marked_noise(3.5), RATE, voice="joe")
    mp4 = make_mp4(tmp_path / "clip.mp4")
    for path in (wav, mp4):
        result = run("detect", str(path), "--json")
        assert result.returncode in (0, 1), result.stderr
        report = json.loads(result.stdout)
        assert report["c2pa"]["validation"] == "Trusted"  # the test's home is passed on to the subprocess
        assert report["c2pa"]["actions"][0]["digitalSourceType"] == TRAINED
        assert report["tags"]["software"].startswith("voicefake ")
    assert report["audio"] is not None  # the watermark report is still there
    human = run("detect", str(wav))
    assert "C2PA manifest: intact, signed by this machine's voicefake key" in human.stdout
    assert "tags: comment 'AI-generated" in human.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", ["cut wav", "cut mp4", "broken box"])
def test_truncated_or_corrupt_file_is_one_clear_error(tmp_path, case):
    if case == "cut wav":
        good = voicefake.write_audio(tmp_path / "good.wav", marked_noise(), RATE)
        bad = tmp_path / "bad.wav"
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        good = make_mp4(tmp_path / "good.mp4")
        bad = tmp_path / "bad.mp4"
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2] if case == "cut mp4" else data[:8] + b"\xff" * 64 + data[72:])
    with pytest.raises(VoicefakeError, match="truncated|damaged"):
        provenance.inspect(bad)
    result = run("detect", str(bad), "--json")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voicefake: error:") and str(bad) in lines[0]
    assert "truncated" in lines[0] or "damaged" in lines[0]


@pytest.mark.parametrize("ext", ["wav", "mp4"])
def test_signing_failure_leaves_no_file(tmp_path, ext):
    keys = provenance.keys_dir()
    keys.mkdir(parents=True)
    (keys / provenance.SIGNER_FILE).write_text("not a key")
    out = tmp_path / f"out.{ext}"
    with pytest.raises(VoicefakeError, match="signing key .* is damaged: delete it"):
        if ext == "wav":
            voicefake.write_audio(out, marked_noise(), RATE)
        else:
            make_mp4(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no output, no temporary file
