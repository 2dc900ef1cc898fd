"""The ``browser`` fixture (Debian's Chromium through Playwright) for every test in this folder."""

from chromium import browser  # noqa: F401  (a fixture, found by pytest here)
