"""The real app in headless Chromium: every page renders without an exception.

The test starts ``streamlit run app.py`` on a free local port with the bundled
SmolLM2, which ``make test`` prepares first. It walks through the pages with the
sidebar navigation, so one browser session keeps its state from page to page.
On the way it runs the default batch and a short gate training, adds a chart
to the presentation, and saves a screenshot of every step. Set
``RSHIFT_SCREENSHOTS`` to also copy the screenshots to ``/tmp/rshift-screenshots``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT_COPY = Path("/tmp/rshift-screenshots")
SERVER_START_S = 90
PAGE_RUN_S = 150
QUIET_S = 1.5
MAX_SHOT_HEIGHT = 5000


try:
    from selenium.common.exceptions import StaleElementReferenceException
except ImportError:  # the fixture skips the test with a reason

    class StaleElementReferenceException(Exception):
        """Stands in for selenium's exception when selenium is missing."""


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.exists():
            return f"{tool} is missing; install chromium and chromium-driver to run this test"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_http(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer {url} within {SERVER_START_S} s")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """Serve the app on 127.0.0.1 and return its base URL; stop the server afterwards."""
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {key: value for key, value in os.environ.items() if key != "RSHIFT_MODEL"}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # Without this, an edited file shows a permanent "File change" status that reads as
        # a busy app.
        "--server.fileWatcherType",
        "none",
    ]
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_http(f"{url}/_stcore/health", server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(app_url, tmp_path_factory):
    """A headless Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1600,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """Helpers that wait for Streamlit, look for errors and take screenshots."""

    def __init__(self, driver, folder: Path):
        from selenium.webdriver.common.by import By

        self.driver = driver
        self.folder = folder
        self.by = By
        self.shots: list[Path] = []
        self.started = time.monotonic()
        self.laps: list[str] = []

    def all(self, css: str) -> list:
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def running(self) -> bool:
        return bool(
            self.all('[data-testid="stStatusWidget"]') or self.all('[data-testid="stSpinner"]')
        )

    def wait_idle(self, step: str, timeout: float = PAGE_RUN_S) -> None:
        """Wait until the app has rendered and stayed idle for ``QUIET_S`` seconds."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            ready = self.all('[data-testid="stMain"]') and self.all('[data-testid="stSidebarNav"]')
            if ready and not self.running():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= QUIET_S:
                    return
            else:
                quiet_since = None
            time.sleep(0.25)
        self.shoot(f"timeout-{step}")
        pytest.fail(f"{step}: the app was still running after {timeout:.0f} s")

    def wait_for(self, css: str, count: int, step: str, timeout: float = PAGE_RUN_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.all(css)) >= count:
                return
            time.sleep(0.25)
        self.shoot(f"missing-{step}")
        pytest.fail(f"{step}: expected {count} of {css}, found {len(self.all(css))}")

    def check(self, step: str) -> None:
        """Fail on a Streamlit exception box or a traceback anywhere on the page."""
        exceptions = self.all('[data-testid="stException"]')
        body = self.driver.find_element(self.by.TAG_NAME, "body").text
        if exceptions or "Traceback" in body:
            self.shoot(f"error-{step}")
            detail = exceptions[0].text if exceptions else body[body.index("Traceback") :]
            pytest.fail(f"{step} shows an exception:\n{detail[:2000]}")

    def shoot(self, name: str) -> Path:
        """Screenshot the whole main area: grow the window to its height first."""
        height = self.driver.execute_script(
            "const main = document.querySelector('[data-testid=\"stMain\"]');"
            "return main ? main.scrollHeight : document.body.scrollHeight;"
        )
        self.driver.set_window_size(1600, max(1400, min(int(height) + 120, MAX_SHOT_HEIGHT)))
        time.sleep(0.5)
        path = self.folder / f"{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1600, 1400)
        self.shots.append(path)
        self.laps.append(f"{name} at {time.monotonic() - self.started:.0f} s")
        return path

    def open(self, title: str, heading: str | None = None) -> None:
        """Click the sidebar link of page ``title``, keeping the browser session.

        Then wait for ``heading`` (default: the title) as the page's first heading.
        """
        links = self.all('[data-testid="stSidebarNav"] a')
        link = next((a for a in links if a.text.strip().endswith(title)), None)
        assert link is not None, f"no sidebar link for {title}: {[a.text for a in links]}"
        link.click()
        self.wait_for_heading(heading or title)

    def wait_for_heading(self, heading: str) -> None:
        deadline = time.monotonic() + PAGE_RUN_S
        while time.monotonic() < deadline:
            try:
                texts = [h.text.strip() for h in self.all('[data-testid="stMain"] h1')]
            except StaleElementReferenceException:
                texts = []
            if any(text.startswith(heading) for text in texts):
                return
            time.sleep(0.25)
        self.shoot(f"no-heading-{heading.lower().replace(' ', '-')}")
        pytest.fail(f"the heading {heading!r} did not appear")

    def button(self, label: str):
        """Return the first button whose text is ``label``."""
        xpath = f"//button[normalize-space(.)='{label}' or .//p[normalize-space(.)='{label}']]"
        matches = self.driver.find_elements(self.by.XPATH, xpath)
        assert matches, f"no button labelled {label!r}"
        return matches[0]

    def choose(self, option: str) -> None:
        """Click the radio option labelled ``option``."""
        xpath = f"//label[.//p[normalize-space(.)='{option}']]"
        self.driver.find_element(self.by.XPATH, xpath).click()

    def wait_for_text(self, text: str, step: str, timeout: float = PAGE_RUN_S) -> None:
        """Wait until ``text`` appears in the main area."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                main = self.all('[data-testid="stMain"]')
                if main and text in main[0].text:
                    return
            except StaleElementReferenceException:
                pass
            time.sleep(0.25)
        self.shoot(f"missing-text-{step}")
        pytest.fail(f"{step}: {text!r} did not appear")

    def set_number(self, label: str, value: int) -> None:
        from selenium.webdriver.common.keys import Keys

        field = self.driver.find_element(self.by.CSS_SELECTOR, f'input[aria-label="{label}"]')
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(str(value), Keys.ENTER)


BATCH_PROMPTS = [
    b'{"prompt": "The capital of France is Paris."}',
    b'{"prompt": "One, two, three, four, five."}',
    b'{"text": "She opened the door and looked outside."}',
]
CHARTS = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'


def test_browser_every_page_renders(app_url, browser, tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    page = Page(browser, folder)
    try:
        browser.get(app_url + "/")
        page.wait_for_heading("Explore")
        page.wait_idle("explore")
        page.wait_for(CHARTS, 2, "explore charts")
        page.check("explore")
        page.shoot("explore")

        page.open("Attenuate")
        page.wait_idle("attenuate")
        page.wait_for(CHARTS, 1, "attenuate charts")
        page.check("attenuate")
        page.shoot("attenuate")

        page.open("Batch")
        page.wait_idle("batch")
        page.check("batch")
        page.shoot("batch")
        # Three uploaded prompts keep the run short and go through the upload path.
        upload = tmp_path / "three.jsonl"
        upload.write_bytes(b"\n".join(BATCH_PROMPTS))
        page.choose("Upload a file")
        page.wait_idle("batch upload mode")
        page.all('input[type="file"]')[0].send_keys(str(upload))
        page.wait_for_text("3 prompts from 'three.jsonl'", "batch upload")
        page.wait_idle("batch upload")
        page.button("Analyse 3 prompts").click()
        page.wait_for(CHARTS, 2, "batch charts")
        page.wait_idle("batch results")
        page.check("batch results")
        page.button("Add to presentation").click()
        page.wait_idle("batch figure")
        page.shoot("batch-results")

        page.open("Gates")
        page.wait_idle("gates")
        page.check("gates")
        page.shoot("gates")
        page.set_number("Steps", 3)
        page.wait_idle("gates steps")
        page.button("Train gates").click()
        page.wait_for('[data-testid="stMetric"]', 4, "gate metrics")
        page.wait_idle("gates training")
        page.check("gates training")
        page.shoot("gates-results")

        page.open("Present", heading="Output alignment over the corpus")
        page.wait_idle("present")
        page.wait_for(CHARTS, 1, "present chart")
        page.check("present")
        page.shoot("present")

        # A link to a page opens it in a new session, and each path must work on its own.
        for title in ("Attenuate", "Batch", "Gates", "Present"):
            browser.get(f"{app_url}/{title.lower()}")
            page.wait_for_heading(title)
            page.wait_idle(f"{title.lower()} by URL")
            page.check(f"{title.lower()} by URL")
    finally:
        if os.environ.get("RSHIFT_SCREENSHOTS"):
            SCREENSHOT_COPY.mkdir(parents=True, exist_ok=True)
            for shot in page.shots:
                shutil.copy(shot, SCREENSHOT_COPY / shot.name)
    assert len(page.shots) == 7
    print(f"browser walk: {', '.join(page.laps)}; screenshots in {folder}")
