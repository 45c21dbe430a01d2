"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for the web UI tests.

Playwright's own browser download does not work here, so the tests launch the system
Chromium through ``executable_path``. They skip, saying why, only when no Chromium is
installed; ``.ci/run`` installs it and sets ``MATTESERVE_REQUIRE_CHROMIUM=1``, which turns
a missing Chromium into a failure, so CI never skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from service.process import REPO

# Flags that work on this machine's closed network (without the background-networking
# ones Chromium's own connections are refused and slow everything down).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_OUT = REPO / "out" / "ui"


def find_chromium() -> str | None:
    """The Chromium binary: ``MATTESERVE_CHROMIUM``, Debian's, or one on PATH."""
    candidates = [
        os.environ.get("MATTESERVE_CHROMIUM"),
        "/usr/lib/chromium/chromium",  # Debian's binary (the /usr/bin one is a shell wrapper)
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("MATTESERVE_REQUIRE_CHROMIUM") == "1":  # set by .ci/run
            pytest.fail("Chromium is required (MATTESERVE_REQUIRE_CHROMIUM=1) but not installed.")
        pytest.skip(
            "Chromium is not installed: run `apt-get install -y chromium` (Debian) or set "
            "MATTESERVE_CHROMIUM to a Chromium binary; .ci/run installs it so CI never skips."
        )
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, per test module: it runs an asyncio loop on the main thread
    while open, which would break ``asyncio.run`` in tests that run after it."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium for the UI tests. Playwright gives a launched (non-persistent)
    browser a fresh temporary profile (``--user-data-dir``) of its own."""
    browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def ui_out() -> Path:
    """Where the UI tests leave screenshots and downloads (``out/`` is git-ignored)."""
    UI_OUT.mkdir(parents=True, exist_ok=True)
    return UI_OUT
