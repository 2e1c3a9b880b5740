"""Bulk import for admins: the upload page, a job page with live progress and the report,
and the `flask --app app import-records` command. Both are thin layers over
server.importer.run_import().

A web import runs in a background thread (a few thousand photos take minutes); its progress
and result live in the import_jobs table, so the job page can be reloaded or opened later.
Uploaded files are deleted when the job ends: the photos are then stored under PHOTOS_DIR.
"""
import logging
import os
import shutil
import threading
import time
import zipfile

import click
from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   send_file, url_for)
from flask.cli import with_appcontext
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired

from db import now_iso, open_db, transaction

from . import importer
from .auth import audit_user, role_required
from .cli import cli_db
from .i18n import add_translations, t
from .web import client_ip, get_db

bp = Blueprint("imports", __name__, url_prefix="/imports")
log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5   # how often a running job writes its progress row
RECENT_JOBS = 20
FINISHED = ("done", "failed")
MAX_PROBLEMS_SHOWN = 500  # the report holds them all


# --- the command ----------------------------------------------------------------------------

@click.command("import-records")
# No dir_okay=False: click's usage error is three lines; the importer says "is a folder" in one.
@click.argument("records", type=click.Path())
@click.option("--photos", required=True, type=click.Path(),
              help="Folder or zip holding the files named in the photo column.")
@click.option("--cases", type=click.Path(), help="Optional CASES.csv.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True),
              help="Write the row-by-row report (CSV) here.")
@with_appcontext
def import_records(records, photos, cases, report):
    """Import citizen records with their photos (and optionally their cases).

    Prints `imported N, updated N, unchanged N, rejected N`; rejected rows and their reasons
    go to stderr and to --report. Exits non-zero only when the import could not run at all.
    """
    if report and not os.path.isdir(os.path.dirname(os.path.abspath(report))):
        raise click.ClickException(f"report: folder does not exist: {os.path.dirname(report)}")
    settings = importer.Settings.from_config(current_app.config)
    try:
        result = importer.run_import(cli_db(), records, photos, cases, settings)
    except importer.ImportFailed as e:
        raise click.ClickException(str(e))
    if report:
        importer.write_report(report, result)
    _echo_problems(result.problems(), report)
    click.echo(result.summary_line())


def _echo_problems(problems, report, limit=20):
    for row in problems[:limit]:
        click.echo(f"{row.file} line {row.line} {row.id_number}: {row.outcome}: {row.reason}", err=True)
    if len(problems) > limit:
        more = "see the report" if report else "use --report for all"
        click.echo(f"... and {len(problems) - limit} more rejected rows ({more})", err=True)


cli_commands = [import_records]


# --- jobs -----------------------------------------------------------------------------------

def create_job(db, user_id):
    with transaction(db):
        return db.insert("INSERT INTO import_jobs (created_by, status, created_at)"
                         " VALUES (?, 'queued', ?) RETURNING id", [user_id, now_iso()])


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
    thread.start()
    return thread


def run_job(config, job_id, files, actor):
    """The body of a background import: progress, result and report recorded on the job row."""
    db = open_db(config["DATABASE"], migrate_now=False)
    try:
        _update_job(db, job_id, status="running")
        result = importer.run_import(db, files["records"], files["photos"], files.get("cases"),
                                     importer.Settings.from_config(config), actor,
                                     _progress_writer(db, job_id))
        report = os.path.join(config["REPORTS_DIR"], f"import-{job_id}.csv")
        importer.write_report(report, result)
        _update_job(db, job_id, status="done", report_path=report, finished_at=now_iso(),
                    **{k: v for k, v in result.counts("records").items() if k != "flagged"})
    except importer.ImportFailed as e:
        _update_job(db, job_id, status="failed", error=str(e), finished_at=now_iso())
    except Exception:
        log.exception("import job %s failed", job_id)
        _update_job(db, job_id, status="failed", finished_at=now_iso(),
                    error="internal error; rows already written are complete, see the server log")
    finally:
        shutil.rmtree(os.path.dirname(files["records"]), ignore_errors=True)
        db.close()


def fail_interrupted_jobs(db):
    """Mark jobs left queued or running by a server that stopped as failed; call once at start
    (in a single-process server: jobs run in the process that started them)."""
    with transaction(db):
        cursor = db.execute(
            "UPDATE import_jobs SET status = 'failed', finished_at = ?, error = ?"
            " WHERE status IN ('queued', 'running')",
            [now_iso(), "interrupted by a server restart; whole batches were kept, run the import again"])
    return cursor.rowcount


def _progress_writer(db, job_id):
    """A progress callback that writes at most every PROGRESS_EVERY_S (and always the last)."""
    last = [0.0]

    def progress(processed, total):
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or processed >= total:
            last[0] = now
            _update_job(db, job_id, processed=processed, total=total)
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
        error = _save_uploads(form, job_id)
        if error is None:
            with transaction(db):
                audit_user("import.start", "import", job_id)
            start_job(current_app.config, job_id, _upload_paths(job_id), _actor())
            return redirect(url_for("imports.job", job_id=job_id))
        _update_job(db, job_id, status="failed", error=error, finished_at=now_iso())
        flash(error, "error")
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


def _save_uploads(form, job_id):
    """Store the uploaded files for the job; an error message, or None."""
    folder = _upload_dir(job_id)
    os.makedirs(folder, exist_ok=True)
    form.records.data.save(os.path.join(folder, "records.csv"))
    photos = os.path.join(folder, "photos.zip")
    form.photos.data.save(photos)
    if form.cases.data and form.cases.data.filename:
        form.cases.data.save(os.path.join(folder, "cases.csv"))
    if not zipfile.is_zipfile(photos):
        shutil.rmtree(folder, ignore_errors=True)
        return t("The photos file is not a zip file.")
    return None


def _actor():
    return importer.Actor("user", current_user.id, current_user.username, client_ip())


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


add_translations({
    "Bulk import": "批量导入",
    "Records CSV": "市民记录 CSV",
    "Photos (zip)": "照片（zip 压缩包）",
    "Cases CSV (optional)": "案件 CSV（可选）",
    "Start import": "开始导入",
    "Recent imports": "最近的导入",
    "Choose a records CSV and a zip of photos.": "请选择市民记录 CSV 和照片 zip 压缩包。",
    "The photos file is not a zip file.": "照片文件不是 zip 压缩包。",
    "No such import.": "没有这个导入任务。",
    "This import has no report.": "这个导入任务没有报告。",
    "Import": "批量导入",
    "Status": "状态",
    "Started": "开始时间",
    "Finished": "完成时间",
    "By": "操作人",
    "Progress": "进度",
    "rows": "行",
    "queued": "排队中",
    "running": "进行中",
    "done": "已完成",
    "failed": "失败",
    "imported": "新导入",
    "updated": "已更新",
    "unchanged": "未变化",
    "rejected": "被拒绝",
    "flagged": "已标记",
    "Records": "市民记录",
    "Cases": "案件",
    "Rejected rows": "被拒绝的行",
    "No rows were rejected.": "没有被拒绝的行。",
    "Download the report (CSV)": "下载报告（CSV）",
    "File": "文件",
    "Line": "行号",
    "ID number": "身份证号",
    "Name": "姓名",
    "Outcome": "结果",
    "Reason": "原因",
    "The import could not run": "导入无法进行",
    "Columns": "列",
    "required": "必填",
    "optional": "可选",
    "Photos are checked: exactly one face, large and sharp enough. A face already enrolled under another ID number is flagged, not imported.":
        "照片会被检查：只能有一张脸，且足够大、足够清晰。与其他身份证号已登记的人脸相同的，会被标记而不导入。",
    "Re-importing the same files changes nothing; changed rows update the citizen.":
        "重复导入相同文件不会改变任何数据；有变化的行会更新该市民。",
    "No imports yet.": "还没有导入记录。",
    "Only the first rows are shown; the report has them all.": "这里只显示前面的行；报告里有全部。",
})
