"""Case files for clerks: a citizen's cases with notes, status and counter, and recent visits.

Opening a case file is audited; so is every note and change.
"""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from db import now_iso, transaction
from db.queries import citizen_cases

from .auth import audit_user, guard
from .citizens import citizen_or_404
from .database import get_db
from .i18n import label, t
from .sessions import recent_sessions
from .vocabulary import CASE_STATUSES, normalise_counter

bp = Blueprint("cases", __name__, url_prefix="/console")
MAX_NOTE = 4000
guard(bp, "clerk")   # every view: the role is checked before it runs


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


@bp.route("/citizens/<int:citizen_id>/cases")
def case_file(citizen_id):
    db = get_db()
    person = citizen_or_404(db, citizen_id, removed_too=True)
    cases = citizen_cases(db, citizen_id)
    with transaction(db):
        audit_user("casefile.view", "citizen", citizen_id)
    return render_template("console/case_file.html", person=person, cases=cases,
                           notes=case_notes(db, [c["id"] for c in cases]),
                           sessions=recent_sessions(db, citizen_id),
                           case_statuses=CASE_STATUSES)


def _to_case(case):
    """Back to the citizen's case file, scrolled to this case."""
    return redirect(url_for("cases.case_file", citizen_id=case["citizen_id"]) + f"#case-{case['id']}")


@bp.route("/cases/<int:case_id>")
def detail(case_id):
    """A case number link lands on its citizen's case file, at that case."""
    row = case_or_404(get_db(), case_id)
    return _to_case(row)


@bp.route("/cases/<int:case_id>/notes", methods=["POST"])
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
def update(case_id):
    db = get_db()
    row = case_or_404(db, case_id)
    status = request.form.get("status", row["status"]).strip()
    try:
        counter = normalise_counter(request.form.get("counter", row["counter"] or ""))
    except ValueError:
        counter = None
    if status not in CASE_STATUSES and status != row["status"]:
        flash(t("Unknown case status."), "error")
    elif counter is None:
        flash(t("A counter is a number like 11 or a code like A3."), "error")
    elif _save_case(db, row, status, counter, _seen(request.form, row)):
        flash(t("Case updated."), "ok")
    elif (current := case_or_404(db, case_id))["status"] == status and current["counter"] == counter:
        flash(t("Case updated."), "ok")    # the same save sent twice (a double click): it stands
    else:
        flash(t("Another clerk changed this case while you were looking (now {status}, counter"
                " {counter}). Nothing was saved; look again before changing it.").format(
                    status=label(current["status"]), counter=current["counter"] or "—"), "error")
    return _to_case(row)


def _seen(form, row):
    """(status, counter) as the clerk's page showed them; a form without them (an older page,
    a script) is taken to have seen what is stored now."""
    return form.get("seen_status", row["status"]), form.get("seen_counter", row["counter"])


def _save_case(db, row, status, counter, seen):
    """Save status and counter only if they are still what the clerk saw (compare and set in
    the UPDATE itself): two clerks on one case, the later save silently undid the earlier."""
    with transaction(db):
        saved = db.execute("UPDATE cases SET status = ?, counter = ?, updated_at = ?"
                           " WHERE id = ? AND status = ? AND counter = ?",
                           [status, counter, now_iso(), row["id"], *seen]).rowcount
        if saved:
            audit_user("case.update", "case", row["id"],
                       {"case_number": row["case_number"],
                        "status": [seen[0], status], "counter": [seen[1], counter]})
    return bool(saved)
