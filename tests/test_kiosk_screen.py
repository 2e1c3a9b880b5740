"""The kiosk screen in real Chromium: idle, a greeting in large type, "please see a clerk"."""
import json
import re
import urllib.request

import pytest

from browser import screenshot
from kiosk.screen import ScreenServer, ScreenState


@pytest.fixture
def screen():
    state = ScreenState(hold_s=60)
    server = ScreenServer(state, port=0).start()
    yield state, server
    server.stop()


def wait_for_mode(page, mode):
    page.wait_for_selector(f'#screen[data-mode="{mode}"]')


def test_screen_shows_idle_greeting_and_unknown(chromium_page, screen):
    state, server = screen
    page = chromium_page
    page.goto(server.url)
    wait_for_mode(page, "idle")
    assert "欢迎光临" in page.inner_text("#screen")
    screenshot(page, "kiosk_idle")

    state.show("greeting", "Hello, Barack Obama!", "Barack Obama", "en")
    wait_for_mode(page, "greeting")
    assert page.inner_text("#greeting-text") == "Hello, Barack Obama!"
    size = page.eval_on_selector("#greeting-text", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 48  # readable from a step away
    screenshot(page, "kiosk_greeting_en")

    state.show("greeting", "王小明，您好！", "王小明", "zh")
    page.wait_for_selector('#greeting-text:text-is("王小明，您好！")')  # the page's CSP forbids eval
    screenshot(page, "kiosk_greeting_zh")

    state.show("unknown")
    wait_for_mode(page, "unknown")
    assert "请到柜台咨询工作人员" in page.inner_text("#screen")
    assert "Please see a clerk" in page.inner_text("#screen")
    assert "Barack" not in page.inner_text("#screen")
    screenshot(page, "kiosk_unknown")


def test_name_is_shown_as_text_never_as_markup(chromium_page, screen):
    state, server = screen
    chromium_page.goto(server.url)
    state.show("greeting", 'Hello, <img src=x onerror="document.title=1">!', "x", "en")
    wait_for_mode(chromium_page, "greeting")
    assert chromium_page.query_selector("#greeting-text img") is None
    assert "<img" in chromium_page.inner_text("#greeting-text")


def test_greeting_returns_to_idle_after_hold_time():
    now = [100.0]
    state = ScreenState(hold_s=5, clock=lambda: now[0])
    state.show("greeting", "Hello, Joe Biden!", "Joe Biden", "en")
    assert state.snapshot()["mode"] == "greeting"
    now[0] += 6
    assert state.snapshot()["mode"] == "idle" and state.snapshot()["text"] == ""


def test_screen_page_loads_nothing_from_outside(screen):
    _, server = screen
    html = urllib.request.urlopen(server.url, timeout=5).read().decode()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    state = json.loads(urllib.request.urlopen(server.url + "state", timeout=5).read())
    assert state["mode"] == "idle"
    assert server.url.startswith("http://127.0.0.1:")
