"""Background jobs for the app: training runs in a process of its own, its state in a JSON file.

    jobs.start_clone("ann", minutes=30)   # returns at once; refused while another training runs
    jobs.clone_job()                      # the latest state, also after a page reload or an app restart
    jobs.cancel_clone()                   # stops it; resuming continues from the last checkpoint

The worker (`python -m voicefake.app.jobs clone NAME ...`) rewrites $VOICEFAKE_HOME/jobs/clone.json
after every training step. A separate process makes cancelling a plain signal, and its lower CPU
priority keeps speech synthesis in the app responsive while it trains.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from voicefake.config import check_name, voice_folder, voicefake_home
from voicefake.errors import VoicefakeError
from voicefake.io.atomic import write_text

ACTIVE = ("starting", "running")
WORKER_NICE = 10  # training yields the CPU to synthesis and the web server
START_GRACE = 120.0  # s a job may stay "starting" (worker not yet reporting) before it counts as lost

_start_lock = threading.Lock()  # two clicks at once must not start two trainings
_workers: dict[str, subprocess.Popen] = {}  # job id -> worker started here (polled, so none lingers as a zombie)


class Cancelled(BaseException):
    """Raised in the worker by SIGTERM. A BaseException, so library code catching Exception lets it through."""


def job_path(kind: str) -> Path:
    return voicefake_home() / "jobs" / f"{kind}.json"


def read_job(kind: str) -> dict | None:
    """The stored state of the latest `kind` job ("clone", "enroll"), or None."""
    try:
        return json.loads(job_path(kind).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_job(kind: str, job: dict) -> dict:
    """Store `job` atomically: a reader never sees half a file."""
    job["updated"] = time.time()
    path = job_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(job, ensure_ascii=False))
    return job


def _alive(job: dict) -> bool:
    worker = _workers.get(job.get("id", ""))
    if worker is not None:  # ours: poll() also reaps it
        return worker.poll() is None
    pid = job.get("pid")
    if pid is None:  # started by another app process, worker not reporting yet
        return time.time() - job.get("started", 0) < START_GRACE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


INTERRUPTED = {
    "clone": "the training process stopped unexpectedly (its output is in jobs/clone.log); "
             "resuming continues from the last checkpoint",
    "enroll": "the app stopped during enrollment; nothing was written: enroll again",
}


def latest_job(kind: str) -> dict | None:
    """The latest `kind` job; one whose process died without a word is marked "interrupted"."""
    job = read_job(kind)
    if job and job.get("status") in ACTIVE and not _alive(job):
        job.update(status="interrupted", message=INTERRUPTED.get(kind, "the job's process stopped unexpectedly"))
        write_job(kind, job)
    return job


def clone_job() -> dict | None:
    """The latest training job."""
    return latest_job("clone")


def start_clone(name: str, minutes: float = 30.0, resume: bool = False, restart: bool = False,
                max_steps: int | None = None) -> dict:
    """Start training voice `name` in the background; refuses at once what `voicefake clone` would refuse."""
    from voicefake.enroll.consent import require_consent

    check_name(name)  # before the name goes near a path
    if not require_consent(name).get("verified"):
        raise VoicefakeError(f"voice {name!r} rests on a declared licence, not on consent verified from the speaker: "
                             "the app clones only verified voices")
    if not 0 < minutes <= 24 * 60:
        raise VoicefakeError(f"a training budget of {minutes} minutes is out of range: give 1 to 1440")
    if max_steps is not None and max_steps < 1:
        raise VoicefakeError(f"a step limit of {max_steps} is out of range: give 1 or more, or none")
    if (voice_folder(name) / "checkpoint.pt").exists() and not (resume or restart):
        raise VoicefakeError(f"voice {name!r} was trained before: resume that run, or start over")
    with _start_lock:
        running = clone_job()
        if running and running["status"] in ACTIVE:
            raise VoicefakeError(f"a training job is already running (voice {running['name']!r}, step "
                                 f"{running.get('step', 0)}): wait for it to finish, or cancel it")
        job = write_job("clone", {
            "id": secrets.token_hex(4), "kind": "clone", "name": name, "status": "starting", "pid": None,
            "started": time.time(), "minutes": minutes, "max_steps": max_steps, "resume": resume, "step": 0,
            "seconds": 0.0, "losses": {}, "history": [], "message": "starting the training process",
        })
        command = [sys.executable, "-m", "voicefake.app.jobs", "clone", name, "--job", job["id"], "--minutes", str(minutes)]
        command += ["--resume"] * resume + ["--restart"] * restart
        command += [] if max_steps is None else ["--max-steps", str(max_steps)]
        with open(job_path("clone").with_suffix(".log"), "w", encoding="utf-8") as log:
            _workers[job["id"]] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                   stderr=subprocess.STDOUT)
    return job


def cancel_clone() -> dict:
    """Ask the running training job to stop; returns its state (the worker marks it "cancelled")."""
    job = clone_job()
    if not job or job["status"] not in ACTIVE:
        raise VoicefakeError("no training job is running")
    worker = _workers.get(job["id"])
    if worker is not None:
        worker.terminate()
    elif job.get("pid"):
        os.kill(job["pid"], signal.SIGTERM)
    else:
        raise VoicefakeError("the training job is still starting in another app process: try again in a moment")
    job["message"] = "cancelling: the worker stops as soon as its current computation returns"
    return job


# --- the worker process ----------------------------------------------------------------------


def _raise_cancelled(signum, frame):
    raise Cancelled()


def run_clone_worker(name: str, job_id: str, minutes: float, resume: bool, restart: bool,
                     max_steps: int | None) -> int:
    """Train, reporting into jobs/clone.json; the exit status is 0 when the voice was cloned."""
    signal.signal(signal.SIGTERM, _raise_cancelled)  # first: a cancel must always leave a record
    job = read_job("clone") or {}
    if job.get("id") != job_id:  # started by hand, or the file was replaced: keep our own record
        job = {"id": job_id, "kind": "clone", "name": name, "started": time.time(), "minutes": minutes,
               "max_steps": max_steps, "resume": resume, "step": 0, "seconds": 0.0, "losses": {}, "history": []}
    job.update(pid=os.getpid(), status="running", message="loading the voice and its recordings")
    write_job("clone", job)
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass  # not allowed here: train at normal priority

    def on_step(step, losses, state):
        job.update(step=step, seconds=round(state.seconds, 1), message="training",
                   losses={k: round(float(v), 4) for k, v in losses.items()},
                   history=[[int(s), round(float(t), 1), dict(figures)] for s, t, figures in state.history])
        write_job("clone", job)

    from voicefake.tts.clone import clone_voice

    try:
        path = clone_voice(name, minutes, resume=resume, restart=restart, on_step=on_step, max_steps=max_steps)
        job.update(status="done", message=f"cloned: choose {name} in Speak or Lip-sync", model=str(path))
        return_code = 0
    except (Cancelled, KeyboardInterrupt):
        job.update(status="cancelled", message=f"cancelled at step {job.get('step', 0)}, saved: resume continues "
                                               "from there")
        return_code = 130
    except VoicefakeError as error:
        job.update(status="failed", message=str(error))
        return_code = 2
    except Exception as error:  # the app must learn of it; the log holds the traceback
        import traceback

        traceback.print_exc()
        job.update(status="failed", message=f"training failed: {type(error).__name__}: {error}")
        return_code = 1
    write_job("clone", job)
    return return_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicefake.app.jobs", description="the app's training worker")
    commands = parser.add_subparsers(dest="command", required=True)
    clone = commands.add_parser("clone")
    clone.add_argument("name")
    clone.add_argument("--job", required=True, help="job id, as written in jobs/clone.json")
    clone.add_argument("--minutes", type=float, default=30.0)
    clone.add_argument("--resume", action="store_true")
    clone.add_argument("--restart", action="store_true")
    clone.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)
    return run_clone_worker(args.name, args.job, args.minutes, args.resume, args.restart, args.max_steps)


if __name__ == "__main__":
    sys.exit(main())
