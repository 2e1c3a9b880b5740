"""The citizen's path at the kiosk: a blink countdown with live feedback and a second chance,
liveness kept with the session offline, queue tickets on screen and on paper, every screen size."""
import socket

import pytest

from helpers import blinking_clip, enrol_her, new_device, of_kind, run_flow
from device.client import ApiClient
from device.events import EventLog
from device.store import Store
from device.sync import Syncer
from kiosk.casefile_screen import CaseFileDesk
from kiosk.presenter import KioskCaseFilePresenter
from recognition.liveness import BlinkPolicy

# Greeted at 0.57 s of the clip, her first blink ends at ~1.3 s: a 0.5 s window misses it,
# the second chance catches it (a citizen whose natural blink comes late).
LATE_BLINK = BlinkPolicy(window_s=0.5)


class RecordingDesk(CaseFileDesk):
    """The kiosk's case-file desk, keeping every state it showed."""

    def __init__(self, client):
        super().__init__(client)
        self.shown = []

    def _set(self, **fields):
        super()._set(**fields)
        self.shown.append(self.state())


def kiosk_presenter(desks):
    def make(log, client):
        desks.append(RecordingDesk(client))
        return KioskCaseFilePresenter(None, None, desks[-1])
    return make


@pytest.mark.video
def test_a_late_blink_gets_a_second_chance_with_countdown_and_feedback(live_server, db, tmp_path):
    citizen_id = enrol_her(db, name="Ms Lin", language="en")
    token = new_device(db, "kiosk-hall-a")
    desks = []
    events = run_flow(live_server.url, token, blinking_clip(tmp_path / "clip.mp4"), tmp_path / "k.db",
                      kiosk_presenter(desks), policy=LATE_BLINK)
    assert [e["event"] for e in events if e["event"].startswith(("liveness", "case_file"))] == [
        "liveness_retry", "liveness_passed", "case_file_opened"]
    shown = desks[0].shown
    blink = [s for s in shown if s["mode"] == "blink"]
    assert {s["attempt"] for s in blink} == {1, 2}
    assert any(s["countdown"] == 1 and s["feedback"] == "Eyes found: blink now" for s in blink)
    assert "try again" in [s for s in blink if s["attempt"] == 2][0]["prompt"]
    modes = [s["mode"] for s in shown]
    assert modes.index("passed") < modes.index("casefile")    # "blink seen" before the file
    row = db.execute("SELECT liveness, case_opened_at FROM sessions WHERE citizen_id = ?",
                     [citizen_id]).fetchone()
    assert row["liveness"] == "passed" and row["case_opened_at"]


@pytest.mark.video
def test_offline_the_blink_moves_the_screen_on_and_the_session_uploads_as_passed(
        live_server, db, tmp_path):
    enrol_her(db, name="林小姐", language="zh")
    token = new_device(db, "kiosk-hall-a")
    store_path = tmp_path / "k.db"
    store = Store(store_path)    # the gallery from an earlier day online
    Syncer(store, ApiClient(live_server.url, token), EventLog()).sync_gallery()
    store.close()
    with socket.socket() as s:   # a port nothing listens on: the registry is down
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    desks = []
    events = run_flow(down, token, blinking_clip(tmp_path / "clip.mp4"), store_path,
                      kiosk_presenter(desks))
    assert of_kind(events, "liveness_passed") and of_kind(events, "case_file_unavailable")
    modes = [s["mode"] for s in desks[0].shown]
    assert modes[-2:] == ["passed", "notice"]          # not "blink" any more, then the desk
    notice = desks[0].shown[-1]
    assert "服务台" in notice["prompt"] and "service desk" in notice["english"]

    store = Store(store_path)
    [(session, _)] = store.pending()
    assert session["liveness"] == "passed"
    Syncer(store, ApiClient(live_server.url, token), EventLog()).flush_outbox()
    store.close()
    row = db.execute("SELECT liveness FROM sessions WHERE id = ?", [session["id"]]).fetchone()
    assert row["liveness"] == "passed"
