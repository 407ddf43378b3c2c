"""The page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) driven by
Selenium types text, speaks, lip-syncs a photo, checks a file, enrolls and clones a voice (followed
across a page reload), and screenshots each tab.

Screenshots go to the test's temporary folder; VOICEFAKE_SCREENSHOTS=docs writes them where the
README shows them (docs/app-*.png).
"""

import os
import shutil
from pathlib import Path

import cv2
import pytest

from tests.helpers import SENTENCES, draw_face, speak, write

pytestmark = pytest.mark.slow  # servers, enrollment and training: minutes in all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SLOW = 300  # s: first synthesis and lip-sync on 2 busy cores


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("no headless Chromium here: install Debian's chromium and chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser):
    from voicefake.app import ui as app

    server = app.serve(port=None, prevent_thread_lock=True, quiet=True)
    browser.get(server.local_url)
    yield browser
    server.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("VOICEFAKE_SCREENSHOTS")
    if not folder:
        return tmp_path_factory.mktemp("screenshots")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


def find(driver, css, timeout=30, condition=None):
    """The first element matching `css` (and `condition(element)`), waiting up to `timeout` s."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        return next((e for e in d.find_elements(By.CSS_SELECTOR, css) if condition is None or condition(e)), False)

    # the page re-renders as updates arrive: an element found a moment ago may be replaced
    wait = WebDriverWait(driver, timeout, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(ready, f"no {css} within {timeout} s")


def click(driver, css, timeout=30, condition=None):
    """Click the element `find` returns, finding it again if it was re-rendered meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(5):
        try:
            return find(driver, css, timeout, condition).click()
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept being re-rendered")


def snap(driver, path):
    """Screenshot of the whole page (the window grows to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(height + 40, 4000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def open_tab(driver, label):
    click(driver, "button[role=tab]", condition=lambda e: e.text.strip() == label)


def test_speak_lipsync_and_detect_in_the_browser(page, shots, tmp_path, voice):
    assert "watermark" in find(page, "#notice").text

    open_tab(page, "Speak")
    text = find(page, "#speak-text textarea")
    text.clear()
    text.send_keys("Hello from a real browser.")
    click(page, "#speak-button")
    find(page, "#speech a[download]", SLOW, lambda e: (e.get_attribute("href") or "").endswith(".wav"))  # offered
    find(page, "#speech audio")  # and playable
    snap(page, shots / "app-speak.png")

    face = tmp_path / "face.png"
    cv2.imwrite(str(face), draw_face())
    open_tab(page, "Lip-sync")
    find(page, "#lipsync-face input[type=file]").send_keys(str(face))
    click(page, "#lipsync-use-speech")
    find(page, "#lipsync-audio a[download]", 30, lambda e: (e.get_attribute("href") or "").endswith("speech.wav"))
    click(page, "#lipsync-button")
    find(page, "#lipsync-video video", SLOW, lambda e: (e.get_attribute("src") or "").endswith(".mp4"))
    assert "frames lip-synced" in find(page, "#lipsync-summary").text
    snap(page, shots / "app-lipsync.png")

    speech = write(tmp_path / "speech.wav", speak(voice, "Is this real speech?", marked=True))
    open_tab(page, "Detect")
    find(page, "#detect-file input[type=file]").send_keys(str(speech))
    click(page, "#detect-button")
    verdict = find(page, "#detect-verdict", SLOW, lambda e: "voicefake" in e.text)
    assert "A voicefake output" in verdict.text and "voice joe" in verdict.text
    snap(page, shots / "app-detect.png")

    assert all((shots / f"app-{tab}.png").stat().st_size > 10_000 for tab in ("speak", "lipsync", "detect"))


def test_enroll_and_clone_followed_across_a_page_reload(page, shots, tmp_path, voice):
    open_tab(page, "Voice")
    find(page, "#voice-name textarea").send_keys("bea")
    click(page, "button", condition=lambda e: e.text.strip() == "Show the consent phrase")
    phrase = find(page, "#consent-phrase", 60, lambda e: "I agree" in e.text).text
    consent = write(tmp_path / "consent.wav", speak(voice, phrase[phrase.index("I agree"):].strip()))
    clips = [write(tmp_path / f"s{i}.wav", speak(voice, text)) for i, text in enumerate(SENTENCES[:8])]
    click(page, "#consent-audio button[aria-label='Upload file']")
    find(page, "#consent-audio input[type=file]").send_keys(str(consent))
    find(page, "#recordings input[type=file]").send_keys("\n".join(map(str, clips)))
    click(page, "#enroll-button")
    find(page, "#enroll-report textarea", SLOW, lambda e: "enrolled voice 'bea'" in e.get_attribute("value"))

    steps = find(page, "#max-steps input")
    steps.clear()
    steps.send_keys("2")  # a tiny step budget: the plumbing, not the quality
    click(page, "#clone-button")
    find(page, "#clone-status", 60, lambda e: "bea: starting" in e.text or "bea: running" in e.text)
    page.refresh()  # the job lives on disk and in its own process: the new page finds it
    open_tab(page, "Voice")
    status = find(page, "#clone-status", SLOW, lambda e: "bea: done" in e.text)
    assert "step 2" in status.text and "losses: mel" in status.text
    snap(page, shots / "app-voice.png")
