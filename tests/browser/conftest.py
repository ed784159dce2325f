"""Fixtures of the browser suite: a real `ametist serve`, a real headless Chromium driven by
Selenium, and a check after every test that the page logged no console error.

The browser is Debian's `chromium` with its `chromedriver` (tests/browser/run.sh installs
them); both paths are given to Selenium, so it never looks for or downloads a browser.
Screenshots of each view go to $BROWSER_SCREENSHOTS, by default tests/browser/screenshots/
(git-ignored).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from ametist_server import AmetistServer  # noqa: E402

HERE = Path(__file__).resolve().parent
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", HERE / "screenshots"))
# How long the page may take to show something: it refreshes its views every 1.5 to 5 s.
WAIT = 15


def _find(name: str, debian: str) -> str:
    path = shutil.which(name) or (debian if Path(debian).exists() else None)
    if path is None:
        raise RuntimeError(f"no {name}: tests/browser/run.sh installs Debian's chromium and chromium-driver")
    return path


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS.is_dir():
        terminalreporter.write_line(f"screenshots of the views: {SCREENSHOTS}")


@pytest.fixture(scope="session")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "/usr/bin/chromium")
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"):
        options.add_argument(arg)
    # The page's console (errors, uncaught exceptions, failed requests) is read after each test.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_find("chromedriver", "/usr/bin/chromedriver")))
    driver.implicitly_wait(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def server():
    s = AmetistServer("server.enable_fault_injection=true", partitions=2)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def console(request):
    """After each test that used the browser: no console error. A test that provokes an
    error on purpose (a refused filter answers 400) appends what it expects to the list
    this fixture gives."""
    allowed: list[str] = []
    yield allowed
    if "browser" not in request.fixturenames:
        return
    driver = request.getfixturevalue("browser")
    errors = [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
    ]
    assert not errors, f"console errors: {errors}"


class Page:
    """The dashboard of one server, in the shared browser."""

    def __init__(self, driver, url: str):
        self.driver = driver
        self.url = url

    def open(self, view: str = "collections") -> None:
        """Goes to a view. Within the page only the fragment changes, so the page is not
        reloaded: what a user clicking the navigation gets."""
        target = f"{self.url}/dashboard#/{view}"
        if self.driver.current_url.startswith(f"{self.url}/dashboard"):
            self.driver.find_element(By.CSS_SELECTOR, f'#nav a[data-view="{view}"]').click()
        else:
            self.driver.get(target)
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, f'#view > div[data-view="{view}"]'))

    def wait(self, condition, timeout: float = WAIT, message: str = ""):
        def guarded(d):
            try:
                return condition(d)
            except (StaleElementReferenceException, WebDriverException):
                # The views redraw themselves every few seconds; an element read during a
                # redraw is gone, and is read again at the next poll.
                return False

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(guarded, message)

    def el(self, css: str):
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), message=f"no {css}")

    def els(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.el(css).text

    def wait_text(self, css: str, predicate, message: str = "") -> str:
        """Waits until the text of `css` satisfies `predicate`, and returns it."""
        found = {}

        def check(d):
            t = d.find_element(By.CSS_SELECTOR, css).text
            found["last"] = t
            return t if predicate(t) else False

        try:
            return self.wait(check)
        except Exception as e:
            raise AssertionError(f"{message or css}: last text {found.get('last')!r}") from e

    def type(self, css: str, text: str) -> None:
        e = self.el(css)
        e.clear()
        e.send_keys(text)

    def set_value(self, css: str, value: str) -> None:
        """Sets a field at once (long JSON would be slow to type key by key)."""
        self.driver.execute_script(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'));",
            css,
            value,
        )

    def select(self, css: str, value: str) -> None:
        self.set_value(css, value)

    def click(self, css: str) -> None:
        self.el(css).click()

    def screenshot(self, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        # Let a redraw that started with the last action finish before the picture.
        time.sleep(0.3)
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def page(browser, server) -> Page:
    return Page(browser, server.url)
