"""Bulk import for admins: the upload page, a job page with live progress and the report,
and the `flask --app app import-records` command. Both are thin layers over
server.importer.run_import().

A web import runs in a background thread (a few thousand photos take minutes); its progress
and result live in the import_jobs table, so the job page can be reloaded or opened later.
Uploaded files are deleted when the job ends: the photos are then stored under PHOTOS_DIR.
"""
import contextlib
import logging
import os
import shutil
import socket
import threading
import time
import zipfile
from datetime import datetime, timezone

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   send_file, url_for)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from db import now_iso, open_db, transaction

from . import disk, faces, importer
from .auth import audit_user, role_required, user_actor
from .database import get_db
from .i18n import N_, t
from .times import parse_stamp

bp = Blueprint("imports", __name__, url_prefix="/imports")
log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5   # how often a running job writes its progress row
RECENT_JOBS = 20
FINISHED = ("done", "failed")
HEARTBEAT_S = 5          # a running job renews its lease this often
STALE_S = 30             # a job silent this long was interrupted (its lease ran out)
WATCH_S = 5              # how often every server process looks for such jobs
RUNNING = {}             # job id -> the thread running it in this process
MAX_PROBLEMS_SHOWN = 500  # the report holds them all


# --- jobs -----------------------------------------------------------------------------------

def create_job(db, user_id):
    with transaction(db):
        return db.insert("INSERT INTO import_jobs (created_by, status, created_at, owner,"
                         " heartbeat_at) VALUES (?, 'queued', ?, ?, ?) RETURNING id",
                         [user_id, now_iso(), this_process(), now_iso()])


def job_row(db, job_id):
    return db.execute("SELECT j.*, u.username FROM import_jobs j"
                      " LEFT JOIN users u ON u.id = j.created_by WHERE j.id = ?",
                      [job_id]).fetchone()


def job_json(row):
    keys = ("id", "status", "total", "processed", "imported", "updated", "unchanged",
            "rejected", "error", "created_at", "finished_at")
    return {k: row[k] for k in keys}


def start_job(config, job_id, files, actor):
    """Run the import of `files` (records, photos, cases paths) in a background thread."""
    thread = threading.Thread(target=run_job, args=(dict(config), job_id, files, actor),
                              name=f"import-job-{job_id}", daemon=True)
    RUNNING[job_id] = thread
    thread.start()
    return thread


def wait_for_job(job_id, timeout=None):
    """Block until the job this process runs has ended (True), or timeout (False)."""
    thread = RUNNING.get(job_id)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def run_job(config, job_id, files, actor):
    """The body of a background import: progress, result and report recorded on the job row."""
    db = open_db(config["DATABASE"], migrate_now=False)
    beating = _heartbeat(config["DATABASE"], job_id)
    try:
        _update_job(db, job_id, status="running")
        result = importer.run_import(db, files["records"], files["photos"], files.get("cases"),
                                     importer.Settings.from_config(config), actor,
                                     _progress_writer(db, job_id))
        report = os.path.join(config["REPORTS_DIR"], f"import-{job_id}.csv")
        importer.write_report(report, result)
        _update_job(db, job_id, status="done", report_path=report, finished_at=now_iso(),
                    **{k: v for k, v in result.counts("records").items() if k != "flagged"})
    except (importer.ImportFailed, faces.ModelChanged) as e:
        _update_job(db, job_id, status="failed", error=str(e), finished_at=now_iso())
    except Exception as e:
        if disk.is_full(e):
            log.error("import job %s: %s", job_id, e)
            error = importer.stopped_message(e, config)
        else:
            log.exception("import job %s failed", job_id)
            error = "internal error; rows already written are complete, see the server log"
        with contextlib.suppress(Exception):   # the disk may not take even this: the watch will
            _update_job(db, job_id, status="failed", finished_at=now_iso(), error=error)
    finally:
        RUNNING.pop(job_id, None)
        beating.set()
        shutil.rmtree(os.path.dirname(files["records"]), ignore_errors=True)
        db.close()


def this_process():
    """host:pid:start of this process; the start time tells a reused pid from ours."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _process_start(pid):
    """The process's start time in clock ticks since boot (Linux), or "" elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _owner_gone(owner):
    """True when owner names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: its heartbeat tells
    return _process_start(int(pid)) != started if started else not os.path.exists(f"/proc/{pid}")


def _heartbeat(database, job_id):
    """Write the job's heartbeat every HEARTBEAT_S until the returned event is set."""
    stop = threading.Event()

    def beat():
        db = open_db(database, migrate_now=False)
        try:
            while not stop.wait(HEARTBEAT_S):
                try:
                    _update_job(db, job_id, heartbeat_at=now_iso())
                except Exception:  # a busy or full database: one missed beat, not a dead lease
                    log.warning("import job %s: heartbeat not written", job_id, exc_info=True)
        finally:
            db.close()
    threading.Thread(target=beat, name=f"import-job-{job_id}-heartbeat", daemon=True).start()
    return stop


def fail_interrupted_jobs(db, uploads_dir, now=None):
    """End as failed the jobs whose process is gone or silent for STALE_S, and delete their
    uploaded files (ID numbers, phones, photos). Safe with several server processes: a job
    another live process runs keeps its heartbeat fresh. Returns how many ended."""
    now = now or datetime.now(timezone.utc)
    rows = db.execute("SELECT id, owner, heartbeat_at, created_at FROM import_jobs"
                      " WHERE status IN ('queued', 'running')").fetchall()
    ended = 0
    for row in rows:
        last = parse_stamp(row["heartbeat_at"] or row["created_at"])
        if _owner_gone(row["owner"]) or (now - last).total_seconds() > STALE_S:
            ended += _fail_interrupted(db, row["id"])
            shutil.rmtree(os.path.join(uploads_dir, f"job-{row['id']}"), ignore_errors=True)
    return ended


def _fail_interrupted(db, job_id):
    with transaction(db):
        return db.execute(
            "UPDATE import_jobs SET status = 'failed', finished_at = ?, error = ?"
            " WHERE id = ? AND status IN ('queued', 'running')",
            [now_iso(), "interrupted: the server stopped while it ran; whole batches were kept,"
             " run the import again", job_id]).rowcount


def init_app(app):
    """At start: end the jobs a stopped server left behind; then, while the server runs (not
    in tests), keep looking for those of any process that stopped (Watch)."""
    ended = _end_interrupted(app.config)
    if ended:
        log.warning("%d import job(s) interrupted by a stopped server marked failed", ended)
    if not app.config.get("TESTING"):
        Watch(app).start()


def _end_interrupted(config):
    db = open_db(config["DATABASE"], migrate_now=False)
    try:
        return fail_interrupted_jobs(db, config["UPLOADS_DIR"])
    finally:
        db.close()


class Watch:
    """Every `every_s`, end the jobs whose lease ran out, whichever process owned them: a
    server killed mid-import on one machine left its job `running`, and its uploads (ID
    numbers, phones, photos) on disk, for as long as the others lived (issue 24). Every
    process runs one; ending a job is one conditional UPDATE, so two watches never fight."""

    def __init__(self, app, every_s=WATCH_S):
        self.config, self.every_s = dict(app.config), every_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="import-watch", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()
        self.thread.join()

    def _loop(self):
        while not self.stopped.wait(self.every_s):
            try:
                ended = _end_interrupted(self.config)
            except Exception:  # the database is away a moment: look again next turn
                log.exception("looking for interrupted import jobs failed")
                continue
            if ended:
                log.warning("%d import job(s) whose process stopped marked failed", ended)


def _progress_writer(db, job_id):
    """A progress callback that writes at most every PROGRESS_EVERY_S (and always the last)."""
    last = [0.0]

    def progress(processed, total):
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or processed >= total:
            last[0] = now
            _update_job(db, job_id, processed=processed, total=total, heartbeat_at=now_iso())
    return progress


def _update_job(db, job_id, **values):
    assignments = ", ".join(f"{k} = ?" for k in values)
    with transaction(db):
        db.execute(f"UPDATE import_jobs SET {assignments} WHERE id = ?",
                   [*values.values(), job_id])


# --- pages ----------------------------------------------------------------------------------

class UploadForm(FlaskForm):
    records = FileField("records", validators=[FileRequired()])
    photos = FileField("photos", validators=[FileRequired()])
    cases = FileField("cases")


@bp.route("/", methods=["GET", "POST"])
@role_required("admin")
def index():
    """The upload form and the recent import jobs."""
    form = UploadForm()
    db = get_db()
    if form.validate_on_submit():
        job_id = create_job(db, current_user.id)
        error = _saved_or_undone(db, form, job_id)
        if error is None:
            with transaction(db):
                audit_user("import.start", "import", job_id)
            start_job(current_app.config, job_id, _upload_paths(job_id), user_actor())
            return redirect(url_for("imports.job", job_id=job_id))
        _update_job(db, job_id, status="failed", error=error, finished_at=now_iso())
        flash(t(error), "error")
    elif form.errors:
        flash(t("Choose a records CSV and a zip of photos."), "error")
    jobs = db.execute("SELECT j.*, u.username FROM import_jobs j LEFT JOIN users u"
                      " ON u.id = j.created_by ORDER BY j.id DESC LIMIT ?",
                      [RECENT_JOBS]).fetchall()
    return render_template("imports/index.html", form=form, jobs=jobs)


def _upload_dir(job_id):
    return os.path.join(current_app.config["UPLOADS_DIR"], f"job-{job_id}")


def _upload_paths(job_id):
    folder = _upload_dir(job_id)
    paths = {"records": os.path.join(folder, "records.csv"),
             "photos": os.path.join(folder, "photos.zip")}
    cases = os.path.join(folder, "cases.csv")
    if os.path.exists(cases):
        paths["cases"] = cases
    return paths


def _saved_or_undone(db, form, job_id):
    """_save_uploads, or on any failure (a full disk half way through the zip) no file of the
    job left and the job ended: a half-written photos.zip stayed, and the job stayed queued."""
    try:
        return _save_uploads(form, job_id)
    except BaseException as e:
        shutil.rmtree(_upload_dir(job_id), ignore_errors=True)
        full = disk.is_full(e)
        with contextlib.suppress(Exception):    # if even this fails, the watch ends it (STALE_S)
            disk.retry_after_release(current_app.config, _update_job, db, job_id, status="failed",
                                     finished_at=now_iso(),
                                     error="disk full: the upload was not kept" if full else "upload failed")
        if full:
            raise disk.Full(os.path.basename(current_app.config["UPLOADS_DIR"])) from e
        raise


def _save_uploads(form, job_id):
    """Store the uploaded files for the job; an error message (English, as the job row keeps
    every error), or None."""
    folder = _upload_dir(job_id)
    os.makedirs(folder, exist_ok=True)
    form.records.data.save(os.path.join(folder, "records.csv"))
    photos = os.path.join(folder, "photos.zip")
    form.photos.data.save(photos)
    if form.cases.data and form.cases.data.filename:
        form.cases.data.save(os.path.join(folder, "cases.csv"))
    if not zipfile.is_zipfile(photos):
        shutil.rmtree(folder, ignore_errors=True)
        return N_("The photos file is not a zip file.")  # stored in English, shown translated
    return None


def job_or_404(db, job_id):
    row = job_row(db, job_id)
    if row is None:
        abort(404, t("No such import."))
    return row


@bp.route("/<int:job_id>")
@role_required("admin")
def job(job_id):
    """One import: progress while it runs, then the summary and every rejected row."""
    db = get_db()
    row = job_or_404(db, job_id)
    rows = _report_rows(row)
    if rows:
        with transaction(db):
            audit_user("import.view", "import", job_id)
    problems = [r for r in rows if r["outcome"] in ("rejected", "flagged")]
    cases = _case_counts(rows)
    return render_template("imports/job.html", job=row, finished=row["status"] in FINISHED,
                           problems=problems[:MAX_PROBLEMS_SHOWN], more=len(problems) > MAX_PROBLEMS_SHOWN,
                           cases=cases)


def _report_rows(row):
    if row["status"] != "done" or not row["report_path"] or not os.path.exists(row["report_path"]):
        return []
    return importer.read_report(row["report_path"])


def _case_counts(rows):
    counts = {o: 0 for o in importer.OUTCOMES}
    for r in rows:
        if r["file"] == "cases":
            counts[r["outcome"]] += 1
    return counts if any(counts.values()) else None


@bp.route("/<int:job_id>/progress")
@role_required("admin")
def progress(job_id):
    """Progress as JSON for the job page's poll (counts only, no personal data)."""
    return jsonify(job_json(job_or_404(get_db(), job_id)))


@bp.route("/<int:job_id>/report")
@role_required("admin")
def report(job_id):
    """The row-by-row report CSV (names and ID numbers: audited)."""
    db = get_db()
    row = job_or_404(db, job_id)
    if not _report_rows(row):
        abort(404, t("This import has no report."))
    with transaction(db):
        audit_user("import.report.download", "import", job_id)
    response = send_file(row["report_path"], mimetype="text/csv", as_attachment=True,
                         download_name=f"import-{job_id}-report.csv", max_age=0)
    response.headers["Cache-Control"] = "no-store, private"
    return response
