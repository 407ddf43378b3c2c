"""The Gradio app through its API, as gradio_client sees it: every endpoint, with the real models."""

import re
import subprocess
import sys
import time

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from tests.helpers import SENTENCES, draw_face, speak, write

pytestmark = pytest.mark.slow  # servers, enrollment and training: minutes in all


@pytest.fixture(scope="module")
def server():
    from voicefake.app import ui as app

    running = app.serve(port=None, prevent_thread_lock=True, quiet=True)
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.local_url, verbose=False)


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("face") / "face.png"
    cv2.imwrite(str(path), draw_face())
    return path


def upload(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def streams(path):
    with av.open(str(path)) as container:
        return {s.type: s for s in container.streams}, container.duration / 1e6


def test_speak_endpoint_returns_speech(client):
    path = client.predict("Hello from the app.", "joe", 1.0, api_name="/speak")
    audio, rate = sf.read(path)
    assert rate == 22050 and len(audio) > rate * 0.5 and np.abs(audio).max() > 0.05
    assert path.endswith("joe-speech.wav")  # what the download is called


def test_speak_endpoint_reports_bad_input(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("   ", "joe", 1.0, api_name="/speak")
    with pytest.raises(AppError, match="unknown voice 'nobody'"):
        client.predict("Hello.", "nobody", 1.0, api_name="/speak")


def test_lipsync_of_a_photo_to_speech_from_speak_then_detect_it(client, face_png):
    speech = client.predict("The birch canoe slid on the smooth planks.", "joe", 1.0, api_name="/speak")
    video, summary = client.predict(upload(face_png), upload(speech), api_name="/lipsync")
    found, seconds = streams(video)
    assert {"video", "audio"} <= set(found) and abs(seconds - sf.info(speech).duration) < 0.3
    assert re.search(r"\b[1-9]\d* of \d+ frames lip-synced", summary) and "AI-generated" in summary

    verdict, details = client.predict(upload(video), api_name="/detect")
    assert verdict.startswith("**A voicefake output.**") and details["audio"]["found"] and details["video"]["found"]
    assert details["file"] == "lipsync.mp4"  # the private path stays private


def test_speak_video_makes_speech_and_video_in_one_step(client, face_png):
    video, summary = client.predict(upload(face_png), "Hello there.", "joe", api_name="/speak_video")
    found, seconds = streams(video)
    assert {"video", "audio"} <= set(found) and 0.5 < seconds < 5
    assert "mouth from phonemes" in summary


def test_detect_tells_voicefake_speech_from_other_audio(client, tmp_path):
    speech = client.predict("Four hours of steady work faced us.", "joe", 1.0, api_name="/speak")
    verdict, details = client.predict(upload(speech), api_name="/detect")
    assert details["audio"]["found"] and details["audio"]["voice"] == "joe" and "voice joe" in verdict

    rng = np.random.default_rng(0)
    noise = write(tmp_path / "noise.wav", (0.1 * rng.standard_normal(22050 * 4)).astype(np.float32))
    verdict, details = client.predict(upload(noise), api_name="/detect")
    assert verdict.startswith("**No voicefake watermark found.**") and details["watermarked"] is False


def test_uploads_are_checked_for_type_length_and_origin(client, server, tmp_path, monkeypatch):
    import gradio as gr
    from gradio_client.exceptions import AppError

    from voicefake.app import ui as app

    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    with pytest.raises(AppError, match=r"Invalid file type|\.txt cannot be used here"):  # Gradio checks first
        client.predict(upload(text), api_name="/detect")

    monkeypatch.setattr(app, "DETECT_SECONDS", 2.0)  # the server runs in this process
    long = write(tmp_path / "long.wav", np.zeros(22050 * 5, np.float32))
    with pytest.raises(AppError, match="lasts 0.1 minutes"):
        client.predict(upload(long), api_name="/detect")

    # a client naming a file on the server instead of uploading one is refused (by Gradio, or by us)
    with pytest.raises(AppError):
        client.predict({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, api_name="/detect")
    with pytest.raises(gr.Error, match="not a file uploaded to this page"):
        app.checked_upload("/etc/hostname", "a file", {""})
    assert app.work_dir().stat().st_mode & 0o077 == 0  # uploads and outputs: this user only


def test_a_job_whose_process_died_is_shown_as_interrupted():
    from voicefake.app import jobs
    from voicefake.errors import VoicefakeError

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    jobs.write_job("clone", {"id": "0badf00d", "name": "ann", "status": "running", "pid": gone.pid,
                             "started": time.time(), "minutes": 30, "step": 7, "seconds": 60.0})
    job = jobs.clone_job()
    assert job["status"] == "interrupted" and "resuming continues" in job["message"]
    assert jobs.read_job("clone")["status"] == "interrupted"  # recorded, for every page that asks
    with pytest.raises(VoicefakeError, match="no training job is running"):
        jobs.cancel_clone()


def wait_for_job(client, statuses, timeout=900, least_step=0):
    """Poll the stored training job (as the page's timer does) until it reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.predict(api_name="/jobs")["clone"]
        if job and job["status"] in statuses and job["step"] >= least_step:
            return job
        if job and job["status"] in ("failed", "interrupted") and job["status"] not in statuses:
            raise AssertionError(f"training job ended: {job}")
        time.sleep(2)
    raise AssertionError(f"training job did not reach {statuses} in {timeout} s: {job}")


@pytest.mark.timeout(1800)
def test_enroll_with_consent_then_clone_cancel_and_resume(client, voice, tmp_path):
    from gradio_client.exceptions import AppError

    phrase = client.predict("ann", api_name="/consent_phrase")
    challenge = phrase.split("> ", 1)[1].strip()
    assert challenge.startswith("I agree that my voice is cloned with voicefake.")
    consent = write(tmp_path / "consent.wav", speak(voice, challenge))
    clips = [upload(write(tmp_path / f"s{i}.wav", speak(voice, text))) for i, text in enumerate(SENTENCES[:8])]

    report = client.predict("ann", clips, None, upload(consent), api_name="/enroll")
    assert "enrolled voice 'ann'" in report and "consent:       verified" in report
    assert client.predict(api_name="/jobs")["enroll"]["status"] == "done"  # a reloaded page shows the report
    with pytest.raises(AppError, match="already exists"):
        client.predict("ann", clips, None, upload(consent), api_name="/enroll")

    # the worker's own refusals reach the page: 20 s of speech is too little for a real run
    client.predict("ann", 30, 0, False, api_name="/clone")
    assert "at least 1 minute" in wait_for_job(client, ("failed",))["message"]

    # a long run (a step limit lets 20 s of speech through): a second training is refused while
    # it runs; Speak still answers; cancel stops it
    status, _, job = client.predict("ann", 30, 100_000, False, api_name="/clone")
    assert job["status"] == "starting" and "<progress" in status
    with pytest.raises(AppError, match="already running"):
        client.predict("ann", 30, 1, False, api_name="/clone")
    wait_for_job(client, ("running",), least_step=1)
    started = time.monotonic()
    assert sf.info(client.predict("Still here.", "joe", 1.0, api_name="/speak")).duration > 0.3
    print(f"speak answered in {time.monotonic() - started:.1f} s while training ran")
    client.predict(api_name="/cancel_clone")
    job = wait_for_job(client, ("cancelled",))
    assert "resume" in job["message"]

    # the cancel saved the steps done; resume continues from there for a few more (plumbing, not quality)
    target = job["step"] + 3
    client.predict("ann", 30, target, api_name="/resume_clone")
    job = wait_for_job(client, ("done",))
    assert job["step"] == target and job["losses"]["mel"] > 0
    speech = client.predict("Hello from a cloned voice.", "ann", 1.0, api_name="/speak")
    assert np.abs(sf.read(speech)[0]).max() > 0.05
    with pytest.raises(AppError, match="trained before"):
        client.predict("ann", 30, 1, False, api_name="/clone")


def test_clone_refuses_voices_without_verified_consent(client, voice, tmp_path):
    from gradio_client.exceptions import AppError

    from voicefake.enroll.consent import DeclaredLicence
    from voicefake.enroll.enrollment import enroll

    with pytest.raises(AppError, match="not enrolled"):
        client.predict("nobody", 30, 1, False, api_name="/clone")
    with pytest.raises(AppError, match="bad voice name"):
        client.predict("../../etc", 30, 1, False, api_name="/clone")
    lines = [f"s{i}.wav|{text}" for i, text in enumerate(SENTENCES[:6])]
    for i, text in enumerate(SENTENCES[:6]):
        write(tmp_path / f"s{i}.wav", speak(voice, text))
    (tmp_path / "metadata.txt").write_text("\n".join(lines) + "\n")
    enroll("corpus", [tmp_path], consent=DeclaredLicence("CC0, generated for tests"),
           transcripts=tmp_path / "metadata.txt")
    with pytest.raises(AppError, match="declared licence"):
        client.predict("corpus", 30, 1, False, api_name="/clone")
    assert client.predict(api_name="/jobs")["clone"] is None  # nothing was started
