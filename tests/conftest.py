import shutil

import pytest

from tests.helpers import make_tiny_voice, shared_data


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
def tiny_voice_folder(tmp_path_factory):
    """The tiny generated voice, built once per test session (a few seconds)."""
    return make_tiny_voice(tmp_path_factory.mktemp("tiny")).parent


@pytest.fixture
def tiny_voice(tiny_voice_folder, private_home):
    """The tiny voice installed as voice "tiny" in this test's $VOICEFAKE_HOME, loaded."""
    import voicefake
    from voicefake.config import voice_folder

    shutil.copytree(tiny_voice_folder, voice_folder("tiny"))
    return voicefake.load_voice("tiny")


@pytest.fixture(scope="session")
def shared():
    """../shared (real recordings and faces), or skip."""
    return shared_data().parent
