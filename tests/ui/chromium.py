"""Debian's Chromium driven by Playwright, shared by every browser test here.

Playwright's own browser download cannot be used on these machines, so the tests
launch /usr/bin/chromium (``make test`` installs it). A missing browser fails the
tests that need it; it never turns them into skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps dialling hosts this machine's closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_MISSING = (
    f"{CHROMIUM} is missing: these browser tests need Debian's Chromium "
    "(apt-get install chromium); Playwright's own browser download is not used here"
)


def require_chromium() -> None:
    if not CHROMIUM.exists():  # fail, never skip: a missing browser must not look like a pass
        pytest.fail(CHROMIUM_MISSING, pytrace=False)


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
