"""Queries shared across features. Feature-specific ones live beside their blueprint."""
import json
import secrets

from .connection import now_iso


def next_sync_seq(db):
    """A new, higher sync sequence number (call inside a transaction)."""
    db.execute("UPDATE sync_counter SET seq = seq + 1 WHERE id = 1")
    return db.execute("SELECT seq FROM sync_counter WHERE id = 1").fetchone()[0]


def audit(db, actor_type, actor_id, actor_name, action, target_type="", target_id="",
          detail="", ip=""):
    """Append one audit entry. detail may be a dict (stored as JSON)."""
    if not isinstance(detail, str):
        detail = json.dumps(detail, ensure_ascii=False, sort_keys=True)
    db.execute(
        "INSERT INTO audit_log (at, actor_type, actor_id, actor_name, action, target_type,"
        " target_id, detail, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [now_iso(), actor_type, actor_id, actor_name, action, target_type, str(target_id),
         detail, ip])


def get_setting(db, key, default=None):
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else default


def set_setting(db, key, value):
    db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key)"
               " DO UPDATE SET value = excluded.value", [key, json.dumps(value)])


def citizen(db, citizen_id, removed_too=False):
    """The citizen's row; one removed from the registry only with removed_too (their cases
    and visits stay as history)."""
    return db.execute("SELECT * FROM citizens WHERE id = ?"
                      + ("" if removed_too else " AND removed_at IS NULL"), [citizen_id]).fetchone()


def search_citizens(db, q, limit=50, after_id=0):
    """Citizens whose ID number, name or phone contains q (keyset pagination by id)."""
    like = f"%{q.strip()}%"
    op = db.like  # case-insensitive on both engines
    return db.execute(
        "SELECT * FROM citizens WHERE removed_at IS NULL AND id > ? AND"
        f" (? = '%%' OR id_number {op} ? OR name {op} ? OR phone {op} ?)"
        " ORDER BY id LIMIT ?", [after_id, like, like, like, like, min(limit, 100)]).fetchall()


def citizen_cases(db, citizen_id):
    return db.execute("SELECT * FROM cases WHERE citizen_id = ? ORDER BY case_number",
                      [citizen_id]).fetchall()


def new_citizen_key():
    """A citizen's key for devices: random, so it says nothing and cannot be guessed."""
    return "c_" + secrets.token_urlsafe(12)


def new_registry_id():
    return "r_" + secrets.token_urlsafe(12)


def registry_id(db):
    """This registry's random id (devices bind their cached gallery and outbox to it)."""
    return get_setting(db, "registry.id")
