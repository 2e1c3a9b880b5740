"""Signed-in browser sessions held on the server: a cookie is only a pointer to a row here.

So logging out, changing a password or an admin disabling someone ends the session on the
server too (a cookie copied before still fails after), and a session ends after
SESSION_IDLE_MINUTES without a request or SESSION_MAX_HOURS after sign-in, whichever first.
"""
import secrets
from datetime import datetime, timedelta, timezone

from db import now_iso

from . import disk
from .times import parse_stamp

TOUCH_EVERY_S = 60      # last_seen_at is written at most this often (not on every request)


def start(db, user_id, ip):
    """A new session row for a user who just signed in; its id goes in the cookie."""
    session_id = secrets.token_urlsafe(32)
    db.execute("INSERT INTO user_sessions (id, user_id, ip, created_at, last_seen_at)"
               " VALUES (?, ?, ?, ?, ?)", [session_id, user_id, ip, now_iso(), now_iso()])
    return session_id


def check(db, session_id, user_id, config, now=None):
    """True when the session is the user's, not revoked and not timed out (and touch it)."""
    if not session_id:
        return False
    row = db.execute("SELECT * FROM user_sessions WHERE id = ? AND user_id = ?",
                     [session_id, user_id]).fetchone()
    now = now or datetime.now(timezone.utc)
    if row is None or row["revoked_at"] or _expired(row, config, now):
        return False
    if (now - parse_stamp(row["last_seen_at"])).total_seconds() >= TOUCH_EVERY_S:
        with disk.skipped_when_full("a console session's last request"):  # reading goes on
            db.execute("UPDATE user_sessions SET last_seen_at = ? WHERE id = ?", [now_iso(), session_id])
    return True


def _expired(row, config, now):
    idle = now - parse_stamp(row["last_seen_at"]) > timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    old = now - parse_stamp(row["created_at"]) > timedelta(hours=config["SESSION_MAX_HOURS"])
    return idle or old


def revoke(db, session_id):
    db.execute("UPDATE user_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
               [now_iso(), session_id])


def revoke_all(db, user_id, keep=None):
    """End every session of a user (a password change: except the one making it, `keep`)."""
    db.execute("UPDATE user_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
               " AND id != ?", [now_iso(), user_id, keep or ""])
