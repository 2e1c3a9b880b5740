"""Queue tickets: issued to a visit by its device, listed and called by clerks.

    POST /api/v1/sessions/<id>/ticket      (device) -> {"ticket_number": "007", "counter": "3", ...}
    GET  /console/tickets                  (clerk)  today's tickets of a site, with their sessions
                                                    and counters (?counter= picks the clerk's)
    POST /console/tickets/call-next        (clerk)  call the lowest ticket not called yet of the
                                                    clerk's counter

Numbers run per site per day ("001", "002", ...). A visit keeps its number: a retried request
gets the same one. The answer names the counter of the citizen's case that is ready (or booked)
so the kiosk and the robot can send them there, once their case file was opened; otherwise the
counter is "" (the general desk). The ticket keeps the counter it named (sessions.ticket_counter):
the clerk at that counter calls it, and a clerk at another counter never does.
"""
from datetime import date, datetime, time, timedelta

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user

from db import now_iso, transaction

from .auth import audit_user, guard
from .casefile import CaseFileRefused, check_recent, own_session
from .database import get_db
from .devices import audit_device, device_required
from .errors import ApiError
from .i18n import t
from .times import local_today, local_zone, localtime, utc_stamp
from .vocabulary import MAX_COUNTER

api_bp = Blueprint("ticket_api", __name__, url_prefix="/api/v1")
bp = Blueprint("tickets", __name__, url_prefix="/console")

MAX_TICKETS_SHOWN = 500     # a busy hall issues a few hundred a day


# --- issuing (the device) -------------------------------------------------------------------

def issue_ticket(db, session_id, site, day, counter=""):
    """The session's ticket number, issued now if it has none: sequential per site per day,
    written with the session in one transaction so a retried request gets the same number.
    counter: where the visitor is sent, kept with the ticket; a retry before the ticket is
    called takes the counter its answer names (the case file may have opened since)."""
    with transaction(db):
        # locked until the end: two retries of one visit in two server processes get one number
        row = db.execute("SELECT ticket_number, ticket_counter, ticket_called_at FROM sessions"
                         " WHERE id = ?" + db.for_update, [session_id]).fetchone()
        if row["ticket_number"]:
            if row["ticket_counter"] != counter and not row["ticket_called_at"]:
                db.execute("UPDATE sessions SET ticket_counter = ? WHERE id = ?", [counter, session_id])
            return row["ticket_number"], False
        db.execute("INSERT INTO tickets (site, day, last_number) VALUES (?, ?, 1)"
                   " ON CONFLICT(site, day) DO UPDATE SET last_number = tickets.last_number + 1",
                   [site, day])
        number = db.execute("SELECT last_number FROM tickets WHERE site = ? AND day = ?",
                            [site, day]).fetchone()[0]
        ticket = f"{number:03d}"
        db.execute("UPDATE sessions SET ticket_number = ?, ticket_site = ?, ticket_day = ?,"
                   " ticket_issued_at = ?, ticket_counter = ? WHERE id = ?",
                   [ticket, site, day, now_iso(), counter, session_id])
        audit_device("ticket.issue", "session", session_id,
                     {"ticket_number": ticket, "site": site, "counter": counter})
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
    # A citizen's counter says which case is ready: only once the server opened their case
    # file (liveness, its own look at the snapshot); a device's bare claim gets the general desk.
    counter = counter_for(db, row["citizen_id"], today) if row["case_opened_at"] else ""
    number, created = issue_ticket(db, row["id"], g.device["site"], today.isoformat(), counter)
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
        "SELECT s.id AS session_id, s.ticket_number, s.ticket_counter, s.ticket_issued_at,"
        " s.ticket_called_at,"
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


def counters(db, site, day, mine=None):
    """The counters a clerk can be at: every counter cases are handled at, any a ticket of the
    day named, and the clerk's own; the general desk ("") first."""
    named = {r[0] for r in db.execute("SELECT DISTINCT counter FROM cases WHERE counter <> ''")}
    named |= {r[0] for r in db.execute("SELECT DISTINCT ticket_counter FROM sessions"
                                       " WHERE ticket_day = ? AND ticket_site = ?", [day, site])}
    named |= {mine} if mine else set()
    return [""] + sorted(named - {""}, key=lambda c: (len(c), c))


def call_next(db, site, day, counter, user_id):
    """Mark the first ticket of `counter` ("" the general desk) not called yet as called; its
    row, or None when none waits there. Numbers are issued in order: the lowest is the oldest."""
    with transaction(db):
        # two clerks of one counter pressing at once call two tickets, not one ticket twice
        db.lock(f"tickets.call:{site}")
        row = db.execute("SELECT id, ticket_number FROM sessions WHERE ticket_day = ? AND ticket_site = ?"
                         " AND ticket_counter = ? AND ticket_called_at IS NULL"
                         " ORDER BY LENGTH(ticket_number), ticket_number LIMIT 1",
                         [day, site, counter]).fetchone()
        if row is None:
            return None
        db.execute("UPDATE sessions SET ticket_called_at = ?, ticket_called_by = ? WHERE id = ?",
                   [now_iso(), user_id, row["id"]])
        audit_user("ticket.call", "session", row["id"], {"ticket_number": row["ticket_number"],
                                                         "site": site, "counter": counter})
    return row


# The general desk in forms and links ("" would read as "not chosen"); never a case's counter.
GENERAL_DESK = "-"


def counter_value(text):
    """A counter from a form or link: None when none was chosen, "" for the general desk."""
    text = (text or "").strip()
    if not text:
        return None
    return "" if text == GENERAL_DESK else text[:MAX_COUNTER]


def clerk_counter():
    """The counter this clerk works at: chosen on the page (?counter=), kept for their sign-in."""
    chosen = counter_value(request.args.get("counter"))
    if chosen is not None:
        session["ticket_counter"] = chosen
    return session.get("ticket_counter")


def day_label(day):
    """A day as every console page writes dates (the localtime filter's date, without a clock)."""
    noon = datetime.combine(date.fromisoformat(day), time(12), tzinfo=local_zone())
    return localtime(utc_stamp(noon)).rsplit(" ", 1)[0]


@bp.route("/tickets", endpoint="index")
def tickets_page():
    db = get_db()
    day = local_today().isoformat()
    sites = ticket_sites(db, day)
    site = request.args.get("site") or (sites[0] if sites else "")
    rows = todays_tickets(db, site, day) if site else []
    mine = clerk_counter()
    waiting = [r for r in rows if not r["ticket_called_at"]]
    waiting_at = {}
    for r in waiting:
        waiting_at[r["ticket_counter"]] = waiting_at.get(r["ticket_counter"], 0) + 1
    return render_template("console/tickets.html", day=day, day_label=day_label(day), sites=sites,
                           site=site, rows=rows, waiting=len(waiting), waiting_at=waiting_at,
                           counters=counters(db, site, day, mine) if site else [], mine=mine,
                           general_desk=GENERAL_DESK)


@bp.route("/tickets/call-next", methods=["POST"])
def tickets_call_next():
    site = request.form.get("site", "").strip()
    if not site:
        raise ApiError(400, t("Choose a site."))
    counter = counter_value(request.form.get("counter"))
    if counter is None:
        flash(t("Choose your counter first."), "error")
        return redirect(url_for("tickets.index", site=site))
    session["ticket_counter"] = counter
    row = call_next(get_db(), site, local_today().isoformat(), counter, current_user.id)
    where = t("General service desk") if counter == "" else t("Counter {counter}").format(counter=counter)
    if row is None:
        flash(t("No ticket is waiting for {where}.").format(where=where), "info")
    else:
        flash(t("Calling ticket {number} to {where}.").format(number=row["ticket_number"], where=where),
              "ok")
    return redirect(url_for("tickets.index", site=site))
