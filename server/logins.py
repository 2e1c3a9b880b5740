"""Failed sign-ins, counted so that guessing is slow and nobody can lock anyone else out.

Failures are rows (username as typed, address, time), inserted atomically: parallel wrong
passwords each count. Decisions look only at rows, never at whether the username exists, so
an unknown username is answered exactly like a known one. A lock binds a username *and* an
address: an attacker elsewhere cannot hold an admin's account locked, and each address also
has a budget across all usernames. A successful sign-in or an admin's unlock clears the pair.
"""
from datetime import datetime, timedelta, timezone

from db import transaction

from .times import parse_stamp, utc_stamp

WINDOW_MINUTES = 15     # failures older than this no longer count


def _since(now):
    return utc_stamp(now - timedelta(minutes=WINDOW_MINUTES))


def wait_seconds(db, config, username, ip, now=None):
    """Seconds before this address may try this username again (0: now)."""
    now = now or datetime.now(timezone.utc)
    since = _since(now)
    pair = db.execute("SELECT count(*), max(at) FROM login_failures WHERE username = ? AND ip = ?"
                      " AND at >= ?", [username, ip, since]).fetchone()
    from_ip = db.execute("SELECT count(*), max(at) FROM login_failures WHERE ip = ? AND at >= ?",
                         [ip, since]).fetchone()
    failures, last = pair[0], pair[1]
    if failures >= config["LOGIN_LOCK_AFTER"]:
        return _left(last, config["LOGIN_LOCK_MINUTES"] * 60, now)
    if from_ip[0] >= config["LOGIN_ADDRESS_LIMIT"]:
        return _left(from_ip[1], WINDOW_MINUTES * 60, now)
    if failures >= config["LOGIN_SLOW_AFTER"]:
        return _left(last, 2 ** (failures - config["LOGIN_SLOW_AFTER"] + 1), now)
    return 0


def _left(last, seconds, now):
    ready = parse_stamp(last) + timedelta(seconds=seconds)
    return max(0, int((ready - now).total_seconds() + 0.999))


def record_failure(db, username, ip, now=None):
    """One more failure for (username, address); returns the pair's count in the window."""
    now = now or datetime.now(timezone.utc)
    with transaction(db):
        db.execute("INSERT INTO login_failures (username, ip, at) VALUES (?, ?, ?)",
                   [username, ip, utc_stamp(now)])
        return db.execute("SELECT count(*) FROM login_failures WHERE username = ? AND ip = ?"
                          " AND at >= ?", [username, ip, _since(now)]).fetchone()[0]


def clear(db, username, ip=None):
    """Forget failures of a username (from one address, or from all: an admin's unlock)."""
    if ip is None:
        db.execute("DELETE FROM login_failures WHERE username = ?", [username])
    else:
        db.execute("DELETE FROM login_failures WHERE username = ? AND ip = ?", [username, ip])


def recent_failures(db, username, now=None):
    """Failures of a username from any address within the window (for the admin's users page)."""
    now = now or datetime.now(timezone.utc)
    return db.execute("SELECT count(*) FROM login_failures WHERE username = ? AND at >= ?",
                      [username, _since(now)]).fetchone()[0]
