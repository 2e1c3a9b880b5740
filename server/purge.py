"""Snapshot retention: delete device snapshots older than the retention setting, on a
schedule while the server runs and from `flask --app app purge`. Session records stay.
The schedule also re-measures the registry's false-match curve (server.calibration)."""
import os
import threading
from datetime import datetime, timedelta, timezone

from flask import current_app
from werkzeug.utils import safe_join

from db import open_db, transaction

from . import audit, calibration, schedules, settings
from .times import utc_stamp

PURGE_ACTOR = audit.Actor("system", None, "purge")


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


def retention_days(db):
    return settings.value(db, "retention_days")


def init_app(app):
    """Run the purge on a schedule in a daemon thread while the server runs (not in tests).

    Config: PURGE_INTERVAL_SECONDS (0 turns the schedule off) and PURGE_FIRST_DELAY_SECONDS
    (so one-shot `flask` commands exit before it runs). Returns the Schedule, or None.
    """
    interval = app.config["PURGE_INTERVAL_SECONDS"]
    if app.config.get("TESTING") or not interval:
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
            with app.app_context():
                db = open_db(app.config["DATABASE"], migrate_now=False)
                try:
                    # a little under the interval: this process's next turn must find it due
                    if schedules.claim(db, "snapshots.purge", schedules.this_process(),
                                       max(self.interval - 1, 0), now):
                        purge_snapshots(db, app.config["SNAPSHOTS_DIR"], retention_days(db), now)
                        calibration.measure_registry(db)
                        purged = True
                finally:
                    db.close()
        except Exception:  # the next run tries again; a crashed thread would never purge again
            app.logger.exception("scheduled snapshot purge failed")
        self.ran.set()
        return purged
