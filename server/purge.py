"""Snapshot retention: delete device snapshots older than the retention setting, on a
schedule while the server runs and from `flask --app app purge`. Session records stay.
The schedule also re-measures the registry's false-match curve (server.calibration) and
sweeps the files no row refers to (sweep_orphans), as the server's start does, and deletes
the signatures of blink evidence past their window (purge_crop_signatures)."""
import logging
import os
import re
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone

from flask import current_app
from werkzeug.utils import safe_join

from db import open_db, transaction

from . import audit, calibration, disk, evidence, files, schedules, settings
from .times import utc_stamp

PURGE_ACTOR = audit.Actor("system", None, "purge")
ORPHAN_AGE_S = 3600       # a file younger than this may belong to a write about to commit
TMP_FOLDERS = ("PHOTOS_DIR", "SNAPSHOTS_DIR", "REPORTS_DIR", "FACEINDEX_DIR")
log = logging.getLogger(__name__)


def purge_snapshots(db, snapshots_dir, retention_days, now=None, batch=500):
    """Delete snapshot files of sessions received more than retention_days ago.

    The session row keeps all its metadata; only snapshot_path is cleared. Each file is deleted
    before its row is cleared: a crash in between leaves a path to a missing file, which the
    next run clears, never an unreferenced face image that nothing would delete.
    Returns (purged, failed): failed files (e.g. permissions) keep their path for the next run.
    """
    cutoff = utc_stamp((now or datetime.now(timezone.utc)) - timedelta(days=retention_days))
    purged = failed = 0
    cursor = ("", "")
    while True:
        rows = db.execute(
            "SELECT id, snapshot_path, received_at FROM sessions WHERE snapshot_path IS NOT NULL"
            " AND received_at < ? AND (received_at, id) > (?, ?) ORDER BY received_at, id LIMIT ?",
            [cutoff, *cursor, batch]).fetchall()
        if not rows:
            break
        cursor = (rows[-1]["received_at"], rows[-1]["id"])
        removed = [row["id"] for row in rows if _remove_snapshot(snapshots_dir, row["snapshot_path"])]
        with transaction(db):
            db.executemany("UPDATE sessions SET snapshot_path = NULL, liveness_encodings = NULL"
                           " WHERE id = ?",
                           [(session_id,) for session_id in removed])
        purged += len(removed)
        failed += len(rows) - len(removed)
    if purged or failed:
        with transaction(db):
            audit.record(db, PURGE_ACTOR, "snapshots.purge", "session", "",
                         {"purged": purged, "failed": failed, "received_before": cutoff})
    return purged, failed


def purge_crop_signatures(db, now=None):
    """Delete the signatures of blink evidence older than evidence.REPLAY_WINDOW_DAYS: past it
    they refuse nothing (server/casefile.py reads only the window's). Returns how many."""
    cutoff = utc_stamp((now or datetime.now(timezone.utc)) - timedelta(days=evidence.REPLAY_WINDOW_DAYS))
    with transaction(db):
        return db.execute("DELETE FROM liveness_signatures WHERE created_at < ?", [cutoff]).rowcount


def _remove_snapshot(snapshots_dir, relative):
    """True when the file is gone (or never existed inside the snapshots folder)."""
    path = safe_join(snapshots_dir, relative)
    if path is None:
        return True  # a path outside the folder was never ours to delete; just forget it
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        current_app.logger.warning("could not delete snapshot %s: %s", path, e)
        return False
    return True


# --- orphans --------------------------------------------------------------------------------

def sweep_orphans(db, config, now=None):
    """Delete the files a killed process left that no row refers to: photos no citizen,
    template or review names, snapshots no session names, `.tmp` files of writes that never
    finished, and the upload folders of import jobs that are over. Only files older than
    ORPHAN_AGE_S: a younger photo may be in a batch about to commit. Returns the counts
    ({"photos", "snapshots", "tmp", "uploads"}) and logs them when any.

    Reads the names in use once per table: at a million citizens some 100 MB for a moment,
    at start and once a purge interval."""
    cutoff = (now or time.time()) - ORPHAN_AGE_S
    counts = {"photos": 0, "snapshots": 0, "tmp": 0, "uploads": 0}
    for key in TMP_FOLDERS:
        counts["tmp"] += files.remove_unfinished(config.get(key), ORPHAN_AGE_S)
    with transaction(db):
        # the imports' lock: a batch that found an old file under its photo's name (and so
        # did not write it again) commits its reference before this reads, or after the
        # file is gone and it writes its own
        db.lock("faceindex")
        counts["photos"] = _remove_unused(config["PHOTOS_DIR"], cutoff, _photos_in_use(db))
    counts["snapshots"] = _remove_unused(config["SNAPSHOTS_DIR"], cutoff, _names(
        db, "SELECT snapshot_path FROM sessions WHERE snapshot_path IS NOT NULL"))
    counts["uploads"] = _remove_finished_uploads(db, config["UPLOADS_DIR"])
    if any(counts.values()):
        log.warning("swept files nobody refers to: %(photos)d photos, %(snapshots)d snapshots,"
                    " %(tmp)d unfinished .tmp writes, %(uploads)d upload folders", counts)
    return counts


def _photos_in_use(db):
    return _names(db, "SELECT photo_path FROM citizens WHERE photo_path IS NOT NULL UNION"
                      " SELECT photo_path FROM face_templates WHERE photo_path IS NOT NULL UNION"
                      " SELECT photo_path FROM duplicate_reviews WHERE photo_path IS NOT NULL")


def _names(db, sql):
    return {os.path.basename(row[0]) for row in db.execute(sql)}


def _old_files(folder, cutoff):
    """Paths of the regular files directly in folder modified before cutoff, but the `.tmp`
    ones (files.remove_unfinished has those)."""
    if not folder or not os.path.isdir(folder):
        return []
    with os.scandir(folder) as entries:
        return [e.path for e in entries if e.is_file(follow_symlinks=False)
                and not e.name.endswith(".tmp") and e.stat().st_mtime < cutoff]


def _remove_unused(folder, cutoff, used):
    return _remove_all(p for p in _old_files(folder, cutoff) if os.path.basename(p) not in used)


def _remove_all(paths):
    removed = 0
    for path in paths:
        try:
            os.remove(path)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete %s: %s", path, e)
    return removed


def _remove_finished_uploads(db, uploads_dir):
    """Upload folders (job-N) of jobs that ended or never got a row: their files (ID numbers,
    phones, photos) were only needed while the job ran."""
    if not os.path.isdir(uploads_dir):
        return 0
    # listed before the jobs are read: a job's row is committed before its folder is made
    folders = os.listdir(uploads_dir)
    alive = {row[0] for row in db.execute(
        "SELECT id FROM import_jobs WHERE status IN ('queued', 'running')")}
    removed = 0
    for name in folders:
        match = re.fullmatch(r"job-(\d+)", name)
        if match and int(match.group(1)) not in alive:
            shutil.rmtree(os.path.join(uploads_dir, name), ignore_errors=True)
            removed += 1
    return removed


def retention_days(db):
    return settings.value(db, "retention_days")


def init_app(app):
    """Run the purge on a schedule in a daemon thread while the server runs (not in tests).

    Config: PURGE_INTERVAL_SECONDS (0 turns the schedule off) and PURGE_FIRST_DELAY_SECONDS
    (so one-shot `flask` commands exit before it runs). Returns the Schedule, or None.
    """
    interval = app.config["PURGE_INTERVAL_SECONDS"]
    if app.config.get("TESTING"):
        return None
    disk.make_reserve(app.config)     # the room a full disk leaves sign-in (server/disk.py)
    if not interval:
        return None
    return Schedule(app, interval, app.config["PURGE_FIRST_DELAY_SECONDS"]).start()


class Schedule:
    """The purge every `interval` seconds in a daemon thread; `ran` is set after each turn.

    Every server process runs one; the database decides which of them purges in each interval
    (server/schedules.py), so two processes never delete the same files or double the audit.
    """

    def __init__(self, app, interval, first_delay):
        self.app, self.interval, self.first_delay = app, interval, first_delay
        self.ran = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="snapshot-purge", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _loop(self):
        wait = threading.Event().wait
        wait(self.first_delay)
        while True:
            self.run_once()
            wait(self.interval)

    def run_once(self, now=None):
        """Purge if this process wins this interval; returns whether it did."""
        app, purged = self.app, False
        try:
            disk.make_reserve(app.config)   # again, once an admin freed the space it took
            with app.app_context():
                db = open_db(app.config["DATABASE"], migrate_now=False)
                try:
                    # a little under the interval: this process's next turn must find it due
                    if schedules.claim(db, "snapshots.purge", schedules.this_process(),
                                       max(self.interval - 1, 0), now):
                        purge_snapshots(db, app.config["SNAPSHOTS_DIR"], retention_days(db), now)
                        purge_crop_signatures(db, now)
                        sweep_orphans(db, app.config)
                        calibration.measure_registry(db)
                        purged = True
                finally:
                    db.close()
        except Exception:  # the next run tries again; a crashed thread would never purge again
            app.logger.exception("scheduled snapshot purge failed")
        self.ran.set()
        return purged
