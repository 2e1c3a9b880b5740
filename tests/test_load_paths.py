"""The hot paths of a hall full of kiosks: a bounded number of statements whatever the number
of citizens (gallery sync, queue, session page, dashboard), and device polls that write
nothing but, once a minute, when the device was last seen."""
import contextlib
import json
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import helpers
from db import transaction
from db.connection import Database
from db.queries import new_citizen_key, next_sync_seq
from helpers import add_device, bearer, greeted_payload, post_visit


@contextlib.contextmanager
def statements(monkeypatch):
    """Every statement the app runs meanwhile (through either engine's execute/executemany)."""
    seen = []
    engines = [Database]
    with contextlib.suppress(ImportError):
        from db.postgres import PostgresDatabase
        engines.append(PostgresDatabase)
    with monkeypatch.context() as patch:
        for engine in engines:
            for name in ("execute", "executemany"):
                real = getattr(engine, name)
                patch.setattr(engine, name, _counting(real, seen))
        yield seen


def _counting(real, seen):
    def counted(self, sql, params=()):
        seen.append(sql)
        return real(self, sql, params)
    return counted


def add_citizens(db, count, model):
    """count enrolled citizens with a template each and a greeted visit each, every one its
    own sync seq (a gallery page then holds GALLERY_PAGE of them)."""
    rng = np.random.default_rng(count)
    stamp = helpers.iso(datetime.now(timezone.utc))
    with transaction(db):
        first = next_sync_seq(db)
        db.execute("UPDATE sync_counter SET seq = ? WHERE id = 1", [first + count])
        db.executemany(
            "INSERT INTO citizens (id_number, key, name, language, sync_seq, created_at,"
            " updated_at) VALUES (?, ?, ?, 'zh', ?, ?, ?)",
            [(f"LP{first + i:010d}", new_citizen_key(), f"Citizen {first + i}", first + i, stamp, stamp)
             for i in range(count)])
        ids = [r[0] for r in db.execute("SELECT id FROM citizens WHERE sync_seq >= ? ORDER BY id",
                                        [first]).fetchall()]
        vectors = rng.normal(size=(count, model.dims)).astype(np.float32)
        db.executemany(
            "INSERT INTO face_templates (citizen_id, encoding, face_model, created_at)"
            " VALUES (?, ?, ?, ?)",
            [(cid, model.to_blob(v / np.linalg.norm(v)), model.id, stamp) for cid, v in zip(ids, vectors)])
    return ids


def add_visit(db, device_id, citizen_ids, keys):
    """A greeted visit whose candidates name three citizens (the session page looks them up)."""
    session_id = str(uuid.uuid4())
    stamp = helpers.iso(datetime.now(timezone.utc))
    candidates = json.dumps([{"key": k, "distance": 0.3 + 0.1 * i} for i, k in enumerate(keys[:3])])
    with transaction(db):
        db.execute("INSERT INTO sessions (id, device_id, citizen_id, outcome, distance, margin,"
                   " liveness, started_at, received_at, candidates, face_model)"
                   " VALUES (?, ?, ?, 'greeted', 0.3, 0.1, 'passed', ?, ?, ?, ?)",
                   [session_id, device_id, citizen_ids[0], stamp, stamp, candidates, helpers.MODEL.id])
        db.executemany("INSERT INTO sessions (id, device_id, citizen_id, outcome, started_at,"
                       " received_at) VALUES (?, ?, ?, 'greeted', ?, ?)",
                       [(str(uuid.uuid4()), device_id, cid, stamp, stamp) for cid in citizen_ids])
    return session_id


def hot_paths(client, token, session_id):
    """{path: statements} of one round of the hot paths (a device's and a clerk's)."""
    today = datetime.now().date().isoformat()
    device = {"full gallery sync": "/api/v1/gallery?since=0", "config": "/api/v1/config"}
    clerk = {"queue page": "/console/", "queue poll": "/console/sessions.json?since=2000-01-01T00:00:00Z",
             "session page": f"/console/sessions/{session_id}",
             "dashboard": f"/console/dashboard?day={today}"}
    counts = {}
    for name, path in {**device, **clerk}.items():
        with statements(pytest.MonkeyPatch()) as seen:
            response = client.get(path, headers=bearer(token) if name in device else {})
        assert response.status_code == 200, (name, response.status_code)
        counts[name] = len(seen)
    return counts


def test_hot_paths_take_as_many_statements_for_1000_citizens_as_for_10(app, client, auth, db, token):
    auth.login("clerk")
    device_id = db.execute("SELECT id FROM devices").fetchone()[0]
    ids = add_citizens(db, 10, helpers.MODEL)
    keys = [r[0] for r in db.execute("SELECT key FROM citizens ORDER BY id").fetchall()]
    session_id = add_visit(db, device_id, ids, keys)
    hot_paths(client, token, session_id)      # first round: the minute's stamps and audit rows
    at_10 = hot_paths(client, token, session_id)
    delta = client.get("/api/v1/gallery?since=0", headers=bearer(token)).get_json()
    assert len(delta["upserts"]) == 10
    more = add_citizens(db, 990, helpers.MODEL)
    add_visit(db, device_id, more, keys)
    at_1000 = hot_paths(client, token, session_id)
    delta = client.get("/api/v1/gallery?since=0", headers=bearer(token)).get_json()
    assert len(delta["upserts"]) == 500 and delta["more"]     # a whole page of templates
    assert at_1000 == at_10
    assert at_10["full gallery sync"] <= 20


# --- last seen --------------------------------------------------------------------------------

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(seen):
    return [sql for sql in seen if sql.lstrip().upper().startswith(WRITES)]


def last_seen(db, device_id):
    return db.execute("SELECT last_seen_at FROM devices WHERE id = ?", [device_id]).fetchone()[0]


@pytest.fixture
def visit(app, client, db):
    """(device id, token, a session it posted)."""
    device_id, token = add_device(db, site="")
    citizen_id = helpers.enrol(db, "rose_leslie")
    body = greeted_payload(db, citizen_id)
    assert post_visit(client, token, body).status_code == 201
    return device_id, token, body["id"]


def test_a_read_only_poll_writes_nothing_while_the_device_was_seen_this_minute(
        client, db, visit, monkeypatch):
    device_id, token, session_id = visit
    first = last_seen(db, device_id)
    with statements(monkeypatch) as seen:
        assert client.get(f"/api/v1/sessions/{session_id}", headers=bearer(token)).status_code == 200
    assert writes(seen) == [] and last_seen(db, device_id) == first


def test_a_device_not_seen_for_a_minute_is_stamped_again(client, db, visit):
    device_id, token, session_id = visit
    old = helpers.iso(datetime.now(timezone.utc) - timedelta(seconds=61))
    with transaction(db):
        db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", [old, device_id])
    assert client.get(f"/api/v1/sessions/{session_id}", headers=bearer(token)).status_code == 200
    assert last_seen(db, device_id) > old


def test_a_stamp_that_cannot_be_written_does_not_fail_the_request(client, db, visit, monkeypatch):
    """A full disk refuses the write; the device's poll is still answered."""
    device_id, token, session_id = visit
    with transaction(db):
        db.execute("UPDATE devices SET last_seen_at = NULL WHERE id = ?", [device_id])

    def disk_full(engine, real):
        def execute(self, sql, params=()):
            if sql.startswith("UPDATE devices SET last_seen_at"):
                raise self.OperationalError("database or disk is full")
            return real(self, sql, params)
        return execute

    for engine in _engines():
        monkeypatch.setattr(engine, "execute", disk_full(engine, engine.execute))
    response = client.get(f"/api/v1/sessions/{session_id}", headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["id"] == session_id
    assert last_seen(db, device_id) is None


def _engines():
    engines = [Database]
    with contextlib.suppress(ImportError):
        from db.postgres import PostgresDatabase
        engines.append(PostgresDatabase)
    return engines
