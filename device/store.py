"""The device's local SQLite file: the gallery cache and the outbox of sessions.

synchronous=FULL with WAL: a session is on disk when add_session() returns, so a power cut
or kill -9 right after the greeting loses nothing. The agent commits a session here
*before* it announces the greeting; the uploader deletes it only after the server's 2xx.
A session the server refuses for good (a 4xx that no retry can fix) moves to dead_letter
with the reason, so one bad record never blocks the others.
"""
import json
import os
import sqlite3
import threading
from datetime import datetime, timezone

import numpy as np

from recognition import models
from recognition.gallery import Gallery

# A registry from before face models were named sent no "model": its templates were dlib's.
UNNAMED_MODEL = models.get("dlib").id

_SCHEMA = [
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


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(gallery)")}
        if columns and "citizen_key" not in columns:
            # a cache from before citizen keys: drop it (the next sync fills it again)
            self._conn.execute("DROP TABLE gallery")
            self._conn.execute("DELETE FROM meta WHERE key = 'sync_seq'")
        for sql in _SCHEMA:
            self._conn.execute(sql)
        self._tag_unnamed_cache()

    def _tag_unnamed_cache(self):
        """A cache filled before face models were named holds dlib's templates: say so, or
        the device, upgraded and started offline, would hold a gallery of no model."""
        if self.gallery_model is None and self._read("SELECT 1 FROM gallery LIMIT 1"):
            self.set_meta("gallery_model", UNNAMED_MODEL)

    def close(self):
        with self._lock:
            self._conn.close()

    def _write(self, statements):
        """Run [(sql, params)] in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._conn.execute(sql, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

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
        """Up to `limit` outbox sessions, oldest first, after the first `skip` of them:
        [(session dict, snapshot bytes or None)]."""
        rows = self._read("SELECT body, snapshot FROM outbox ORDER BY created_at, id LIMIT ? OFFSET ?",
                          (limit, skip))
        return [(json.loads(r["body"]), r["snapshot"]) for r in rows]

    def set_liveness(self, session_id, result):
        """Write the liveness verdict into a session still in the outbox, so a session
        uploaded after an offline spell says what the device saw. True when it was there."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT body FROM outbox WHERE id = ?", (session_id,)).fetchone()
                if row is not None:
                    body = dict(json.loads(row[0]), liveness=result)
                    self._conn.execute("UPDATE outbox SET body = ? WHERE id = ?",
                                       (json.dumps(body), session_id))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return row is not None

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
            ("DELETE FROM outbox WHERE id = ?", (session_id,))])

    def outbox_count(self):
        return self._read("SELECT count(*) FROM outbox")[0][0]

    def dead_letters(self):
        return [dict(r) for r in self._read("SELECT id, reason, failed_at FROM dead_letter ORDER BY failed_at")]

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
