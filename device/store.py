"""The device's local SQLite file: the gallery cache, the outbox of sessions and the reports
that follow them.

synchronous=FULL with WAL: a session is on disk when add_session() returns, so a power cut
or kill -9 right after the greeting loses nothing. The agent commits a session here
*before* it announces the greeting; the uploader deletes it only after the server's 2xx.
A session the server refuses for good (a 4xx that no retry can fix) moves to dead_letter
with the reason, so one bad record never blocks the others.

What a visit reports after its session (the blink's verdict with its evidence, the ticket
request, each try of phone digits) is a row of `reports`, committed the same way before it
is announced or sent, and sent in the order recorded (device/sync.py). A report leaves the
queue on the registry's answer and then keeps only a line without its body (no crops, no
digits): a report id once answered is never queued again, and a step waiting for it finds
the answer. secure_delete zeroes what is deleted, so the digits and crops do not linger in
the file's free pages.

The schema changes are recorded (MIGRATIONS, PRAGMA user_version counts those applied) and
applied on open, each in one transaction with its number: a store of an older version keeps
every row it holds.
"""
import json
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import numpy as np

from recognition import models
from recognition.gallery import Gallery

# A registry from before face models were named sent no "model": its templates were dlib's.
UNNAMED_MODEL = models.get("dlib").id

_BASE_SCHEMA = [
    # citizen_key: the registry's random key for the citizen (never its row id, never an ID number)
    """CREATE TABLE IF NOT EXISTS gallery (
        citizen_key TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        language TEXT NOT NULL,
        templates BLOB NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        snapshot BLOB,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS dead_letter (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        snapshot BLOB,
        reason TEXT NOT NULL,
        failed_at TEXT NOT NULL)""",
    # sessions recorded for another registry (or another device): kept, never delivered
    """CREATE TABLE IF NOT EXISTS quarantine (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        snapshot BLOB,
        registry_id TEXT,
        quarantined_at TEXT NOT NULL)""",
]

_REPORTS_SCHEMA = [
    # One row for each report a visit makes after its session. seq is the order recorded, the
    # order they are sent in; id is the device's own (a digit try's try_id, which the server
    # recognises on a replay). body is the request's JSON until the report leaves the queue
    # (then '{}'); answer: the registry's answer to a ticket or a blink verdict, the status
    # alone for a digit try (case details are never written to the device's disk).
    """CREATE TABLE IF NOT EXISTS reports (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        answer TEXT,
        reason TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        settled_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS reports_by_state ON reports (state, session_id, seq)",
]

# The recorded schema changes, in order: PRAGMA user_version is how many a store has had. A
# store from before they were recorded (0) holds migration 1's tables already (IF NOT EXISTS).
MIGRATIONS = [_BASE_SCHEMA, _REPORTS_SCHEMA]

PENDING, DELIVERED, REFUSED, QUARANTINED = "pending", "delivered", "refused", "quarantined"
ANSWERED_KEPT_S = 24 * 3600     # a delivered report's line (id and answer) is kept this long


def _now(offset_s=0):
    return (datetime.now(timezone.utc) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """One SQLite file, shared by the recognition loop and the sync worker (one lock)."""

    def __init__(self, path):
        self.path = str(path)
        if not os.path.exists(self.path):   # templates and names: owner-only, like the server's
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA secure_delete=ON")   # delivered digits and crops: zeroed
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(gallery)")}
        if columns and "citizen_key" not in columns:
            # a cache from before citizen keys: drop it (the next sync fills it again)
            self._conn.execute("DROP TABLE gallery")
            self._conn.execute("DELETE FROM meta WHERE key = 'sync_seq'")
        self._migrate()
        self._tag_unnamed_cache()
        self._write([("DELETE FROM reports WHERE state = ? AND settled_at < ?",
                      (DELIVERED, _now(-ANSWERED_KEPT_S)))])

    @property
    def schema_version(self):
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self):
        """Apply the recorded schema changes this store has not had, each in one transaction
        with its number. A store of a newer device version is not opened (sqlite3.DatabaseError:
        the device refuses to start on it rather than guess at its tables)."""
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise sqlite3.DatabaseError(f"the store is of a newer device version (schema {version},"
                                        f" this device knows {len(MIGRATIONS)})")
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            self._write([(sql, ()) for sql in statements] + [(f"PRAGMA user_version = {number}", ())])

    def _tag_unnamed_cache(self):
        """A cache filled before face models were named holds dlib's templates: say so, or
        the device, upgraded and started offline, would hold a gallery of no model."""
        if self.gallery_model is None and self._read("SELECT 1 FROM gallery LIMIT 1"):
            self.set_meta("gallery_model", UNNAMED_MODEL)

    def close(self):
        with self._lock:
            self._conn.close()

    def _write(self, statements):
        """Run [(sql, params)] in one transaction; the number of rows they changed."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            changed = 0
            try:
                for sql, params in statements:
                    changed += max(0, self._conn.execute(sql, params).rowcount)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return changed

    def _read(self, sql, params=()):
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # --- gallery cache ---------------------------------------------------------------------

    @property
    def sync_seq(self):
        rows = self._read("SELECT value FROM meta WHERE key = 'sync_seq'")
        return int(rows[0][0]) if rows else 0

    @property
    def gallery_model(self):
        """The id of the face model the cached templates are of (None: nothing cached yet)."""
        return self.get_meta("gallery_model")

    def apply_delta(self, delta):
        """Apply a gallery delta from the server (upserts, removals, new seq) atomically.
        The delta must come from the registry this store is bound to (see bind) and be of the
        face model the cache holds, unless it replaces the cache ("full"): ModelChanged
        otherwise (the registry was re-encoded; the caller drops the cache and starts over).
        UnknownModel when this device's code does not hold the delta's model."""
        if delta.get("registry_id") != self.get_meta("registry_id"):
            raise RegistryMismatch(delta.get("registry_id"))
        model_id = delta.get("model") or UNNAMED_MODEL
        if model_id != self.gallery_model and not delta.get("full"):
            raise ModelChanged(model_id)
        model = models.by_id(model_id)
        statements = [("DELETE FROM gallery", ()),
                      ("INSERT OR REPLACE INTO meta (key, value) VALUES ('gallery_model', ?)",
                       (json.dumps(model.id),))] if delta.get("full") else []
        for key in delta.get("removals", []):
            statements.append(("DELETE FROM gallery WHERE citizen_key = ?", (_key(key),)))
        for entry in delta.get("upserts", []):
            statements.append((
                "INSERT OR REPLACE INTO gallery (citizen_key, display_name, language, templates)"
                " VALUES (?, ?, ?, ?)",
                (_key(entry["key"]), entry["display_name"], entry["language"],
                 _templates_blob(model, entry["templates"]))))
        statements.append(("INSERT OR REPLACE INTO meta (key, value) VALUES ('sync_seq', ?)",
                           (str(int(delta["seq"])),)))
        self._write(statements)

    def clear_gallery(self):
        """Forget every cached citizen and template (a revoked device keeps no biometrics)."""
        self._write([("DELETE FROM gallery", ()),
                     ("DELETE FROM meta WHERE key IN ('sync_seq', 'gallery_model')", ())])

    def use_endpoint(self, fingerprint):
        """Record the server and token this store is used with (fingerprint: never the token
        itself). When they changed, the cached gallery and config are dropped: a device pointed
        at another server must not greet from a cache filled for the old one while the new one
        cannot be reached to say which registry it is. The outbox waits for bind() (which
        quarantines it if the new server is another registry). True when the cache was dropped."""
        known = self.get_meta("endpoint")
        if known == fingerprint:
            return False
        record = [("INSERT OR REPLACE INTO meta (key, value) VALUES ('endpoint', ?)", (json.dumps(fingerprint),))]
        if known is None:           # a new store, or one from before endpoints were recorded
            self._write(record)
            return False
        self._write([("DELETE FROM gallery", ()),
                     ("DELETE FROM meta WHERE key IN ('sync_seq', 'config', 'gallery_model')", ())]
                    + record)
        return True

    def citizens(self):
        """{citizen_key: {"display_name", "language"}} for everyone in the cache."""
        rows = self._read("SELECT citizen_key, display_name, language FROM gallery")
        return {r["citizen_key"]: {"display_name": r["display_name"], "language": r["language"]}
                for r in rows}

    def gallery(self, model):
        """The cached templates as a recognition Gallery of the face model (citizens named by
        key); empty when the cache holds another model's templates, which are never compared."""
        ids, blocks = [], []
        rows = self._read("SELECT citizen_key, templates FROM gallery ORDER BY citizen_key") \
            if self.gallery_model == model.id else []
        for row in rows:
            block = np.frombuffer(row["templates"], dtype="<f4").reshape(-1, model.dims)
            ids += [row["citizen_key"]] * len(block)
            blocks.append(block)
        matrix = np.vstack(blocks) if blocks else np.empty((0, model.dims), np.float32)
        return Gallery.from_arrays(model, ids, matrix)

    # --- which registry and device this store belongs to -----------------------------------

    @property
    def registry_id(self):
        return self.get_meta("registry_id")

    def bind(self, registry_id, device_name):
        """Bind the store to a registry and device. A store that held another's data drops its
        cache and config, and quarantines its outbox (those sessions name citizens by that
        registry's keys: delivered here they would be filed under someone else or refused).
        Returns the number of sessions quarantined, or None when the binding is unchanged."""
        bound = (self.get_meta("registry_id"), self.get_meta("device_name"))
        if bound == (registry_id, device_name):
            return None
        identity = [("INSERT OR REPLACE INTO meta (key, value) VALUES ('registry_id', ?)",
                     (json.dumps(registry_id),)),
                    ("INSERT OR REPLACE INTO meta (key, value) VALUES ('device_name', ?)",
                     (json.dumps(device_name),))]
        if bound == (None, None):   # a new store: nothing of anyone else's to drop
            self._write(identity)
            return None
        moved = self.outbox_count()
        self._write([
            ("INSERT OR REPLACE INTO quarantine (id, body, snapshot, registry_id, quarantined_at)"
             " SELECT id, body, snapshot, ?, ? FROM outbox", (bound[0], _now())),
            ("DELETE FROM outbox", ()),
            # their reports too (a ticket or a blink of another registry's visit): kept as a
            # line, never sent here
            ("UPDATE reports SET state = ?, body = '{}', reason = ?, settled_at = ? WHERE state = ?",
             (QUARANTINED, f"recorded for registry {bound[0]}", _now(), PENDING)),
            ("DELETE FROM gallery", ()),
            ("DELETE FROM meta", ())] + identity)
        return moved

    def quarantined(self):
        return [dict(r) for r in self._read("SELECT id, registry_id, quarantined_at FROM quarantine"
                                            " ORDER BY quarantined_at, id")]

    # --- outbox ----------------------------------------------------------------------------

    def add_session(self, session, snapshot=None):
        """Commit one session (a JSON-able dict with an "id") and its JPEG to the outbox."""
        self._write([("INSERT INTO outbox (id, body, snapshot, created_at) VALUES (?, ?, ?, ?)",
                      (session["id"], json.dumps(session), snapshot, _now()))])

    def pending(self, limit=20, skip=0):
        """Up to `limit` outbox sessions after the first `skip` of them, oldest first, but a
        visit with reports waiting before the rest (someone may be waiting at the screen for
        its answer while a backlog goes out): [(session dict, snapshot bytes or None)]."""
        rows = self._read(
            "SELECT body, snapshot FROM outbox ORDER BY EXISTS (SELECT 1 FROM reports r"
            " WHERE r.session_id = outbox.id AND r.state = ?) DESC, created_at, id LIMIT ? OFFSET ?",
            (PENDING, limit, skip))
        return [(json.loads(r["body"]), r["snapshot"]) for r in rows]

    def is_pending(self, session_id):
        """Whether the session still waits in the outbox (its reports wait behind it)."""
        return bool(self._read("SELECT 1 FROM outbox WHERE id = ?", (session_id,)))

    def delivered(self, session_id):
        self._write([("DELETE FROM outbox WHERE id = ?", (session_id,))])

    def failed_attempt(self, session_id, error):
        self._write([("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                      (str(error), session_id))])

    def dead_letter(self, session_id, reason):
        """Move a session the server refused for good out of the outbox, keeping the reason."""
        self._write([
            ("INSERT OR REPLACE INTO dead_letter (id, body, snapshot, reason, failed_at)"
             " SELECT id, body, snapshot, ?, ? FROM outbox WHERE id = ?", (str(reason), _now(), session_id)),
            ("DELETE FROM outbox WHERE id = ?", (session_id,)),
            # its reports can never be taken (the registry has no such visit): refused with it
            ("UPDATE reports SET state = ?, body = '{}', reason = ?, settled_at = ?"
             " WHERE session_id = ? AND state = ?",
             (REFUSED, f"its session was refused: {reason}", _now(), session_id, PENDING))])

    def outbox_count(self):
        return self._read("SELECT count(*) FROM outbox")[0][0]

    def dead_letters(self):
        return [dict(r) for r in self._read("SELECT id, reason, failed_at FROM dead_letter ORDER BY failed_at")]

    # --- reports: what a visit says after its session --------------------------------------

    def add_report(self, report_id, session_id, kind, body):
        """Commit one report (a JSON-able request body) behind its session. False when a
        report with this id is known already: waiting, or answered (never queued twice)."""
        return self._write([(
            "INSERT OR IGNORE INTO reports (id, session_id, kind, body, created_at)"
            " VALUES (?, ?, ?, ?, ?)", (report_id, session_id, kind, json.dumps(body), _now()))]) == 1

    def report(self, report_id):
        """{"id", "session_id", "kind", "state", "answer", "reason"} of a report, or None."""
        rows = self._read("SELECT id, session_id, kind, state, answer, reason FROM reports WHERE id = ?",
                          (report_id,))
        if not rows:
            return None
        row = dict(rows[0])
        row["answer"] = json.loads(row["answer"]) if row["answer"] else None
        return row

    def pending_reports(self, session_id=None, exclude=(), limit=20):
        """Up to `limit` waiting reports in the order recorded, with their bodies: of one
        session, or (session_id None) of every session no longer in the outbox, but not of
        the sessions in `exclude`."""
        where, params = ["r.state = ?"], [PENDING]
        if session_id is not None:
            where.append("r.session_id = ?")
            params.append(session_id)
        else:
            where.append("NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = r.session_id)")
        if exclude:
            where.append(f"r.session_id NOT IN ({', '.join('?' for _ in exclude)})")
            params += list(exclude)
        rows = self._read(f"SELECT id, session_id, kind, body FROM reports r WHERE {' AND '.join(where)}"
                          " ORDER BY seq LIMIT ?", (*params, limit))
        return [dict(r, body=json.loads(r["body"])) for r in rows]

    def report_delivered(self, report_id, answer):
        """The registry answered the report: keep its line and the answer, not its body."""
        self._settle(report_id, DELIVERED, answer, "")

    def refuse_report(self, report_id, answer, reason):
        """The registry refused the report for good: kept as a line with the reason."""
        self._settle(report_id, REFUSED, answer, reason)

    def _settle(self, report_id, state, answer, reason):
        self._write([("UPDATE reports SET state = ?, body = '{}', answer = ?, reason = ?, settled_at = ?"
                      " WHERE id = ? AND state = ?",
                      (state, json.dumps(answer), str(reason), _now(), report_id, PENDING))])

    def report_failed_attempt(self, report_id, error):
        self._write([("UPDATE reports SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                      (str(error), report_id))])

    def reports_waiting(self):
        return self._read("SELECT count(*) FROM reports WHERE state = ?", (PENDING,))[0][0]

    def refused_reports(self):
        return [dict(r) for r in self._read(
            "SELECT id, session_id, kind, state, reason, settled_at FROM reports WHERE state IN (?, ?)"
            " ORDER BY seq", (REFUSED, QUARANTINED))]

    # --- small settings (last config from the server, revoked flag) ---------------------------

    def get_meta(self, key, default=None):
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key, value):
        self._write([("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))])


class RegistryMismatch(ValueError):
    """A gallery delta from another registry than the store is bound to."""


class ModelChanged(ValueError):
    """A gallery delta of another face model than the cached templates' (a re-encoded registry)."""


def _key(value):
    if not isinstance(value, str) or not value:
        raise ValueError("a citizen key must be a non-empty string")
    return value


def _templates_blob(model, templates):
    """base64 float32 templates from the API -> one BLOB of n x dims little-endian float32."""
    import base64
    vectors = [np.frombuffer(base64.b64decode(t), dtype="<f4") for t in templates]
    if any(v.shape != (model.dims,) for v in vectors):
        raise ValueError(f"a gallery template does not have {model.dims} values ({model.name})")
    return b"".join(v.tobytes() for v in vectors)
