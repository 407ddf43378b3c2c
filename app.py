"""voicefake in the browser: `python app.py` (or `make demo`), then open http://127.0.0.1:7860.

Models load lazily on first use, so the page comes up at once.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

import gradio as gr

import voicefake
from voicefake.errors import VoicefakeError

OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="voicefake-app-"))  # private to this process
NOTICE = (
    "Everything this page makes is synthetic and carries an inaudible voicefake watermark "
    "(`voicefake detect FILE` finds it). Only clone a voice with its owner's recorded consent."
)


@functools.lru_cache(maxsize=4)
def _voice(name: str) -> voicefake.Voice:
    return voicefake.load_voice(name)


def voice_names() -> list[str]:
    return [v.name for v in voicefake.list_voices() if v.model_path is not None]


def speak(text: str, voice_name: str, speed: float, progress=gr.Progress()) -> str:
    """Speak `text` with the chosen voice; returns the path of a wav file."""
    try:
        voice = _voice(voice_name)
        chunks = list(progress.tqdm(voice.synthesize(text, speed=speed), desc="speaking"))
        out = Path(tempfile.mkstemp(suffix=".wav", dir=OUTPUT_DIR)[1])
        out.unlink()
        with voicefake.audio.AudioWriter(out, voice.sample_rate) as writer:
            for chunk in chunks:
                writer.write(chunk.audio)
        return str(out)
    except VoicefakeError as error:
        raise gr.Error(str(error)) from error


def build_app() -> gr.Blocks:
    with gr.Blocks(title="voicefake") as app:
        gr.Markdown(f"# voicefake\n{NOTICE}")
        with gr.Tab("Speak"):
            with gr.Row():
                with gr.Column():
                    voice = gr.Dropdown(voice_names(), value="joe", label="Voice")
                    text = gr.Textbox(
                        label="Text", lines=4, value="Hello! This voice was made offline, with voicefake.",
                        max_length=voicefake.text.MAX_TEXT_CHARS,
                    )
                    speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
                    button = gr.Button("Speak", variant="primary")
                audio = gr.Audio(label="Speech", type="filepath", elem_id="speech")
            button.click(speak, [text, voice, speed], audio, api_name="speak")
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    args = parser.parse_args()
    build_app().queue(default_concurrency_limit=2).launch(
        server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(OUTPUT_DIR)]
    )


if __name__ == "__main__":
    main()
