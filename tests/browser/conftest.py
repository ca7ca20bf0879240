"""A real browser for the web page: headless Chromium from Debian's `chromium` package, driven by
Playwright (pip's wheel ships its node driver; no browser is downloaded).

`make browser-tools` (tools/install-browser.sh) installs Chromium. A missing Chromium or playwright
package skips these tests on a developer's machine and fails them under CI=true.
"""

from __future__ import annotations

import pytest

# The `browser` fixture (one headless Chromium for the whole session, shared with the dashboard
# picture in tests/observability) lives in tests/conftest.py.
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402,F401

TIMEOUT_MS = 10_000


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
