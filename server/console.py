"""The clerk console: the live session queue, session review, case files, the dashboard.

Clerks and admins only (role_required("clerk") lets admins through). Every view of a session,
its snapshot, an enrolled photo or a case file writes an audit entry: the console shows
biometrics and national ID numbers, and the bureau must be able to say who looked at what.

The queue reads a table that grows by every visit (a million rows is a normal year), so every
page is a keyset page on (received_at, id) walked through an index, never OFFSET or COUNT(*).
"""
import heapq
import os
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import (Blueprint, abort, current_app, flash, has_app_context, jsonify, redirect,
                   render_template, request, send_file, url_for)
from flask_login import current_user
from werkzeug.utils import safe_join

from db import now_iso, transaction
from db.queries import citizen, citizen_cases, get_setting, next_sync_seq
from recognition.decision import Policy

from .auth import audit_user, role_required
from .citizens import citizen_or_404
from .errors import ApiError
from .i18n import add_translations, t
from .web import SQLITE_MAX_INT, get_db

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.before_request
@role_required("clerk")
def _staff_only():
    """Every console URL needs a clerk or admin login, even one whose view forgets to say so."""
    return None


STATUSES = ("pending", "confirmed", "rejected", "closed")
DECISIONS = {"confirm": "confirmed", "reject": "rejected", "close": "closed"}
CASE_STATUSES = ("open", "in_progress", "waiting_documents", "ready", "closed")
PAGE_SIZE = 50
MAX_PAGE = 100
MAX_NOTE = 4000

_SESSION_COLUMNS = """s.id, s.device_id, s.citizen_id, s.outcome, s.distance, s.margin,
    s.time_to_greet, s.liveness, s.snapshot_path, s.started_at, s.received_at, s.review_status,
    s.reviewed_by, s.reviewed_at, s.review_note, s.ticket_number, s.case_opened_at,
    d.name AS device_name, d.kind AS device_kind, d.site AS site,
    c.name AS citizen_name, c.id_number AS id_number, c.photo_path AS photo_path,
    c.removed_at AS citizen_removed_at, c.consent AS consent, u.username AS reviewer"""
_SESSION_FROM = """sessions s JOIN devices d ON d.id = s.device_id
    LEFT JOIN citizens c ON c.id = s.citizen_id LEFT JOIN users u ON u.id = s.reviewed_by"""


# --- time: stored in UTC, shown and filtered in the bureau's local time ---------------------

def local_zone():
    """The bureau's time zone: config TIMEZONE (e.g. "Asia/Shanghai"), else the server's."""
    name = current_app.config.get("TIMEZONE") if has_app_context() else None
    return ZoneInfo(name) if name else datetime.now().astimezone().tzinfo


def utc_stamp(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def day_bounds(day):
    """UTC [start, end) stamps of a local calendar day, so a day filter is an index range."""
    start = datetime.combine(day, time.min, tzinfo=local_zone())
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=local_zone())
    return utc_stamp(start), utc_stamp(end)


def local_today():
    return datetime.now(local_zone()).date()


def localtime(stamp):
    """'2026-03-01 09:15:02' in local time, for pages (empty for None)."""
    if not stamp:
        return ""
    return parse_stamp(stamp).astimezone(local_zone()).strftime("%Y-%m-%d %H:%M:%S")


def parse_day(text):
    """A YYYY-MM-DD filter value, or None when empty. Raises ApiError(400) when malformed."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, t("Dates are written YYYY-MM-DD."))
    try:
        day_bounds(day)  # 0001-01-01 or 9999-12-31 have no UTC bounds: OverflowError, a 500
    except OverflowError:
        raise ApiError(400, t("That date is out of range."))
    return day


def parse_row_id(text):
    """A row id typed in a query string (ASCII digits, within SQLite's integer range), or None.
    "²".isdigit() is True but int("²") raises, and a bigger number overflows SQLite: 500s."""
    if text and text.isascii() and text.isdigit() and int(text) <= SQLITE_MAX_INT:
        return int(text)
    return None


# Stored codes and how people read them (English; zh through t()).
LABELS = {
    "pending": "Pending review", "confirmed": "Confirmed", "rejected": "Rejected",
    "closed": "Closed", "greeted": "Greeted", "unknown": "Unknown", "passed": "Passed",
    "failed": "Failed", "not_run": "Not run", "open": "Opened", "in_progress": "In progress",
    "waiting_documents": "Waiting for documents", "ready": "Ready", "admin": "Administrator",
    "clerk": "Clerk", "kiosk": "Kiosk", "robot": "Robot",
}


def label(code):
    """A stored code (status, liveness, role) in the page's language."""
    return t(LABELS.get(code, code))


@bp.record_once
def _register_filters(state):
    state.app.jinja_env.filters["localtime"] = localtime
    state.app.jinja_env.filters["label"] = label


# --- the queue: filters and keyset pages ----------------------------------------------------

@dataclass(frozen=True)
class QueueFilter:
    device_id: int = None
    site: str = ""
    status: str = ""
    day: date = None
    unknown: bool = False

    @classmethod
    def from_args(cls, args):
        """The filter in a query string; ApiError(400) for values no form offers."""
        status = args.get("status", "")
        if status and status not in STATUSES:
            raise ApiError(400, t("Unknown status filter."))
        device = args.get("device", "")
        if device and parse_row_id(device) is None:
            raise ApiError(400, t("Unknown device filter."))
        return cls(parse_row_id(device), args.get("site", "").strip(), status,
                   parse_day(args.get("day", "")), args.get("unknown") in ("1", "on", "true"))

    def query_args(self):
        """The filter as query-string arguments (for links and the poller)."""
        args = {"device": self.device_id, "site": self.site, "status": self.status,
                "day": self.day.isoformat() if self.day else None,
                "unknown": "1" if self.unknown else None}
        return {key: value for key, value in args.items() if value}


def parse_cursor(text):
    """A cursor "received_at|id" from a previous page, or None."""
    if not text:
        return None
    stamp, sep, session_id = text.partition("|")
    if not sep or not session_id:
        raise ApiError(400, t("Malformed page cursor."))
    try:
        parse_stamp(stamp)
    except ValueError:
        raise ApiError(400, t("Malformed page cursor."))
    return stamp, session_id


def parse_since(text):
    """A received_at stamp the live queue has seen up to, or None."""
    if not text:
        return None
    try:
        parse_stamp(text)
    except ValueError:
        raise ApiError(400, t("Malformed page cursor."))
    return text


def cursor_of(row):
    return f"{row['received_at']}|{row['id']}"


def clamp_page_size(text, default=PAGE_SIZE):
    """min(per_page, MAX_PAGE): a client cannot ask for the whole table at once."""
    try:
        return max(1, min(int(text), MAX_PAGE))
    except (TypeError, ValueError):
        return default


def queue_page(db, flt, before=None, since=None, limit=PAGE_SIZE):
    """Sessions matching flt.

    Newest first, starting below the cursor `before` (the next, older page), or — when
    `since` (a received_at stamp) is given — oldest first from that second on, which is how
    the live queue fetches arrivals (the caller drops ids it already shows: several sessions
    can arrive in the same second). At most limit rows.
    """
    where, params = _filter_sql(flt)
    if since:
        where.append("s.received_at >= ?")
        params.append(since)
    elif before:
        where.append("(s.received_at, s.id) < (?, ?)")
        params.extend(before)
    descending = not since
    devices = _device_scope(db, flt)
    if devices is None:
        return _page(db, where, params, descending, limit)
    # A site spans several devices: one index walk per device, merged, instead of one walk
    # over every session of the site followed by a sort.
    pages = [_page(db, where + ["s.device_id = ?"], params + [device], descending, limit)
             for device in devices]
    key = lambda row: (row["received_at"], row["id"])  # noqa: E731
    merged = heapq.merge(*pages, key=key, reverse=descending)
    return [row for row, _ in zip(merged, range(limit))]


def queue_sql(db, flt, before=None, limit=PAGE_SIZE):
    """(sql, params) of one queue page without a site; for EXPLAIN QUERY PLAN in tests."""
    where, params = _filter_sql(flt)
    if flt.device_id is not None:
        where.append("s.device_id = ?")
        params.append(flt.device_id)
    if before:
        where.append("(s.received_at, s.id) < (?, ?)")
        params.extend(before)
    return _page_sql(where, True), params + [limit]


def _filter_sql(flt):
    where, params = [], []
    if flt.status:
        where.append("s.review_status = ?")
        params.append(flt.status)
    if flt.unknown:
        where.append("s.outcome = 'unknown'")
    if flt.day:
        start, end = day_bounds(flt.day)
        where.append("s.received_at >= ? AND s.received_at < ?")
        params.extend([start, end])
    return where, params


def _device_scope(db, flt):
    """Device ids the filter is limited to, or None for every device."""
    if not flt.site:
        return None if flt.device_id is None else [flt.device_id]
    ids = [row[0] for row in db.execute("SELECT id FROM devices WHERE site = ? ORDER BY id",
                                        [flt.site])]
    return [i for i in ids if flt.device_id is None or i == flt.device_id]


def _page_sql(where, descending):
    order = "DESC" if descending else "ASC"
    return (f"SELECT {_SESSION_COLUMNS} FROM {_SESSION_FROM} WHERE {' AND '.join(where) or '1'}"
            f" ORDER BY s.received_at {order}, s.id {order} LIMIT ?")


def _page(db, where, params, descending, limit):
    return db.execute(_page_sql(where, descending), params + [limit]).fetchall()


def session_json(row):
    """One queue row for the live poller: what the table shows, nothing more."""
    return {
        "id": row["id"], "url": url_for("console.session_detail", session_id=row["id"]),
        "received_at": row["received_at"], "received_local": localtime(row["received_at"]),
        "device": row["device_name"], "site": row["site"], "kind": row["device_kind"],
        "outcome": row["outcome"], "name": row["citizen_name"],
        "liveness_label": label(row["liveness"]),
        "distance": row["distance"], "margin": row["margin"],
        "time_to_greet": row["time_to_greet"], "liveness": row["liveness"],
        "status": row["review_status"], "status_label": label(row["review_status"]),
    }


def device_choices(db):
    return db.execute("SELECT id, name, site, kind FROM devices ORDER BY name").fetchall()


@bp.route("/", endpoint="queue")
@role_required("clerk")
def queue():
    db = get_db()
    flt = QueueFilter.from_args(request.args)
    before = parse_cursor(request.args.get("before"))
    limit = clamp_page_size(request.args.get("per_page"))
    rows = queue_page(db, flt, before=before, limit=limit)
    devices = device_choices(db)
    return render_template("console/queue.html", rows=rows, flt=flt, devices=devices,
                           sites=sorted({d["site"] for d in devices if d["site"]}),
                           statuses=STATUSES, before=before,
                           next_cursor=cursor_of(rows[-1]) if len(rows) == limit else None,
                           newest="" if before else (rows[0]["received_at"] if rows else now_iso()))


@bp.route("/sessions.json")
@role_required("clerk")
def queue_json():
    """Queue rows as JSON: ?since=STAMP for arrivals (oldest first), else ?before=CURSOR pages."""
    db = get_db()
    flt = QueueFilter.from_args(request.args)
    since = parse_since(request.args.get("since"))
    rows = queue_page(db, flt, before=parse_cursor(request.args.get("before")), since=since,
                      limit=clamp_page_size(request.args.get("per_page")))
    watched = [i for i in request.args.get("watch", "").split(",") if i][:MAX_PAGE]
    return jsonify({"sessions": [session_json(row) for row in rows],
                    "next": cursor_of(rows[-1]) if rows and not since else None,
                    "statuses": review_statuses(db, watched)})


def review_statuses(db, session_ids):
    """{id: {status, status_label}} for sessions on screen, so a review by another clerk
    shows in every open queue and two clerks do not review the same visit."""
    if not session_ids:
        return {}
    marks = ",".join("?" * len(session_ids))
    rows = db.execute(f"SELECT id, review_status FROM sessions WHERE id IN ({marks})",
                      session_ids)
    return {row["id"]: {"status": row["review_status"], "status_label": label(row["review_status"])}
            for row in rows}


# --- one session: review against the enrolled photo -----------------------------------------

def session_or_404(db, session_id):
    row = db.execute(f"SELECT {_SESSION_COLUMNS} FROM {_SESSION_FROM} WHERE s.id = ?",
                     [session_id]).fetchone()
    if row is None:
        abort(404, t("No such session."))
    return row


@bp.route("/sessions/<session_id>")
@role_required("clerk")
def session_detail(session_id):
    db = get_db()
    row = session_or_404(db, session_id)
    with transaction(db):
        audit_user("session.view", "session", session_id)
    return render_template("console/session.html", s=row,
                           add_templates=bool(get_setting(db, "add_confirmed_templates", False)),
                           threshold=greeting_threshold(db),
                           min_margin=get_setting(db, "policy.margin", Policy.margin))


def greeting_threshold(db):
    """The distance devices accept now: the setting, tightened for the number of citizens
    devices hold (recognition.decision.Policy.threshold_for)."""
    enrolled = db.execute(
        "SELECT count(DISTINCT c.id) FROM citizens c JOIN face_templates t ON t.citizen_id = c.id"
        " WHERE c.removed_at IS NULL AND c.consent = 1").fetchone()[0]
    policy = Policy(threshold=float(get_setting(db, "policy.threshold", Policy.threshold)))
    return policy.threshold_for(enrolled)


@bp.route("/sessions/<session_id>/snapshot")
@role_required("clerk")
def snapshot(session_id):
    """The device's snapshot of the visitor (audited; gone once purged by retention)."""
    db = get_db()
    row = session_or_404(db, session_id)
    if not row["snapshot_path"]:
        abort(404, t("The snapshot was not kept or has been purged."))
    with transaction(db):
        audit_user("session.snapshot.view", "session", session_id)
    return _private_image(current_app.config["SNAPSHOTS_DIR"], row["snapshot_path"])


@bp.route("/citizens/<int:citizen_id>/photo")
@role_required("clerk")
def citizen_photo(citizen_id):
    """The citizen's enrolled photo (audited)."""
    db = get_db()
    row = citizen(db, citizen_id)
    if row is None or not row["photo_path"]:
        abort(404, t("No enrolled photo."))
    with transaction(db):
        audit_user("citizen.photo.view", "citizen", citizen_id)
    return _private_image(current_app.config["PHOTOS_DIR"], row["photo_path"])


def _private_image(folder, relative):
    path = safe_join(folder, relative)
    if path is None or not os.path.isfile(path):
        abort(404, t("The image file is missing."))
    response = send_file(path, mimetype=_image_type(path), max_age=0)
    # Faces are personal data: no copies left in shared browser or proxy caches.
    response.headers["Cache-Control"] = "no-store, private"
    return response


def _image_type(path):
    return "image/png" if path.lower().endswith(".png") else "image/jpeg"


class ReviewRefused(ValueError):
    """A review decision that does not apply to this session (e.g. confirming an unknown visitor)."""


def review_session(db, row, decision, note, user_id, snapshots_dir, add_template):
    """Record a clerk's decision on a session; returns a message about the face template, or "".

    A confirmed match may become an extra face template for the citizen (add_template, the
    admin setting); a rejected one never is, and a template added by an earlier confirmation
    is withdrawn, with a new sync_seq so devices drop it at their next sync.
    """
    status = DECISIONS.get(decision)
    if status is None:
        raise ReviewRefused(t("Choose confirm, reject or close."))
    if status in ("confirmed", "rejected") and row["citizen_id"] is None:
        raise ReviewRefused(t("An unknown visitor has no match to confirm or reject."))
    encoding, message = None, ""
    if status == "confirmed" and add_template:
        encoding, message = _snapshot_template(row, snapshots_dir)
    with transaction(db):
        db.execute("UPDATE sessions SET review_status = ?, reviewed_by = ?, reviewed_at = ?,"
                   " review_note = ? WHERE id = ?",
                   [status, user_id, now_iso(), note, row["id"]])
        withdrawn = _withdraw_templates(db, row) if status == "rejected" else 0
        if encoding is not None:
            _add_template(db, row, encoding)
        audit_user(f"session.{decision}", "session", row["id"],
                   {"note": note, "template_added": encoding is not None,
                    "templates_withdrawn": withdrawn})
    return message


def _snapshot_template(row, snapshots_dir):
    """(encoding, "") from the session's snapshot, or (None, why not)."""
    from recognition.errors import PhotoRejected
    from recognition.images import load_image
    from recognition.quality import enrolment_template
    if row["citizen_removed_at"]:
        return None, t("The citizen has been removed; no template was added.")
    if not row["consent"]:
        return None, t("The citizen has not consented to face templates; none was added.")
    if not row["snapshot_path"]:
        return None, t("No snapshot is kept for this session; no template was added.")
    if _has_session_template(get_db(), row["id"]):
        return None, ""
    try:
        rgb = load_image(safe_join(snapshots_dir, row["snapshot_path"]) or "")
        return enrolment_template(rgb).encoding, t("The snapshot was added as a face template.")
    except PhotoRejected as e:
        return None, t("The snapshot was not added as a face template: {reason}").format(
            reason=e.reason)


def _has_session_template(db, session_id):
    return db.execute("SELECT 1 FROM face_templates WHERE session_id = ?",
                      [session_id]).fetchone() is not None


def _add_template(db, row, encoding):
    from recognition.templates import to_blob
    db.execute("INSERT INTO face_templates (citizen_id, encoding, source, session_id,"
               " created_at) VALUES (?, ?, 'confirmed_session', ?, ?)",
               [row["citizen_id"], to_blob(encoding), row["id"], now_iso()])
    _bump_citizen(db, row["citizen_id"])


def _withdraw_templates(db, row):
    deleted = db.execute("DELETE FROM face_templates WHERE session_id = ?",
                         [row["id"]]).rowcount
    if deleted and row["citizen_id"] is not None:
        _bump_citizen(db, row["citizen_id"])
    return deleted


def _bump_citizen(db, citizen_id):
    db.execute("UPDATE citizens SET sync_seq = ?, updated_at = ? WHERE id = ?",
               [next_sync_seq(db), now_iso(), citizen_id])


@bp.route("/sessions/<session_id>/review", methods=["POST"])
@role_required("clerk")
def review(session_id):
    db = get_db()
    row = session_or_404(db, session_id)
    note = request.form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        raise ApiError(400, t("The note is too long."))
    seen = request.form.get("seen_status")
    if seen and seen != row["review_status"]:
        # another clerk decided while this one was looking: show them that decision first
        flash(t("{user} has already marked this session as {status}. Look again before changing it.")
              .format(user=row["reviewer"] or "?", status=label(row["review_status"])), "error")
        return redirect(url_for("console.session_detail", session_id=session_id))
    try:
        message = review_session(db, row, request.form.get("decision", ""), note, current_user.id,
                                 current_app.config["SNAPSHOTS_DIR"],
                                 bool(get_setting(db, "add_confirmed_templates", False)))
    except ReviewRefused as e:
        flash(str(e), "error")
        return redirect(url_for("console.session_detail", session_id=session_id))
    flash(t("Review saved.") + (" " + message if message else ""), "ok")
    return redirect(url_for("console.session_detail", session_id=session_id))


# --- case files -------------------------------------------------------------------------------

def case_or_404(db, case_id):
    row = db.execute("SELECT * FROM cases WHERE id = ?", [case_id]).fetchone()
    if row is None:
        abort(404, t("No such case."))
    return row


def case_notes(db, case_ids):
    """Notes of the given cases, oldest first, grouped by case id."""
    notes = {case_id: [] for case_id in case_ids}
    if not case_ids:
        return notes
    marks = ",".join("?" * len(case_ids))
    for note in db.execute(
            f"SELECT n.*, u.username FROM case_notes n LEFT JOIN users u ON u.id = n.user_id"
            f" WHERE n.case_id IN ({marks}) ORDER BY n.id", list(case_ids)):
        notes[note["case_id"]].append(note)
    return notes


def recent_sessions(db, citizen_id, limit=20):
    return db.execute(
        f"SELECT {_SESSION_COLUMNS} FROM {_SESSION_FROM} WHERE s.citizen_id = ?"
        " ORDER BY s.received_at DESC LIMIT ?", [citizen_id, limit]).fetchall()


@bp.route("/citizens/<int:citizen_id>/cases")
@role_required("clerk")
def case_file(citizen_id):
    db = get_db()
    person = citizen_or_404(db, citizen_id)
    cases = citizen_cases(db, citizen_id)
    with transaction(db):
        audit_user("casefile.view", "citizen", citizen_id)
    return render_template("console/case_file.html", person=person, cases=cases,
                           notes=case_notes(db, [c["id"] for c in cases]),
                           sessions=recent_sessions(db, citizen_id),
                           case_statuses=CASE_STATUSES)


def _to_case(case):
    """Back to the citizen's case file, scrolled to this case."""
    return redirect(url_for("console.case_file", citizen_id=case["citizen_id"]) + f"#case-{case['id']}")


@bp.route("/cases/<int:case_id>")
@role_required("clerk")
def case_detail(case_id):
    """A case number link lands on its citizen's case file, at that case."""
    row = case_or_404(get_db(), case_id)
    return _to_case(row)


@bp.route("/cases/<int:case_id>/notes", methods=["POST"])
@role_required("clerk")
def add_note(case_id):
    db = get_db()
    row = case_or_404(db, case_id)
    body = request.form.get("body", "").strip()
    if not body or len(body) > MAX_NOTE:
        flash(t("A note needs 1 to 4000 characters."), "error")
    else:
        with transaction(db):
            db.execute("INSERT INTO case_notes (case_id, user_id, body, created_at)"
                       " VALUES (?, ?, ?, ?)", [case_id, current_user.id, body, now_iso()])
            db.execute("UPDATE cases SET updated_at = ? WHERE id = ?", [now_iso(), case_id])
            audit_user("case.note", "case", case_id, {"case_number": row["case_number"]})
        flash(t("Note added."), "ok")
    return _to_case(row)


@bp.route("/cases/<int:case_id>", methods=["POST"])
@role_required("clerk")
def update_case(case_id):
    db = get_db()
    row = case_or_404(db, case_id)
    status = request.form.get("status", row["status"]).strip()
    counter = request.form.get("counter", row["counter"]).strip()
    if status not in CASE_STATUSES and status != row["status"]:
        flash(t("Unknown case status."), "error")
    elif len(counter) > 20:
        flash(t("A counter is at most 20 characters."), "error")
    else:
        _save_case(db, row, status, counter)
        flash(t("Case updated."), "ok")
    return _to_case(row)


def _save_case(db, row, status, counter):
    with transaction(db):
        db.execute("UPDATE cases SET status = ?, counter = ?, updated_at = ? WHERE id = ?",
                   [status, counter, now_iso(), row["id"]])
        audit_user("case.update", "case", row["id"],
                   {"case_number": row["case_number"],
                    "status": [row["status"], status], "counter": [row["counter"], counter]})


# --- dashboard --------------------------------------------------------------------------------

def dashboard_stats(db, day):
    """The day's numbers: sessions per local hour per device, unknown share, median time to
    greet, and the share of reviewed matches that clerks rejected."""
    start, end = day_bounds(day)
    rows = db.execute(
        "SELECT s.received_at, s.outcome, s.time_to_greet, s.review_status, d.name AS device"
        " FROM sessions s JOIN devices d ON d.id = s.device_id"
        " WHERE s.received_at >= ? AND s.received_at < ?", [start, end]).fetchall()
    greeted = [r for r in rows if r["outcome"] == "greeted"]
    times = [r["time_to_greet"] for r in greeted if r["time_to_greet"] is not None]
    reviewed = [r for r in greeted if r["review_status"] in ("confirmed", "rejected")]
    rejected = sum(1 for r in reviewed if r["review_status"] == "rejected")
    return {
        "day": day.isoformat(),
        "total": len(rows),
        "unknown": len(rows) - len(greeted),
        "unknown_share": _share(len(rows) - len(greeted), len(rows)),
        "median_time_to_greet": round(statistics.median(times), 2) if times else None,
        "reviewed": len(reviewed),
        "rejected": rejected,
        "rejected_share": _share(rejected, len(reviewed)),
        "per_hour": _per_hour(rows),
    }


def _share(part, whole):
    return round(part / whole, 4) if whole else None


def _per_hour(rows):
    """{device: [24 counts by local hour]}, devices sorted by name."""
    zone = local_zone()
    counts = {}
    for row in rows:
        hour = parse_stamp(row["received_at"]).astimezone(zone).hour
        counts.setdefault(row["device"], [0] * 24)[hour] += 1
    return dict(sorted(counts.items()))


@bp.route("/dashboard")
@role_required("clerk")
def dashboard():
    day = parse_day(request.args.get("day", "")) or local_today()
    return render_template("console/dashboard.html", stats=dashboard_stats(get_db(), day))


add_translations({
    "Live queue": "实时接待队列",
    "Device": "设备",
    "Site": "网点",
    "Status": "状态",
    "Date": "日期",
    "Unknown visitors only": "仅显示未识别访客",
    "Filter": "筛选",
    "Clear": "清除",
    "All": "全部",
    "Time": "时间",
    "Visitor": "访客",
    "Distance": "距离",
    "Margin": "差距",
    "Liveness": "活体检测",
    "Time to greet": "问候用时",
    "Open": "打开",
    "Older": "更早",
    "Newest": "最新",
    "No sessions match.": "没有符合条件的接待记录。",
    "Updates every few seconds.": "每隔几秒自动更新。",
    "new": "新",
    "Pending review": "待审核",
    "Confirmed": "已确认",
    "Rejected": "已驳回",
    "Closed": "已关闭",
    "Greeted": "已问候",
    "Unknown": "未识别",
    "Passed": "通过",
    "Failed": "未通过",
    "Not run": "未进行",
    "Opened": "已受理",
    "In progress": "处理中",
    "Waiting for documents": "待补材料",
    "Ready": "可办理",
    "Administrator": "管理员",
    "Clerk": "工作人员",
    "Kiosk": "自助机",
    "Robot": "机器人",
    "Total sessions": "接待总数",
    "Unknown visitor": "未识别访客",
    "Session": "接待记录",
    "Device snapshot": "设备抓拍",
    "Enrolled photo": "登记照片",
    "No snapshot (not kept or purged).": "无抓拍（未保存或已按保留期限清除）。",
    "No enrolled photo.": "没有登记照片。",
    "Name": "姓名",
    "ID number": "身份证号",
    "Received": "接收时间",
    "Started": "开始时间",
    "Ticket": "排队号",
    "Reviewed by": "审核人",
    "Review note": "审核备注",
    "Note": "备注",
    "Review": "审核",
    "Confirm match": "确认匹配",
    "Not this person": "不是此人",
    "Close session": "关闭记录",
    "Confirmed matches are added as face templates (admin setting).":
        "确认的匹配会作为新的人脸模板加入（管理员设置）。",
    "Open case file": "打开案卷",
    "Review saved.": "审核已保存。",
    "{user} has already marked this session as {status}. Look again before changing it.":
        "{user} 已将此记录标记为“{status}”。请先查看再更改。",
    "Choose confirm, reject or close.": "请选择确认、驳回或关闭。",
    "An unknown visitor has no match to confirm or reject.": "未识别访客没有可确认或驳回的匹配。",
    "The citizen has been removed; no template was added.": "该市民已被删除，未添加模板。",
    "The citizen has not consented to face templates; none was added.": "该市民未同意保存人脸模板，未添加。",
    "at most": "上限",
    "at least": "下限",
    "No snapshot is kept for this session; no template was added.": "此记录没有保存抓拍，未添加模板。",
    "The snapshot was added as a face template.": "抓拍已加入为人脸模板。",
    "The snapshot was not added as a face template: {reason}": "抓拍未加入为人脸模板：{reason}",
    "The note is too long.": "备注太长。",
    "No such session.": "没有此接待记录。",
    "No such citizen.": "没有此市民。",
    "No such case.": "没有此案件。",
    "The snapshot was not kept or has been purged.": "抓拍未保存或已清除。",
    "The image file is missing.": "图像文件缺失。",
    "Dates are written YYYY-MM-DD.": "日期格式为 YYYY-MM-DD。",
    "That date is out of range.": "日期超出范围。",
    "Unknown status filter.": "未知的状态筛选。",
    "Unknown device filter.": "未知的设备筛选。",
    "Malformed page cursor.": "分页参数格式错误。",
    "Case file": "案卷",
    "Cases": "案件",
    "Case": "案件",
    "Type": "类型",
    "Summary": "摘要",
    "Counter": "窗口",
    "Appointment": "预约时间",
    "Notes": "备注记录",
    "No notes yet.": "暂无备注。",
    "Add note": "添加备注",
    "Save": "保存",
    "No cases on file.": "没有案件。",
    "Recent sessions": "最近接待记录",
    "Phone": "电话",
    "Language": "语言",
    "Citizen record": "市民档案",
    "Note added.": "备注已添加。",
    "Case updated.": "案件已更新。",
    "A note needs 1 to 4000 characters.": "备注需为 1 至 4000 个字符。",
    "Unknown case status.": "未知的案件状态。",
    "A counter is at most 20 characters.": "窗口号最多 20 个字符。",
    "Sessions per hour per device": "各设备每小时接待量",
    "Hour": "小时",
    "Total": "合计",
    "Unknown visitors": "未识别访客",
    "Median time to greet": "问候用时中位数",
    "Matches rejected by clerks": "被工作人员驳回的匹配",
    "reviewed": "已审核",
    "Show": "显示",
    "No sessions on this day.": "当天没有接待记录。",
    "seconds": "秒",
    "Numbers": "数据",
})
