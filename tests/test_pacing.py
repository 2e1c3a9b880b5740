"""Device pulls paced: gallery and config pulls are limited per device (429 with Retry-After,
which the device waits out), and an hour of polling writes at most 60 audit entries.

Before: 500 full gallery pulls of one token in 1.6 s wrote 500 audit rows and raised no alert.
"""
import json
import threading
import time
import types
from datetime import datetime, timedelta, timezone

import pytest

import db as db_package
from device.client import ApiClient, Offline, retry_after
from device.events import EventLog
from device.store import Store
from device.sync import Syncer
from helpers import bearer, enrol, session_payload
from server import limits


class Clock:
    """A server clock a test moves by hand: the limits and the audit log both read it."""

    def __init__(self, monkeypatch):
        self.now = datetime.now(timezone.utc)
        clock = self

        class Frozen(datetime):
            @classmethod
            def now(cls, tz=None):
                return clock.now

        monkeypatch.setattr(limits, "datetime", Frozen)
        monkeypatch.setattr("db.queries.now_iso", lambda: clock.now.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def pull(client, token, path="/api/v1/gallery?since=0"):
    return client.get(path, headers=bearer(token))


def audit_rows(db, action):
    return db.execute("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]).fetchall()


# --- the server's pace ------------------------------------------------------------------------

def test_pulls_beyond_the_limit_get_429_with_retry_after_and_one_alert(app, client, db, token, auth):
    app.config["PULL_DEVICE_LIMIT"] = 5
    enrol(db, "barack_obama")
    answers = [pull(client, token, path).status_code
               for path in ["/api/v1/gallery?since=0", "/api/v1/config"] * 4]
    assert answers == [200] * 5 + [429] * 3          # gallery and config share one budget
    refused = pull(client, token)
    body = refused.get_json()
    assert body == {"error": {"status": 429, "message": limits.PULLS_THROTTLED}}
    assert 590 <= int(refused.headers["Retry-After"]) <= 600     # the first slot frees in 10 minutes
    assert "no-store" in refused.headers["Cache-Control"]
    alerts = audit_rows(db, "device.pulls_throttled")
    assert len(alerts) == 1 and alerts[0]["target_id"] == "kiosk-1"
    auth.login("admin")
    page = client.get("/admin/").get_data(as_text=True)
    assert 'class="alert-row"' in page and "kiosk-1" in page


def test_a_device_that_keeps_polling_after_429_is_not_counted_and_gets_in_after_the_wait(
        app, client, db, token, clock):
    app.config["PULL_DEVICE_LIMIT"] = 3
    assert [pull(client, token).status_code for _ in range(3)] == [200] * 3
    clock.advance(60)
    refusals = [pull(client, token) for _ in range(50)]      # it ignores Retry-After
    assert {r.status_code for r in refusals} == {429}
    wait = int(refusals[-1].headers["Retry-After"])
    assert wait == 540
    clock.advance(wait - 1)
    assert pull(client, token).status_code == 429
    clock.advance(1)
    # refused pulls took no slot: the three of ten minutes ago free, and three pass again
    assert [pull(client, token).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert len(audit_rows(db, "device.pulls_throttled")) == 1      # once in 10 minutes


def test_each_device_has_its_own_budget(app, client, db, token):
    from helpers import new_device
    app.config["PULL_DEVICE_LIMIT"] = 2
    other = new_device(db, "kiosk-2")
    assert [pull(client, token).status_code for _ in range(3)] == [200, 200, 429]
    assert [pull(client, other).status_code for _ in range(2)] == [200, 200]


@pytest.mark.parametrize("every_s", [2, 5])    # ignoring every 429; at the most it may pull
def test_an_hour_of_polling_writes_at_most_60_audit_entries_with_every_pull_counted(
        app, client, db, token, clock, every_s):
    """A device (or a stolen token) pulling the full gallery every few seconds for an hour:
    at most 60 gallery.sync entries, and their counts add up to the pulls served."""
    enrol(db, "barack_obama")
    enrol(db, "joe_biden")
    served = refused = 0
    for _ in range(3600 // every_s):
        answer = pull(client, token)
        served += answer.status_code == 200
        refused += answer.status_code == 429
        clock.advance(every_s)
    rows = audit_rows(db, "gallery.sync")
    counts = [json.loads(r["detail"]) for r in rows]
    print(f"an hour of polling every {every_s} s: {served} served, {refused} refused (429),"
          f" {len(rows)} gallery.sync entries, {len(audit_rows(db, 'device.pulls_throttled'))} alerts")
    assert served == 6 * app.config["PULL_DEVICE_LIMIT"] and refused == 3600 // every_s - served
    assert len(rows) <= 60
    assert sum(c["pulls"] for c in counts) == served
    assert sum(c["citizens"] for c in counts) == 2 * served
    assert sum(c["full"] for c in counts) == served


def test_pulls_of_one_minute_are_one_entry(client, db, token, clock):
    enrol(db, "barack_obama")
    first = pull(client, token).get_json()
    for _ in range(3):
        clock.advance(10)
        pull(client, token)
    pull(client, token, f"/api/v1/gallery?since={first['seq']}")    # empty: not on record
    clock.advance(31)
    pull(client, token)
    details = [json.loads(r["detail"]) for r in audit_rows(db, "gallery.sync")]
    assert details == [{"pulls": 4, "citizens": 4, "full": 4, "since": 0},
                       {"pulls": 1, "citizens": 1, "full": 1, "since": 0}]


def test_pulls_sent_together_never_exceed_the_limit(app, db, token, live_server):
    import urllib.error
    import urllib.request
    app.config["PULL_DEVICE_LIMIT"] = 30
    enrol(db, "barack_obama")
    barrier, answers = threading.Barrier(64), []

    def send():
        request = urllib.request.Request(live_server.url + "/api/v1/gallery?since=0", headers=bearer(token))
        barrier.wait(timeout=30)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append(response.status)
        except urllib.error.HTTPError as error:
            answers.append(error.code)
    workers = [threading.Thread(target=send) for _ in range(64)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=90)
    assert sorted(answers) == [200] * 30 + [429] * 34
    rows = audit_rows(db, "gallery.sync")
    assert len(rows) == 1 and json.loads(rows[0]["detail"])["pulls"] == 30


# --- the device waits ------------------------------------------------------------------------

@pytest.mark.parametrize("header, seconds", [("120", 120), ("0", 1), (None, 60), ("soon", 60),
                                             ("Wed, 21 Oct 2015 07:28:00 GMT", 60),
                                             ("99999999999", 3600)])
def test_the_device_reads_retry_after(header, seconds):
    assert retry_after(header) == seconds


class Counted:
    """The live server's WSGI app, counting the requests to each path."""

    def __init__(self, app):
        self.app, self.paths = app.wsgi_app, []
        app.wsgi_app = self

    def __call__(self, environ, start_response):
        self.paths.append(environ["PATH_INFO"])
        return self.app(environ, start_response)


def syncer_for(live_server, token, tmp_path):
    events = []
    log = EventLog()
    log.add_listener(events.append)
    store = Store(str(tmp_path / "device.db"))
    return Syncer(store, ApiClient(live_server.url, token), log), store, events


def test_the_device_waits_out_a_429_and_stays_online(app, db, token, live_server, tmp_path, monkeypatch):
    app.config["PULL_DEVICE_LIMIT"] = 2
    enrol(db, "barack_obama")
    counted = Counted(app)
    syncer, store, events = syncer_for(live_server, token, tmp_path)
    try:
        config = syncer.fetch_config()
        assert syncer.sync_gallery() is True and len(store.citizens()) == 1
        assert syncer.sync_gallery() is False                       # the 429
        paced = [e for e in events if e["event"] == "paced"]
        assert len(paced) == 1 and paced[0]["what"] == "pulls" and 500 < paced[0]["retry_after"] <= 600
        assert syncer.online is True and not [e for e in events if e["event"] == "offline"]
        before = len(counted.paths)
        for _ in range(20):                                         # the worker's next rounds
            syncer.sync_gallery()
            assert syncer.fetch_config() == config                  # the cached one
        assert len(counted.paths) == before                         # none reached the server
        # ten minutes later (the device's clock and the server's slots) it pulls again
        later = time.monotonic() + paced[0]["retry_after"]
        monkeypatch.setattr("device.sync.time", types.SimpleNamespace(monotonic=lambda: later))
        with db_package.transaction(db):
            db.execute("UPDATE schedule_runs SET next_at = '' WHERE name LIKE 'pulls:%'")
        syncer.sync_gallery()
        assert len(counted.paths) == before + 1
    finally:
        store.close()


def test_the_outbox_waits_out_a_429_and_keeps_its_sessions(app, db, token, live_server, tmp_path):
    app.config["SESSION_DEVICE_LIMIT"] = 1
    counted = Counted(app)
    syncer, store, events = syncer_for(live_server, token, tmp_path)
    try:
        for _ in range(3):
            store.add_session(session_payload())
        assert syncer.flush_outbox() == 2                           # one stored, then a 429
        uploads = counted.paths.count("/api/v1/sessions")
        assert uploads == 2
        for _ in range(10):
            assert syncer.flush_outbox() == 2                       # kept, not sent
        assert counted.paths.count("/api/v1/sessions") == uploads
        paced = [e for e in events if e["event"] == "paced"]
        assert paced and paced[0]["what"] == "uploads" and paced[0]["retry_after"] >= 590
    finally:
        store.close()
