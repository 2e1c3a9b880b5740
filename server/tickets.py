"""Queue tickets: issued to a visit by its device, listed and called by clerks.

    POST /api/v1/sessions/<id>/ticket      (device) -> {"ticket_number": "007", "counter": "3", ...}
    GET  /console/tickets                  (clerk)  today's tickets of a site, with their sessions
    POST /console/tickets/call-next        (clerk)  call the lowest ticket not called yet

Numbers run per site per day ("001", "002", ...). A visit keeps its number: a retried request
gets the same one. The answer names the counter of the citizen's case that is ready (or booked)
so the kiosk and the robot can send them there, once their case file was opened; otherwise the
counter is "" (the general desk).
"""
from datetime import date, timedelta

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from db import now_iso, transaction

from .auth import audit_user, guard
from .casefile import CaseFileRefused, check_recent, own_session
from .database import get_db
from .devices import audit_device, device_required
from .errors import ApiError
from .i18n import t
from .times import local_today

api_bp = Blueprint("ticket_api", __name__, url_prefix="/api/v1")
bp = Blueprint("tickets", __name__, url_prefix="/console")

MAX_TICKETS_SHOWN = 500     # a busy hall issues a few hundred a day


# --- issuing (the device) -------------------------------------------------------------------

def issue_ticket(db, session_id, site, day):
    """The session's ticket number, issued now if it has none: sequential per site per day,
    written with the session in one transaction so a retried request gets the same number."""
    with transaction(db):
        # locked until the end: two retries of one visit in two server processes get one number
        row = db.execute("SELECT ticket_number FROM sessions WHERE id = ?" + db.for_update,
                         [session_id]).fetchone()
        if row["ticket_number"]:
            return row["ticket_number"], False
        db.execute("INSERT INTO tickets (site, day, last_number) VALUES (?, ?, 1)"
                   " ON CONFLICT(site, day) DO UPDATE SET last_number = tickets.last_number + 1",
                   [site, day])
        number = db.execute("SELECT last_number FROM tickets WHERE site = ? AND day = ?",
                            [site, day]).fetchone()[0]
        ticket = f"{number:03d}"
        db.execute("UPDATE sessions SET ticket_number = ?, ticket_site = ?, ticket_day = ?,"
                   " ticket_issued_at = ? WHERE id = ?", [ticket, site, day, now_iso(), session_id])
        audit_device("ticket.issue", "session", session_id, {"ticket_number": ticket, "site": site})
    return ticket, True


def day_range(day):
    """["YYYY-MM-DD", "YYYY-MM-DD + 1") of a day, for local appointment stamps."""
    return day.isoformat(), (day + timedelta(days=1)).isoformat()


def counter_for(db, citizen_id, day):
    """The counter to send a citizen to: today's appointment's, else a ready case's, else the
    earliest booked one's."""
    if citizen_id is None:
        return ""
    start, end = day_range(day)
    row = db.execute(
        "SELECT counter FROM cases WHERE citizen_id = ? AND counter IS NOT NULL AND counter <> ''"
        " AND status IN ('ready', 'open', 'in_progress', 'waiting_documents')"
        " ORDER BY CASE WHEN appointment_at >= ? AND appointment_at < ? THEN 0"
        " WHEN status = 'ready' THEN 1 ELSE 2 END,"
        " CASE WHEN appointment_at IS NULL THEN 1 ELSE 0 END, appointment_at, id LIMIT 1",
        [citizen_id, start, end]).fetchone()
    return row[0] if row else ""


@api_bp.route("/sessions/<session_id>/ticket", methods=["POST"])
@device_required
def ticket(session_id):
    db = get_db()
    row = own_session(db, session_id)
    if not row["ticket_number"]:
        try:
            check_recent(row)
        except CaseFileRefused as refused:
            raise ApiError(refused.status, refused.message)
    today = local_today()
    number, created = issue_ticket(db, row["id"], g.device["site"], today.isoformat())
    # A citizen's counter says which case is ready: only once the server opened their case
    # file (liveness, its own look at the snapshot); a device's bare claim gets the general desk.
    counter = counter_for(db, row["citizen_id"], today) if row["case_opened_at"] else ""
    return jsonify({"session_id": row["id"], "ticket_number": number, "site": g.device["site"],
                    "day": today.isoformat(), "counter": counter}), 201 if created else 200


# --- the clerks' list -----------------------------------------------------------------------

guard(bp, "clerk")


# The citizen's first appointment of the day, if they have one (the clerk sees who came for it).
APPOINTMENT = ("(SELECT {field} FROM cases a WHERE a.citizen_id = s.citizen_id"
               " AND a.appointment_at >= ? AND a.appointment_at < ?"
               " ORDER BY a.appointment_at, a.id LIMIT 1)")


def todays_tickets(db, site, day):
    """The day's tickets at a site, in issue order, with their session, citizen, and the
    appointment of the day they came for."""
    start, end = day_range(date.fromisoformat(day))
    return db.execute(
        "SELECT s.id AS session_id, s.ticket_number, s.ticket_issued_at, s.ticket_called_at,"
        " s.outcome, s.liveness, s.case_opened_at, s.identified_by, c.name AS citizen_name,"
        " d.name AS device, u.username AS called_by, "
        + APPOINTMENT.format(field="a.appointment_at") + " AS appointment_at, "
        + APPOINTMENT.format(field="a.case_number") + " AS appointment_case, "
        + APPOINTMENT.format(field="a.counter") + " AS appointment_counter"
        " FROM sessions s JOIN devices d ON d.id = s.device_id"
        " LEFT JOIN citizens c ON c.id = s.citizen_id LEFT JOIN users u ON u.id = s.ticket_called_by"
        " WHERE s.ticket_day = ? AND s.ticket_site = ?"
        " ORDER BY LENGTH(s.ticket_number), s.ticket_number LIMIT ?",
        [start, end, start, end, start, end, day, site, MAX_TICKETS_SHOWN]).fetchall()


def ticket_sites(db, day):
    return [r[0] for r in db.execute("SELECT DISTINCT ticket_site FROM sessions WHERE ticket_day = ?"
                                     " ORDER BY ticket_site", [day]).fetchall()]


def call_next(db, site, day, user_id):
    """Mark the first ticket not called yet as called; its row, or None when none waits."""
    with transaction(db):
        row = db.execute("SELECT id, ticket_number FROM sessions WHERE ticket_day = ? AND ticket_site = ?"
                         " AND ticket_called_at IS NULL"
                         " ORDER BY LENGTH(ticket_number), ticket_number LIMIT 1",
                         [day, site]).fetchone()
        if row is None:
            return None
        db.execute("UPDATE sessions SET ticket_called_at = ?, ticket_called_by = ? WHERE id = ?",
                   [now_iso(), user_id, row["id"]])
        audit_user("ticket.call", "session", row["id"], {"ticket_number": row["ticket_number"],
                                                         "site": site})
    return row


@bp.route("/tickets", endpoint="index")
def tickets_page():
    db = get_db()
    day = local_today().isoformat()
    sites = ticket_sites(db, day)
    site = request.args.get("site") or (sites[0] if sites else "")
    rows = todays_tickets(db, site, day) if site else []
    waiting = sum(1 for r in rows if not r["ticket_called_at"])
    return render_template("console/tickets.html", day=day, sites=sites, site=site, rows=rows,
                           waiting=waiting)


@bp.route("/tickets/call-next", methods=["POST"])
def tickets_call_next():
    site = request.form.get("site", "").strip()
    if not site:
        raise ApiError(400, t("Choose a site."))
    row = call_next(get_db(), site, local_today().isoformat(), current_user.id)
    if row is None:
        flash(t("No ticket is waiting."), "info")
    else:
        flash(t("Calling ticket {number}.").format(number=row["ticket_number"]), "success")
    return redirect(url_for("tickets.index", site=site))
