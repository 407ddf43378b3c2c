import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch, model_cache):
    """Every test gets its own empty $VOICEFAKE_HOME (prepared graphs are shared: they are rebuildable)."""
    monkeypatch.setenv("VOICEFAKE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VOICEFAKE_CACHE", str(model_cache))


@pytest.fixture(scope="session")
def voice():
    import voicefake

    return voicefake.load_voice("joe")


@pytest.fixture(scope="session")
def shared():
    if not SHARED.is_dir():
        pytest.skip(f"real recordings not available: {SHARED} is missing")
    return SHARED
