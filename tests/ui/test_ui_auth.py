"""Signing in to the web UI of a collector started with API keys: the shell loads without a key,
the UI asks for one (its own form, no browser prompt), refuses a wrong one, works with a right
one, remembers it only when asked, and forgets it on sign-out."""

from __future__ import annotations

import pytest
import requests

KEY = "ui-key-0123456789abcdef0123"


@pytest.fixture(scope="module")
def locked(start_collector):
    return start_collector(env={"TRACEHOUSE_API_KEYS": KEY}, name="ui-auth")


def test_sign_in_wrong_key_right_key_and_sign_out(locked, ui):
    ui.allow_console_error(r"status of 401")
    ui.open(locked.http_url, "sql?q=SELECT%206%20*%207%20AS%20answer")
    form = ui.page.locator("#sign-in")
    form.wait_for()
    assert "needs an API key" in form.inner_text()
    assert ui.page.locator("#sign-out").is_hidden()

    ui.page.fill("#api-key", "not-the-key-at-all-0000")
    ui.page.click("#sign-in button[type=submit]")
    assert "not accepted" in ui.page.locator("#sign-in-error").inner_text()

    ui.page.fill("#api-key", KEY)
    ui.page.click("#sign-in button[type=submit]")
    ui.page.wait_for_selector("#sql-result tbody tr")
    assert ui.page.locator("#sql-result tbody td").inner_text() == "42"
    # This tab only: not in localStorage unless "remember" was ticked.
    assert ui.page.evaluate("localStorage.getItem('tracehouse.apiKey')") is None
    assert ui.page.evaluate("sessionStorage.getItem('tracehouse.apiKey')") == KEY
    assert ui.page.locator("#sign-out").is_visible()

    ui.page.click("#sign-out")
    ui.page.locator("#sign-in").wait_for()
    assert ui.page.evaluate("sessionStorage.getItem('tracehouse.apiKey')") is None


def test_remembered_key_survives_a_new_tab(locked, ui):
    ui.allow_console_error(r"status of 401")
    ui.open(locked.http_url, "runs")
    ui.page.fill("#api-key", KEY)
    ui.page.check("#remember-key")
    ui.page.click("#sign-in button[type=submit]")
    ui.page.wait_for_selector(".empty")  # no runs yet: the API answered
    other = ui.page.context.new_page()
    other.goto(f"{locked.http_url}/#/runs")
    other.wait_for_selector(".empty")
    assert other.locator("#sign-in").count() == 0
    other.close()


def test_api_still_refuses_without_a_key(locked):
    assert requests.get(locked.http_url + "/api/v1/runs", timeout=10).status_code == 401
    assert requests.get(locked.http_url + "/", timeout=10).status_code == 200
