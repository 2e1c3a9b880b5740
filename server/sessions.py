"""Session rows as the clerk console reads them: one visit with its device, citizen and
reviewer, and what the registry saw of it (its tries, its second factor)."""
import json

from flask import abort, current_app

from .i18n import N_, label, reason, t
from .privacy import mask

COLUMNS = """s.id, s.device_id, s.citizen_id, s.outcome, s.distance, s.margin,
    s.time_to_greet, s.liveness, s.snapshot_path, s.started_at, s.received_at, s.review_status,
    s.reviewed_by, s.reviewed_at, s.review_note, s.ticket_number, s.case_opened_at,
    s.candidates, s.refused_by, s.identified_by, s.face_model, s.snapshot_distance,
    s.factor_failures, s.factor_passed_at,
    d.name AS device_name, d.kind AS device_kind, d.site AS site,
    c.name AS citizen_name, c.id_number AS id_number, c.photo_path AS photo_path,
    c.removed_at AS citizen_removed_at, c.consent AS consent, c.factor_locked_at AS factor_locked_at,
    u.username AS reviewer"""
FROM = """sessions s JOIN devices d ON d.id = s.device_id
    LEFT JOIN citizens c ON c.id = s.citizen_id LEFT JOIN users u ON u.id = s.reviewed_by"""


def session_or_404(db, session_id):
    row = db.execute(f"SELECT {COLUMNS} FROM {FROM} WHERE s.id = ?", [session_id]).fetchone()
    if row is None:
        abort(404, t("No such session."))
    return row


def recent_sessions(db, citizen_id, limit=20):
    return db.execute(f"SELECT {COLUMNS} FROM {FROM} WHERE s.citizen_id = ?"
                      " ORDER BY s.received_at DESC LIMIT ?", [citizen_id, limit]).fetchall()


# What a visit tried, from the audit log: a case file refused, a blink reported, an ID number
# typed (masked when it was written), phone digits wrong. The log holds every try with the
# registry's verdict; the session row only the last state.
VISIT_ACTIONS = ("session.liveness", "identify.match", "identify.no_match", "casefile.refused")
REFUSALS = {   # casefile.CaseFileRefused's reasons, for a clerk
    "citizen_gone": N_("the citizen is no longer in the registry"),
    "liveness_not_passed": N_("the blink had not passed"),
    "no_snapshot": N_("the visit had no snapshot"),
    "not_greeted": N_("nobody was greeted"),
    "other_citizen": N_("asked for another citizen's file"),
    "other_site": N_("the citizen is not one of this site's"),
    "session_too_old": N_("the visit was too old"),
    "snapshot_not_citizen": N_("the snapshot does not show this citizen"),
}


def visit_tries(db, row):
    """Every try of the visit, oldest first, as dicts: at, action (its label), what (words:
    the masked ID number and distances, a refusal's reason, a blink's verdict), ok."""
    entries = db.execute(
        "SELECT at, id, action, detail FROM audit_log WHERE target_type = 'session' AND target_id = ?"
        f" AND action IN ({', '.join('?' * len(VISIT_ACTIONS))})"
        " UNION ALL SELECT at, id, action, detail FROM audit_log WHERE target_type = 'citizen'"
        " AND target_id = ? AND at >= ? AND detail LIKE ?"
        " AND action IN ('casefile.open', 'casefile.details', 'casefile.second_factor_failed')"
        " ORDER BY at, id",
        [row["id"], *VISIT_ACTIONS, str(row["citizen_id"] or ""), row["received_at"],
         f'%"session_id": "{row["id"]}"%']).fetchall()
    # the citizen's entries name the session in their detail: matched as text (bounded by
    # the visit's time), then read back, so a lookalike text in another field never counts
    return [_try(action, at, detail) for at, action, detail in
            ((at, action, _detail(text)) for at, _id, action, text in entries)
            if detail.get("session_id", row["id"]) == row["id"]]


def _detail(text):
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _try(action, at, detail):
    ok, what, distance = True, "", None
    if action in ("identify.match", "identify.no_match"):
        ok, distance = action == "identify.match", _finite(detail.get("distance"))
        # t() outside the f-strings: pybabel does not read into one
        id_word, distance_word, at_most = t("ID number"), t("distance"), t("at most")
        what = f"{id_word} {_text(detail.get('id_number'))} · {distance_word} " \
               f"{_number(detail.get('distance'))} ({at_most} {_number(detail.get('threshold'))})"
        if "snapshot_distance" in detail:
            what += " · " + t("snapshot") + " " + _number(detail["snapshot_distance"])
    elif action == "session.liveness":
        ok = detail.get("result") == "passed"
        what = label(_text(detail.get("result"))) + (f": {reason(_text(detail['refused']))}"
                                                     if detail.get("refused") else "")
    elif action == "casefile.refused":
        code = _text(detail.get("reason"))
        ok, what = False, t(REFUSALS.get(code, code))
    elif action == "casefile.second_factor_failed":
        ok, what = False, t("wrong digits, try {0}").format(_text(detail.get("failures")))
    elif action == "casefile.details":
        what = t("the phone digits passed: the case details were shown")
    return {"at": at, "action": label(action), "what": what, "ok": ok, "distance": distance}


def _text(value):
    """A value a device sent, as text for a page (it may be anything)."""
    return "" if value is None else str(value)[:80]


def _finite(value):
    """A distance as the log holds it (a number, or "inf" and the like), or None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e6
    return float(value) if ok else None


def _number(value):
    return "—" if _finite(value) is None else "%.3f" % value


def second_factor(row, required):
    """The visit's phone-digit check in words: passed, locked, wrong tries, or not asked."""
    tries = current_app.config["SECOND_FACTOR_TRIES"]
    failures = row["factor_failures"] or 0
    if row["factor_passed_at"]:
        return {"state": "passed", "text": t("Passed") + (
            " (" + t("after {0} wrong").format(failures) + ")" if failures else "")}
    if failures >= tries:
        return {"state": "locked", "text": t("Locked after {0} wrong tries").format(failures)}
    if row["factor_locked_at"]:     # the citizen's day of wrong tries, over every visit
        return {"state": "locked", "text": t("Locked for the citizen until a clerk unlocks it")}
    if failures:
        return {"state": "failed", "text": t("{0} wrong tries, not passed").format(failures)}
    if not required:
        return {"state": "off", "text": t("Not asked (the second factor is off)")}
    return {"state": "none", "text": t("Not tried")}
