"""Test helpers for the device API and the kiosk: enrol citizens, register devices.

Citizens are inserted directly (bulk import is its own feature) with templates encoded from
real photos by the real enrolment gate; encodings are cached for the whole test session,
since each one costs dlib work on two shared cores.
"""
import functools
import itertools
import uuid
from datetime import datetime, timezone

from conftest import PEOPLE
from db import now_iso, transaction
from db.queries import next_sync_seq
from recognition import images, quality
from recognition.templates import to_blob
from server.devices import register_device

_id_numbers = itertools.count(1)


@functools.lru_cache(maxsize=None)
def photo_encoding(path):
    """The enrolment template of a photo (cached per test session)."""
    return quality.enrolment_template(images.load_image(str(path))).encoding


def person_encoding(person, index=1):
    return photo_encoding(str(PEOPLE / person / f"{index}.jpg"))


def display_name(person):
    """barack_obama -> Barack Obama"""
    return " ".join(part.capitalize() for part in person.split("_"))


def enrol(db, person, photos=(1,), language="en", name=None, encodings=None):
    """Insert a citizen for `person` (a folder of tests/data/faces/people) with one template
    per photo index; returns the citizen id."""
    encodings = encodings if encodings is not None else [person_encoding(person, i) for i in photos]
    stamp = now_iso()
    with transaction(db):
        seq = next_sync_seq(db)
        cursor = db.execute(
            "INSERT INTO citizens (id_number, name, phone, language, sync_seq, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [f"T{next(_id_numbers):08d}{uuid.uuid4().hex[:6]}", name or display_name(person),
             "13800000000", language, seq, stamp, stamp])
        citizen_id = cursor.lastrowid
        for encoding in encodings:
            db.execute("INSERT INTO face_templates (citizen_id, encoding, created_at)"
                       " VALUES (?, ?, ?)", [citizen_id, to_blob(encoding), stamp])
    return citizen_id


def remove_citizen(db, citizen_id):
    """Mark a citizen removed the way the registry does: removed_at and a new sync seq."""
    with transaction(db):
        seq = next_sync_seq(db)
        db.execute("UPDATE citizens SET removed_at = ?, sync_seq = ? WHERE id = ?",
                   [now_iso(), seq, citizen_id])


def new_device(db, name="kiosk-1", kind="kiosk"):
    """Register a device; returns its bearer token."""
    return register_device(db, name, kind, site="Hall A")


def session_payload(**fields):
    """A valid session upload (an unknown visitor unless fields say otherwise)."""
    body = {"id": str(uuid.uuid4()), "citizen_id": None, "outcome": "unknown", "distance": 0.7,
            "margin": 0.01, "time_to_greet": None, "liveness": "not_run",
            "started_at": datetime.now(timezone.utc).isoformat()}
    body.update(fields)
    return body


def session_count(db, **where):
    sql = "SELECT count(*) FROM sessions"
    if where:
        sql += " WHERE " + " AND ".join(f"{key} = ?" for key in where)
    return db.execute(sql, list(where.values())).fetchone()[0]


def run_agent(server_url, token, camera, store_path, speaker=None, screen=None, regreet_after_s=None,
              settings=None, timeout=2.0):
    """Run the real kiosk agent in this process over a video until its end (--exit-at-end);
    returns (events, agent). The models stay loaded between runs, unlike a subprocess."""
    from device.agent import Agent
    from kiosk.presenter import KioskFrontEnd
    from device.camera import open_source
    from device.client import ApiClient
    from device.events import EventLog
    from device.store import Store
    from device.sync import Syncer
    events = []
    log = EventLog()
    log.add_listener(events.append)
    store = Store(store_path)
    syncer = Syncer(store, ApiClient(server_url, token, timeout=timeout), log, retry_s=0.5)
    agent = Agent(open_source(camera), store, syncer, log, KioskFrontEnd(screen, speaker),
                  settings, regreet_after_s)
    try:
        agent.run(exit_at_end=True)
    finally:
        store.close()
    return events, agent


def of_kind(events, kind):
    return [e for e in events if e["event"] == kind]
