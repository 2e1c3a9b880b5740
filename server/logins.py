"""Failed sign-ins, counted so that guessing is slow and nobody can lock anyone else out.

Failures are rows (username as typed, address, time). A try is judged and counted in one
transaction under one lock (reserve) *before* its password is checked, as a failure until
the password proves right: checked first and counted after, 64 wrong passwords sent at once
all read "no failures yet" and got 10 password checks where the policy allowed 3.

Decisions look only at rows, never at whether the username exists, so an unknown username
is answered exactly like a known one. Three budgets:
  - per username *and* address: a wait after LOGIN_SLOW_AFTER failures, doubling, and a lock
    after LOGIN_LOCK_AFTER; an attacker elsewhere cannot hold an admin's account locked;
  - per address, across usernames: LOGIN_ADDRESS_LIMIT in the window;
  - per username, across addresses (many machines guessing one clerk's password): a wait after
    LOGIN_USER_SLOW_AFTER failures, doubling, and at LOGIN_USER_LIMIT failures in the window
    a wait until the oldest leaves it. Never a lock, and not for an address the user has
    signed in from (known_address): a storm from elsewhere cannot keep a clerk from their
    desk, where only that desk's own failures count.
A successful sign-in or an admin's unlock clears the pair's (or the username's) failures.
"""
from datetime import datetime, timedelta, timezone

from .limits import one_try_at_a_time
from .times import parse_stamp, utc_stamp

WINDOW_MINUTES = 15     # failures older than this no longer count
KNOWN_ADDRESS_DAYS = 90  # an address the user signed in from within this long is theirs
LOCK = "logins"          # one lock for every try: the budgets span usernames and addresses
USER_WAIT_MAX_S = 30     # the longest a username's budget across addresses makes anyone wait


def _since(now, minutes=WINDOW_MINUTES):
    return utc_stamp(now - timedelta(minutes=minutes))


def reserve(db, config, username, ip, now=None):
    """Judge one sign-in try before its password is checked: 0 when it may be checked (it is
    counted as a failure now; clear() removes it when the password is right), else the
    seconds to wait (nothing counted). Tries sent at once are judged one after another."""
    now = now or datetime.now(timezone.utc)
    with one_try_at_a_time(db, LOCK):
        wait = wait_seconds(db, config, username, ip, now)
        if not wait:
            db.execute("INSERT INTO login_failures (username, ip, at) VALUES (?, ?, ?)",
                       [username, ip, utc_stamp(now)])
    return wait


def wait_seconds(db, config, username, ip, now=None):
    """Seconds before this address may try this username again (0: now)."""
    now = now or datetime.now(timezone.utc)
    waits = [_pair_wait(db, config, username, ip, now), _address_wait(db, config, ip, now)]
    if not known_address(db, username, ip, now):
        waits.append(_username_wait(db, config, username, now))
    return max(waits)


def _pair_wait(db, config, username, ip, now):
    failures, last = db.execute("SELECT count(*), max(at) FROM login_failures WHERE username = ?"
                                " AND ip = ? AND at >= ?", [username, ip, _since(now)]).fetchone()
    if failures >= config["LOGIN_LOCK_AFTER"]:
        return _left(last, config["LOGIN_LOCK_MINUTES"] * 60, now)
    return _doubling(failures, config["LOGIN_SLOW_AFTER"], last, now)


def _address_wait(db, config, ip, now):
    failures, last = db.execute("SELECT count(*), max(at) FROM login_failures WHERE ip = ?"
                                " AND at >= ?", [ip, _since(now)]).fetchone()
    if failures >= config["LOGIN_ADDRESS_LIMIT"]:
        return _left(last, WINDOW_MINUTES * 60, now)
    return 0


def _username_wait(db, config, username, now):
    """The username's wait across every address: doubling past LOGIN_USER_SLOW_AFTER; at
    LOGIN_USER_LIMIT, until enough of the window's failures have aged out of it, so the
    window never holds more checked tries than the limit. Never more than USER_WAIT_MAX_S:
    ten requests a quarter of an hour from anywhere kept a clerk at a new desk waiting 830 s
    (the pair's own lock, and the address budget, still stop each guessing machine)."""
    return min(_username_wait_uncapped(db, config, username, now), USER_WAIT_MAX_S)


def _username_wait_uncapped(db, config, username, now):
    failures, last = db.execute("SELECT count(*), max(at) FROM login_failures WHERE username = ?"
                                " AND at >= ?", [username, _since(now)]).fetchone()
    limit = config["LOGIN_USER_LIMIT"]
    if failures >= limit:
        oldest = db.execute("SELECT at FROM login_failures WHERE username = ? AND at >= ?"
                            " ORDER BY at LIMIT 1 OFFSET ?",
                            [username, _since(now), failures - limit]).fetchone()[0]
        # + 1: the window includes its first second, so the oldest must be past it
        return max(_left(oldest, WINDOW_MINUTES * 60 + 1, now),
                   _doubling(failures, config["LOGIN_USER_SLOW_AFTER"], last, now))
    return _doubling(failures, config["LOGIN_USER_SLOW_AFTER"], last, now)


def _doubling(failures, slow_after, last, now):
    """2 s after the slow_after-th failure, then 4, 8, ...: counted from the last failure."""
    if failures < slow_after:
        return 0
    return _left(last, 2 ** min(failures - slow_after + 1, 20), now)


def _left(last, seconds, now):
    ready = parse_stamp(last) + timedelta(seconds=seconds)
    return max(0, int((ready - now).total_seconds() + 0.999))


def known_address(db, username, ip, now=None):
    """True when the user signed in from this address within KNOWN_ADDRESS_DAYS."""
    now = now or datetime.now(timezone.utc)
    since = utc_stamp(now - timedelta(days=KNOWN_ADDRESS_DAYS))
    return db.execute("SELECT 1 FROM user_sessions s JOIN users u ON u.id = s.user_id"
                      " WHERE u.username = ? AND s.ip = ? AND s.created_at >= ? LIMIT 1",
                      [username, ip, since]).fetchone() is not None


def pair_failures(db, username, ip, now=None):
    """Failures of (username, address) within the window (for the audit entry)."""
    now = now or datetime.now(timezone.utc)
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
