"""voicefake: clone a voice, speak text in it, lip-sync a face to it (offline, watermarked)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from voicefake.config import DEFAULT_VOICE, NOISE_SCALE, NOISE_W
from voicefake.errors import VoicefakeError

VOICE_HELP = f"voice name (see `voicefake voices`; default {DEFAULT_VOICE})"


def _read_text(text: str) -> str:
    if text != "-":
        return text
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as error:
        raise VoicefakeError(f"standard input is not UTF-8 text: {error}") from error


def cmd_say(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from voicefake.io.audio import AudioWriter, check_output_path
    from voicefake.tts.voice import load_voice

    check_output_path(args.output)  # before loading anything: a bad path should fail at once
    text = _read_text(args.text)
    voice = load_voice(args.voice)
    chunks = voice.synthesize(text, speed=args.speed, noise=args.noise, noise_w=args.noise_w)
    seconds = 0.0
    with AudioWriter(args.output, voice.sample_rate, voice=voice.name) as writer:
        for chunk in tqdm(chunks, desc="speaking", unit="sentence", disable=args.quiet, leave=False):
            writer.write(chunk.audio)
            seconds += chunk.duration
    if not args.quiet:
        print(f"wrote {writer.path} ({seconds:.1f} s, voice {voice.name})", file=sys.stderr)


def cmd_voices(args: argparse.Namespace) -> None:
    from voicefake.tts.voice import list_voices

    for info in list_voices():
        print(f"{info.name:<20} {info.state:<9} {info.description}")


def cmd_consent_phrase(args: argparse.Namespace) -> None:
    import json
    import time

    from voicefake.enroll.consent import issue_challenge

    challenge = issue_challenge(args.name, args.valid_minutes)
    if args.json:
        print(json.dumps(challenge.public(), ensure_ascii=False))
        return
    until = time.strftime("%H:%M UTC on %Y-%m-%d", time.gmtime(challenge.expires))
    print(f"Record {args.name} reading this aloud (challenge {challenge.id}, valid until {until}):\n")
    print(f"    {challenge.text}\n")
    print(f"then run: voicefake enroll {args.name} RECORDINGS... --consent THAT_RECORDING")


def cmd_enroll(args: argparse.Namespace) -> None:
    from voicefake.enroll.enrollment import EnrollmentError, enroll

    try:
        report = enroll(
            args.name,
            args.audio,
            consent=args.consent,
            transcripts=args.transcripts,
            language=args.language,
            challenge=args.challenge,
            progress=not args.quiet,
        )
    except EnrollmentError as error:
        if error.report is not None and not args.quiet:
            print("\n".join(error.report.lines()))
        raise
    if not args.quiet:
        print("\n".join(report.lines()))


def cmd_remove(args: argparse.Namespace) -> None:
    from voicefake.enroll.enrollment import remove_voice

    folder = remove_voice(args.name)
    if not args.quiet:
        print(f"removed voice {args.name} ({folder})", file=sys.stderr)


def cmd_clone(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from voicefake.enroll.consent import require_consent
    from voicefake.tts.clone import check_clone_arguments, clone_voice

    check_clone_arguments(args.name, args.minutes, args.device, args.resume, args.restart)  # before any state
    if not require_consent(args.name).get("verified"):  # refuse before anything starts
        raise VoicefakeError(f"voice {args.name!r} rests on a declared licence, not on consent verified from the "
                             "speaker: the CLI clones only verified voices (use the Python API or recipes/clone_vits.py)")
    bar = tqdm(total=int(args.minutes * 60), desc=f"cloning {args.name}", unit="s", disable=args.quiet,
               bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    done = [0]

    def progress(step, losses, state):
        done[0] = step
        bar.n = min(bar.total, int(state.seconds))
        checked = ""
        if state.history:
            figures = state.history[-1][2]
            checked = (f" similarity={figures['similarity']:.3f} MOS={figures['naturalness']:.2f}"
                       f" WER={figures['wer']:.2f}")
        kl = f" kl={losses['kl']:.2f}" if "kl" in losses else " (phase 1: autoencoder)"  # phase 1 has no prior
        bar.set_postfix_str(f"step {step} mel={losses['mel']:.3f}{kl}{checked}")

    try:
        path = clone_voice(args.name, args.minutes, args.device, resume=args.resume, restart=args.restart,
                           on_step=progress)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: train.fine_tune has saved the checkpoint
        bar.close()
        if done[0]:
            print(f"voicefake: saved the checkpoint at step {done[0]}: continue with "
                  f"`voicefake clone {args.name} --resume`", file=sys.stderr)
        raise
    bar.close()
    if not args.quiet:
        print(f"cloned {args.name}: {path}. Try: voicefake say \"Hello.\" --voice {args.name} -o hello.wav",
              file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> None:
    from voicefake.tts.clone import export_voice

    path = export_voice(args.name, args.folder)
    if not args.quiet:
        print(f"wrote {path} and {path}.json (a Piper voice: piper -m {path})", file=sys.stderr)


def cmd_detect(args: argparse.Namespace) -> int:
    import json

    from voicefake.provenance.detect import detect_file

    report = detect_file(args.file)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"{args.file}:\n{report.summary()}")
    return 0 if report.found else 1


def _lipsync_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, help="output video, .mp4 (H.264 + AAC)")
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="lip-sync the N-th face from the left, counting from 0 (default: the largest)")
    parser.add_argument("--no-label", action="store_true", help="leave out the visible 'AI-generated' label")
    parser.add_argument("--engine", choices=["auto", "classic", "wav2lip"], default="auto",
                        help="auto: wav2lip when its weights are in pretrained/, else classic (default)")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help="Wav2Lip state-dict checkpoint to use (default: wav2lip*.pth in pretrained/)")


def _lipsync_kwargs(args: argparse.Namespace) -> dict:
    return {
        "face_index": args.face_index, "label": not args.no_label, "engine": args.engine, "progress": not args.quiet,
        "weights": args.weights,
    }


def cmd_lipsync(args: argparse.Namespace) -> None:
    from voicefake.lipsync.pipeline import lipsync

    report = lipsync(args.face, args.audio, args.output, **_lipsync_kwargs(args))
    if not args.quiet:
        print(report.summary(), file=sys.stderr)


def cmd_speak_video(args: argparse.Namespace) -> None:
    from voicefake.lipsync.pipeline import speak_video

    report = speak_video(args.face, _read_text(args.text), args.output, voice=args.voice, speed=args.speed,
                         **_lipsync_kwargs(args))
    if not args.quiet:
        print(report.summary(), file=sys.stderr)

def cmd_app(args: argparse.Namespace) -> None:
    from voicefake.app import serve

    serve(args.host, args.port, args.share)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicefake", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _speech_commands(commands)
    _voice_commands(commands)
    _video_commands(commands)
    _app_command(commands)
    return parser


def _speech_commands(commands) -> None:
    say = commands.add_parser("say", help="speak text into an audio file (wav, flac, mp3, ogg)")
    say.add_argument("text", help="the text to speak, or - to read it from standard input")
    say.add_argument("-o", "--output", required=True, help="output file; the extension picks the format")
    say.add_argument("--voice", default=DEFAULT_VOICE, help=VOICE_HELP)
    say.add_argument("--speed", type=float, default=1.0, help="speaking rate, 1.0 normal (0.25-4)")
    say.add_argument("--noise", type=float, default=NOISE_SCALE, help="variation of the sound (0 = deterministic)")
    say.add_argument("--noise-w", type=float, default=NOISE_W, help="variation of the rhythm (0 = deterministic)")
    say.set_defaults(run=cmd_say)

    voices = commands.add_parser("voices", help="list the voices you can speak with")
    voices.set_defaults(run=cmd_voices)

    detect = commands.add_parser("detect", help="check a file for the voicefake watermark (exit 0 found, 1 not)")
    detect.add_argument("file", help="any audio or video file")
    detect.add_argument("--json", action="store_true", help="print one JSON line")
    detect.set_defaults(run=cmd_detect)


def _voice_commands(commands) -> None:
    phrase = commands.add_parser("consent-phrase", help="issue a challenge phrase the speaker reads to consent")
    phrase.add_argument("name", help="the voice to enroll (lower-case letters, digits, - and _)")
    phrase.add_argument("--json", action="store_true", help='print one line {"id": ..., "text": ..., "expires": ...}')
    phrase.add_argument("--valid-minutes", type=float, default=60, help="how long the challenge can be used (default 60)")
    phrase.set_defaults(run=cmd_consent_phrase)

    enroll = commands.add_parser("enroll", help="build a voice from recordings of one person, with their consent")
    enroll.add_argument("name", help="name for the new voice")
    enroll.add_argument("audio", nargs="+", metavar="AUDIO_OR_DIR", help="audio or video files, or folders of them")
    enroll.add_argument("--consent", required=True, metavar="RECORDING", help="the speaker reading the challenge phrase")
    enroll.add_argument("--challenge", metavar="ID", help="challenge id (default: the latest issued for NAME)")
    enroll.add_argument("--transcripts", metavar="FILE", help="`file|text` lines, a folder of .txt files, or one .txt")
    enroll.add_argument("--language", default="en", help="language spoken (default en; others need --transcripts)")
    enroll.set_defaults(run=cmd_enroll)

    clone = commands.add_parser("clone", help="fine-tune a voice on its enrolled recordings (needs consent)")
    clone.add_argument("name", help="an enrolled voice (see `voicefake voices`)")
    clone.add_argument("--minutes", type=float, default=30.0, help="training time budget (default 30)")
    clone.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    clone.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    clone.add_argument("--restart", action="store_true", help="discard an earlier run's checkpoint and start over")
    clone.set_defaults(run=cmd_clone)

    export = commands.add_parser("export", help="write a cloned voice as a Piper voice (NAME.onnx + NAME.onnx.json)")
    export.add_argument("name", help="a cloned voice")
    export.add_argument("folder", help="destination folder")
    export.set_defaults(run=cmd_export)

    remove = commands.add_parser("remove", help="delete a voice and everything made from it")
    remove.add_argument("name", help="the voice to delete")
    remove.set_defaults(run=cmd_remove)


def _video_commands(commands) -> None:
    lipsync = commands.add_parser("lipsync", help="make the face in a video or photo speak an audio file (mp4)")
    lipsync.add_argument("face", help="a video (mp4, mov, webm, avi, mkv) or a photo (png, jpg) showing a face")
    lipsync.add_argument("audio", help="the speech: any audio file (wav, flac, mp3, ogg, m4a...)")
    _lipsync_options(lipsync)
    lipsync.set_defaults(run=cmd_lipsync)

    speak_video = commands.add_parser("speak-video", help="speak text in a voice and lip-sync a face to it (mp4)")
    speak_video.add_argument("face", help="a video or a photo showing a face")
    speak_video.add_argument("text", help="the text to speak, or - to read it from standard input")
    speak_video.add_argument("--voice", default=DEFAULT_VOICE, help=VOICE_HELP)
    speak_video.add_argument("--speed", type=float, default=1.0, help="speaking rate, 1.0 normal (0.25-4)")
    _lipsync_options(speak_video)
    speak_video.set_defaults(run=cmd_speak_video)


def _app_command(commands) -> None:
    from voicefake.app import DEFAULT_HOST, DEFAULT_PORT

    app = commands.add_parser("app", help="serve the Gradio page (default http://127.0.0.1:7860)")
    app.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    app.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    app.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    app.set_defaults(run=cmd_app)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"voicefake: {record.levelname.lower()}: {record.getMessage()}"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C: every `with` block then removes its
    partial output and training saves its checkpoint, instead of the process dying mid-write."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def _stop_on_signals() -> dict:
    """Route SIGTERM and SIGHUP to `Terminated`; returns the previous handlers (to restore).

    Only the first signal raises: a second one, while the first one's cleanup runs (deleting a
    partial file, saving a checkpoint), is ignored so it cannot cut that short; a third ends the
    process at once (the default action), for a cleanup that hangs. A SIGHUP already ignored
    (`nohup voicefake ...`) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signal handlers can only be set from the main thread
    fired = []

    def stop(signum, frame):
        fired.append(signum)
        if len(fired) == 1:
            raise Terminated(signum)
        if len(fired) >= 3:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    previous = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is None or signal.getsignal(number) == signal.SIG_IGN:
            continue
        previous[number] = signal.signal(number, stop)
    return previous


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 130 interrupted, 128 + N stopped by signal N)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.getLogger("voicefake").addHandler(handler)
    logging.getLogger("voicefake").propagate = False
    args = build_parser().parse_args(argv)
    previous = _stop_on_signals()
    try:
        status = args.run(args) or 0
    except VoicefakeError as error:
        print(f"voicefake: error: {error}", file=sys.stderr)
        return 2
    except Terminated as stop:
        print(f"voicefake: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("voicefake: interrupted", file=sys.stderr)
        return 130
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
    return status


if __name__ == "__main__":
    sys.exit(main())
