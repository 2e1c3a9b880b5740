"""Test helpers, one module: rows for the registry, citizens enrolled from real photos,
devices and the real device runtime run in this process, import files (CSV in any encoding,
photo zips, broken photos), the blinking woman of tests/data/video, and waiting on events.

Rows are inserted directly where the feature under test only reads them (the importer and
the device API write them in production). Encodings are cached for the whole test session,
since each one costs dlib work on two shared cores.
"""
import csv
import functools
import io
import itertools
import json
import shutil
import struct
import threading
import uuid
import wave
import zipfile
import zlib
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np

import liveness_videos
from conftest import FACES, PEOPLE, VIDEO, person_photo
from db import now_iso, transaction
from db.queries import new_citizen_key, next_sync_seq, registry_id
from device.agent import Agent
from device.camera import open_source
from device.casefile import CaseFileFlow
from device.client import ApiClient
from device.events import EventLog
from device.store import Store
from device.sync import Syncer
from kiosk.presenter import KioskFrontEnd
from recognition import engine, images, models, quality
from server import faces
from server.devices import register_device
from server.importer import prc_check_digit


# The face model of the test's registry (the app fixture sets it: FACE_MODEL's default, or
# the model a test marks with @pytest.mark.face_model("dlib")): every helper's templates and
# posted sessions are its.
MODEL = models.get(models.DEFAULT)


def use_model(name):
    global MODEL
    MODEL = models.get(name)


def one_to_one_limit():
    """The 1:1 distance the test model's prior allows (what the server's snapshot check and
    the ID-number check use on a registry too small to measure)."""
    from recognition import calibration
    return calibration.one_to_one_threshold(calibration.prior_curve(MODEL), calibration.ONE_TO_ONE_FMR,
                                            MODEL.bounds.one_to_one_ceiling, MODEL.bounds.threshold_floor)


# --- registry rows: devices, citizens, sessions, cases ----------------------------------------

def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_device(db, name="kiosk-1", kind="kiosk", site="hall-a"):
    """A registered device: (its id, its bearer token)."""
    token = register_device(db, name, kind, site)
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
        return db.insert(
            "INSERT INTO citizens (id_number, key, name, phone, language, photo_path, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [id_number, new_citizen_key(), name, phone, language, photo_path, stamp, stamp])


def add_template(db, citizen_id, person, index=1):
    """Give a citizen the template of a photo of person (the server checks snapshots with it)."""
    with transaction(db):
        faces.add_template(db, citizen_id, MODEL, person_encoding(person, index))


def add_session(app, db, device_id, citizen_id=None, snapshot=None, received_at=None,
                status="pending", distance=0.62, margin=0.3, time_to_greet=0.8,
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
            " time_to_greet, liveness, snapshot_path, started_at, received_at, review_status,"
            " face_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [session_id, device_id, citizen_id, "greeted" if greeted else "unknown",
             distance if greeted else None, margin if greeted else None,
             time_to_greet if greeted else None, liveness if greeted else "not_run",
             snapshot_path, iso(received - timedelta(seconds=3)), iso(received), status, MODEL.id])
    return session_id


def add_case(db, citizen_id, case_number="TAX-2026-0001", type_="individual income tax",
             status="open", summary="Annual reconciliation", counter=""):
    stamp = now_iso()
    with transaction(db):
        return db.insert(
            "INSERT INTO cases (case_number, citizen_id, type, status, summary, counter,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [case_number, citizen_id, type_, status, summary, counter, stamp, stamp])


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


# --- citizens enrolled with face templates, devices, sessions ---------------------------------

_id_numbers = itertools.count(1)


def photo_encoding(path, model_name=None):
    """The enrolment template of a photo on a face model (the test's, unless named)."""
    return _photo_encoding(str(path), model_name or MODEL.name)


@functools.lru_cache(maxsize=None)
def _photo_encoding(path, model_name):
    """Cached per test session: each encoding costs dlib work on two shared cores."""
    return quality.enrolment_template(images.load_image(path), models.get(model_name)).encoding


def person_encoding(person, index=1, model_name=None):
    """The enrolment template of a test person's photo ("blinking": her, from the video)."""
    if person == "blinking":
        return _her_encoding(model_name or MODEL.name)
    return photo_encoding(PEOPLE / person / f"{index}.jpg", model_name)


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
        citizen_id = db.insert(
            "INSERT INTO citizens (id_number, key, name, phone, language, sync_seq, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [f"T{next(_id_numbers):08d}{uuid.uuid4().hex[:6]}", new_citizen_key(),
             name or display_name(person), "13800000000", language, seq, stamp, stamp])
        for encoding in encodings:
            faces.add_template(db, citizen_id, faces.active(db), encoding)
    return citizen_id


def remove_citizen(db, citizen_id):
    """Mark a citizen removed the way the registry does: removed_at, consent cleared, a new
    sync seq."""
    with transaction(db):
        seq = next_sync_seq(db)
        db.execute("UPDATE citizens SET removed_at = ?, consent = 0, sync_seq = ? WHERE id = ?",
                   [now_iso(), seq, citizen_id])


def new_device(db, name="kiosk-1", kind="kiosk"):
    """Register a device; returns its bearer token."""
    return register_device(db, name, kind, site="Hall A")


def session_payload(**fields):
    """A valid session upload (an unknown visitor unless fields say otherwise)."""
    body = {"id": str(uuid.uuid4()), "citizen_key": None, "outcome": "unknown", "distance": 1.2,
            "margin": 0.01, "time_to_greet": None, "liveness": "not_run", "model": MODEL.id,
            "started_at": datetime.now(timezone.utc).isoformat()}
    body.update(fields)
    return body


def bearer(token):
    """The headers of a device of this version: its token and the face models it runs."""
    from device.client import FACE_MODELS_HEADER
    return {"Authorization": f"Bearer {token}",
            FACE_MODELS_HEADER: ",".join(m.id for m in models.PROFILES.values())}


def key_of(db, citizen_id):
    """The key devices know a citizen by."""
    return db.execute("SELECT key FROM citizens WHERE id = ?", [citizen_id]).fetchone()[0]


def id_of(db, key):
    """The row id of the citizen a device names by key."""
    return db.execute("SELECT id FROM citizens WHERE key = ?", [key]).fetchone()[0]


def greeted_payload(db, citizen_id, **fields):
    """A valid upload of a greeting of citizen_id, recorded against this registry."""
    return session_payload(**{"outcome": "greeted", "citizen_key": key_of(db, citizen_id),
                              "registry_id": registry_id(db), "distance": 0.6, "margin": 0.3,
                              "time_to_greet": 0.5, **fields})


@functools.lru_cache(maxsize=None)
def snapshot_jpeg(person="rose_leslie", index=1):
    """A real face photo as a device would send it: a JPEG of a few tens of KB ("blinking":
    her, from the video)."""
    if person == "blinking":
        return her_snapshot()
    from PIL import Image
    img = Image.open(person_photo(person, index)).convert("RGB")
    img.thumbnail((320, 320))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def post_visit(client, token, payload, snapshot=True, snapshot_of=("rose_leslie", 1)):
    """Upload a session as devices do: multipart with its snapshot (JSON alone without), a
    photo of snapshot_of = (person, photo index)."""
    headers = {"Authorization": f"Bearer {token}"}
    if not snapshot:
        return client.post("/api/v1/sessions", json=payload, headers=headers)
    data = {"session": json.dumps(payload), "snapshot": (io.BytesIO(snapshot_jpeg(*snapshot_of)), "face.jpg")}
    return client.post("/api/v1/sessions", data=data, headers=headers,
                       content_type="multipart/form-data")


def session_count(db, **where):
    sql = "SELECT count(*) FROM sessions"
    if where:
        sql += " WHERE " + " AND ".join(f"{key} = ?" for key in where)
    return db.execute(sql, list(where.values())).fetchone()[0]


def run_agent(server_url, token, camera, store_path, front_end=None, screen=None, speaker=None,
              settings=None, regreet_after_s=None, timeout=2.0):
    """Run the real device agent in this process over a video until its end (--exit-at-end);
    returns (events, agent). front_end(event_log, client) builds the front end (default: the
    kiosk's screen and voice). The models stay loaded between runs, unlike a subprocess."""
    events = []
    log = EventLog()
    log.add_listener(events.append)
    store = Store(store_path)
    client = ApiClient(server_url, token, timeout=timeout)
    syncer = Syncer(store, client, log, retry_s=0.5)
    chosen = front_end(log, client) if front_end else KioskFrontEnd(screen, speaker)
    agent = Agent(open_source(camera), store, syncer, log, chosen, settings, regreet_after_s)
    try:
        agent.run(exit_at_end=True)
    finally:
        store.close()
    return events, agent


def of_kind(events, kind):
    return [e for e in events if e["event"] == kind]


class EventWaiter:
    """Collects an EventLog's events; wait() blocks until one of a kind arrives (no polling)."""

    def __init__(self, log):
        self.events = []
        self._changed = threading.Condition()
        log.add_listener(self._add)

    def _add(self, event):
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait(self, kind, count=1, timeout=60.0):
        """The first `count` events of `kind`, once they have arrived (AssertionError after timeout)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(of_kind(self.events, kind)) >= count, timeout):
                raise AssertionError(f"no {kind!r} event within {timeout} s")
            return of_kind(self.events, kind)[:count]


# --- import files ----------------------------------------------------------------------------

RECORD_HEADER = ["id_number", "name", "phone", "photo", "language", "district", "consent"]
CASE_HEADER = ["case_number", "id_number", "type", "status", "summary", "counter", "appointment_at"]


def id_number(n, birth="19800101", region="440106"):
    """A valid 18-character PRC resident ID number; n makes it unique."""
    first17 = f"{region}{birth}{n % 1000:03d}"
    return first17 + prc_check_digit(first17)


def bad_check_digit(number):
    """The same ID number with a wrong last character."""
    wrong = "0" if number[-1] != "0" else "1"
    return number[:-1] + wrong


def write_csv(path, header, rows, encoding="utf-8"):
    """Write rows (lists or dicts) under header; encoding e.g. "utf-8", "utf-8-sig", "gbk"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def record(n, name, photo, **extra):
    return {"id_number": id_number(n), "name": name, "phone": f"138 0013 {n:04d}", "photo": photo,
            **extra}


def people_photo(person, index=1):
    return (PEOPLE / person / f"{index}.jpg").read_bytes()


def group_photo(name="two_people.jpg"):
    return (FACES / "group" / name).read_bytes()


def edge_photo(name):
    return (FACES / "edge" / name).read_bytes()


def truncated_jpeg():
    """The first third of a real JPEG: decodes partly, then ends."""
    data = people_photo("barack_obama", 2)
    return data[:len(data) // 3]


def text_as_jpg():
    return "id_number,name\nthis is not a photo\n".encode()


def huge_png_header(width=12000, height=12000):
    """A PNG whose header claims width x height pixels (a decompression bomb's first bytes)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def make_zip(path, members):
    """A zip of {entry name: bytes}; names are written as given, '../' ones included."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def photo_folder(folder, members):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


# --- the blinking woman of tests/data/video: enrolled with cases, her clips --------------------

# In tests/data/video the face appears at 1.5 s; her first blink starts at 2.17 s.
CLIP_START, CLIP_END = 1.0, 5.5
PHONE = "139 0000 4321"


def her_encoding():
    """Her template from a frame with open eyes (2.5 s), as an enrolment photo would give."""
    return _her_encoding(MODEL.name)


@functools.lru_cache(maxsize=None)
def _her_encoding(model_name):
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_MSEC, 2_500)
    ok, frame = capture.read()
    capture.release()
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return models.get(model_name).encoding(rgb, engine.detect_faces(rgb, 640)[0])


def enrol_her(db, name="林小姐", language="zh", cases=(("TX-2026-0107", "个人所得税", "ready", "3"),)):
    """Enrol her with a phone on file and open cases (case_number, type, status, counter)."""
    citizen_id = enrol(db, "blinking", name=name, language=language, encodings=[her_encoding()])
    stamp = now_iso()
    with transaction(db):
        db.execute("UPDATE citizens SET phone = ? WHERE id = ?", [PHONE, citizen_id])
        for number, kind, status, counter in cases:
            db.execute(
                "INSERT INTO cases (case_number, citizen_id, type, status, counter, summary,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [number, citizen_id, kind, status, counter, f"{number}: refund 1,280.00 CNY",
                 stamp, stamp])
    return citizen_id


@functools.lru_cache(maxsize=None)
def her_frames(start_s=1.5, end_s=4.0):
    """(t, rgb, location) of her face in the real video, every frame from start_s to end_s."""
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000)
    out = []
    while True:
        t = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
        ok, frame = capture.read()
        if not ok or t > end_s:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        faces = engine.detect_faces(rgb, 640)
        if faces:
            out.append((t, rgb, faces[0]))
    capture.release()
    return tuple(out)


@functools.lru_cache(maxsize=None)
def _blink_crops():
    """The evidence the kiosk sends with her first blink (device/evidence.py, fed as the blink
    challenge feeds it), times from her first crop."""
    from device.evidence import Evidence
    from recognition.liveness import BlinkDetector, eyes_openness, face_eyes
    detector, evidence = BlinkDetector(), None
    for t, rgb, location in her_frames():
        evidence = evidence or Evidence(t)
        eyes = face_eyes(rgb, location)
        evidence.add(t, eyes_openness(*eyes), rgb, location, detector.update(t, eyes))
    crops = evidence.payload()
    assert len(crops) >= 4, "her blink is in the clip"
    first = crops[0]["t"]
    return tuple((round(c["t"] - first, 3), c["jpeg"]) for c in crops)


def blink_evidence(crops=None):
    """The "evidence" of a liveness pass as a device posts it: her real blink by default, or
    crops [(t, jpeg bytes)] of anything a test (or an attacker) wants to try."""
    import base64
    return [{"t": t, "jpeg": base64.b64encode(data).decode("ascii")}
            for t, data in (crops if crops is not None else _blink_crops())]


def pass_liveness(db, session_id):
    """Mark a visit's blink as seen, for a test of what comes after it (the case file's other
    checks): the evidence itself is tested in test_liveness_evidence.py."""
    with transaction(db):
        db.execute("UPDATE sessions SET liveness = 'passed' WHERE id = ?", [session_id])


def her_snapshot():
    """Her face as a kiosk crops and sends it, from an open-eyed frame of the video."""
    from device.agent import snapshot_jpeg as device_snapshot
    t, rgb, location = her_frames()[0]
    return device_snapshot(rgb, location, rgb=True)


def blinking_clip(path):
    """4.5 s of the real video at 640 px: she appears at 0.5 s and blinks from 1.17 s on."""
    return liveness_videos.video_slice(VIDEO, path, CLIP_START, CLIP_END, max_side=640)


def still_clip(path, seconds=8.0):
    """Her face held still (a photo of her): one frame repeated, with camera noise."""
    frame = liveness_videos.frame_at(VIDEO, 2.5, max_side=640)
    return liveness_videos.still_frame_video(path, frame, seconds=seconds, fps=15)


def run_flow(server_url, token, camera, store_path, make_presenter, tickets=False, policy=None):
    """The real agent with CaseFileFlow over a video until its end; returns the events.
    make_presenter(event_log, client) builds the front end's presenter."""
    def front_end(log, client):
        return CaseFileFlow(make_presenter(log, client), client, log, policy, tickets=tickets)
    events, _ = run_agent(server_url, token, camera, store_path, front_end)
    return events


def wav_duration_and_rms(path):
    """(seconds, RMS of the 16-bit samples): real speech lasts and is not silence."""
    with wave.open(str(path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        seconds = w.getnframes() / w.getframerate()
    return seconds, float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
