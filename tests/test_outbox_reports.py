"""Every device report rides the outbox: the blink's verdict (with its evidence), each try of
phone digits and the ticket request are committed on the device before they are announced
or sent, sent after their session, in order, and taken by the registry exactly once, with
the server killed at any point of a visit and the device restarted.

The server is the real app on 127.0.0.1 behind KillSwitch, a TCP proxy that "kills" it at
one request: dropped before the app sees it, or after the app answered and before the answer
reaches the device; from then on every connection is cut until the server is back (a
supervisor restarting it after a second, or after the visit). A device restart is the store
and syncer closed and opened again on the same file.
"""
import socketserver
import sqlite3
import threading
import time

import pytest

import helpers
from helpers import (EventWaiter, blink_evidence, enrol_her, greeted_payload, her_snapshot, key_of,
                     new_device, of_kind)
from device import client as client_module
from device.agent import Agent
from device.camera import open_source
from device.casefile import CaseFileFlow, once_uploaded
from device.client import ApiClient, Offline, Rejected
from device.events import EventLog
from device.store import MIGRATIONS, Store
from device.sync import Syncer
from kiosk.casefile_screen import CaseFileDesk
from kiosk.presenter import KioskCaseFilePresenter
from relay import forward, read_request
from test_kiosk_offline import free_port, prime_store, serving

WRONG = "0000"          # her phone on file ends 4321 (helpers.PHONE)


# --- the server, killed at one request ---------------------------------------------------------

class KillSwitch:
    """A TCP proxy in front of the server at upstream_url (one request per connection, as
    the device's urllib sends them). kill(suffix, when): the first POST whose path ends with
    suffix is dropped "before" the server sees it, or "after" it answered; the server is then
    down (every connection cut) until revive(), or back_in seconds later."""

    def __init__(self, upstream_url):
        self.upstream = ("127.0.0.1", int(upstream_url.rsplit(":", 1)[1]))
        self.down = False
        self.killed = None          # the request line the server was killed at
        self._kill = None
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._relay(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def kill(self, suffix, when, back_in=None):
        self._kill = (suffix, when, back_in)

    def revive(self):
        with self._lock:
            self.down = False

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _relay(self, conn):
        conn.settimeout(10)
        request = read_request(conn)
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        with self._lock:
            if self.down or not request:
                return                          # a dead server: the connection is cut
            when = self._strikes(line)
        if when == "before":
            return
        answer = forward(self.upstream, request, 30)
        if when != "after":
            conn.sendall(answer)

    def _strikes(self, line):
        """"before" or "after" when this request is the kill point (the server goes down)."""
        if self._kill is None:
            return None
        suffix, when, back_in = self._kill
        method, path = line.split(" ")[:2]
        if method != "POST" or not path.endswith(suffix):
            return None
        self._kill, self.down, self.killed = None, True, line
        if back_in is not None:
            threading.Timer(back_in, self.revive).start()
        return when




# The 10 points of a visit the server is killed at: each of its requests, before the server
# sees it and after it answered (the answer lost).
KILL_POINTS = [(suffix, when) for suffix in ("/sessions", "/liveness", "/casefile", "/casefile/details",
                                             "/ticket") for when in ("before", "after")]
KILL_IDS = [f"{when}-{suffix.strip('/').replace('/', '-')}" for suffix, when in KILL_POINTS]


@pytest.fixture
def her(app, db):
    app.config["SECOND_FACTOR_WAIT_S"] = 0
    return enrol_her(db, name="Ms Lin", language="en")


@pytest.fixture
def registry(app, db, her):
    """(the kill switch in front of the live app, the kiosk's token)."""
    token = new_device(db, "kiosk-hall-a")
    port = free_port()
    with serving(app, port) as url:
        switch = KillSwitch(url)
        yield switch, token
        switch.close()


def audits(db, action, session_id=None):
    rows = db.execute("SELECT target_id, detail FROM audit_log WHERE action = ?", [action]).fetchall()
    return [r for r in rows
            if session_id is None or session_id == r["target_id"] or session_id in r["detail"]]


def assert_taken_exactly_once(db, session_id, tries):
    """The registry holds the visit once, its blink once, each digit try counted once (tries:
    how many the citizen typed) and one ticket, the first of the day."""
    row = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
    assert helpers.session_count(db) == 1
    assert (row["liveness"], row["ticket_number"]) == ("passed", "001")
    assert len(audits(db, "session.upload", session_id)) == 1
    assert len(audits(db, "session.liveness", session_id)) == 1
    assert len(audits(db, "ticket.issue", session_id)) == 1
    assert db.execute("SELECT last_number FROM tickets").fetchone()[0] == 1
    assert row["factor_failures"] == tries
    assert len(audits(db, "casefile.second_factor_failed", session_id)) == tries
    assert db.execute("SELECT count(*) FROM factor_failures").fetchone()[0] == tries


def assert_nothing_waits(store):
    assert store.outbox_count() == 0 and store.reports_waiting() == 0
    assert store.dead_letters() == [] and store.refused_reports() == []


# --- the store: a recorded schema change that keeps every row --------------------------------

def test_a_store_from_before_reports_is_upgraded_on_open_and_keeps_its_rows(tmp_path):
    path = tmp_path / "kiosk.db"
    old = sqlite3.connect(path)            # the store as the previous version left it
    for sql in MIGRATIONS[0]:
        old.execute(sql)
    old.execute("INSERT INTO outbox (id, body, snapshot, created_at) VALUES ('s1', '{\"id\": \"s1\"}',"
                " x'ffd8ff', '2026-03-01T09:00:00.000000Z')")
    old.execute("INSERT INTO dead_letter (id, body, reason, failed_at) VALUES ('s0', '{}', 'bad', 'x')")
    old.execute("INSERT INTO meta (key, value) VALUES ('registry_id', '\"r_1\"')")
    old.commit()
    old.close()
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.pending() == [({"id": "s1"}, b"\xff\xd8\xff")]
    assert [d["id"] for d in store.dead_letters()] == ["s0"] and store.registry_id == "r_1"
    assert store.add_report("s1:ticket", "s1", "ticket", {}) is True
    assert store.add_report("s1:ticket", "s1", "ticket", {}) is False     # never queued twice
    store.close()
    store = Store(path)                     # opened again: nothing applied twice, nothing lost
    assert store.schema_version == len(MIGRATIONS) and store.reports_waiting() == 1
    assert store.outbox_count() == 1
    store.close()


def test_a_store_of_a_newer_version_is_not_opened(tmp_path):
    path = tmp_path / "kiosk.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer device version"):
        Store(path)


def test_a_report_keeps_no_body_once_answered_and_follows_its_session_when_refused(tmp_path):
    store = Store(tmp_path / "kiosk.db")
    store.add_session({"id": "s1"})
    store.add_report("t1", "s1", "second_factor", {"phone_last4": "4321", "try_id": "t1"})
    store.add_report("s1:ticket", "s1", "ticket", {})
    assert [r["id"] for r in store.pending_reports("s1")] == ["t1", "s1:ticket"]
    assert store.pending_reports() == []            # its session is not delivered yet
    store.report_delivered("t1", {"status": 403, "message": "wrong digits; 2 tries left"})
    store.dead_letter("s1", "409: this session was recorded for another registry")
    assert store.report("s1:ticket")["state"] == "refused"
    assert "its session was refused" in store.refused_reports()[0]["reason"]
    bodies = store._read("SELECT body FROM reports")
    assert {r["body"] for r in bodies} == {"{}"}   # the digits left the device with the try
    store.close()


# --- the server's side: a digit try sent again is counted once -------------------------------

def test_a_wrong_try_sent_again_under_its_id_is_answered_as_it_was_and_counted_once(
        app, client, db, her):
    token = new_device(db, "kiosk-hall-a")
    session = greeted_payload(db, her)
    response = helpers.post_visit(client, token, session, snapshot_of=("blinking", 1))
    assert response.status_code == 201
    sid, headers = session["id"], helpers.bearer(token)
    liveness = {"result": "passed", "t": 3.2, "evidence": blink_evidence()}
    assert client.post(f"/api/v1/sessions/{sid}/liveness", json=liveness, headers=headers).status_code == 201
    opened = client.post(f"/api/v1/sessions/{sid}/casefile", json={"citizen_key": key_of(db, her)},
                         headers=headers)
    assert opened.status_code == 200

    def try_digits(digits, try_id):
        return client.post(f"/api/v1/sessions/{sid}/casefile/details", headers=headers,
                           json={"phone_last4": digits, "try_id": try_id})
    first, again = try_digits(WRONG, "try-1"), try_digits(WRONG, "try-1")
    assert (first.status_code, again.status_code) == (403, 403)
    assert first.get_json()["error"]["tries_left"] == again.get_json()["error"]["tries_left"] == 2
    assert try_digits("1111", "try-2").get_json()["error"]["tries_left"] == 1     # a new try counts
    failures = db.execute("SELECT factor_failures FROM sessions WHERE id = ?", [sid]).fetchone()[0]
    assert failures == 2 and len(audits(db, "casefile.second_factor_failed")) == 2
    assert try_digits("2222", "try-3").status_code == 423
    assert try_digits("2222", "try-3").status_code == 423                           # locked, once
    assert len(audits(db, "casefile.second_factor_failed")) == 3
    assert try_digits(WRONG, "%").status_code == 400             # no pattern reaches the lookup


def test_the_same_verdict_sent_twice_at_once_is_taken_once(registry, db, her, tmp_path):
    """A device that stopped waiting for the answer while the server examined the evidence
    sends it again: both copies are examined at once, one sets the verdict."""
    switch, token = registry
    session = greeted_payload(db, her)
    client = ApiClient(switch.url, token, timeout=30)
    client.post_session(session, her_snapshot())
    body = {"result": "passed", "t": 1.2, "evidence": blink_evidence()}
    answers = []
    copies = [threading.Thread(target=lambda: answers.append(
        client.post_report("liveness", session["id"], body)["liveness"])) for _ in range(2)]
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join(60)
    assert answers == ["passed", "passed"]
    assert len(audits(db, "session.liveness", session["id"])) == 1


# --- a visit's reports, the server killed at each point --------------------------------------

class Device:
    """The device's parts a visit's reports go through: a real store, client and sync worker."""

    def __init__(self, url, token, path, events):
        self.store = Store(path)
        self.client = ApiClient(url, token, timeout=2)
        self.syncer = Syncer(self.store, self.client, events, retry_s=0.2)

    def restart(self, url, token, events):
        """kill -9 and start again: nothing in memory survives, the store's file does."""
        self.stop()
        self.__init__(url, token, self.store.path, events)

    def stop(self):
        self.syncer.stop()
        self.store.close()


def visit(device, db, her, wait_s):
    """Her visit as the case-file flow makes it (device/casefile.py): the session, the blink's
    verdict with her real evidence, the case file, one wrong try of digits at the keypad and
    the ticket request. Returns how many digit tries she typed (none if the file never opened)."""
    syncer, session = device.syncer, greeted_payload(db, her)
    sid = session["id"]
    device.store.add_session(session, her_snapshot())
    syncer.nudge()
    verdict = syncer.add_report(sid, "liveness", {"result": "passed", "t": 1.2, "evidence": blink_evidence()},
                                f"{sid}:liveness", awaited=True)
    tries, opened = 0, False
    try:
        syncer.await_report(verdict, wait_s)
        opened = bool(once_uploaded(lambda: device.client.open_case_file(sid, key_of(db, her)), wait_s,
                                    poll_s=0.1))
    except (Offline, Rejected):
        pass
    if opened:
        tries += 1
        with pytest.raises((Rejected, Offline)):     # wrong, or not answered now: kept
            device.client.case_details(sid, WRONG)
    ticket = syncer.add_report(sid, "ticket", {}, f"{sid}:ticket", awaited=True)
    try:
        syncer.await_report(ticket, wait_s)
    except Offline:
        pass
    return sid, tries


@pytest.mark.parametrize("suffix, when", KILL_POINTS, ids=KILL_IDS)
def test_server_killed_and_back_within_the_visit_takes_every_report_once(
        registry, db, her, tmp_path, suffix, when):
    switch, token = registry
    switch.kill(suffix, when, back_in=1.0)
    log = EventLog()
    device = Device(switch.url, token, tmp_path / "kiosk.db", log)
    device.syncer.start()
    try:
        sid, tries = visit(device, db, her, wait_s=8.0)
        deadline = time.monotonic() + 20
        while device.syncer.waiting() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert switch.killed is not None          # the server was killed at that request
        assert tries == 1                         # back in time: her file opened
        assert_taken_exactly_once(db, sid, tries)
        assert_nothing_waits(device.store)
    finally:
        device.stop()


@pytest.mark.parametrize("suffix, when", KILL_POINTS, ids=KILL_IDS)
def test_server_killed_for_the_rest_of_the_visit_then_a_restarted_device_delivers_each_report_once(
        registry, db, her, tmp_path, suffix, when):
    switch, token = registry
    switch.kill(suffix, when)
    events = []
    log = EventLog()
    log.add_listener(events.append)
    device = Device(switch.url, token, tmp_path / "kiosk.db", log)
    device.syncer.start()
    try:
        sid, tries = visit(device, db, her, wait_s=1.5)
        assert switch.killed is not None
        device.restart(switch.url, token, log)    # the kiosk dies too, with its reports queued
        assert device.store.outbox_count() + device.store.reports_waiting() > 0
        switch.revive()
        assert device.syncer.flush_outbox() == 0
        assert_taken_exactly_once(db, sid, tries)
        assert_nothing_waits(device.store)
        delivered = [e["kind"] for e in of_kind(events, "report_delivered")]
        assert delivered.count("liveness") == 1 and delivered.count("ticket") == 1
    finally:
        device.stop()


def test_reports_wait_behind_their_session_and_go_in_the_order_recorded(registry, db, her, tmp_path):
    switch, token = registry
    sent = []
    log = EventLog()
    device = Device(switch.url, token, tmp_path / "kiosk.db", log)
    original = device.client.post_report
    device.client.post_report = lambda kind, sid, body: sent.append(kind) or original(kind, sid, body)
    try:
        session = greeted_payload(db, her)
        sid = session["id"]
        device.store.add_session(session, her_snapshot())
        verdict = {"result": "passed", "t": 1.2, "evidence": blink_evidence()}
        device.syncer.add_report(sid, "liveness", verdict, f"{sid}:liveness")
        device.syncer.add_report(sid, "ticket", {}, f"{sid}:ticket")
        assert device.store.pending_reports() == []        # nothing goes before its session
        assert device.syncer.flush_outbox() == 0
        assert sent == ["liveness", "ticket"]
        # the same reports again are the ones already answered: not sent twice
        device.syncer.add_report(sid, "liveness", {"result": "passed"}, f"{sid}:liveness")
        again = device.syncer.add_report(sid, "ticket", {}, f"{sid}:ticket", awaited=True)
        assert device.syncer.await_report(again, 1.0)["ticket_number"] == "001"
        assert device.syncer.flush_outbox() == 0 and sent == ["liveness", "ticket"]
    finally:
        device.stop()


def test_a_try_of_digits_the_registry_answers_wait_is_not_sent_again(registry, app, db, her, tmp_path):
    """"wait 2 seconds" is the registry's answer to that try (it was not counted): sent again
    later, it would be counted behind the citizen's next try."""
    app.config["SECOND_FACTOR_WAIT_S"] = 30
    switch, token = registry
    device = Device(switch.url, token, tmp_path / "kiosk.db", EventLog())
    device.syncer.start()
    try:
        sid, tries = visit(device, db, her, wait_s=8.0)
        with pytest.raises(Rejected) as wait:
            device.client.case_details(sid, "4321")
        assert wait.value.status == 429 and "wait" in wait.value.message
        assert device.syncer.flush_outbox() == 0
        row = db.execute("SELECT factor_failures, factor_passed_at FROM sessions").fetchone()
        assert (row["factor_failures"], row["factor_passed_at"]) == (1, None)
    finally:
        device.stop()


# --- the real kiosk: video, the agent, the case-file flow, its screen's keypad ----------------

@pytest.mark.video
@pytest.mark.parametrize("back", ["in a second", "after a device restart"])
@pytest.mark.parametrize("suffix, when", KILL_POINTS, ids=KILL_IDS)
def test_kiosk_visit_with_the_server_killed_delivers_every_report_exactly_once(
        registry, db, her, tmp_path, monkeypatch, suffix, when, back):
    switch, token = registry
    store_path = tmp_path / "kiosk.db"
    prime_store(switch.url, token, store_path)
    monkeypatch.setattr(client_module, "DETAILS_WAIT_S", 3.0)
    wait_s = 8.0 if back == "in a second" else 2.0
    switch.kill(suffix, when, back_in=1.0 if back == "in a second" else None)
    typed = []

    class Keypad(KioskCaseFilePresenter):
        """Her case file on screen: she types a wrong four digits, as at the kiosk's keypad."""
        def on_case_file(self, visit, summary):
            super().on_case_file(visit, summary)
            typed.append(self.desk.submit_digits(WRONG)["factor"]["status"])

    log = EventLog()
    waiter = EventWaiter(log)
    store = Store(store_path)
    client = ApiClient(switch.url, token, timeout=1.0)
    syncer = Syncer(store, client, log, retry_s=0.3)
    flow = CaseFileFlow(Keypad(None, None, CaseFileDesk(client)), client, log, tickets=True,
                        upload_wait_s=wait_s)
    agent = Agent(open_source(helpers.blinking_clip(tmp_path / "clip.mp4")), store, syncer, log, flow)
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        ticket_step = _first_of(waiter, ("ticket_issued", "ticket_unavailable"), timeout=120)
        if back == "in a second":
            deadline = time.monotonic() + 20
            while syncer.waiting() and time.monotonic() < deadline:
                time.sleep(0.1)
        agent.stop()
        runner.join(60)
    finally:
        store.close()
    events = waiter.events
    [greeted] = of_kind(events, "greeted")
    assert of_kind(events, "liveness_passed") and switch.killed is not None
    if back == "after a device restart":
        switch.revive()
        store = Store(store_path)
        try:
            assert Syncer(store, ApiClient(switch.url, token), log).flush_outbox() == 0
            assert_nothing_waits(store)
        finally:
            store.close()
    else:
        assert ticket_step["event"] == "ticket_issued" and typed
    assert_taken_exactly_once(db, greeted["session_id"], len(typed))


def _first_of(waiter, kinds, timeout):
    """The first event of any of kinds, once one has arrived (EventWaiter.wait takes one kind)."""
    def found():
        return [e for e in waiter.events if e["event"] in kinds]
    with waiter._changed:
        if not waiter._changed.wait_for(found, timeout):
            raise AssertionError(f"none of {kinds} within {timeout} s")
        return found()[0]


@pytest.mark.video
def test_offline_the_citizen_is_told_there_is_no_number_yet_and_sees_it_when_it_comes(
        registry, db, her, tmp_path):
    """The registry is gone as her ticket is asked for: no number is made up on the kiosk (it
    could be another visitor's at this site); the request waits in the outbox, and the number
    the registry gives when it is back is shown to her, still at the screen."""
    switch, token = registry
    switch.kill("/ticket", "before", back_in=6.0)
    desks = []

    def front_end(log, client):
        desks.append(CaseFileDesk(client))
        return CaseFileFlow(KioskCaseFilePresenter(None, None, desks[-1]), client, log, tickets=True,
                            upload_wait_s=4.0)
    log = EventLog()
    waiter = EventWaiter(log)
    store = Store(tmp_path / "kiosk.db")
    client = ApiClient(switch.url, token, timeout=1.0)
    agent = Agent(open_source(helpers.blinking_clip(tmp_path / "clip.mp4")), store,
                  Syncer(store, client, log, retry_s=0.3), log, front_end(log, client))
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        [unavailable] = waiter.wait("ticket_unavailable", timeout=120)
        assert unavailable["queued"] is True and desks[0].state()["ticket"] is None
        [issued] = waiter.wait("ticket_issued", timeout=30)
        assert (issued["late"], issued["shown"], issued["ticket_number"]) == (True, True, "001")
        assert desks[0].state()["ticket"]["number"] == "001"
        assert desks[0].state()["mode"] == "casefile"         # beside her case file
    finally:
        agent.stop()
        runner.join(60)
        store.close()
    assert_taken_exactly_once(db, issued["session_id"], 0)
