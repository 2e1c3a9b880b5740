"""One face, one citizen: the admin's one-citizen add, the photo forms and the import check
duplicates inside their transaction under the one face-index lock, raced for real on a live
server (loopback only, real photos, real SQLite or PostgreSQL); and an admin's change never
waits behind an import, it answers at once with Retry-After and writes nothing later."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from db import now_iso, transaction
from helpers import RECORD_HEADER, id_number, make_zip, people_photo, record, write_csv
from loopback import Desk
from server import duplicates, enrolment
from server.audit import Actor
from server.importer import Settings
from server.imports import wait_for_job
from server.times import utc_stamp

ADMIN = Actor("user", 1, "admin")
FACE = people_photo("rose_leslie", 1)


def fields(n, name="林小姐"):
    return {"id_number": id_number(n), "name": name, "phone": "139 0000 4321", "language": "zh",
            "district": "", "consent": "yes"}


def signed_in(live_server):
    desk = Desk(live_server)
    assert desk.sign_in("admin")[0] == 302
    return desk


def add_on_the_page(desk, n, photo=FACE, deadline=120.0):
    """The admin's add, retried as its 503 says (Retry-After) until answered; returns
    (final status, where it led, how many times an import was running)."""
    busy, stop = 0, time.monotonic() + deadline
    while True:
        status, headers, _ = desk.post_files("/admin/citizens/new", fields(n),
                                             [("photos", "face.jpg", photo)])
        if status != 503 or time.monotonic() > stop:
            return status, headers.get("Location", ""), busy
        assert int(headers["Retry-After"]) >= 1
        busy += 1
        time.sleep(0.2)          # the test's patience: the header says seconds


def import_on_the_page(desk, rows, photos, tmp_path):
    """Upload a web import; returns its job id (it runs in the server's background)."""
    records = write_csv(tmp_path / f"r{rows[0]['id_number']}.csv", RECORD_HEADER, rows).read_bytes()
    archive = make_zip(tmp_path / f"p{rows[0]['id_number']}.zip", photos).read_bytes()
    status, headers, _ = desk.post_files("/imports/", {}, [("records", "RECORDS.csv", records),
                                                          ("photos", "photos.zip", archive)])
    assert status == 302, status
    return int(headers["Location"].rstrip("/").split("/")[-1])


def where_each_id_number_went(db, numbers):
    citizens = {r[0] for r in db.execute("SELECT id_number FROM citizens WHERE removed_at IS NULL")}
    held = [r["id_number"] for r in duplicates.pending_reviews(db, limit=1000)]
    return sorted(n for n in numbers if n in citizens), sorted(n for n in held if n in numbers)


def test_20_parallel_adds_and_imports_of_one_face_make_one_citizen(app, live_server, db, tmp_path):
    numbers = [id_number(n) for n in range(1, 21)]
    desks = [signed_in(live_server) for _ in range(20)]
    start = threading.Barrier(20)

    def adder(n):
        start.wait()
        return add_on_the_page(desks[n - 1], n)

    def importer(n):
        start.wait()
        return import_on_the_page(desks[n - 1], [record(n, f"林小姐{n}", "face.jpg")],
                                  {"face.jpg": FACE}, tmp_path)
    with ThreadPoolExecutor(20) as pool:
        adds = [pool.submit(adder, n) for n in range(1, 11)]
        imports = [pool.submit(importer, n) for n in range(11, 21)]
        answers, jobs = [f.result() for f in adds], [f.result() for f in imports]
    assert all(wait_for_job(job, 120) for job in jobs)
    assert all(status == 302 for status, _, _ in answers), answers
    registered, held = where_each_id_number_went(db, numbers)
    assert len(registered) == 1 and len(held) == 19 and sorted(registered + held) == numbers
    # every 503 wrote nothing, then or later: one write per ID number, not one per request
    assert actions(db, "duplicate.held") == 19 and db.execute(
        "SELECT count(*) FROM face_templates").fetchone()[0] == 1
    assert actions(db, "citizen.add") == (1 if registered[0] in numbers[:10] else 0)
    print(f"\none face, 20 ID numbers: {len(registered)} citizen, {len(held)} held;"
          f" admin answers that met a running import: {sum(b for _, _, b in answers)}")


def actions(db, action):
    return db.execute("SELECT count(*) FROM audit_log WHERE action = ?", [action]).fetchone()[0]


def long_import(desk, tmp_path):
    """A web import of 60 rows of other people's faces (each photo checked and encoded: some
    seconds), and its job id once it runs."""
    people = [("barack_obama", i) for i in (1, 2, 3, 4)] + \
        [(p, i) for p in ("joe_biden", "alex_lacamoire") for i in (1, 2)]
    photos = {f"{p}{i}.jpg": people_photo(p, i) for p, i in people}
    names = list(photos)
    rows = [record(100 + n, f"市民{n}", names[n % len(names)]) for n in range(60)]
    return import_on_the_page(desk, rows, photos, tmp_path)


def wait_until_running(db, job_id, timeout=30):
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        row = db.execute("SELECT status, processed FROM import_jobs WHERE id = ?", [job_id]).fetchone()
        if row["status"] == "running":
            return
        time.sleep(0.05)
    raise AssertionError("the import never ran")


def test_an_admin_change_answers_at_once_during_an_import_and_writes_nothing_later(
        app, live_server, db, tmp_path):
    desk = signed_in(live_server)
    kit = enrolment.add_citizen(db, ADMIN, fields(1, "Kit"), [people_photo("kit_harington", 1)],
                                Settings.from_config(app.config))
    job = long_import(desk, tmp_path)
    wait_until_running(db, job)
    began = time.monotonic()
    status, headers, page = desk.post_files("/admin/citizens/new", fields(2),
                                            [("photos", "face.jpg", FACE)])
    replaced = desk.post_files(f"/admin/citizens/{kit}/photos", {"mode": "replace"},
                               [("photo", "kit.jpg", people_photo("kit_harington", 2))],
                               page=f"/admin/citizens/{kit}")
    answered_in = time.monotonic() - began
    assert (status, replaced[0]) == (503, 503) and answered_in < 3, answered_in
    assert int(headers["Retry-After"]) >= 5 and int(replaced[1]["Retry-After"]) >= 5
    assert "An import is running: nothing was saved" in page and 'value="林小姐"' in page
    assert db.execute("SELECT status FROM import_jobs WHERE id = ?", [job]).fetchone()[0] \
        in ("queued", "running")               # it was still running when both were answered
    assert wait_for_job(job, 120)
    assert where_each_id_number_went(db, [id_number(2)]) == ([], [])       # nothing, later
    [template] = db.execute("SELECT photo_path FROM face_templates WHERE citizen_id = ?",
                            [kit]).fetchall()
    assert template[0] == db.execute("SELECT photo_path FROM citizens WHERE id = ?",
                                     [kit]).fetchone()[0]     # Kit's first photo, untouched
    status, location, _ = add_on_the_page(desk, 2)             # once it is done, the add works
    assert status == 302 and "/admin/citizens/" in location
    print(f"\nadmin answered during an import in {answered_in:.2f} s:"
          f" 503, Retry-After {headers['Retry-After']} s")


@pytest.mark.parametrize("silent_s, refused", [(5, True), (120, False)])
def test_an_import_of_another_server_process_refuses_until_its_heartbeat_goes_quiet(
        app, db, silent_s, refused):
    """With several server processes the import may run in another: its job row says so
    (heartbeat every 10 s); a job silent for a minute was interrupted and refuses nothing."""
    now = datetime.now(timezone.utc)
    with transaction(db):
        db.execute("INSERT INTO import_jobs (status, total, processed, created_at, owner,"
                   " heartbeat_at) VALUES ('running', 1000, 100, ?, 'other-host:4242:1', ?)",
                   [utc_stamp(now - timedelta(seconds=silent_s + 20)),
                    utc_stamp(now - timedelta(seconds=silent_s))])
    settings = Settings.from_config(app.config)
    if refused:
        with pytest.raises(enrolment.ImportRunning) as running:
            enrolment.add_citizen(db, ADMIN, fields(1), [FACE], settings)
        assert 100 <= running.value.retry_after <= enrolment.RETRY_MAX_S     # 10 % in 25 s
        assert db.execute("SELECT count(*) FROM citizens").fetchone()[0] == 0
    else:
        assert enrolment.add_citizen(db, ADMIN, fields(1), [FACE], settings)


def test_a_replaced_photo_is_checked_against_faces_registered_meanwhile(app, db):
    """The page was read before another citizen with this face was added: the check under
    the lock still sees them (and a citizen removed meanwhile takes no photo)."""
    settings = Settings.from_config(app.config)
    kit = enrolment.add_citizen(db, ADMIN, fields(1, "Kit"), [people_photo("kit_harington", 1)],
                                settings)
    page_row = db.execute("SELECT * FROM citizens WHERE id = ?", [kit]).fetchone()
    enrolment.add_citizen(db, ADMIN, fields(2, "Rose"), [people_photo("rose_leslie", 2)], settings)
    with pytest.raises(enrolment.RecordRefused, match="possible duplicate identity"):
        enrolment.add_photo(db, ADMIN, page_row, FACE, settings, replace=True)
    assert len(db.execute("SELECT id FROM face_templates WHERE citizen_id = ?", [kit]).fetchall()) == 1
    with transaction(db):
        db.execute("UPDATE citizens SET removed_at = ? WHERE id = ?", [now_iso(), kit])
    with pytest.raises(enrolment.RecordRefused, match="removed"):
        enrolment.add_photo(db, ADMIN, page_row, people_photo("kit_harington", 2), settings)
