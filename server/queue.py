"""The clerk console's live queue of sessions, with filters, keyset pages and a JSON poller.

The queue reads a table that grows by every visit (a million rows is a normal year), so every
page is a keyset page on (received_at, id) walked through an index, never OFFSET or COUNT(*).
Clerks and admins only.
"""
import heapq
from dataclasses import dataclass
from datetime import date

from flask import Blueprint, jsonify, render_template, request, url_for

from db import now_iso

from . import sessions
from .auth import guard
from .database import get_db
from .errors import ApiError
from .i18n import label, t
from .requests import PAGE_SIZE, MAX_PAGE, clamp_page_size, parse_day, parse_row_id
from .times import day_bounds, localtime, parse_stamp

bp = Blueprint("queue", __name__, url_prefix="/console")
STATUSES = ("pending", "confirmed", "rejected", "closed")
guard(bp, "clerk")   # every view: the role is checked before it runs


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
    return (f"SELECT {sessions.COLUMNS} FROM {sessions.FROM} WHERE {' AND '.join(where) or '1 = 1'}"
            f" ORDER BY s.received_at {order}, s.id {order} LIMIT ?")


def _page(db, where, params, descending, limit):
    return db.execute(_page_sql(where, descending), params + [limit]).fetchall()


def session_json(row):
    """One queue row for the live poller: what the table shows, nothing more."""
    return {
        "id": row["id"], "url": url_for("review.session_detail", session_id=row["id"]),
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


@bp.route("/", endpoint="index")
def index():
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


@bp.route("/sessions.json", endpoint="json")
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
