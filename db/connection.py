import contextlib
import sqlite3
from datetime import datetime, timezone

import sqlite_utils

from .migrations import migrate


def open_db(path, migrate_now=True):
    """Open (and create/upgrade) the database at path: WAL, foreign keys, a busy timeout.

    WAL lets the clerk console read while an import or a device upload writes.
    """
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    db = sqlite_utils.Database(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    if migrate_now:
        migrate(db)
    return db


@contextlib.contextmanager
def transaction(db):
    """All writes inside happen together or not at all (BEGIN IMMEDIATE: no lock upgrade races)."""
    conn = db.conn
    if conn.in_transaction:  # nested: the outer transaction decides
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def now_iso():
    """UTC timestamp, second precision, sortable as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
