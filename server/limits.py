"""Limits on what one device token can do, however many sessions it opens.

A token is a secret on a machine in a public hall; it can be stolen. With one it could post
"I greeted citizen N", report a blink and read N's case summary, or try phone digits in
session after session. So:
  - wrong phone digits are counted per citizen across all devices and per device, per local
    day: over SECOND_FACTOR_CITIZEN_DAILY the citizen's details lock until a clerk unlocks
    them on the citizen's page; over SECOND_FACTOR_DEVICE_DAILY the device is refused;
  - a device opening case files faster than CASEFILE_DEVICE_LIMIT per 10 minutes is throttled,
    and that is an alert on the admin overview and in the audit log;
  - so is a device uploading more than SESSION_DEVICE_LIMIT sessions per 10 minutes: each
    fills the clerks' queue and keeps a snapshot (a stolen token posted 300 in 2 s). A
    device's outbox keeps what a 429 refuses and sends it later.
"""
import contextlib
from datetime import datetime, timedelta, timezone

from db import now_iso, transaction

from . import audit
from .errors import ApiError
from .times import day_bounds, local_today, utc_stamp

THROTTLE_WINDOW_MIN = 10
FACTOR_LOCK = "second-factor"   # one lock for every digit try: a citizen's budget spans devices
ALERT_ACTIONS = ("device.throttled", "device.sessions_throttled", "device.factor_budget",
                 "citizen.factor_locked")
SESSIONS_THROTTLED = "this device uploaded too many sessions in the last minutes; it will be sent later"


@contextlib.contextmanager
def one_try_at_a_time(db, name):
    """A transaction in which a budget is checked and the try counted with no other request
    for the same budget in between. Checked first and counted later, requests sent at the
    same moment all read the count before any wrote it: 29 wrong phone-digit tries got
    through where 3 are allowed. Inside, re-read what is counted; write, then raise after."""
    with transaction(db):
        db.lock(name)
        yield db


def check_factor_budget(db, person, device_id, config):
    """ApiError when the citizen's details are locked or the device used up its day's tries."""
    if person["factor_locked_at"]:
        raise ApiError(423, "too many wrong tries for this citizen today: case details are"
                            " locked until a clerk unlocks them; please see a clerk")
    start, end = day_bounds(local_today())
    used = db.execute("SELECT count(*) FROM factor_failures WHERE device_id = ? AND at >= ?"
                      " AND at < ?", [device_id, start, end]).fetchone()[0]
    if used >= config["SECOND_FACTOR_DEVICE_DAILY"]:
        raise ApiError(429, "this device has used up its wrong tries for today; please see a clerk")


def record_factor_failure(db, person, device_id, session_id, config, actor):
    """Count one wrong answer (inside the caller's transaction); lock the citizen's details
    when that was one too many today. Returns True when it locked them."""
    db.execute("INSERT INTO factor_failures (citizen_id, device_id, session_id, at)"
               " VALUES (?, ?, ?, ?)", [person["id"], device_id, session_id, now_iso()])
    start, end = day_bounds(local_today())
    today = db.execute("SELECT count(*) FROM factor_failures WHERE citizen_id = ? AND at >= ?"
                       " AND at < ?", [person["id"], start, end]).fetchone()[0]
    if today < config["SECOND_FACTOR_CITIZEN_DAILY"]:
        return False
    db.execute("UPDATE citizens SET factor_locked_at = ? WHERE id = ? AND factor_locked_at IS NULL",
               [now_iso(), person["id"]])
    audit.record(db, actor, "citizen.factor_locked", "citizen", person["id"],
                 {"wrong_today": today, "session_id": session_id})
    return True


def unlock_factor(db, citizen_id, actor):
    """A clerk, having seen the citizen's ID document, lets them try their digits again."""
    with transaction(db):
        db.execute("UPDATE citizens SET factor_locked_at = NULL WHERE id = ?", [citizen_id])
        audit.record(db, actor, "citizen.factor_unlocked", "citizen", citizen_id)


THROTTLED = ("this device is opening case files unusually fast; it is paused and an"
             " administrator has been alerted")


def casefile_throttled(db, device, config, actor, now=None):
    """True when the device opened, or was refused, too many case files in the last 10
    minutes; the first throttled try in a window writes the alert (inside the caller's
    one_try_at_a_time, so that the count and the opening it allows are one step; the caller
    answers 429 THROTTLED after). Refusals count: each one may have cost the server a look
    at a snapshot (up to half a second of face detection for a picture without a face)."""
    now = now or datetime.now(timezone.utc)
    since = utc_stamp(now - timedelta(minutes=THROTTLE_WINDOW_MIN))
    opened = db.execute("SELECT count(*) FROM sessions WHERE device_id = ? AND case_opened_at >= ?",
                        [device["id"], since]).fetchone()[0]
    refused = db.execute("SELECT count(*) FROM audit_log WHERE actor_type = 'device' AND actor_id = ?"
                         " AND action = 'casefile.refused' AND at >= ?", [device["id"], since]).fetchone()[0]
    if opened + refused < config["CASEFILE_DEVICE_LIMIT"]:
        return False
    _alert_once(db, actor, "device.throttled", device, since,
                {"case_files_opened": opened, "refused": refused, "minutes": THROTTLE_WINDOW_MIN})
    return True


def _alert_once(db, actor, action, device, since, detail):
    """Audit the alert unless this device already had it since `since` (once a window)."""
    alerted = db.execute("SELECT 1 FROM audit_log WHERE action = ? AND target_type = 'device'"
                         " AND target_id = ? AND at >= ?", [action, device["name"], since]).fetchone()
    if not alerted:
        audit.record(db, actor, action, "device", device["name"], detail)


def sessions_throttled(db, device, config, actor, now=None):
    """True when the device uploaded SESSION_DEVICE_LIMIT sessions in the last 10 minutes;
    the first refusal in a window writes the alert (call inside a transaction)."""
    now = now or datetime.now(timezone.utc)
    since = utc_stamp(now - timedelta(minutes=THROTTLE_WINDOW_MIN))
    uploaded = db.execute("SELECT count(*) FROM sessions WHERE device_id = ? AND received_at >= ?",
                          [device["id"], since]).fetchone()[0]
    if uploaded < config["SESSION_DEVICE_LIMIT"]:
        return False
    _alert_once(db, actor, "device.sessions_throttled", device, since,
                {"sessions": uploaded, "minutes": THROTTLE_WINDOW_MIN})
    return True


def recent_alerts(db, hours=24, limit=20):
    """Throttled devices and locked citizens of the last hours, newest first (admin overview)."""
    since = utc_stamp(datetime.now(timezone.utc) - timedelta(hours=hours))
    marks = ", ".join("?" * len(ALERT_ACTIONS))
    return db.execute(f"SELECT * FROM audit_log WHERE action IN ({marks}) AND at >= ?"
                      " ORDER BY id DESC LIMIT ?", [*ALERT_ACTIONS, since, limit]).fetchall()
