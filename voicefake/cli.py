"""voicefake: clone a voice, speak text in it, lip-sync a face to it (offline, watermarked)."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import VoicefakeError


def _read_text(text: str) -> str:
    if text != "-":
        return text
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as error:
        raise VoicefakeError(f"standard input is not UTF-8 text: {error}") from error


def cmd_say(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .audio import AudioWriter, check_output_path
    from .voice import load_voice

    check_output_path(args.output)  # before loading anything: a bad path should fail at once
    text = _read_text(args.text)
    voice = load_voice(args.voice)
    chunks = voice.synthesize(text, speed=args.speed, noise=args.noise, noise_w=args.noise_w)
    seconds = 0.0
    with AudioWriter(args.output, voice.sample_rate) as writer:
        for chunk in tqdm(chunks, desc="speaking", unit="sentence", disable=args.quiet, leave=False):
            writer.write(chunk.audio)
            seconds += chunk.duration
    if not args.quiet:
        print(f"wrote {writer.path} ({seconds:.1f} s, voice {voice.name})", file=sys.stderr)


def cmd_voices(args: argparse.Namespace) -> None:
    from .voice import list_voices

    for info in list_voices():
        print(f"{info.name:<20} {info.state:<9} {info.description}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicefake", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    say = commands.add_parser("say", help="speak text into an audio file (wav, flac, mp3, ogg)")
    say.add_argument("text", help="the text to speak, or - to read it from standard input")
    say.add_argument("-o", "--output", required=True, help="output file; the extension picks the format")
    say.add_argument("--voice", default="joe", help="voice name (see `voicefake voices`; default joe)")
    say.add_argument("--speed", type=float, default=1.0, help="speaking rate, 1.0 normal (0.25-4)")
    say.add_argument("--noise", type=float, default=0.667, help="variation of the sound (0 = deterministic)")
    say.add_argument("--noise-w", type=float, default=0.8, help="variation of the rhythm (0 = deterministic)")
    say.set_defaults(run=cmd_say)

    voices = commands.add_parser("voices", help="list the voices you can speak with")
    voices.set_defaults(run=cmd_voices)
    return parser


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"voicefake: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.getLogger("voicefake").addHandler(handler)
    logging.getLogger("voicefake").propagate = False
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except VoicefakeError as error:
        print(f"voicefake: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voicefake: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
