"""The web UI tier: every test drives a page in headless Chromium (support/browser.py)."""

from browser import browser, ui  # noqa: F401  (fixtures)
