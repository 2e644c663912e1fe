"""The browser fixture of the dashboard tests: a fresh Chromium per test on its module's server, ``dash``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Server

from .browser import Browser, opened


@pytest.fixture
def browser(dash: Server, tmp_path: Path) -> Iterator[Browser]:
    """A clean profile each test, so no session or storage leaks from one test to the next."""
    with opened(dash.url, tmp_path / "profile") as b:
        yield b
