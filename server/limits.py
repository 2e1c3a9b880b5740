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
    device's outbox keeps what a 429 refuses and sends it later;
  - and a device pulling its gallery or config more than PULL_DEVICE_LIMIT times per 10
    minutes (500 full pulls in 1.6 s each handed over every name and template): 429 with
    Retry-After, which the device waits out. Gallery pulls are audited once per device per
    minute, with a count (at most 60 entries an hour however fast it polls).

A budget counted "per 10 minutes" while its requests run for a while (a snapshot looked at,
a page of templates read) is a set of slots (take_slot): each request takes one before the
work, and holds it for the window. 64 requests sent together get at most the limit through.
"""
import contextlib
import json
import math
from datetime import datetime, timedelta, timezone

from flask import g, has_app_context

from db import now_iso, transaction

from . import audit, schedules
from .errors import ApiError
from .times import day_bounds, local_today, utc_stamp

THROTTLE_WINDOW_MIN = 10
FACTOR_LOCK = "second-factor"   # one lock for every digit try: a citizen's budget spans devices
ALERT_ACTIONS = ("device.throttled", "device.sessions_throttled", "device.pulls_throttled",
                 "device.factor_budget", "citizen.factor_locked")
SESSIONS_THROTTLED = "this device uploaded too many sessions in the last minutes; it will be sent later"
PULLS_THROTTLED = ("this device pulls its gallery and config too often; it is paused and an"
                   " administrator has been alerted")
GALLERY_AUDIT_S = 60     # one gallery.sync entry per device per minute at most
SLOT_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
SLOT_QUERY = 500         # slot names looked up per query (SQLite allows some thousands)


class TooFast(ApiError):
    """429 with the whole seconds after which the same request may pass (Retry-After)."""

    def __init__(self, message, retry_after):
        super().__init__(429, message)
        self.retry_after = max(1, math.ceil(retry_after))


@contextlib.contextmanager
def one_try_at_a_time(db, name):
    """A transaction in which a budget is checked and the try counted with no other request
    for the same budget in between. Checked first and counted later, requests sent at the
    same moment all read the count before any wrote it: 29 wrong phone-digit tries got
    through where 3 are allowed. Inside, re-read what is counted; write, then raise after."""
    with transaction(db):
        db.lock(name)
        yield db


def take_slot(db, budget, limit, window_s, now=None):
    """Count one use of `budget` when fewer than `limit` were counted in the last window_s
    seconds: None when counted, else the seconds until one frees.

    The budget is `limit` rows of schedule_runs, "BUDGET#0" on (made on first use), each
    taken until window_s after its use (next_at): a sliding window with no row per use and
    nothing to clean up, checked and taken under the budget's lock, so uses sent together
    queue. (A claim on an interval, as the scheduled purge's row is.)"""
    now = now or datetime.now(timezone.utc)
    with one_try_at_a_time(db, f"slots:{budget}"):
        held = _slots(db, budget, limit)
        free = [i for i, until in held.items() if until <= now]
        unused = [i for i in range(limit) if i not in held] if len(held) < limit else []
        if not free and not unused:
            return (min(held.values()) - now).total_seconds() if held else window_s
        index = min(free or unused)
        db.execute("INSERT INTO schedule_runs (name, owner, ran_at, next_at) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT(name) DO UPDATE SET owner = excluded.owner,"
                   " ran_at = excluded.ran_at, next_at = excluded.next_at",
                   [f"{budget}#{index}", schedules.this_process(), utc_stamp(now),
                    (now + timedelta(seconds=window_s)).strftime(SLOT_STAMP)])
    return None


def _slots(db, budget, limit):
    """{slot index: taken until} of a budget's slots below `limit` (looked up by name: the
    primary key, and no LIKE or range whose order depends on PostgreSQL's collation)."""
    held = {}
    for first in range(0, limit, SLOT_QUERY):
        names = [f"{budget}#{i}" for i in range(first, min(limit, first + SLOT_QUERY))]
        marks = ", ".join("?" for _ in names)
        for name, until in db.execute(f"SELECT name, next_at FROM schedule_runs WHERE name IN ({marks})",
                                      names).fetchall():
            held[int(name.rpartition("#")[2])] = _slot_time(until)
    return held


def _slot_time(text):
    try:
        return datetime.strptime(text, SLOT_STAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)    # never taken: free


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
    one_try_at_a_time; the caller answers 429 THROTTLED after). Refusals count: each one may
    have cost the server a look at a snapshot (up to half a second of face detection for a
    picture without a face).

    A try let through takes one of CASEFILE_DEVICE_LIMIT slots (take_slot) before the
    snapshot is looked at: counted by its opening or refusal only, the tries sent together
    all passed this check before any was counted (37 snapshots looked at for a limit of 30).
    Asked again in the same request (once more where the case file opens), the try is
    already counted: False."""
    if _counted_in_this_request(device):
        return False
    now = now or datetime.now(timezone.utc)
    since = utc_stamp(now - timedelta(minutes=THROTTLE_WINDOW_MIN))
    opened = db.execute("SELECT count(*) FROM sessions WHERE device_id = ? AND case_opened_at >= ?",
                        [device["id"], since]).fetchone()[0]
    refused = db.execute("SELECT count(*) FROM audit_log WHERE actor_type = 'device' AND actor_id = ?"
                         " AND action = 'casefile.refused' AND at >= ?", [device["id"], since]).fetchone()[0]
    limit, budget = config["CASEFILE_DEVICE_LIMIT"], f"casefile:{device['id']}"
    wait = take_slot(db, budget, limit, THROTTLE_WINDOW_MIN * 60, now) \
        if opened + refused < limit else slot_wait(db, budget, limit, now)
    if wait is None:
        _remember_counted(device)
        return False
    _alert_once(db, actor, "device.throttled", device, since,
                {"case_files_opened": opened, "refused": refused, "minutes": THROTTLE_WINDOW_MIN})
    note_wait(wait)
    return True


def slot_wait(db, budget, limit, now):
    """Seconds until a slot of the budget frees (a whole window when none was ever taken)."""
    taken = [until for until in _slots(db, budget, limit).values() if until > now]
    return (min(taken) - now).total_seconds() if taken else THROTTLE_WINDOW_MIN * 60


def note_wait(seconds):
    """The Retry-After of this request's 429, where the view raises a plain ApiError
    (security.secure_headers writes it)."""
    if has_app_context():
        g.retry_after = max(1, math.ceil(seconds))


def _counted_in_this_request(device):
    return has_app_context() and device["id"] in g.get("casefile_counted", ())


def _remember_counted(device):
    if has_app_context():
        g.casefile_counted = {*g.get("casefile_counted", ()), device["id"]}


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


def sessions_wait(db, device, now=None):
    """Seconds until the oldest upload of the window leaves it (a throttled device's Retry-After)."""
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(minutes=THROTTLE_WINDOW_MIN)
    oldest = db.execute("SELECT min(received_at) FROM sessions WHERE device_id = ? AND received_at >= ?",
                        [device["id"], utc_stamp(since)]).fetchone()[0]
    if oldest is None:
        return 1
    return (datetime.strptime(oldest, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            - since).total_seconds()


# --- gallery and config pulls -----------------------------------------------------------------

def count_pull(db, device, config, actor, now=None):
    """Count one gallery or config pull of the device, or raise TooFast when it made
    PULL_DEVICE_LIMIT in the last 10 minutes (the first refusal in a window writes the
    alert). A refused pull is not counted: a device that keeps polling after its 429 is
    let through again as soon as the Retry-After it was told has passed."""
    now = now or datetime.now(timezone.utc)
    wait = take_slot(db, f"pulls:{device['id']}", config["PULL_DEVICE_LIMIT"],
                     THROTTLE_WINDOW_MIN * 60, now)
    if wait is None:
        return
    since = utc_stamp(now - timedelta(minutes=THROTTLE_WINDOW_MIN))
    with one_try_at_a_time(db, f"pulls-alert:{device['id']}"):
        _alert_once(db, actor, "device.pulls_throttled", device, since,
                    {"limit": config["PULL_DEVICE_LIMIT"], "minutes": THROTTLE_WINDOW_MIN})
    raise TooFast(PULLS_THROTTLED, wait)


def audit_gallery_pull(db, actor, device, since, citizens, full, now=None):
    """Put a pull that handed over names and templates on record: one gallery.sync entry per
    device per GALLERY_AUDIT_S, counting its pulls, citizens and full pulls (a device
    polling as fast as it may writes at most 60 entries an hour, not one per pull). The
    entry of the current minute is added to under the device's lock, so none is lost."""
    now = now or datetime.now(timezone.utc)
    start = utc_stamp(now - timedelta(seconds=GALLERY_AUDIT_S))
    with one_try_at_a_time(db, f"gallery-audit:{device['id']}"):
        row = db.execute("SELECT id, detail FROM audit_log WHERE target_type = 'device'"
                         " AND target_id = ? AND action = 'gallery.sync' AND at > ?"
                         " ORDER BY id DESC LIMIT 1", [device["name"], start]).fetchone()
        counts = _pull_counts(row["detail"] if row else None)
        counts.update(pulls=counts["pulls"] + 1, citizens=counts["citizens"] + citizens,
                      full=counts["full"] + int(full), since=min(counts["since"], since))
        if row is None:
            audit.record(db, actor, "gallery.sync", "device", device["name"], counts)
        else:
            db.execute("UPDATE audit_log SET detail = ? WHERE id = ?",
                       [json.dumps(counts, sort_keys=True), row["id"]])


def _pull_counts(detail):
    """The counts of the minute's entry so far: zeros for none yet (an entry written before
    entries counted was one pull)."""
    if detail is None:
        return {"pulls": 0, "citizens": 0, "full": 0, "since": math.inf}
    counts = {"pulls": 1, "citizens": 0, "full": 0, "since": math.inf}
    try:
        stored = json.loads(detail)
    except ValueError:
        stored = {}
    for key, value in (stored.items() if isinstance(stored, dict) else ()):
        if key in counts and isinstance(value, (int, float)):
            counts[key] = int(value)
    return counts


def recent_alerts(db, hours=24, limit=20):
    """Throttled devices and locked citizens of the last hours, newest first (admin overview)."""
    since = utc_stamp(datetime.now(timezone.utc) - timedelta(hours=hours))
    marks = ", ".join("?" * len(ALERT_ACTIONS))
    return db.execute(f"SELECT * FROM audit_log WHERE action IN ({marks}) AND at >= ?"
                      " ORDER BY id DESC LIMIT ?", [*ALERT_ACTIONS, since, limit]).fetchall()
