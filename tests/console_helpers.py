"""Rows for console and admin tests, inserted directly: devices, citizens, sessions, cases.

The device API and the importer write these rows in production; the console only reads and
reviews them, so its tests build exactly the rows they need.
"""
import hashlib
import secrets
import shutil
import uuid
from datetime import datetime, timedelta, timezone

from db import now_iso, transaction

from conftest import person_photo


def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_device(db, name="kiosk-1", kind="kiosk", site="hall-a"):
    """A device row and its bearer token (through the device API when it is there)."""
    try:
        from server.devices import register_device
    except ImportError:
        register_device = None
    if register_device is not None:
        token = register_device(db, name, kind, site)
    else:
        token = secrets.token_urlsafe(32)
        with transaction(db):
            db.execute("INSERT INTO devices (name, kind, site, token_hash, created_at)"
                       " VALUES (?, ?, ?, ?, ?)",
                       [name, kind, site, hashlib.sha256(token.encode()).hexdigest(), now_iso()])
    row = db.execute("SELECT id FROM devices WHERE name = ?", [name]).fetchone()
    return row["id"], token


def add_citizen(app, db, name="王小明", id_number="110101199003074514", photo=("barack_obama", 1),
                phone="13800138000", language="zh"):
    """A citizen whose enrolled photo is a real photo copied into PHOTOS_DIR."""
    photo_path = None
    if photo:
        photo_path = f"{id_number}.jpg"
        shutil.copy(person_photo(*photo), f"{app.config['PHOTOS_DIR']}/{photo_path}")
    stamp = now_iso()
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO citizens (id_number, name, phone, language, photo_path, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [id_number, name, phone, language, photo_path, stamp, stamp])
    return cursor.lastrowid


def add_session(app, db, device_id, citizen_id=None, snapshot=None, received_at=None,
                status="pending", distance=0.31, margin=0.22, time_to_greet=0.8,
                liveness="passed", session_id=None):
    """A session as a device would post it; snapshot=(person, index) copies a real photo."""
    session_id = session_id or str(uuid.uuid4())
    received = received_at or datetime.now(timezone.utc)
    snapshot_path = None
    if snapshot:
        snapshot_path = f"{session_id}.jpg"
        shutil.copy(person_photo(*snapshot), f"{app.config['SNAPSHOTS_DIR']}/{snapshot_path}")
    greeted = citizen_id is not None
    with transaction(db):
        db.execute(
            "INSERT INTO sessions (id, device_id, citizen_id, outcome, distance, margin,"
            " time_to_greet, liveness, snapshot_path, started_at, received_at, review_status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [session_id, device_id, citizen_id, "greeted" if greeted else "unknown",
             distance if greeted else None, margin if greeted else None,
             time_to_greet if greeted else None, liveness if greeted else "not_run",
             snapshot_path, iso(received - timedelta(seconds=3)), iso(received), status])
    return session_id


def add_case(db, citizen_id, case_number="TAX-2026-0001", type_="individual income tax",
             status="open", summary="Annual reconciliation", counter=""):
    stamp = now_iso()
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO cases (case_number, citizen_id, type, status, summary, counter,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [case_number, citizen_id, type_, status, summary, counter, stamp, stamp])
    return cursor.lastrowid


def bulk_sessions(db, device_ids, count, start=None):
    """count synthetic sessions spread over the devices, one per second back from start."""
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    statuses = ("pending", "confirmed", "rejected", "closed")

    def rows():
        for i in range(count):
            at = iso(start + timedelta(seconds=i))
            yield (f"bulk-{i:07d}", device_ids[i % len(device_ids)], None,
                   "unknown" if i % 5 == 0 else "greeted", at, at, statuses[i % 4])

    with transaction(db):
        db.executemany(
            "INSERT INTO sessions (id, device_id, citizen_id, outcome, started_at, received_at,"
            " review_status) VALUES (?, ?, ?, ?, ?, ?, ?)", rows())
