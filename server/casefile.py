"""Opening a citizen's case file from a device, after liveness: the citizen-safe summary.

A kiosk or robot that greeted a citizen may open that citizen's case file, and only then:

    POST /api/v1/sessions/<id>/liveness   {"result": "passed"|"failed", "t": seconds}
    POST /api/v1/sessions/<id>/casefile   {"citizen_key": K}  -> open cases, citizen-safe
    POST /api/v1/sessions/<id>/casefile/details  {"phone_last4": "1234"}  -> case details

The server is the one to check: the session must be this device's, recent, for this
citizen, with liveness passed. The summary holds no ID number, no phone and no notes: it is
shown on a screen in a public hall. Details (case summaries) need a second factor when the
deployment's "second_factor" setting is on: the last four digits of the phone on file, with
a wait after each wrong try and a lock for the session after a few. Every opening, every
refusal and every second-factor try writes an audit entry.
"""
import logging
from datetime import datetime, timedelta, timezone

from flask import Blueprint, current_app, g, jsonify, request

from db import now_iso, transaction
from db.queries import citizen

from . import evidence, faces, settings
from .api import device_session
from .database import get_db
from . import limits
from .devices import audit_device, device_actor, device_required
from .calibration import one_to_one_threshold
from .facecheck import FaceBusy, snapshot_distance, start_snapshot
from .gallery import device_scope, in_scope
from .errors import ApiError, error_body
from .i18n import N_
from .times import utc_stamp

log = logging.getLogger(__name__)

bp = Blueprint("casefile", __name__, url_prefix="/api/v1")

SUMMARY_FIELDS = ("case_number", "type", "status", "counter", "appointment_at")
DETAIL_FIELDS = SUMMARY_FIELDS + ("summary", "updated_at")
FULL_WIDTH_DIGITS = {0xFF10 + i: str(i) for i in range(10)}  # "０".."９"
REPLAYED = N_("the crops were sent for another visit")
TOO_MANY_PASSES = N_("more blinks this month than the registry checks for replays; please see a clerk")


class CaseFileRefused(Exception):
    """The case file may not open for this session; `reason` is a short code for the audit."""

    def __init__(self, status, reason, message):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class FactorWrong(Exception):
    """Wrong digits; `tries_left` before the lock."""

    def __init__(self, tries_left):
        super().__init__(f"wrong digits; {tries_left} tries left")
        self.tries_left = tries_left


def _parse_stamp(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# --- the checks -------------------------------------------------------------------------------

def own_session(db, session_id):
    """This device's session, or 404 (another device's session is not found, not forbidden)."""
    row = device_session(db, session_id, g.device["id"])
    if row is None:
        raise ApiError(404, "no such session from this device")
    return row


def check_recent(row, now=None):
    """Refuse a visit that is not live: a case file opens only within
    CASEFILE_SESSION_MAX_AGE_S of the visit, by the server's clock (when the session reached
    it, and when the device says it began: a device cannot make an old visit new)."""
    now = now or datetime.now(timezone.utc)
    max_age = current_app.config["CASEFILE_SESSION_MAX_AGE_S"]
    received, started = _parse_stamp(row["received_at"]), _parse_stamp(row["started_at"])
    if now - received > timedelta(seconds=max_age) or now - started > timedelta(seconds=max_age):
        raise CaseFileRefused(403, "session_too_old",
                              f"the session started more than {max_age} seconds ago; greet again")


def check_opening(db, row, citizen_id):
    """All that must hold before a case file opens; returns the citizen row."""
    if row["outcome"] != "greeted" or row["citizen_id"] is None:
        raise CaseFileRefused(403, "not_greeted", "the session did not greet a citizen")
    if citizen_id != row["citizen_id"]:
        raise CaseFileRefused(403, "other_citizen", "the session is for another citizen")
    check_recent(row)
    if row["liveness"] != "passed":
        raise CaseFileRefused(403, "liveness_not_passed",
                              "liveness has not passed for this session")
    if not row["snapshot_path"]:
        # the clerk must be able to see who was there when a case file was opened
        raise CaseFileRefused(403, "no_snapshot", "the session has no snapshot of the visitor")
    person = citizen(db, citizen_id)
    if person is None or not person["consent"]:
        raise CaseFileRefused(404, "citizen_gone", "no such citizen")
    if not in_scope(person["district"], device_scope(db, g.device["site"])):
        raise CaseFileRefused(403, "other_site", N_("the citizen is not one of this site's"))
    if snapshot_distance(db, row, citizen_id) > one_to_one_threshold(db):
        # the device's word is not enough: the server's own look at the visitor disagrees.
        # The 1:1 distance, not the device's looser greeting distance for a small gallery:
        # on dlib's prior (0.50 then) another East-Asian person's photo at 0.46-0.48 opened a
        # case file. A citizen whose best frame falls between the two sees a clerk.
        raise CaseFileRefused(403, "snapshot_not_citizen",
                              "the snapshot does not show this citizen; please see a clerk")
    return person


def _refuse(db, row, refused):
    """Audit the refusal and answer it."""
    with transaction(db):
        audit_device("casefile.refused", "session", row["id"],
                     {"reason": refused.reason, "citizen_id": row["citizen_id"]})
    raise ApiError(refused.status, refused.message)


# --- what the device may show -----------------------------------------------------------------

def open_cases(db, citizen_id, fields=SUMMARY_FIELDS):
    """The citizen's cases that are not closed, with only `fields`."""
    rows = db.execute("SELECT * FROM cases WHERE citizen_id = ? AND status != 'closed'"
                      " ORDER BY appointment_at = '', appointment_at, case_number",
                      [citizen_id]).fetchall()
    return [{key: row[key] for key in fields} for row in rows]


def second_factor_on(db):
    return bool(settings.value(db, "second_factor"))


def citizen_summary(db, person, session_id):
    """The citizen-safe case file: display name, language and open cases. No ID number,
    no phone, no notes, no case summaries."""
    return {"session_id": session_id, "citizen_key": person["key"], "name": person["name"],
            "language": person["language"], "cases": open_cases(db, person["id"]),
            "second_factor": second_factor_on(db)}


# --- liveness ---------------------------------------------------------------------------------

def record_liveness(db, row, result, t, crops=None):
    """Set the session's liveness once. The same report again changes nothing; a different
    one is refused, so a failed challenge cannot be turned into a pass by asking again. A
    pass counts only when the server sees the blink in its evidence (server/evidence.py);
    evidence that does not show one makes the visit's liveness failed, for good."""
    if row["liveness"] == result:
        return False
    if row["liveness"] != "not_run":
        raise ApiError(409, f"liveness was already reported as {row['liveness']}")
    kept, refused, reported, seen, read = (None, None), None, result, None, 0
    if result == "passed":
        try:
            kept, seen = _seen_blink(db, row, crops)
        except evidence.EvidenceRefused as e:
            result, refused = "failed", e.reason
    if seen is not None:
        replayed, read = _crops_seen_before(db, row, seen)
        if replayed:
            kept, result, refused, seen = (None, None), "failed", replayed, None
    with transaction(db):
        replayed = seen is not None and _crops_seen_before(db, row, seen, after=read, locked=True)[0]
        if replayed:
            kept, result, refused = (None, None), "failed", replayed
        # Set and audited once: a copy of this report sent again while this one was examined
        # (the device stopped waiting for the answer, device/sync.py) may have set it first.
        stored = db.execute("UPDATE sessions SET liveness = ?, liveness_encodings = ?, liveness_model = ?"
                            " WHERE id = ? AND liveness = 'not_run'", [result, *kept, row["id"]]).rowcount
        if stored and seen is not None and result == "passed":
            db.execute("INSERT INTO liveness_signatures (citizen_id, session_id, signatures, created_at)"
                       " VALUES (?, ?, ?, ?)",
                       [row["citizen_id"], row["id"], evidence.signatures_blob(seen), now_iso()])
        if stored:
            audit_device("session.liveness", "session", row["id"],
                         {"result": result, "t": t, **({"refused": refused} if refused else {})})
    if not stored:      # answered as that copy's verdict stands: the same (200), or 409
        return record_liveness(db, own_session(db, row["id"]), reported, t)
    if refused:
        raise ApiError(403, f"liveness not passed: {refused}")
    return True


def _crops_seen_before(db, row, signatures, after=0, locked=False):
    """(why the crops are refused: REPLAYED when they are the same pictures as a pass of
    another session of the citizen in the last REPLAY_WINDOW_DAYS, TOO_MANY_PASSES beyond
    REPLAY_PASSES of them; else None, the last pass row read). The same evidence opened 30
    case files for a stolen token. The passes are compared first outside any transaction,
    then, under a lock, only those stored since (after=): two reports of the same crops sent
    together do not both pass, and no write waits while a month of passes is compared (it
    held every write of the registry for a second). Pass rows are written under that lock
    alone, so their ids rise in the order they are committed."""
    if locked:
        db.lock("liveness_signatures")
    since = utc_stamp(datetime.now(timezone.utc) - timedelta(days=evidence.REPLAY_WINDOW_DAYS))
    earlier = db.execute(
        "SELECT id, signatures FROM liveness_signatures WHERE citizen_id = ? AND created_at >= ?"
        " AND session_id <> ? AND id > ? ORDER BY id DESC LIMIT ?",
        [row["citizen_id"], since, row["id"], after, evidence.REPLAY_PASSES + 1]).fetchall()
    read = max([after] + [pass_id for pass_id, _ in earlier])
    if len(earlier) > evidence.REPLAY_PASSES:
        return TOO_MANY_PASSES, read
    return (REPLAYED if evidence.seen_before(signatures, [blob for _, blob in earlier]) else None), read


def _seen_blink(db, row, crops):
    """((templates to keep, their model), the crops' signatures to compare with the citizen's
    other passes) once the evidence shows the visit's face blinking: for a greeting, every
    crop within the 1:1 distance of the citizen greeted; for an unknown visitor the templates
    are kept for the ID number they may type (server/identify.py) and no signatures."""
    if crops is None:
        raise evidence.EvidenceRefused("a pass needs its evidence: face crops of the blink")
    # the crops are examined (a face found and encoded in each) within the device's budget of
    # case files, counted first: reports sent together each cost an examination otherwise
    wait = limits.take_slot(db, f"evidence:{g.device['id']}", current_app.config["CASEFILE_DEVICE_LIMIT"],
                            600)
    if wait is not None:
        raise limits.TooFast("too many liveness reports; please see a clerk", wait)
    model = faces.active(db)
    greeted = row["outcome"] == "greeted" and row["citizen_id"] is not None
    snapshot = _snapshot_beside(row, model) if greeted else None
    age = (datetime.now(timezone.utc) - _parse_stamp(row["started_at"])).total_seconds()
    try:
        encodings, signatures = evidence.check(crops, age, model)
    except BaseException:
        if snapshot:
            snapshot.cancel()
        raise
    if not greeted:
        return (b"".join(model.to_blob(e) for e in encodings), model.id), None
    templates = faces.citizen_templates(db, row["citizen_id"], model)
    if evidence.farthest(encodings, templates, model) > one_to_one_threshold(db):
        if snapshot:
            snapshot.cancel()
        raise evidence.EvidenceRefused("the crops do not all show the citizen greeted")
    if snapshot:
        # the early look is a head start, not a check: whatever stops it (a busy pool, a
        # worker that died, a database hiccup), the blink's own verdict stands and the case
        # file looks at the snapshot itself
        try:
            snapshot_distance(db, row, row["citizen_id"], snapshot)
        except FaceBusy:
            pass
        except Exception:
            log.exception("session %s: the snapshot's early look failed", row["id"])
    return (None, None), signatures


def _snapshot_beside(row, model):
    """The snapshot's look begun beside the crops' (the case file comes next and needs it: the
    pool's workers take the six faces together instead of five, then one)."""
    if row["snapshot_distance"] is not None or not row["snapshot_path"]:
        return None
    try:
        return start_snapshot(row, model)
    except FaceBusy:
        return None


def _liveness_body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("result") not in ("passed", "failed"):
        raise ApiError(400, 'send {"result": "passed" or "failed", "t": seconds, "evidence": [...]}')
    t = body.get("t")
    # 0 <= t <= 1e6 also refuses NaN (which the audit log would store as invalid JSON)
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                          or not 0 <= t <= 1e6):
        raise ApiError(400, "t must be a number of seconds")
    crops = None
    if body["result"] == "passed" and "evidence" in body:
        try:
            crops = evidence.parse(body["evidence"])
        except evidence.EvidenceRefused as e:
            raise ApiError(400, e.reason)
    return body["result"], t, crops


@bp.route("/sessions/<session_id>/liveness", methods=["POST"])
@device_required
def report_liveness(session_id):
    result, t, crops = _liveness_body()
    db = get_db()
    row = own_session(db, session_id)
    changed = record_liveness(db, row, result, t, crops)
    return jsonify({"session_id": row["id"], "liveness": result}), 201 if changed else 200


def _citizen_id_of(db, key):
    row = db.execute("SELECT id FROM citizens WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


# --- opening ----------------------------------------------------------------------------------

def _citizen_key_body():
    body = request.get_json(silent=True)
    value = body.get("citizen_key") if isinstance(body, dict) else None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ApiError(400, 'send {"citizen_key": KEY}, the key of the citizen the device greeted')
    return value


@bp.route("/sessions/<session_id>/casefile", methods=["POST"])
@device_required
def open_case_file(session_id):
    key = _citizen_key_body()
    db = get_db()
    row = own_session(db, session_id)
    # before the server looks at the snapshot; a re-open too: each is a view put on record,
    # and 300 re-opens of one session wrote 300 audit entries with no alert
    _check_pace(db)
    try:
        person = check_opening(db, row, _citizen_id_of(db, key))
    except CaseFileRefused as refused:
        _refuse(db, row, refused)
    summary = citizen_summary(db, person, row["id"])
    with limits.one_try_at_a_time(db, f"casefile-open:{g.device['id']}"):
        row = own_session(db, session_id)
        throttled = limits.casefile_throttled(db, g.device, current_app.config, device_actor())
        if not throttled:
            db.execute("UPDATE sessions SET case_opened_at = coalesce(case_opened_at, ?)"
                       " WHERE id = ?", [now_iso(), row["id"]])
            audit_device("casefile.open", "citizen", person["id"],
                         {"session_id": row["id"],
                          "case_numbers": [c["case_number"] for c in summary["cases"]]})
    if throttled:
        raise ApiError(429, limits.THROTTLED)
    return jsonify(summary)


def _check_pace(db):
    """429 when the device is over its pace of case files opened or refused."""
    with limits.one_try_at_a_time(db, f"casefile-open:{g.device['id']}"):
        throttled = limits.casefile_throttled(db, g.device, current_app.config, device_actor())
    if throttled:
        raise ApiError(429, limits.THROTTLED)


# --- details, behind the second factor --------------------------------------------------------

def phone_last4(phone):
    """The last four digits of a phone number as stored (spaces, dashes, +86 ignored)."""
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else None


def ascii_digits(value):
    """Four typed digits as ASCII, or None. Full-width digits (a Chinese input method) count
    as the digits they are; other digit-like characters ("١٢٣٤", "²³⁴⁵") are not digits
    typed from a phone number, so they are refused before a try is counted. Before, they
    passed str.isdigit(), never matched and each one used up a try."""
    if not isinstance(value, str):
        return None
    value = value.translate(FULL_WIDTH_DIGITS)
    return value if len(value) == 4 and value.isascii() and value.isdigit() else None


def factor_wait_left(row, now):
    """Seconds until another try is allowed after a wrong one (0 when allowed now)."""
    if not row["factor_failures"] or not row["factor_failed_at"]:
        return 0
    wait = current_app.config["SECOND_FACTOR_WAIT_S"] * 2 ** (row["factor_failures"] - 1)
    ready = _parse_stamp(row["factor_failed_at"]) + timedelta(seconds=wait)
    return max(0, int((ready - now).total_seconds() + 0.999))


def check_second_factor(db, row, person, digits, try_id=None):
    """None when the digits (or an earlier pass) unlock the details; else raise ApiError,
    counting a wrong try. Locks after SECOND_FACTOR_TRIES wrong tries; waits between tries.
    The try is checked and counted with the session and citizen read again under the lock,
    so tries sent together queue instead of all passing the same check. try_id: the device's
    id for the try; a wrong try already counted under it is answered as it was, not counted
    again (a device sends a try again after a lost answer, device/sync.py)."""
    with limits.one_try_at_a_time(db, limits.FACTOR_LOCK):
        row = own_session(db, row["id"])
        person = citizen(db, person["id"])
        refusal = ApiError(404, "no such citizen") if person is None else (
            _counted_try(db, row, person, try_id) or _factor_try(db, row, person, digits, try_id))
    if refusal is not None:
        raise refusal     # after the commit: the wrong try stays counted


def _counted_try(db, row, person, try_id):
    """The answer a wrong try already counted under try_id had (its audit entry names it),
    or None: read under the factor lock, so the same try is never counted twice."""
    if try_id is None or row["factor_passed_at"]:
        return None
    counted = db.execute("SELECT 1 FROM audit_log WHERE action = 'casefile.second_factor_failed'"
                         " AND target_type = 'citizen' AND target_id = ? AND detail LIKE ?",
                         [str(row["citizen_id"]), f'%"try_id": "{try_id}"%']).fetchone()
    if counted is None:
        return None
    left = current_app.config["SECOND_FACTOR_TRIES"] - row["factor_failures"]
    if left <= 0 or person["factor_locked_at"]:
        return ApiError(423, "too many wrong tries: case details are locked; please see a clerk")
    return FactorWrong(left)


def _factor_try(db, row, person, digits, try_id=None):
    """What one try comes to, its writes made: None when the details unlock, else the
    exception to answer with."""
    if row["factor_passed_at"]:
        return None
    try:
        limits.check_factor_budget(db, person, g.device["id"], current_app.config)
    except ApiError as refused:
        return refused
    tries = current_app.config["SECOND_FACTOR_TRIES"]
    if row["factor_failures"] >= tries:
        return ApiError(423, "too many wrong tries: case details are locked; please see a clerk")
    wait = factor_wait_left(row, datetime.now(timezone.utc))
    if wait:
        return ApiError(429, f"wait {wait} seconds before trying again")
    digits = ascii_digits(digits)
    if digits is None:
        return ApiError(400, "type the last four digits of your phone number")
    expected = phone_last4(person["phone"])
    if expected is None:
        return ApiError(403, "no phone number on file; please see a clerk")
    if digits == expected:
        db.execute("UPDATE sessions SET factor_passed_at = ? WHERE id = ?", [now_iso(), row["id"]])
        return None
    return _wrong_try(db, row, person, tries, try_id)


def _wrong_try(db, row, person, tries, try_id=None):
    failures = row["factor_failures"] + 1
    db.execute("UPDATE sessions SET factor_failures = ?, factor_failed_at = ? WHERE id = ?",
               [failures, now_iso(), row["id"]])
    audit_device("casefile.second_factor_failed", "citizen", row["citizen_id"],
                 {"session_id": row["id"], "failures": failures, **({"try_id": try_id} if try_id else {})})
    locked = limits.record_factor_failure(db, person, g.device["id"], row["id"],
                                          current_app.config, device_actor())
    left = tries - failures
    if left <= 0 or locked:
        return ApiError(423, "too many wrong tries: case details are locked; please see a clerk")
    return FactorWrong(left)


@bp.route("/sessions/<session_id>/casefile/details", methods=["POST"])
@device_required
def case_details(session_id):
    body = request.get_json(silent=True)
    digits = body.get("phone_last4") if isinstance(body, dict) else None
    # The device's own id for this try of digits: sent again under it after a lost answer
    # (device/sync.py), a wrong try is answered as it was and not counted twice.
    try_id = body.get("try_id") if isinstance(body, dict) else None
    if try_id is not None and not (isinstance(try_id, str) and 0 < len(try_id) <= 64 and try_id.isascii()
                                   and try_id.replace("-", "").isalnum()):
        raise ApiError(400, "try_id must be the device's id for this try (letters, digits, dashes)")
    db = get_db()
    row = own_session(db, session_id)
    if not row["case_opened_at"]:
        raise ApiError(409, "open the case file first")
    try:
        person = check_opening(db, row, row["citizen_id"])
    except CaseFileRefused as refused:
        _refuse(db, row, refused)
    if second_factor_on(db):
        try:
            check_second_factor(db, row, person, digits, try_id)
        except FactorWrong as wrong:
            body = error_body(403, str(wrong))
            body["error"]["tries_left"] = wrong.tries_left
            return jsonify(body), 403
    with transaction(db):
        audit_device("casefile.details", "citizen", person["id"], {"session_id": row["id"]})
    return jsonify({"session_id": row["id"], "cases": open_cases(db, person["id"], DETAIL_FIELDS)})
