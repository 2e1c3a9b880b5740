"""The demo's pace (kiosk/demo.py): the real clip through OpenCV waits at each stage a visit
reports, says when it is over, and plays again as a new visit; and scripts/demo.sh, as a
person watches it in Chromium: each stage stays up long enough to read, the end says so, and
"Play again" greets her again."""
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from browser import screenshot
from conftest import VIDEO
from device.camera import open_source
from device.events import EventLog
from kiosk.demo import HOLDS, REPLAY_GAP_S, DemoSource

ROOT = Path(__file__).resolve().parents[1]


class FakeTime:
    def __init__(self):
        self.now, self.slept = 100.0, []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_the_video_waits_at_each_stage_and_plays_again_as_a_new_visit():
    events, fake = EventLog(), FakeTime()
    demo = DemoSource(lambda: open_source(str(VIDEO)), events, clock=fake.clock, sleep=fake.sleep)
    overs = []
    demo.on_over = lambda: (overs.append(True), demo.replay())
    first = demo.read()
    events.emit("greeted", name="林晓梅")
    assert fake.slept == [] and demo.read().t > first.t      # the frame asked for before it
    assert fake.slept == [HOLDS["greeted"]]                   # ... and the next one waits
    events.emit("session_uploaded")                           # not a stage: no wait
    events.emit("case_file_opened")
    demo.read()
    assert fake.slept == [HOLDS["greeted"], HOLDS["case_file_opened"]]
    times = []
    while demo.plays == 1:
        frame = demo.read()
        times.append(frame.t)
    assert overs == [True] and demo.plays == 2
    assert times[-1] >= times[-2] + REPLAY_GAP_S               # a new visit to the greeter
    demo.on_over = None
    threading.Timer(0.2, demo.stop).start()
    while demo.read() is not None:          # stopped at the end of the second play: no third
        pass
    assert demo.plays == 2


def test_stop_at_the_end_ends_the_demo():
    events = EventLog()
    demo = DemoSource(lambda: open_source(str(VIDEO)), events)
    demo.on_over = lambda: threading.Timer(0.1, demo.stop).start()
    while demo.read() is not None:
        pass
    assert demo.plays == 1


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.video
def test_the_paced_demo_as_a_person_watches_it(tmp_path, chromium_page):
    env = {**os.environ, "DEMO_SKIP_SETUP": "1", "DEMO_INSTANCE": str(tmp_path / "demo"),
           "DEMO_PORT": str(_free_port()), "DEMO_SCREEN_PORT": str(_free_port())}
    demo = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        page = chromium_page
        page.set_default_timeout(120_000)
        url = f"http://127.0.0.1:{env['DEMO_SCREEN_PORT']}/"
        for _ in range(300):
            try:
                page.goto(url)
                break
            except Exception:
                time.sleep(0.2)
        page.wait_for_selector('#greeting-text:has-text("林晓梅"), #cf-greeting:has-text("林晓梅")')
        page.wait_for_selector('#screen[data-mode="casefile"]')
        opened = time.monotonic()
        screenshot(page, "demo_casefile")
        page.wait_for_selector('#screen:not([data-mode="casefile"])')
        assert time.monotonic() - opened >= HOLDS["case_file_opened"] - 1   # long enough to read
        page.wait_for_selector('#screen[data-mode="demo_over"]')
        assert "演示结束" in page.inner_text("#screen") and page.is_visible("#replay")
        screenshot(page, "demo_over")
        page.click("#replay")
        # greeted by name again: a new visit (her name is on screen while the video waits)
        page.wait_for_selector('#greeting-text:has-text("林晓梅"), #cf-greeting:has-text("林晓梅")')
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(30)
