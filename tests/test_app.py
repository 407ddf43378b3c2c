"""The Gradio app, through its API as gradio_client sees it."""

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="module")
def client():
    import app
    from gradio_client import Client

    server = app.build_app().queue()
    server.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield Client(server.local_url, verbose=False)
    server.close()


def test_speak_endpoint_returns_speech(client):
    path = client.predict("Hello from the app.", "joe", 1.0, api_name="/speak")
    audio, rate = sf.read(path)
    assert rate == 22050 and len(audio) > rate * 0.5 and np.abs(audio).max() > 0.05


def test_speak_endpoint_reports_bad_input(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("   ", "joe", 1.0, api_name="/speak")
