"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright, for browser tests.

The chromium_page fixture is registered for every test by conftest (pytest_plugins);
test modules import screenshot.
Screenshots go to tests/_artifacts/ so a person can look at them.
"""
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def chromium():
    """One Chromium for the whole run (a launch is a second or two); each test gets contexts
    of its own, so no cookie, storage or page outlives the test."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def chromium_page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    for made in list(chromium.contexts):     # this one and any the test opened itself
        made.close()


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, base, username):
    """Sign in through the real login form as username (password from conftest)."""
    from conftest import PASSWORD
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/console/")
