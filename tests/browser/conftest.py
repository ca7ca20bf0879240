"""A real browser for the web page: headless Chromium from Debian's `chromium` package, driven by
Playwright (pip's wheel ships its node driver; no browser is downloaded).

`make browser-tools` (tools/install-browser.sh) installs Chromium. A missing Chromium or playwright
package skips these tests on a developer's machine and fails them under CI=true.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Root in a closed network: no sandbox, no GPU, and nothing that phones home. Playwright adds
# --headless and gives every launch a fresh temporary --user-data-dir of its own.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 10_000


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _missing(f"Chromium is not installed at {CHROMIUM}: run `make browser-tools`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _missing(f"the playwright package cannot be imported ({error}): run `make install`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS,
                                              timeout=30_000)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    """A fresh desktop-sized tab; a script error on the page fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"
