"""The Gradio page: `voicefake app` (or `python app.py`, `make demo`), then open http://127.0.0.1:7860.

Four tabs: Voice (consent, enrollment, cloning), Speak, Lip-sync and Detect. Models load on
first use, so the page comes up at once. Training runs in a background process
(voicefake/app/jobs.py) whose state is on disk, so a reloaded page shows it again.
"""

from __future__ import annotations

import atexit
import functools
import html
import os
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

import voicefake
from voicefake.app import DEFAULT_HOST, DEFAULT_PORT, jobs
from voicefake.config import DEFAULT_VOICE, check_name
from voicefake.errors import VoicefakeError
from voicefake.io.media import MEDIA_EXTENSIONS
from voicefake.io.video import IMAGE_EXTS, VIDEO_EXTS
from voicefake.tts.text import MAX_TEXT_CHARS

NOTICE = (
    "Everything this page makes is synthetic and carries an invisible voicefake watermark (the Detect tab, "
    "or `voicefake detect FILE`, finds it); videos also show a visible *AI-generated* label. "
    "Only clone a voice with its owner's recorded consent."
)
# The clone's validation curves, each scaled to 0..1: (legend, key in the figures, divisor).
CLONE_CURVES = (("likeness (resemblyzer)", "similarity", 1.0), ("naturalness (MOS / 5)", "naturalness", 5.0),
                ("word error rate", "wer", 1.0))
MAX_UPLOAD = "500mb"  # per file, enforced by Gradio while uploading
ENROLL_MINUTES = 60.0  # enrollment reads 1 to 60 minutes of speech
CONSENT_SECONDS = 120.0  # reading the phrase takes about 15 s
LIPSYNC_SECONDS = 300.0  # speech and face video; longer jobs belong to the CLI
DETECT_SECONDS = 3600.0
FACE_EXTS = IMAGE_EXTS | VIDEO_EXTS


@functools.cache
def work_dir() -> Path:
    """Uploads and outputs live in a folder only this process's user can read (mkdtemp: mode 0700),
    removed on exit. Made when the page is built, before Gradio, which reads GRADIO_TEMP_DIR then."""
    folder = Path(tempfile.mkdtemp(prefix="voicefake-app-")).resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "uploads")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def uploads_dir() -> Path:
    return work_dir() / "uploads"


def outputs_dir() -> Path:
    return work_dir() / "outputs"


def friendly(fn):
    """Show the library's one-line VoicefakeError messages on the page (gr.Error) instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VoicefakeError as error:
            raise gr.Error(str(error), print_exception=False) from error

    return wrapper


# --- files from the page -------------------------------------------------------------------


def media_seconds(path: Path) -> float | None:
    """Length of an audio or video file from its header; None when unknown (some browser recordings)."""
    import av

    try:
        with av.open(str(path)) as container:
            return container.duration / 1e6 if container.duration else None
    except Exception:
        return None


def checked_upload(path, what: str, allowed: set[str], max_seconds: float | None = None) -> Path:
    """A file the page sent, checked before anything reads it: uploaded here (Gradio's private
    cache or our outputs, never any other path a client names), a known type, within the limits."""
    if not path:
        raise gr.Error(f"give {what}")
    file = Path(path).resolve()
    if not any(file.is_relative_to(root) for root in (uploads_dir(), outputs_dir())) or not file.is_file():
        raise gr.Error(f"{what}: not a file uploaded to this page")
    if file.suffix.lower() not in allowed:
        raise gr.Error(f"{what}: {file.suffix or 'files without an extension'} cannot be used here; "
                       f"give one of {' '.join(sorted(allowed))}")
    seconds = media_seconds(file) if max_seconds and file.suffix.lower() not in IMAGE_EXTS else None
    if seconds and seconds > max_seconds:
        raise gr.Error(f"{what} lasts {seconds / 60:.1f} minutes; this page takes up to {max_seconds / 60:.0f} "
                       "(the `voicefake` command has no such limit)")
    return file


def new_output(name: str) -> Path:
    """A fresh path for an output file; `name` (ours, never the user's) is what a download is called."""
    outputs_dir().mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=outputs_dir())) / name


# --- Voice: consent, enrollment, cloning -----------------------------------------------------


@friendly
def consent_phrase(name: str) -> str:
    """Issue a consent challenge for voice `name`: the text the speaker reads aloud."""
    challenge = voicefake.issue_challenge((name or "").strip())
    until = time.strftime("%H:%M UTC", time.gmtime(challenge.expires))
    return (f"Record **{html.escape(challenge.name)}** reading this aloud, then enroll before {until}:\n\n"
            f"> {challenge.text}")


@friendly
def enroll_voice(name: str, recordings: list[str] | None, recorded: str | None, consent: str | None,
                 progress=gr.Progress(track_tqdm=True)) -> str:
    """Enroll voice `name` from uploaded and recorded speech, with the consent recording; returns the report."""
    from voicefake.enroll.enrollment import EnrollmentError

    name = check_name((name or "").strip())
    files = [checked_upload(p, "a recording", MEDIA_EXTENSIONS) for p in [*(recordings or []), recorded] if p]
    if not files:
        raise gr.Error("give recordings of the speaker: upload files, or record here")
    total = sum(media_seconds(f) or 0.0 for f in files)
    if total > ENROLL_MINUTES * 60:
        raise gr.Error(f"the recordings last {total / 60:.0f} minutes; enrollment takes up to {ENROLL_MINUTES:.0f}")
    consent_file = checked_upload(consent, "the consent recording", MEDIA_EXTENSIONS, CONSENT_SECONDS)
    # the record on disk is what the report box shows, also after a page reload
    job = jobs.write_job("enroll", {"name": name, "status": "running", "started": time.time(), "pid": os.getpid(),
                                    "report": f"enrolling {name} from {len(files)} file(s)..."})
    try:
        report = voicefake.enroll(name, files, consent=consent_file, progress=True)
    except VoicefakeError as error:
        lines = error.report.lines() if isinstance(error, EnrollmentError) and error.report else []
        jobs.write_job("enroll", {**job, "status": "failed", "report": "\n".join([str(error), "", *lines])})
        raise
    # the page shows where the voice went without naming the server's folders
    text = "\n".join(report.lines()).replace(str(voicefake.config.voicefake_home()), "$VOICEFAKE_HOME")
    jobs.write_job("enroll", {**job, "status": "done", "report": text})
    return text


@friendly
def start_clone(name: str, minutes: float, max_steps: float | None, start_over: bool) -> tuple:
    """Start cloning voice `name` in the background (one training at a time)."""
    steps = int(max_steps) if max_steps else None
    return clone_view(jobs.start_clone((name or "").strip(), float(minutes), restart=start_over, max_steps=steps))


@friendly
def resume_clone(name: str, minutes: float, max_steps: float | None) -> tuple:
    """Continue an interrupted or cancelled clone from its last checkpoint; `minutes` is the total budget."""
    steps = int(max_steps) if max_steps else None
    return clone_view(jobs.start_clone((name or "").strip(), float(minutes), resume=True, max_steps=steps))


@friendly
def cancel_clone() -> tuple:
    """Stop the running training job."""
    return clone_view(jobs.cancel_clone())


def clone_view(job: dict | None) -> tuple[str, gr.LinePlot, dict]:
    """(progress HTML, similarity-so-far plot, raw job state) of a training job."""
    import pandas as pd

    rows = (job or {}).get("history", [])
    plot = pd.DataFrame([(s, m / 60, name, figures[key] / scale) for s, m, figures in rows
                         for name, key, scale in CLONE_CURVES], columns=["step", "minutes", "figure", "value"])
    if not job:
        return "<p id='clone-status'>No training job yet.</p>", gr.LinePlot(plot, visible=False), {}
    budget = job["minutes"] * 60
    done = job["seconds"] / budget
    if job.get("max_steps"):
        done = max(done, job["step"] / job["max_steps"])
    if job["status"] == "done":
        done = 1.0
    losses = ", ".join(f"{k} {v:.3f}" for k, v in job.get("losses", {}).items()) or "none yet"
    if rows:
        last = rows[-1][2]
        similarity = (f"{last['similarity']:.3f}, naturalness (MOS) {last['naturalness']:.2f}, word error rate "
                      f"{last['wer']:.2f} at step {rows[-1][0]}")
    else:
        similarity = "not measured yet (every 100 steps)"
    view = (
        f"<div id='clone-status'><progress value='{min(done, 1):.3f}' max='1' style='width:100%'></progress>"
        f"<p><b>{html.escape(job['name'])}</b>: <b>{html.escape(job['status'])}</b>, step {job['step']}, "
        f"{_clock(job['seconds'])} of {_clock(budget)} trained</p>"
        f"<p>losses: {html.escape(losses)}<br>similarity to the speaker: {similarity}</p>"
        f"<p>{html.escape(job.get('message', ''))}</p></div>"
    )
    return view, gr.LinePlot(plot, visible=bool(rows)), job


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def refresh_jobs(seen: tuple | None):
    """What the page shows of background jobs; skipped while nothing changed (the timer asks every 2 s)."""
    job, enrolled = jobs.clone_job(), jobs.latest_job("enroll") or {}
    stamp = ((job or {}).get("updated"), enrolled.get("updated"))
    if stamp == seen:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
    report = enrolled.get("report", "")
    if enrolled.get("status") == "interrupted":
        report += f"\n{enrolled['message']}"
    return *clone_view(job), report, stamp


def jobs_status() -> dict:
    """The stored state of the latest training and enrollment jobs (for API clients)."""
    return {"clone": jobs.clone_job(), "enroll": jobs.latest_job("enroll")}


# --- Speak, Lip-sync, Detect -----------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _loaded_voice(name: str, model: str, stamp: int) -> voicefake.Voice:
    return voicefake.load_voice(name)


def _voice(name: str) -> voicefake.Voice:
    """A loaded voice, reused until its model file changes (a voice cloned again)."""
    info = {v.name: v for v in voicefake.list_voices()}.get(name)
    if info is None or info.model_path is None:
        return voicefake.load_voice(name)  # raises the library's own message
    return _loaded_voice(name, str(info.model_path), info.model_path.stat().st_mtime_ns)


def voice_names() -> list[str]:
    return [v.name for v in voicefake.list_voices() if v.model_path is not None]


def voice_choices(current: str | None = None):
    """The voice dropdown, refreshed: bundled and cloned voices."""
    names = voice_names()
    return gr.Dropdown(choices=names, value=current if current in names else DEFAULT_VOICE)


@friendly
def speak(text: str, voice_name: str, speed: float, progress=gr.Progress()) -> str:
    """Speak `text` with the chosen voice; returns the path of a wav file."""
    voice = _voice(voice_name)
    chunks = list(progress.tqdm(voice.synthesize(text, speed=speed), desc="speaking"))
    with voicefake.io.audio.AudioWriter(new_output(f"{voice.name}-speech.wav"), voice.sample_rate) as writer:
        for chunk in chunks:
            writer.write(chunk.audio)
    return str(writer.path)


def _video_summary(report: voicefake.LipsyncReport) -> str:
    return (f"{report.width}x{report.height}, {report.duration:.1f} s, {report.face_frames} of {report.frames} frames "
            f"lip-synced ({report.engine} engine, mouth from {report.mouth_source}), in {report.seconds:.1f} s. "
            "Labelled AI-generated; frames and soundtrack are watermarked.")


@friendly
def lip_sync(face: str, audio: str, progress=gr.Progress(track_tqdm=True)) -> tuple[str, str]:
    """Make the face in a photo or video speak the audio; returns (mp4 path, summary)."""
    face_file = checked_upload(face, "a photo or video of a face", FACE_EXTS, LIPSYNC_SECONDS)
    audio_file = checked_upload(audio, "the speech", MEDIA_EXTENSIONS, LIPSYNC_SECONDS)
    report = voicefake.lipsync(face_file, audio_file, new_output("lipsync.mp4"), progress=True)
    return str(report.output), _video_summary(report)


@friendly
def speak_video(face: str, text: str, voice_name: str, progress=gr.Progress(track_tqdm=True)) -> tuple[str, str]:
    """Speak `text` in a voice and lip-sync the face to it, in one step; returns (mp4 path, summary)."""
    face_file = checked_upload(face, "a photo or video of a face", FACE_EXTS, LIPSYNC_SECONDS)
    _voice(voice_name)  # an unknown voice fails here, before any work
    report = voicefake.speak_video(face_file, text, new_output("speak.mp4"), voice=voice_name, progress=True)
    return str(report.output), _video_summary(report)


@friendly
def detect(path: str) -> tuple[str, dict]:
    """Is this file a voicefake output, of which voice, made when? Returns (verdict, details)."""
    from voicefake.provenance.detect import detect_file

    file = checked_upload(path, "a file to check", MEDIA_EXTENSIONS, DETECT_SECONDS)
    report = detect_file(file)
    verdict = (
        "**A voicefake output.**" if report.found
        else f"**Too short to decide:** {report.undecided}." if report.undecided
        else "**No voicefake watermark found.**"
    )
    return "\n\n".join([verdict, *report.summary().splitlines()]), {**report.to_dict(), "file": file.name}


# --- the page --------------------------------------------------------------------------------


def build_app() -> gr.Blocks:
    work_dir()  # first: Gradio reads GRADIO_TEMP_DIR while it builds the page
    with gr.Blocks(title="voicefake", analytics_enabled=False) as app:  # offline: no usage reports
        gr.Markdown(f"# voicefake\n{NOTICE}", elem_id="notice")
        with gr.Tabs(selected="speak"):
            with gr.Tab("Voice", id="voice"):
                voice_tab()
            with gr.Tab("Speak", id="speak") as tab:
                speak_voice, speech = speak_tab()
            tab.select(voice_choices, speak_voice, speak_voice, api_visibility="private")
            with gr.Tab("Lip-sync", id="lipsync") as tab:
                lip_voice = lipsync_tab(speech)
            tab.select(voice_choices, lip_voice, lip_voice, api_visibility="private")
            with gr.Tab("Detect", id="detect"):
                detect_tab()
        for dropdown in (speak_voice, lip_voice):  # voices cloned since the page was built
            app.load(voice_choices, dropdown, dropdown, api_visibility="private")
    return app


def voice_tab() -> None:
    gr.Markdown("**1. Consent.** Choose a name for the voice, show the phrase, and record its owner reading it.")
    with gr.Row():
        name = gr.Textbox(label="Voice name", placeholder="anna", max_length=40, elem_id="voice-name")
        phrase_button = gr.Button("Show the consent phrase")
    phrase = gr.Markdown(elem_id="consent-phrase")
    consent = gr.Audio(sources=["microphone", "upload"], type="filepath", label="The speaker reading the phrase",
                       elem_id="consent-audio")
    gr.Markdown("**2. Speech.** Minutes of the same person speaking (5 or more is best): upload, record, or both.")
    with gr.Row():
        recordings = gr.File(file_count="multiple", file_types=sorted(MEDIA_EXTENSIONS),
                             label="Recordings (audio or video)", elem_id="recordings")
        recorded = gr.Audio(sources=["microphone"], type="filepath", label="Or record here")
    enroll_button = gr.Button("Enroll", variant="primary", elem_id="enroll-button")
    report = gr.Textbox(label="Enrollment report", lines=8, interactive=False, elem_id="enroll-report")
    gr.Markdown("**3. Clone.** Fine-tunes the bundled voice toward the speaker; cancel any time and resume later.")
    with gr.Row():
        minutes = gr.Slider(1, 240, value=30, step=1, label="Training budget, minutes (in all, earlier runs included)")
        with gr.Column():
            max_steps = gr.Number(0, precision=0, minimum=0, label="Stop after this many steps (0: no limit)",
                                  elem_id="max-steps")
            start_over = gr.Checkbox(label="Start over (discard an earlier run of this voice)")
    with gr.Row():
        clone_button = gr.Button("Clone", variant="primary", elem_id="clone-button")
        resume_button = gr.Button("Resume")
        cancel_button = gr.Button("Cancel", variant="stop")
    status = gr.HTML("<p id='clone-status'>No training job yet.</p>")
    plot = gr.LinePlot(x="step", y="value", color="figure", title="Likeness, naturalness and clarity so far",
                       y_lim=[0, 1], height=260, visible=False)  # shown from the first check, at step 100
    with gr.Accordion("Job details", open=False):
        details = gr.JSON()
    seen = gr.State()
    clone_outputs = [status, plot, details]

    phrase_button.click(consent_phrase, name, phrase, api_name="consent_phrase")
    enroll_button.click(enroll_voice, [name, recordings, recorded, consent], report, api_name="enroll",
                        concurrency_limit=1)
    clone_button.click(start_clone, [name, minutes, max_steps, start_over], clone_outputs, api_name="clone")
    resume_button.click(resume_clone, [name, minutes, max_steps], clone_outputs, api_name="resume_clone")
    cancel_button.click(cancel_clone, None, clone_outputs, api_name="cancel_clone")
    # polling the job files also shows a job started before a page reload, or from another tab
    gr.Timer(2).tick(refresh_jobs, seen, [*clone_outputs, report, seen], show_progress="hidden",
                     concurrency_limit=None, api_visibility="private")
    gr.api(jobs_status, api_name="jobs", concurrency_limit=None)


def speak_tab() -> tuple[gr.Dropdown, gr.Audio]:
    with gr.Row():
        with gr.Column():
            # custom values: a voice cloned after the page was built (speak() checks the name)
            voice = gr.Dropdown(voice_names(), value=DEFAULT_VOICE, label="Voice", elem_id="speak-voice",
                                allow_custom_value=True)
            text = gr.Textbox(label="Text", lines=4, value="Hello! This voice was made offline, with voicefake.",
                              max_length=MAX_TEXT_CHARS, elem_id="speak-text")
            speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
            button = gr.Button("Speak", variant="primary", elem_id="speak-button")
        audio = gr.Audio(label="Speech", type="filepath", elem_id="speech", interactive=False, buttons=["download"])
    button.click(speak, [text, voice, speed], audio, api_name="speak")
    return voice, audio


def lipsync_tab(speech: gr.Audio) -> gr.Dropdown:
    with gr.Row():
        with gr.Column():
            face = gr.File(file_types=sorted(FACE_EXTS), label="A photo or a video showing a face",
                           elem_id="lipsync-face")
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech", elem_id="lipsync-audio")
            with gr.Row():
                take_speech = gr.Button("Use the speech from Speak", elem_id="lipsync-use-speech")
                button = gr.Button("Lip-sync", variant="primary", elem_id="lipsync-button")
            with gr.Accordion("Or speak text, in one step", open=False):
                voice = gr.Dropdown(voice_names(), value=DEFAULT_VOICE, label="Voice", allow_custom_value=True)
                text = gr.Textbox(label="Text", lines=2, max_length=MAX_TEXT_CHARS)
                speak_button = gr.Button("Speak and lip-sync")
        with gr.Column():
            video = gr.Video(label="Lip-synced video", elem_id="lipsync-video", interactive=False)
            summary = gr.Markdown(elem_id="lipsync-summary")
    take_speech.click(lambda value: value, speech, audio, api_visibility="private")
    button.click(lip_sync, [face, audio], [video, summary], api_name="lipsync")
    speak_button.click(speak_video, [face, text, voice], [video, summary], api_name="speak_video")
    return voice


def detect_tab() -> None:
    with gr.Row():
        with gr.Column():
            file = gr.File(file_types=sorted(MEDIA_EXTENSIONS), label="Any audio or video file", elem_id="detect-file")
            button = gr.Button("Check", variant="primary", elem_id="detect-button")
        with gr.Column():
            verdict = gr.Markdown(elem_id="detect-verdict")
            details = gr.JSON(label="Details")
    button.click(detect, file, [verdict, details], api_name="detect")


def serve(host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT, share: bool = False, **options) -> gr.Blocks:
    """Build and start the page with its protective defaults; `options` go to Blocks.launch."""
    app = build_app().queue(default_concurrency_limit=2)
    app.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD,
               allowed_paths=[str(outputs_dir())], **options)
    return app
