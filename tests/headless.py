"""A headless Chromium driven by Selenium, for the HTML report's tests (Debian's ``chromium`` and
``chromium-driver``; `.ci/run` installs them). ``chrome()`` is None when either is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> tuple[str, str] | None:
    """(browser, driver) executables, from $CHROME_BIN/$CHROMEDRIVER or the PATH."""
    browser = os.environ.get("CHROME_BIN") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None
    )
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if find_browser() is None:
        return "no chromium + chromedriver found (apt-get install chromium chromium-driver)"
    return None


@contextmanager
def chrome(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium session that records the page's console messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    assert found is not None, missing_reason()
    browser, driver = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def console_errors(session: Any) -> list[str]:
    """Console messages of level SEVERE (uncaught exceptions, console.error, failed loads)."""
    return [e["message"] for e in session.get_log("browser") if e.get("level") == "SEVERE"]
