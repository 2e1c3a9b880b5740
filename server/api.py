"""The device API: bearer-token auth, JSON only.

Devices (kiosks, robots) authenticate with `Authorization: Bearer TOKEN`. A token is shown
once, when the device is registered; the server keeps only its SHA-256, so a leaked
database does not let anyone pose as a device. A revoked device gets 401 at once.

    GET  /api/v1/gallery?since=SEQ   templates changed after SEQ (never ID numbers or phones)
    POST /api/v1/sessions            one visit, idempotent by its client-generated UUID
    GET  /api/v1/sessions/<id>       a session this device posted
    GET  /api/v1/config              the decision policy and greeting settings for devices

A session is posted as JSON, or as multipart/form-data with the same JSON in a "session"
part and a JPEG in a "snapshot" part.
"""
import base64
import functools
import hashlib
import json
import os
import secrets
import sqlite3
import uuid
from datetime import datetime, timezone

import click
from flask import Blueprint, current_app, g, jsonify, request
from flask.cli import with_appcontext

from db import now_iso, transaction
from db.queries import audit, get_setting, next_sync_seq
from recognition import PhotoRejected
from recognition.decision import Policy
from recognition.images import load_image
from recognition.templates import from_blob

from .errors import ApiError
from .web import SQLITE_MAX_INT, client_ip, get_db

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEVICE_KINDS = ("kiosk", "robot")
OUTCOMES = ("greeted", "unknown")
LIVENESS = ("passed", "failed", "not_run")
SNAPSHOT_MAX_BYTES = 2 * 1024 * 1024    # a 640x360 JPEG is ~50 KB; a whole-frame 1080p one ~500 KB
SNAPSHOT_MAX_PIXELS = 4_000_000
SESSION_MAX_BYTES = SNAPSHOT_MAX_BYTES + 64 * 1024   # the snapshot plus the JSON and multipart framing
# What a replay must repeat to be the same visit. Liveness is left out: the server changes it
# after the upload (POST .../liveness), and a retried upload still says "not_run".
REPLAY_KEYS = ("outcome", "citizen_id", "started_at", "distance", "margin", "time_to_greet")
GALLERY_PAGE = 500                      # citizens per delta response; the device asks again for more
DEFAULT_GREETINGS = {"zh": "{name}，您好！", "yue": "{name}，你好！", "en": "Hello, {name}!"}
DEFAULT_HONORIFICS = {"zh": "", "yue": "", "en": ""}


class DeviceError(ValueError):
    """A device command that cannot be done (unknown name, duplicate, bad kind)."""


# --- devices -------------------------------------------------------------------------------

def hash_token(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def register_device(db, name, kind, site=""):
    """Add a device and return its new bearer token (shown once; only the hash is kept)."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise DeviceError("device name must be 1 to 64 characters")
    if kind not in DEVICE_KINDS:
        raise DeviceError(f"kind must be one of: {', '.join(DEVICE_KINDS)}")
    # The prefix keeps a token from starting with "-", which a command line (`--token -x...`)
    # would read as an option; it also makes a leaked token recognisable in logs.
    token = "civic_" + secrets.token_urlsafe(32)
    with transaction(db):
        if db.execute("SELECT 1 FROM devices WHERE name = ?", [name]).fetchone():
            raise DeviceError(f"device {name!r} already exists")
        db.execute("INSERT INTO devices (name, kind, site, token_hash, created_at)"
                   " VALUES (?, ?, ?, ?, ?)", [name, kind, site or "", hash_token(token), now_iso()])
        audit(db, "system", None, "cli", "device.register", "device", name, {"kind": kind, "site": site or ""})
    return token


def revoke_device(db, name):
    """Revoke a device: its token fails with 401 from the next request on."""
    with transaction(db):
        row = db.execute("SELECT id, revoked_at FROM devices WHERE name = ?", [name]).fetchone()
        if row is None:
            raise DeviceError(f"no device named {name!r}")
        if row["revoked_at"]:
            raise DeviceError(f"device {name!r} was already revoked at {row['revoked_at']}")
        db.execute("UPDATE devices SET revoked_at = ? WHERE id = ?", [now_iso(), row["id"]])
        audit(db, "system", None, "cli", "device.revoke", "device", name)


def _bearer_token():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token (Authorization: Bearer TOKEN)")
    return token.strip()


def device_required(view):
    """The request must carry a live device's token; the device is g.device."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        db = get_db()
        row = db.execute("SELECT * FROM devices WHERE token_hash = ?",
                         [hash_token(_bearer_token())]).fetchone()
        if row is None:
            raise ApiError(401, "unknown device token")
        if row["revoked_at"]:
            raise ApiError(401, "device token revoked")
        db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", [now_iso(), row["id"]])
        g.device = row
        return view(*args, **kwargs)
    return wrapped


def audit_device(action, target_type="", target_id="", detail=""):
    device = g.device
    audit(get_db(), "device", device["id"], device["name"], action, target_type, target_id,
          detail, client_ip())


# --- gallery -------------------------------------------------------------------------------

GALLERY_BY_SITE = "gallery.by_site"


def gallery_delta(db, since, limit=GALLERY_PAGE, site=""):
    """Citizens changed after sync seq `since`: upserts (templates to hold) and removals.

    A citizen removed, without consent, or with no template is a removal: the device must
    forget them. With the gallery.by_site setting on, so is a citizen of another site than
    the device's (district set and different). "full" tells the device to drop its whole
    cache first (since=0). About `limit` citizens come per call; "more" says to ask again
    from the returned "seq".
    """
    db.execute("BEGIN")  # one snapshot: the counter and the rows it covers agree
    try:
        current = _current_seq(db)
        if since > current:  # the server's database was replaced: start the device over
            since = 0
        upto = _page_end(db, since, current, limit)
        rows = db.execute(
            "SELECT id, name, language, consent, removed_at, district FROM citizens"
            " WHERE sync_seq > ? AND sync_seq <= ? ORDER BY sync_seq, id", [since, upto]).fetchall()
        scope = site if site and get_setting(db, GALLERY_BY_SITE, False) else None
        upserts, removals = _split_changes(db, rows, scope)
    finally:
        db.execute("COMMIT")
    return {"seq": upto, "upserts": upserts, "removals": removals, "full": since == 0,
            "more": upto < current}


def _page_end(db, since, current, limit):
    """The seq that ends a page of about `limit` citizens. A page ends on a whole seq,
    never inside one: an import may give many citizens the same seq."""
    row = db.execute(
        "SELECT sync_seq FROM citizens WHERE sync_seq > ? AND sync_seq <= ?"
        " ORDER BY sync_seq LIMIT 1 OFFSET ?", [since, current, limit - 1]).fetchone()
    return row[0] if row else current


def _split_changes(db, rows, site=None):
    upserts, removals = [], []
    for row in rows:
        wanted = row["consent"] and not row["removed_at"] and _in_scope(row, site)
        templates = _templates(db, row["id"]) if wanted else []
        if templates:
            upserts.append({"citizen_id": row["id"], "display_name": row["name"],
                            "language": row["language"], "templates": templates})
        else:
            removals.append(row["id"])
    return upserts, removals


def _in_scope(row, site):
    """Whether a device of `site` holds this citizen (site None: every device holds all)."""
    return site is None or not row["district"] or row["district"] == site


def resend_gallery(db):
    """Mark every citizen changed (call inside a transaction): after a change of scope each
    device gets every citizen again, as an upsert or a removal."""
    db.execute("UPDATE citizens SET sync_seq = ?", [next_sync_seq(db)])


def _templates(db, citizen_id):
    rows = db.execute("SELECT encoding FROM face_templates WHERE citizen_id = ? ORDER BY id",
                      [citizen_id]).fetchall()
    return [base64.b64encode(from_blob(r["encoding"]).astype("<f4").tobytes()).decode("ascii")
            for r in rows]


def _current_seq(db):
    return db.execute("SELECT seq FROM sync_counter WHERE id = 1").fetchone()[0]


@bp.route("/gallery")
@device_required
def gallery():
    since = request.args.get("since", "0")
    # ASCII digits only: "²".isdigit() is True but int("²") raises (a 500)
    if not (since.isascii() and since.isdigit()):
        raise ApiError(400, "since must be a non-negative integer")
    delta = gallery_delta(get_db(), int(since), site=g.device["site"])
    return jsonify(delta)


# --- config --------------------------------------------------------------------------------

def device_config(db):
    """What a device needs to decide and greet; settings override the shipped defaults."""
    policy = Policy()
    return {
        "threshold": get_setting(db, "policy.threshold", policy.threshold),
        "margin": get_setting(db, "policy.margin", policy.margin),
        "min_frames": get_setting(db, "policy.min_frames", policy.min_frames),
        "unknown_after": get_setting(db, "policy.unknown_after", policy.unknown_after),
        "greeting_templates": {**DEFAULT_GREETINGS, **get_setting(db, "greeting.templates", {})},
        "honorifics": {**DEFAULT_HONORIFICS, **get_setting(db, "greeting.honorifics", {})},
        "regreet_after_s": get_setting(db, "greeting.regreet_after_s", 60),
        "sync_interval_s": get_setting(db, "device.sync_interval_s", 30),
    }


@bp.route("/config")
@device_required
def config():
    return jsonify(device_config(get_db()))


# --- sessions ------------------------------------------------------------------------------

class SessionInvalid(ValueError):
    """A session payload that can never be stored; the message says which field and why."""


def parse_session(payload):
    """Validate a posted session dict; return the columns to store. Raises SessionInvalid."""
    if not isinstance(payload, dict):
        raise SessionInvalid("the session must be a JSON object")
    session = {"id": _uuid(payload.get("id")),
               "outcome": _choice(payload, "outcome", OUTCOMES, None),
               "liveness": _choice(payload, "liveness", LIVENESS, "not_run"),
               "started_at": _timestamp(payload.get("started_at"))}
    for key in ("distance", "margin", "time_to_greet"):
        session[key] = _number(payload, key)
    session["citizen_id"] = _citizen_id(payload.get("citizen_id"), session["outcome"])
    return session


def _uuid(value):
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise SessionInvalid("id must be a UUID generated by the device")


def _choice(payload, key, allowed, default):
    value = payload.get(key, default)
    if value not in allowed:
        raise SessionInvalid(f"{key} must be one of: {', '.join(allowed)}")
    return value


def _timestamp(value):
    """ISO 8601 with a time zone, stored as UTC like every other timestamp."""
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # year 1 or 9999 with an offset has no UTC form: OverflowError, a 500 before
        utc = stamp.astimezone(timezone.utc) if stamp.tzinfo is not None else None
    except (AttributeError, ValueError, OverflowError):
        utc = None
    if utc is None:
        raise SessionInvalid("started_at must be an ISO 8601 time with a time zone")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(payload, key):
    value = payload.get(key)
    if value is None:
        return None
    # One chained comparison refuses NaN and infinities too; math.isfinite(10**400) raised
    # OverflowError (a 500) on a huge JSON integer.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e6:
        raise SessionInvalid(f"{key} must be a non-negative number or null")
    return float(value)


def _citizen_id(value, outcome):
    if outcome == "unknown":
        if value is not None:
            raise SessionInvalid("citizen_id must be null when the outcome is unknown")
        return None
    # beyond SQLite's integer range the lookup raised OverflowError (a 500)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= SQLITE_MAX_INT:
        raise SessionInvalid("citizen_id must be a citizen's id when the outcome is greeted")
    return value


def _request_session():
    """(payload dict, snapshot bytes or None) from a JSON or multipart request."""
    if (request.content_length or 0) > SESSION_MAX_BYTES:  # before anything is parsed
        raise ApiError(413, f"a session upload is at most {SESSION_MAX_BYTES // 1024} KB")
    request.max_content_length = SESSION_MAX_BYTES  # a chunked body has no Content-Length
    if request.mimetype == "multipart/form-data":
        text = request.form.get("session")
        if text is None:
            raise ApiError(400, 'multipart upload needs a "session" part holding the JSON')
        try:
            payload = json.loads(text)
        except ValueError:
            raise ApiError(400, 'the "session" part is not valid JSON')
        upload = request.files.get("snapshot")
        return payload, (upload.read(SNAPSHOT_MAX_BYTES + 1) if upload else None)
    if len(request.get_data(cache=True)) >= SESSION_MAX_BYTES:  # a chunked body stops at the cap
        raise ApiError(413, f"a session upload is at most {SESSION_MAX_BYTES // 1024} KB")
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "send the session as JSON (Content-Type: application/json) or multipart")
    return payload, None


def _check_snapshot(data):
    if len(data) > SNAPSHOT_MAX_BYTES:
        raise ApiError(413, f"snapshot is larger than {SNAPSHOT_MAX_BYTES // 1024} KB")
    if not data.startswith(b"\xff\xd8\xff"):
        raise ApiError(400, "snapshot must be a JPEG image")
    try:
        load_image(data, max_bytes=SNAPSHOT_MAX_BYTES, max_pixels=SNAPSHOT_MAX_PIXELS)
    except PhotoRejected as e:
        raise ApiError(400, f"snapshot rejected: {e.reason}")


def _save_snapshot(session_id, data):
    """Write the JPEG (atomically: a reader never sees half a file); its name relative to SNAPSHOTS_DIR."""
    name = f"{session_id}.jpg"
    path = os.path.join(current_app.config["SNAPSHOTS_DIR"], name)
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return name


def session_json(row):
    """A session as the device sees it (no clerk notes)."""
    keys = ("id", "citizen_id", "outcome", "distance", "margin", "time_to_greet", "liveness",
            "started_at", "received_at", "review_status", "ticket_number", "case_opened_at")
    body = {key: row[key] for key in keys}
    body["snapshot"] = bool(row["snapshot_path"])
    return body


def device_session(db, session_id, device_id):
    """The session with this id posted by this device, or None."""
    return db.execute("SELECT * FROM sessions WHERE id = ? AND device_id = ?",
                      [session_id, device_id]).fetchone()


def _existing(db, session_id, session=None):
    """A replay of an upload: the stored row (200). Another device's id is a conflict, and so
    is the same id with other content: answering 200 would tell the device its visit was
    stored, and it would delete the only copy from its outbox."""
    row = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
    if row is not None and row["device_id"] != g.device["id"]:
        raise ApiError(409, "a session with this id was posted by another device")
    if row is not None and session is not None and any(
            row[key] != session[key] for key in REPLAY_KEYS):
        raise ApiError(409, "a different session with this id was already posted")
    return row


@bp.route("/sessions", methods=["POST"])
@device_required
def post_session():
    payload, snapshot = _request_session()
    try:
        session = parse_session(payload)
    except SessionInvalid as e:
        raise ApiError(400, str(e))
    db = get_db()
    row = _existing(db, session["id"], session)
    if row is not None:
        return jsonify(session_json(row)), 200
    if session["citizen_id"] is not None and not db.execute(
            "SELECT 1 FROM citizens WHERE id = ?", [session["citizen_id"]]).fetchone():
        raise ApiError(400, "citizen_id is not a known citizen")
    if snapshot is not None:
        _check_snapshot(snapshot)
        session["snapshot_path"] = _save_snapshot(session["id"], snapshot)
    row, created = _insert_session(db, session)
    return jsonify(session_json(row)), 201 if created else 200


def _insert_session(db, session):
    """(row, created): the stored session, and whether this request stored it."""
    session.update(device_id=g.device["id"], received_at=now_iso())
    columns = ", ".join(session)
    marks = ", ".join("?" for _ in session)
    try:
        with transaction(db):
            db.execute(f"INSERT INTO sessions ({columns}) VALUES ({marks})", list(session.values()))
            audit_device("session.upload", "session", session["id"],
                         {"outcome": session["outcome"], "citizen_id": session["citizen_id"]})
    except sqlite3.IntegrityError:
        # Two uploads of the same session raced; the first one stored it.
        row = _existing(db, session["id"], session)
        if row is None:
            raise
        return row, False
    return device_session(db, session["id"], g.device["id"]), True


@bp.route("/sessions/<session_id>")
@device_required
def get_session(session_id):
    row = device_session(get_db(), session_id, g.device["id"])
    if row is None:
        raise ApiError(404, "no such session from this device")
    return jsonify(session_json(row))


# --- CLI -----------------------------------------------------------------------------------

def _cli_db():
    from .cli import cli_db
    return cli_db()


@click.command("register-device")
@click.argument("name")
@click.option("--kind", type=click.Choice(DEVICE_KINDS), required=True)
@click.option("--site", default="", help="Service hall the device stands in.")
@with_appcontext
def register_device_command(name, kind, site):
    """Register a kiosk or robot and print its token (shown only this once)."""
    try:
        token = register_device(_cli_db(), name, kind, site)
    except DeviceError as e:
        raise click.ClickException(str(e))
    click.echo(f"registered {kind} {name}; its token (shown only once, store it on the device):")
    click.echo(token)


@click.command("revoke-device")
@click.argument("name")
@with_appcontext
def revoke_device_command(name):
    """Revoke a device's token: its next request gets 401."""
    try:
        revoke_device(_cli_db(), name)
    except DeviceError as e:
        raise click.ClickException(str(e))
    click.echo(f"revoked {name}")


cli_commands = [register_device_command, revoke_device_command]
