"""The browser front end: a Gradio page (ui.py) and the background jobs it starts (jobs.py).

    voicefake app [--host 127.0.0.1] [--port 7860] [--share]
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"  # this machine only
DEFAULT_PORT = 7860


def serve(host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT, share: bool = False, **options):
    """Build and start the page; `options` go to gradio's Blocks.launch. Gradio loads only now."""
    from voicefake.app import ui

    return ui.serve(host, port, share, **options)
