"""Browser fixtures: Playwright driving Debian's headless Chromium (/usr/bin/chromium;
`make system-deps` installs it). The tiers that drive a browser (tests/ui, tests/project)
import `browser` and `ui` into their conftest.

`ui` gives each test a fresh page that fails the test on any console error or uncaught script
error, and keeps a screenshot of the page at the end (in UI_SCREENSHOT_DIR, default
test-artifacts/ui/) so a reviewer can look at what the browser showed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO

# For page.evaluate / locator.evaluate on a chart element: the option ECharts holds (series data
# included), and whether its canvas has at least one painted (non-transparent) pixel.
OPTION = "el => echarts.getInstanceByDom(el).getOption()"
CANVAS_PAINTED = """el => { const c = el.querySelector('canvas'); if (!c || !c.width) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"""

CHROMIUM = os.environ.get("TRACEHOUSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = Path(os.environ.get("UI_SCREENSHOT_DIR") or REPO / "test-artifacts" / "ui")


def _require_browser() -> None:
    # CI installs Chromium (make system-deps), so there a missing browser fails instead of skipping.
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip(f"Chromium not installed at {CHROMIUM} (make system-deps installs it)")


# Per module, not per session: Playwright's sync API keeps an event loop running in the main
# thread while it is open, which would break every later test that calls asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        yield b
        b.close()


class UiPage:
    """A Playwright page plus what its console said. `open(url)` loads a route of the UI."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

    def allow_console_error(self, pattern: str) -> None:
        """Tolerate console errors matching `pattern`, e.g. the browser's own line for a 400 the
        test provoked on purpose."""
        self.allowed.append(re.compile(pattern))

    def open(self, base_url: str, route: str = "") -> None:
        self.page.goto(f"{base_url}/{'#/' + route.lstrip('#/') if route else ''}")

    def wait_ready(self) -> None:
        """Wait until the view shows the current address, fully loaded (app.js marks #view)."""
        self.page.wait_for_function(
            "() => { const v = document.getElementById('view');"
            " return v.dataset.state === 'ready' && v.dataset.hash === location.hash; }"
        )

    def screenshot(self, suffix: str = "") -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{self.name}{'-' + suffix if suffix else ''}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def ui(browser, request) -> Iterator[UiPage]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    u = UiPage(page, name)
    try:
        yield u
        if not page.is_closed():
            u.screenshot()
    finally:
        context.close()
    assert not u.unexpected_errors(), "the browser console reported errors:\n" + "\n".join(
        u.unexpected_errors()
    )
