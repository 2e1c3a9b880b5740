"""A crash, a second process or a full disk leaves the registry as a clean run would: an import
killed after a batch and run again ends where a clean run ends; a job whose process died is
noticed by the living; files nobody refers to are swept; a full disk is a clear 507.

Real imports of real photos into real SQLite (or PostgreSQL) registries; a kill is a
KeyboardInterrupt where the process would have died (each batch is one transaction)."""
import dataclasses
import errno
import os
import time

import numpy as np
import pytest

from app import create_app
from db import open_db
from helpers import RECORD_HEADER, enrol, people_photo, photo_folder, record, write_csv
from server import calibration, importer, imports, purge
from server.importer import Settings, run_import

PEOPLE = [("barack_obama", 1), ("joe_biden", 1), ("kit_harington", 1), ("rose_leslie", 1),
          ("alex_lacamoire", 1), ("barack_obama", 2), ("kit_harington", 2), ("joe_biden", 2)]


def import_files(tmp_path):
    """Eight rows: five people, then three second photos of them under new ID numbers (the
    duplicate check holds those for review)."""
    rows = [record(n, f"{person}-{index}", f"{person}-{index}.jpg")
            for n, (person, index) in enumerate(PEOPLE, start=100)]
    photos = {f"{p}-{i}.jpg": people_photo(p, i) for p, i in PEOPLE}
    return write_csv(tmp_path / "r.csv", RECORD_HEADER, rows), photo_folder(tmp_path / "p", photos)


def crowd(db):
    """Twelve earlier citizens, enrolled without a calibration stored since: a registry big
    enough to measure, whose curve an interrupted run would otherwise leave unmeasured."""
    rng = np.random.default_rng(4)
    for i in range(12):
        v = rng.normal(size=192)
        enrol(db, "barack_obama", name=f"earlier {i}", encodings=[v / np.linalg.norm(v)])


def state(db):
    """What an import leaves: citizens, their templates, held reviews and the threshold
    each was held at."""
    citizens = sorted(tuple(r) for r in db.execute(   # the crowd's ID numbers are random
        "SELECT CASE WHEN c.name LIKE 'earlier%' THEN '' ELSE c.id_number END, c.name,"
        " c.photo_sha256, count(t.id) FROM citizens c LEFT JOIN face_templates t"
        " ON t.citizen_id = c.id GROUP BY c.id, c.id_number, c.name, c.photo_sha256"))
    reviews = sorted(tuple(r) for r in db.execute(
        "SELECT r.id_number, r.status, m.name, round(r.threshold, 6) FROM duplicate_reviews r"
        " JOIN citizens m ON m.id = r.match_citizen_id"))
    return citizens, reviews


def second_registry(tmp_path, app):
    """A registry of its own (SQLite), configured as the test's."""
    folder = tmp_path / "clean"
    folder.mkdir()
    return create_app({**{k: app.config[k] for k in ("TESTING", "IMPORT_WORKERS",
                                                     "PASSWORD_HASH_METHOD", "FACE_MODEL")},
                       "DATABASE": str(folder / "civic.db"), "PHOTOS_DIR": str(folder / "photos")})


def test_an_import_killed_after_a_batch_and_run_again_ends_as_a_clean_run(app, db, tmp_path, monkeypatch):
    if str(app.config["DATABASE"]).startswith("postgres"):
        pytest.skip("two registries of one test: the SQLite files show it")
    records, photos = import_files(tmp_path)
    settings = dataclasses.replace(Settings.from_config(app.config), batch_size=3)
    clean_app = second_registry(tmp_path, app)
    clean = open_db(clean_app.config["DATABASE"])
    crowd(clean)
    clean_result = run_import(clean, records, photos, None,
                              dataclasses.replace(Settings.from_config(clean_app.config), batch_size=3))

    crowd(db)
    real = importer._Run._write_record
    written = []

    def killed_after_the_first_batch(run, item):
        written.append(item)
        if len(written) > 3:
            raise KeyboardInterrupt      # the process dies in the second batch
        return real(run, item)
    monkeypatch.setattr(importer._Run, "_write_record", killed_after_the_first_batch)
    with pytest.raises(KeyboardInterrupt):
        run_import(db, records, photos, None, settings)
    monkeypatch.setattr(importer._Run, "_write_record", real)
    # the scheduled calibration happened to run before the import was run again: the held
    # records' thresholds must not depend on it
    calibration.measure_registry(db)
    rerun = run_import(db, records, photos, None, settings)

    assert state(db) == state(clean)
    assert [(r.line, r.outcome) for r in rerun.rows if r.outcome != "unchanged"] == \
        [(r.line, r.outcome) for r in clean_result.rows if r.line > 4]
    assert rerun.counts("records")["flagged"] == clean_result.counts("records")["flagged"] >= 1
    clean.close()


def sensitive_threshold(curve, enrolled, budget, greeting, ceiling):
    """A duplicate threshold that moves with each thing it is read from: the gallery's size
    and the curve's pairs (fewer when a held record's match is left out). With the real maths
    a registry this small sits at the model's ceiling or at the greeting threshold, where a
    threshold read from another registry state shows no difference."""
    return round(0.9 + 0.001 * enrolled + 0.0001 * curve.pairs, 6)


@pytest.mark.parametrize("writes_before_the_kill", [4, 7], ids=["second-batch", "third-batch"])
def test_an_import_killed_in_the_middle_of_a_batch_and_run_again_holds_at_a_clean_runs_thresholds(
        app, db, tmp_path, monkeypatch, writes_before_the_kill):
    """Batches of three: [obama, biden, kit], [rose, alex, obama 2 held], [kit 2 held, biden 2
    held]. Killed after some of a batch's rows were written (rolled back), with the scheduled
    calibration run before the run again: the run again replays the committed batches on a
    registry grown since (obama 2 already held, its match left out of the curve) and the
    killed batch from its start, and every review must be held at a clean run's threshold."""
    if str(app.config["DATABASE"]).startswith("postgres"):
        pytest.skip("two registries of one test: the SQLite files show it")
    from server import duplicates
    monkeypatch.setattr(duplicates.maths, "duplicate_threshold", sensitive_threshold)
    records, photos = import_files(tmp_path)
    clean_app = second_registry(tmp_path, app)
    clean = open_db(clean_app.config["DATABASE"])
    crowd(clean)
    run_import(clean, records, photos, None,
               dataclasses.replace(Settings.from_config(clean_app.config), batch_size=3))

    crowd(db)
    settings = dataclasses.replace(Settings.from_config(app.config), batch_size=3)
    real = importer._Run._write_record
    written = []

    def killed_mid_batch(run, item):
        if len(written) == writes_before_the_kill:
            raise KeyboardInterrupt
        written.append(item)
        return real(run, item)
    monkeypatch.setattr(importer._Run, "_write_record", killed_mid_batch)
    with pytest.raises(KeyboardInterrupt):
        run_import(db, records, photos, None, settings)
    monkeypatch.setattr(importer._Run, "_write_record", real)
    calibration.measure_registry(db)
    run_import(db, records, photos, None, settings)

    citizens, reviews = state(db)
    assert (citizens, reviews) == state(clean)
    # held at thresholds of two registry states (batch two's start, batch three's)
    assert len(reviews) == 3 and len({r[3] for r in reviews}) == 2
    clean.close()


def test_a_job_whose_process_died_is_ended_by_a_living_one_and_its_uploads_go(app, db):
    """Two processes share one database: the other one's job went silent past the stale limit.
    This process's watch ends it and deletes its uploads (ID numbers, phones, photos)."""
    old = "2026-01-01T00:00:00Z"
    job = db.insert("INSERT INTO import_jobs (status, created_at, owner, heartbeat_at)"
                    " VALUES ('running', ?, 'another-host:123:456', ?) RETURNING id", [old, old])
    queued = db.insert("INSERT INTO import_jobs (status, created_at, owner, heartbeat_at)"
                       " VALUES ('queued', ?, 'another-host:124:456', ?) RETURNING id", [old, old])
    for j in (job, queued):
        folder = os.path.join(app.config["UPLOADS_DIR"], f"job-{j}")
        os.makedirs(folder)
        open(os.path.join(folder, "records.csv"), "w").write("id_number\n")
    watch = imports.Watch(app, every_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and db.execute(
                "SELECT count(*) FROM import_jobs WHERE status = 'failed'").fetchone()[0] < 2:
            time.sleep(0.05)
    finally:
        watch.stop()
    rows = db.execute("SELECT status, error FROM import_jobs ORDER BY id").fetchall()
    assert [r["status"] for r in rows] == ["failed", "failed"] and "interrupted" in rows[0]["error"]
    assert os.listdir(app.config["UPLOADS_DIR"]) == []


def test_files_nobody_refers_to_are_swept_and_the_referred_ones_kept(app, db, tmp_path):
    photos, snapshots = app.config["PHOTOS_DIR"], app.config["SNAPSHOTS_DIR"]
    records, folder = import_files(tmp_path)
    run_import(db, records, folder, None, Settings.from_config(app.config))
    kept = sorted(os.listdir(photos))
    long_ago = time.time() - 7200
    for name, where in (("orphan.jpg", photos), ("orphan-visit.jpg", snapshots),
                        ("x.jpg.0a1b.tmp", photos), ("fresh.jpg", photos)):
        path = os.path.join(where, name)
        open(path, "wb").write(b"\xff\xd8\xff")
        if name != "fresh.jpg":
            os.utime(path, (long_ago, long_ago))
    swept = purge.sweep_orphans(db, app.config)
    assert swept == {"photos": 1, "snapshots": 1, "tmp": 1, "uploads": 0}
    # a photo written a moment ago may be a batch about to commit: kept until it is old
    assert sorted(os.listdir(photos)) == sorted(kept + ["fresh.jpg"])
    assert os.listdir(snapshots) == []


def test_a_full_disk_is_a_507_naming_the_folder_and_no_partial_upload_stays(app, db, client, auth,
                                                                           tmp_path, monkeypatch):
    """The web import's upload runs out of space half way: a clear refusal, the half-written
    files gone, no job left queued."""
    from werkzeug.datastructures import FileStorage
    records, folder = import_files(tmp_path)
    real = FileStorage.save

    def full_disk(self, dst, *args, **kwargs):
        if str(dst).endswith(".zip"):
            with open(dst, "wb") as f:
                f.write(b"PK half")
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(self, dst, *args, **kwargs)
    monkeypatch.setattr(FileStorage, "save", full_disk)
    auth.login("admin")
    import io
    zip_path = tmp_path / "photos.zip"
    from helpers import make_zip
    make_zip(zip_path, {f"{p}-{i}.jpg": people_photo(p, i) for p, i in PEOPLE})
    page = client.get("/imports/").get_data(as_text=True)
    from conftest import csrf_from
    response = client.post("/imports/", data={
        "csrf_token": csrf_from(page), "records": (open(records, "rb"), "records.csv"),
        "photos": (open(zip_path, "rb"), "photos.zip")}, content_type="multipart/form-data")
    assert response.status_code == 507
    text = response.get_data(as_text=True)
    assert "disk is full" in text and "uploads" in text
    assert os.listdir(app.config["UPLOADS_DIR"]) == []
    assert db.execute("SELECT count(*) FROM import_jobs WHERE status = 'queued'").fetchone()[0] == 0


class FullDisk:
    """Every write of the database and of server files fails as a full disk does, until the
    disk reserve is deleted (then `room` writes go through) or `free` is set. SQLite answers
    "database or disk is full", PostgreSQL DiskFull, a file write ENOSPC: each path's real
    error. (The fault script under bench/ fills a real file system.)"""

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

    def __init__(self, monkeypatch, app):
        from db.connection import Database
        from server import files
        self.app, self.free, self.refused = app, False, 0
        for cls in self._engines(Database):
            for name in ("execute", "insert"):
                monkeypatch.setattr(cls, name, self._guarded(getattr(cls, name)))
        monkeypatch.setattr(files, "write_whole", self._guarded_file(files.write_whole))

    @staticmethod
    def _engines(sqlite):
        try:
            from db.postgres import PostgresDatabase
            return [sqlite, PostgresDatabase]
        except ImportError:
            return [sqlite]

    def full(self):
        reserve = self.app.config["DISK_RESERVE_PATH"]
        return not self.free and (not self.app.config["DISK_RESERVE_MB"] or os.path.exists(reserve))

    def _guarded(self, real):
        def execute(db, sql, params=()):
            if sql.lstrip().upper().startswith(self.WRITES) and self.full():
                self.refused += 1
                raise self._error(db)
            return real(db, sql, params)
        return execute

    def _error(self, db):
        if db.dialect == "sqlite":
            import sqlite3
            return sqlite3.OperationalError("database or disk is full")
        import psycopg
        return psycopg.errors.DiskFull("could not extend file: No space left on device")

    def _guarded_file(self, real):
        def write_whole(path, *args, **kwargs):
            if self.full() and path != self.app.config["DISK_RESERVE_PATH"]:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, *args, **kwargs)
        return write_whole


def test_on_a_full_disk_devices_still_read_and_a_write_is_a_507_naming_the_folder(
        app, db, client, monkeypatch):
    """A kiosk's config and gallery answer (their notes of the read are skipped); a visit's
    upload is refused in the API's one error shape, which the kiosk's outbox retries."""
    from helpers import bearer, new_device, session_payload
    token = new_device(db)
    enrol(db, "barack_obama")
    app.config["DISK_RESERVE_MB"] = 0
    disk = FullDisk(monkeypatch, app)
    assert client.get("/api/v1/config", headers=bearer(token)).status_code == 200
    gallery = client.get("/api/v1/gallery?since=0", headers=bearer(token))
    assert gallery.status_code == 200 and len(gallery.get_json()["upserts"]) == 1
    upload = client.post("/api/v1/sessions", json=session_payload(), headers=bearer(token))
    assert upload.status_code == 507
    error = upload.get_json()["error"]
    assert error["status"] == 507 and "disk is full" in error["message"] and "database" in error["message"]
    assert disk.refused >= 2     # the reads did try to note themselves
    # no reserve left: a sign-in is a refusal that says why, not "internal error"
    from conftest import AuthActions
    refused = AuthActions(app.test_client()).login("clerk")
    assert refused.status_code == 507 and "disk is full" in refused.get_data(as_text=True)
    disk.free = True
    assert client.post("/api/v1/sessions", json=session_payload(), headers=bearer(token)).status_code == 201


def test_a_connection_opened_on_a_full_disk_finds_the_sqlite_files_it_needs(app, client):
    """SQLite deletes its WAL and shared-memory files when the last connection closes, and a
    new connection must create them again: on a really full disk (a 20 MB filesystem filled
    to 0, bench/faults.py) that failed every request, a device's read too, with "disk I/O
    error". The app keeps one idle connection, so they stay between requests."""
    database = str(app.config["DATABASE"])
    if database.startswith("postgres"):
        pytest.skip("PostgreSQL keeps its own files")
    assert client.get("/login").status_code == 200          # its connection opened and closed
    assert os.path.exists(database + "-wal") and os.path.exists(database + "-shm")


def test_on_a_full_disk_a_clerk_still_signs_in_on_the_reserve_and_it_is_on_record(
        app, db, client, auth, tmp_path, monkeypatch):
    from server import disk
    app.config.update(DISK_RESERVE_MB=1, DISK_WARN_MB=0)
    assert disk.make_reserve(app.config)
    FullDisk(monkeypatch, app)
    page = auth.login("clerk")
    assert page.status_code == 302, page.get_data(as_text=True)[:500]
    assert not os.path.exists(app.config["DISK_RESERVE_PATH"])     # spent on it
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'login'").fetchone()[0] == 1
    assert client.get("/console/").status_code == 200


def test_the_admin_page_and_init_db_warn_when_free_space_is_low(app, client, auth, runner):
    app.config["DISK_WARN_MB"] = 10 ** 9      # a petabyte: below it on any disk
    auth.login("admin")
    page = client.get("/admin/").get_data(as_text=True)
    assert "MB free on the disk of" in page and "DISK_WARN_MB" in page
    out = runner.invoke(args=["init-db"]).output
    assert "warning: only" in out and "MB free" in out


