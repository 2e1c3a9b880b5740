"""One connection to the store, whatever the engine: execute(), transactions, close().

The embedded default is a SQLite file; a postgresql:// URL opens db/postgres.py instead.

Every query in the project goes through Database.execute() with `?` placeholders and
portable SQL (RETURNING for new ids, ON CONFLICT for upserts, row values for keyset pages),
so the same statements serve the embedded SQLite file and a PostgreSQL server.
"""
import contextlib
import os
import sqlite3
from datetime import datetime, timezone

import sqlite_utils

from .migrations import migrate


class Engine:
    """What both engines do alike with their DB-API connection (self.conn, autocommit mode)."""

    def commit(self):
        self.conn.execute("COMMIT")

    def rollback(self):
        self.conn.execute("ROLLBACK")

    def close(self):
        self.conn.close()


class Database(Engine):
    """A SQLite connection in autocommit mode; writes that belong together use transaction()."""

    dialect = "sqlite"
    IntegrityError = sqlite3.IntegrityError
    OperationalError = sqlite3.OperationalError    # a full disk, a locked or read-only file
    like = "LIKE"     # case-insensitive for ASCII, as PostgreSQL's ILIKE
    for_update = ""   # BEGIN IMMEDIATE already holds the file's one write lock

    def __init__(self, path):
        self.path = str(path)
        _owner_only(self.path)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # WAL lets the clerk console read while an import or a device upload writes.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        self.conn = conn
        self.utils = sqlite_utils.Database(conn)  # schema inspection (tables, columns, indexes)

    def execute(self, sql, params=()):
        return self.conn.execute(sql, params)

    def executemany(self, sql, rows):
        return self.conn.executemany(sql, rows)

    def insert(self, sql, params=()):
        """Run an INSERT ... RETURNING id and return the new row's id."""
        return self.conn.execute(sql, params).fetchone()[0]

    @property
    def in_transaction(self):
        return self.conn.in_transaction

    def begin(self):
        # IMMEDIATE takes the write lock at once: two writers never both read, then both
        # try to upgrade (which SQLite answers with "database is locked" for one of them).
        self.conn.execute("BEGIN IMMEDIATE")

    def begin_snapshot(self):
        """A transaction whose every query sees the same committed state (WAL readers do)."""
        self.conn.execute("BEGIN")

    def lock(self, name):
        """Serialise with other processes until this transaction ends: BEGIN IMMEDIATE already
        holds the one write lock of the file, so there is nothing more to take."""



def _owner_only(path):
    """Create the database file readable by its owner alone (SQLite's WAL and shared-memory
    files take the same mode); an existing file is left as its owner set it."""
    if path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def open_db(path, migrate_now=True, pooled=None):
    """Open (and create/upgrade) the database: a SQLite file path, or a postgresql:// URL.

    pooled (PostgreSQL): the connection comes from this process's pool and close() gives it
    back (db/postgres.py). By default the serving connections are (migrate_now=False: each
    request's, an import job's, the purge's) and one opened to migrate is not: that is done
    once, at start or by a command, and a kept connection would hold the database open (a
    test's template database cannot be copied while anyone is connected to it). A SQLite
    file is opened each time: that costs microseconds, and there is no server to keep."""
    db = _engine(str(path), (not migrate_now) if pooled is None else pooled)
    if migrate_now:
        migrate(db)
    return db


def _engine(target, pooled):
    if target.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase  # psycopg is needed only with PostgreSQL
        return PostgresDatabase(target, pooled)
    return Database(target)


@contextlib.contextmanager
def snapshot(db):
    """Reads inside agree with each other (one snapshot of the database); nothing is written."""
    db.begin_snapshot()
    try:
        yield db
    finally:
        db.commit()


@contextlib.contextmanager
def transaction(db):
    """All writes inside happen together or not at all. Nested: the outer one decides."""
    if db.in_transaction:
        yield db
        return
    db.begin()
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.commit()


def now_iso():
    """UTC timestamp, second precision, sortable as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
