"""Store and forward: the kiosk greets with the server down, keeps every session, delivers
each exactly once when the server is back, survives kill -9, and obeys revocation and removals."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

import helpers
from helpers import (EventWaiter, enrol, greeted_payload, key_of, new_device, of_kind,
                     remove_citizen, run_agent, session_count, session_payload)
from device.agent import Agent, FrontEnd
from device.camera import open_source
from device.client import ApiClient
from device.events import EventLog
from device.store import Store
from device.sync import Syncer
from server.devices import revoke_device
from videos import visitor_video

pytestmark = pytest.mark.video


@pytest.fixture
def obama(db):
    return enrol(db, "barack_obama")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app, port):
    """The app on 127.0.0.1:port until the block ends (a server that goes down and comes back)."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def prime_store(url, token, path):
    """A device store holding the server's gallery, as after an earlier day online."""
    store = Store(path)
    Syncer(store, ApiClient(url, token), EventLog()).sync_gallery()
    count = len(store.citizens())
    store.close()
    return count


def test_server_down_then_up_sessions_delivered_exactly_once(app, db, token, obama, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(app, port):
        assert prime_store(url, token, tmp_path / "kiosk.db") == 1
    # The server is down for the whole video: the kiosk still greets and keeps the session.
    log = EventLog()
    events = EventWaiter(log)
    store = Store(tmp_path / "kiosk.db")
    syncer = Syncer(store, ApiClient(url, token, timeout=1.0), log, retry_s=0.3)
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=1.5)
    agent = Agent(open_source(video), store, syncer, log, FrontEnd())
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    events.wait("end")
    greeted = of_kind(events.events, "greeted")
    assert [g["citizen_key"] for g in greeted] == [key_of(db, obama)]
    assert of_kind(events.events, "offline") and store.outbox_count() == 1
    assert session_count(db) == 0
    with serving(app, port):   # the server comes back; the kiosk delivers without being asked
        events.wait("session_uploaded")
        agent.stop()           # the agent's last flush would repeat an upload it thought lost
        runner.join(30)
    events = events.events
    assert [e["session_id"] for e in of_kind(events, "session_uploaded")] == [greeted[0]["session_id"]]
    assert session_count(db) == 1 and session_count(db, id=greeted[0]["session_id"]) == 1
    assert store.outbox_count() == 0
    store.close()


def test_answer_lost_after_upload_is_not_duplicated(live_server, db, token, tmp_path):
    """The server stored the session but its answer never reached the kiosk: the retry is a no-op."""
    store = Store(tmp_path / "kiosk.db")
    session = session_payload()
    store.add_session(session)
    client = ApiClient(live_server.url, token)
    client.post_session(session)           # delivered, but the kiosk never heard back
    assert Syncer(store, client, EventLog()).flush_outbox() == 0
    assert session_count(db) == 1
    store.close()


def test_permanently_refused_session_goes_to_dead_letter_and_others_still_flow(
        live_server, db, token, tmp_path):
    store = Store(tmp_path / "kiosk.db")
    bad = greeted_payload(db, enrol(db, "joe_biden"), citizen_key="c_nobody")  # no such citizen
    good = session_payload()
    store.add_session(bad)
    store.add_session(good)
    events, log = [], EventLog()
    log.add_listener(events.append)
    assert Syncer(store, ApiClient(live_server.url, token), log).flush_outbox() == 0
    assert [d["id"] for d in store.dead_letters()] == [bad["id"]]
    assert "citizen_key" in store.dead_letters()[0]["reason"]
    assert session_count(db) == 1 and session_count(db, id=good["id"]) == 1
    assert of_kind(events, "dead_letter")[0]["session_id"] == bad["id"]
    store.close()


def agent_process(url, token, camera, store, events_path, *extra):
    """The kiosk as a process; events_path "-" sends its events to a pipe (process.stdout)."""
    return subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--server", url, "--token", token, "--camera", str(camera),
         "--headless", "--speech", "off", "--events", str(events_path), "--store", str(store),
         "--timeout", "1", *extra],
        stdout=subprocess.PIPE if str(events_path) == "-" else subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)


def next_event(process, kind):
    """Read the process's event pipe up to the first event of kind (blocking, no polling)."""
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == kind:
            return event
    raise AssertionError(f"the kiosk exited without a {kind!r} event")


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def test_kill_9_after_greeting_then_restart_delivers_the_outbox(live_server, db, token, obama, tmp_path):
    store_path = tmp_path / "kiosk.db"
    prime_store(live_server.url, token, store_path)
    dead_url = f"http://127.0.0.1:{free_port()}"
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=2)
    first = agent_process(dead_url, token, video, store_path, "-")
    try:
        greeted = next_event(first, "greeted")
    finally:
        first.send_signal(signal.SIGKILL)   # no chance to flush or close anything
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    empty = visitor_video(tmp_path / "empty.avi", [], seconds=0.5, present=[(9, 9)])
    second = agent_process(live_server.url, token, empty, store_path, tmp_path / "run2.jsonl",
                           "--exit-at-end")
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    uploaded = of_kind(read_events(tmp_path / "run2.jsonl"), "session_uploaded")
    assert [u["session_id"] for u in uploaded] == [greeted["session_id"]]
    assert session_count(db) == 1
    row = db.execute("SELECT * FROM sessions").fetchone()
    assert (row["id"], row["citizen_id"], row["outcome"]) == (greeted["session_id"], obama, "greeted")


def test_revoked_device_stops_syncing_and_keeps_its_sessions(app, live_server, db, token, obama, tmp_path):
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=1.5)
    events, _ = run_agent(live_server.url, token, video, tmp_path / "kiosk.db")
    assert len(of_kind(events, "session_uploaded")) == 1
    revoke_device(db, "kiosk-1")
    response = app.test_client().get("/api/v1/gallery", headers=helpers.bearer(token))
    assert response.status_code == 401
    events, _ = run_agent(live_server.url, token, video, tmp_path / "kiosk.db")
    assert len(of_kind(events, "revoked")) == 1
    assert of_kind(events, "session_uploaded") == []
    # The lost or retired device forgets the faces, so it names nobody; the visit is kept.
    assert of_kind(events, "greeted") == [] and len(of_kind(events, "unknown_visitor")) == 1
    store = Store(tmp_path / "kiosk.db")
    assert store.outbox_count() == 1 and store.citizens() == {}
    store.close()
    assert session_count(db) == 1


def test_removed_citizen_is_forgotten_at_next_sync(live_server, db, token, obama, tmp_path):
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=1.5)
    events, _ = run_agent(live_server.url, token, video, tmp_path / "kiosk.db")
    assert [g["citizen_key"] for g in of_kind(events, "greeted")] == [key_of(db, obama)]
    remove_citizen(db, obama)
    events, _ = run_agent(live_server.url, token, video, tmp_path / "kiosk.db")
    assert of_kind(events, "sync")[0]["removals"] == 1
    assert of_kind(events, "greeted") == []
    assert len(of_kind(events, "unknown_visitor")) == 1
    store = Store(tmp_path / "kiosk.db")
    assert obama not in store.citizens() and len(store.gallery(helpers.MODEL)) == 0
    store.close()


def test_store_keeps_sessions_across_reopen_and_applies_deltas_atomically(tmp_path):
    store = Store(tmp_path / "kiosk.db")
    session = session_payload()
    store.add_session(session, b"\xff\xd8\xffjpeg")
    store.close()
    store = Store(tmp_path / "kiosk.db")
    assert store.pending() == [(session, b"\xff\xd8\xffjpeg")]
    with pytest.raises(ValueError):   # a broken template: nothing of the delta applies
        store.apply_delta({"registry_id": None, "seq": 5, "full": False, "removals": [],
                           "upserts": [{"key": "c_1", "display_name": "A", "language": "en",
                                        "templates": ["AAAA"]}]})
    assert store.sync_seq == 0 and store.citizens() == {}
    store.close()


def test_a_store_used_with_another_registry_greets_no_one_from_it_and_quarantines_its_outbox(
        tmp_path, monkeypatch):
    """A kiosk ran against registry A (Obama enrolled); its store is then pointed at registry B,
    where citizen 1 is someone else. It must not greet Obama from A's templates, and the session
    it recorded for A must never be filed in B."""
    from app import create_app
    from db import open_db
    registries = {}
    for name, person in (("a", "barack_obama"), ("b", "joe_biden")):
        monkeypatch.setenv("CIVIC_INSTANCE_PATH", str(tmp_path / name))
        app = create_app({"TESTING": True})
        db = open_db(app.config["DATABASE"])
        enrol(db, person)                      # both registries: citizen id 1
        registries[name] = (app, db, new_device(db))
    store_path = tmp_path / "kiosk.db"
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=1.5)
    app_a, db_a, token_a = registries["a"]
    with serving(app_a, free_port()) as url_a:
        events, _ = run_agent(url_a, token_a, video, store_path)
        assert [g["name"] for g in of_kind(events, "greeted")] == ["Barack Obama"]
    offline = Store(store_path)                 # one more visit recorded while A is away
    offline.add_session(greeted_payload(db_a, 1))
    offline.close()
    app_b, db_b, token_b = registries["b"]
    with serving(app_b, free_port()) as url_b:
        events, _ = run_agent(url_b, token_b, video, store_path)
    assert of_kind(events, "registry_changed")[0]["quarantined"] == 1
    assert of_kind(events, "greeted") == []    # B's citizen 1 is Biden: Obama is unknown here
    assert session_count(db_b, outcome="greeted") == 0
    store = Store(store_path)
    assert len(store.quarantined()) == 1 and store.outbox_count() == 0
    assert [c["display_name"] for c in store.citizens().values()] == ["Joe Biden"]
    store.close()


def test_a_store_pointed_at_an_unreachable_server_greets_no_one_from_its_old_cache(
        live_server, db, obama, tmp_path):
    """Registry A's kiosk store, started against another server that cannot be reached: it
    cannot learn which registry that is, so A's cached faces greet no one there."""
    url, token = live_server.url, new_device(db)
    store_path = tmp_path / "kiosk.db"
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=1.5)
    events, _ = run_agent(url, token, video, store_path)
    assert [g["name"] for g in of_kind(events, "greeted")] == ["Barack Obama"]
    nowhere = f"http://127.0.0.1:{free_port()}"
    events, _ = run_agent(nowhere, "civic_another_token", video, store_path, timeout=0.5)
    assert of_kind(events, "endpoint_changed") and of_kind(events, "greeted") == []
    store = Store(store_path)
    assert store.citizens() == {} and store.outbox_count() == 1     # the visit waits, unsent
    store.close()
    events, _ = run_agent(url, token, video, store_path)             # back home: synced afresh
    assert [g["name"] for g in of_kind(events, "greeted")] == ["Barack Obama"]
