"""What every dashboard test module sets up: its server, and Debian's Chromium driven through chromium-driver.

Each module starts a server of its own (``serving``: its tests stop deployments or fill its reservoir)
and names it ``dash``; ``conftest.py`` opens a headless browser with a clean profile on it per test.
The browser reaches only the test's server on loopback: no proxy, no component updates, no
sign-in to anything. Screenshots go to ``build/dashboard-screenshots`` (``COVE_SCREENSHOTS`` elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import Server, start_server
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(
    os.environ.get("COVE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "dashboard-screenshots")
)
DESKTOP = (1280, 800)
PHONE = (390, 844)
T = TypeVar("T")


def missing() -> str | None:
    """Why no browser can start here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing: apt-get install chromium chromium-driver (.ci/run installs them)"
    return None


class Browser:
    """A headless Chromium on one test server, with the waits and checks the dashboard tests share."""

    def __init__(self, base_url: str, profile: Path) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",  # the tests run as root, where Chromium's own sandbox refuses to start
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        self.base_url = base_url

    def open(self, hash_path: str = "") -> None:
        self.driver.get(f"{self.base_url}/{hash_path}")

    def go(self, hash_path: str) -> None:
        """Another page of the dashboard without reloading it (as its links do)."""
        self.driver.execute_script("location.hash = arguments[0]", hash_path)

    def wait(self, condition: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
        def check(_: Any) -> T | None:
            return condition()

        # A page redraws by replacing elements: one read as it is replaced is read again at the next poll.
        waiting = WebDriverWait(
            self.driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
        )
        found = waiting.until(check, f"{what} within {timeout} s")
        assert found is not None  # until() returns only a true value
        return found

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return "\n".join(e.text for e in found)

    def wait_text(self, css: str, expected: str, timeout: float = 30) -> str:
        def shown() -> str | None:
            text = self.text(css)
            return text if expected in text else None

        return self.wait(shown, timeout, f"{expected!r} in {css}")

    def sign_in(self, token: str) -> None:
        self.open()
        self.wait(lambda: self.find("#signin-token").is_displayed(), what="the sign-in form")
        self.find("#signin-token").send_keys(token)
        self.find("#signin-submit").click()

    def signed_in(self, token: str) -> None:
        """Sign in and wait for the dashboard (a wrong token never gets there: use ``sign_in`` for that)."""
        self.sign_in(token)
        self.wait(lambda: self.find("#shell").is_displayed(), what="the dashboard")
        self.wait(lambda: self.text("[data-testid=workspace-name]") or None, what="the session's workspace")

    def accept_confirm(self) -> None:
        """Accept the confirmation a page asks before a change (stop, quarantine, retry...)."""

        def accepted() -> bool:
            try:
                self.driver.switch_to.alert.accept()
                return True
            except NoAlertPresentException:
                return False

        self.wait(accepted, 10, "the confirmation dialog")

    def console_errors(self) -> list[str]:
        """Errors the pages logged since the last call (a failed request counts too)."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [e["message"] for e in entries if e["level"] == "SEVERE"]

    def fetch_json(self, path: str) -> Any:
        """What the page's own fetch gets from the API, with the session cookie: what a page would show."""
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {credentials: 'same-origin'})"
            ".then(async r => done({status: r.status, body: await r.json()}))"
            ".catch(e => done({status: 0, body: String(e)}));",
            path,
        )

    def screenshot(self, name: str, size: tuple[int, int] = DESKTOP) -> Path:
        self.driver.set_window_size(*size)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{size[0]}x{size[1]}.png"
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        self.driver.quit()


@contextlib.contextmanager
def serving(home: Path, *targets: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server of one test module's own at ``home``, with ``targets`` (``FILE:FUNCTION``) deployed."""
    srv = start_server(home, extra_env=extra_env)
    try:
        for target in targets:
            srv.deploy(target)
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def opened(base_url: str, profile: Path) -> Iterator[Browser]:
    """A browser on ``base_url`` for one test; without Chromium the test fails, saying what to install."""
    reason = missing()
    if reason:
        pytest.fail(reason)
    b = Browser(base_url, profile)
    try:
        yield b
    finally:
        b.close()
