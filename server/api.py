"""The device API: bearer-token auth (server/devices.py), JSON only.

    GET  /api/v1/gallery?since=SEQ   templates changed after SEQ (never ID numbers or phones)
    POST /api/v1/sessions            one visit, idempotent by its client-generated UUID
    GET  /api/v1/sessions/<id>       a session this device posted
    GET  /api/v1/config              the decision policy and greeting settings for devices

A session is posted as JSON, or as multipart/form-data with the same JSON in a "session"
part and a JPEG in a "snapshot" part (the JSON read by security.parse_json either way). Its
distances are on the face model it names ("model", a profile id): one the server does not
know, or a session that names none (an older device), is stored with its distances
untagged, shown to clerks but never folded into the registry's false-match curve.

Gallery and config pulls, and uploads, are paced per device (server/limits.py): past the
limit, 429 with Retry-After, which a device waits out.
"""
import contextlib
import json
import os
import re
import uuid
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, has_request_context, jsonify, request

from db import now_iso, snapshot, transaction
from db.queries import registry_id
from recognition import PhotoRejected, models
from recognition.images import load_image

from . import calibration, disk, faces, limits, settings
from .database import get_db
from .devices import audit_device, device_actor, device_required
from .errors import ApiError
from .files import write_whole
from .gallery import device_scope, gallery_delta, in_scope
from .security import JSONRefused, parse_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")

OUTCOMES = ("greeted", "unknown")
LIVENESS = ("passed", "failed", "not_run")
SNAPSHOT_MAX_BYTES = 2 * 1024 * 1024    # a 640x360 JPEG is ~50 KB; a whole-frame 1080p one ~500 KB
SNAPSHOT_MAX_PIXELS = 4_000_000
SESSION_MAX_BYTES = SNAPSHOT_MAX_BYTES + 64 * 1024   # the snapshot plus the JSON and multipart framing
SESSION_JSON_MAX_BYTES = 256 * 1024  # a session's JSON is ~1 KB (five candidates at most)
# What a replay must repeat to be the same visit. Liveness is left out: the server changes it
# after the upload (POST .../liveness), and a retried upload still says "not_run".
REPLAY_KEYS = ("outcome", "citizen_id", "device_started_at", "distance", "margin", "time_to_greet")
REFUSAL_RULES = ("threshold", "margin", "agreement", "empty_gallery", "model_missing")
MAX_CANDIDATES = 5
KEY_MAX = 64
# What a citizen key can be (db.queries.new_citizen_key: "c_" and URL-safe base64). A key
# is looked up on the clerk's page of the session: one holding a lone surrogate answered 500
# there for good, so nothing else is stored.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,%d}" % KEY_MAX)
# No visit is older than this: a device clock reset to year 1 stored "0001-01-01", which
# has no local time west of Greenwich (OverflowError on the clerk's page).
EARLIEST_VISIT = "2000-01-01T00:00:00Z"


# The face models a device's code runs, as it says in this header ("id,id"). A device from
# before face models were named says nothing: it can only read dlib's 128-d templates.
FACE_MODELS_HEADER = "X-Face-Models"
LEGACY_MODELS = ("dlib-55533b28a958",)


def device_runs(model):
    """Whether the calling device can run the face model (see FACE_MODELS_HEADER); outside
    a device's request (the admin pages, a command) it is asked what a current device gets."""
    if not has_request_context():
        return True
    said = request.headers.get(FACE_MODELS_HEADER)
    if said is None:
        return model.id in LEGACY_MODELS
    return model.id in said[:1024].split(",")


def _nothing_to_hold(db):
    """A delta that empties the cache of a device that cannot run the registry's model: an
    older kiosk would keep its old templates (and citizens removed since) for ever, and read
    the new model's thresholds against them."""
    with snapshot(db):
        return {"registry_id": registry_id(db), "model": faces.active_id(db), "seq": _seq(db),
                "upserts": [], "removals": [], "full": True, "more": False}


def _seq(db):
    return db.execute("SELECT seq FROM sync_counter WHERE id = 1").fetchone()[0]


BEYOND_ANY_SEQ = 2 ** 63     # a since past every seq: the device starts over


def _since(text):
    """The seq a device asks for changes after. ASCII digits only: "²".isdigit() is True but
    int("²") raises (a 500), and so does int() of 5,000 digits."""
    if not (text.isascii() and text.isdigit()):
        raise ApiError(400, "since must be a non-negative integer")
    return int(text) if len(text) <= 18 else BEYOND_ANY_SEQ


def _count_pull(db):
    """429 with Retry-After when the device is over its pace of pulls (server/limits.py)."""
    with disk.skipped_when_full("a device's pull count"):   # a full disk never stops a read
        limits.count_pull(db, g.device, current_app.config, device_actor())


@bp.route("/gallery")
@device_required
def gallery():
    since = _since(request.args.get("since", "0"))
    db = get_db()
    _count_pull(db)
    if not device_runs(faces.active(db)):
        return jsonify(_nothing_to_hold(db))
    delta = gallery_delta(db, since, site=g.device["site"])
    if delta["upserts"]:
        # names and templates left the registry: on record, once a minute with a count (an
        # empty poll is not); on a full disk the reserve is spent on it, else the log has it
        with disk.skipped_when_full(f"the audit of device {g.device['name']}'s pull of"
                                    f" {len(delta['upserts'])} citizens"):
            disk.retry_after_release(current_app.config, limits.audit_gallery_pull, db,
                                     device_actor(), g.device, 0 if delta["full"] else since,
                                     len(delta["upserts"]), delta["full"])
    return jsonify(delta)


# --- config --------------------------------------------------------------------------------

def device_config(db, device):
    """What a device needs to decide and greet (admin settings over the shipped defaults),
    and who it is: the registry and the device the token belongs to."""
    threshold, size = calibration.device_threshold(db, device["site"])
    model = faces.active(db)
    if not device_runs(model):
        threshold = 0.0      # a device on another model's scale names nobody: see a clerk
    return {
        "registry_id": registry_id(db),
        "device": {"name": device["name"], "kind": device["kind"], "site": device["site"]},
        # the face model the gallery's templates are of: a device without it greets no one
        "model": model.id,
        "model_dims": model.dims,
        "same_face": model.bounds.same_face,
        # for this device's own gallery size, from the registry's measured false-match curve
        "threshold": threshold,
        "calibrated": True,
        "gallery_size": size,
        "evidence_frames": settings.value(db, "policy.evidence_frames"),
        "margin": settings.value(db, "policy.margin"),
        "min_frames": settings.value(db, "policy.min_frames"),
        "unknown_after": settings.value(db, "policy.unknown_after"),
        "greeting_templates": settings.value(db, "greeting.templates"),
        "honorifics": settings.value(db, "greeting.honorifics"),
        "regreet_after_s": settings.value(db, "greeting.regreet_after_s"),
        "sync_interval_s": settings.value(db, "device.sync_interval_s"),
    }


@bp.route("/config")
@device_required
def config():
    db = get_db()
    _count_pull(db)
    return jsonify(device_config(db, g.device))


# --- sessions ------------------------------------------------------------------------------

class SessionInvalid(ValueError):
    """A session payload that can never be stored; the message says which field and why."""


def parse_session(payload):
    """Validate a posted session dict. Returns (columns to store, the citizen's key or None,
    the registry id the device recorded it for). Raises SessionInvalid."""
    if not isinstance(payload, dict):
        raise SessionInvalid("the session must be a JSON object")
    session = {"id": _uuid(payload.get("id")),
               "outcome": _choice(payload, "outcome", OUTCOMES, None),
               # a pass is the server's to find in the blink's evidence (POST .../liveness):
               # an upload saying "passed" opened case files with no evidence at all
               "liveness": "failed" if _choice(payload, "liveness", LIVENESS, "not_run") == "failed"
               else "not_run",
               "started_at": _timestamp(payload.get("started_at")),
               "face_model": _face_model(payload.get("model"))}
    model = models.by_id(session["face_model"]) if session["face_model"] else None
    session["candidates"] = json.dumps(_candidates(payload.get("candidates", []), model))
    session["refused_by"] = _refusal(payload.get("refused_by"), payload.get("outcome"))
    for key in ("distance", "margin", "time_to_greet"):
        session[key] = _number(payload, key)
    key = _citizen_key(payload.get("citizen_key"), session["outcome"])
    registry = payload.get("registry_id")
    if not (registry is None or (isinstance(registry, str) and len(registry) <= KEY_MAX)):
        raise SessionInvalid("registry_id must be the id of the registry the device synced with")
    return session, key, registry


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
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if stamp < EARLIEST_VISIT:
        raise SessionInvalid(f"started_at is before {EARLIEST_VISIT[:4]}: the device's clock is wrong")
    return stamp


def _number(payload, key):
    value = payload.get(key)
    if value is None:
        return None
    # One chained comparison refuses NaN and infinities too; math.isfinite(10**400) raised
    # OverflowError (a 500) on a huge JSON integer.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e6:
        raise SessionInvalid(f"{key} must be a non-negative number or null")
    return float(value)


def _citizen_key(value, outcome):
    if outcome == "unknown":
        if value is not None:
            raise SessionInvalid("citizen_key must be null when the outcome is unknown")
        return None
    if not is_key(value):
        raise SessionInvalid("citizen_key must be the key of the citizen greeted (from the gallery)")
    return value


def is_key(value):
    """Whether value can be a citizen's key (KEY_PATTERN)."""
    return isinstance(value, str) and KEY_PATTERN.fullmatch(value) is not None


def _face_model(value):
    """The id of the face model the session's distances are on, or None (not said, or a
    model this server does not know: its distances are kept but never measured on)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > KEY_MAX:
        raise SessionInvalid("model must be the id of the face model the device greets with")
    try:
        return models.by_id(value).id
    except models.UnknownModel:
        return None


def _candidates(value, model=None):
    """The device's nearest citizens, as [{"key", "distance"}] (keys only: no templates).
    Distances past what the model's templates can be apart (any model's, when unknown) are
    junk and refuse the session."""
    largest = model.bounds.max_reported if model else max(
        m.bounds.max_reported for m in models.PROFILES.values())
    if not isinstance(value, list) or len(value) > MAX_CANDIDATES:
        raise SessionInvalid(f"candidates must be a list of at most {MAX_CANDIDATES} entries")
    checked = []
    for entry in value:
        if not isinstance(entry, dict) or not is_key(entry.get("key")):
            raise SessionInvalid('each candidate is {"key": citizen key, "distance": number}')
        distance = _number(entry, "distance")
        if distance is None or distance > largest:
            raise SessionInvalid(f"a candidate's distance must be a number from 0 to {largest:g}")
        checked.append({"key": entry["key"], "distance": round(distance, 4)})
    return checked


def _refusal(value, outcome):
    if value is None or (outcome == "unknown" and value in REFUSAL_RULES):
        return value
    raise SessionInvalid(f"refused_by is null, or for an unknown visitor one of: "
                         f"{', '.join(REFUSAL_RULES)}")


def _request_session():
    """(payload, snapshot bytes or None) from a JSON or multipart request. The JSON, alone
    or in the "session" part, is read by the one safe parser (security.parse_json)."""
    if (request.content_length or 0) > SESSION_MAX_BYTES:  # before anything is parsed
        raise ApiError(413, f"a session upload is at most {SESSION_MAX_BYTES // 1024} KB")
    request.max_content_length = SESSION_MAX_BYTES  # a chunked body has no Content-Length
    if request.mimetype == "multipart/form-data":
        return _multipart_session()
    if len(request.get_data(cache=True)) >= SESSION_MAX_BYTES:  # a chunked body stops at the cap
        raise ApiError(413, f"a session upload is at most {SESSION_MAX_BYTES // 1024} KB")
    if not request.is_json:
        raise ApiError(400, "send the session as JSON (Content-Type: application/json) or multipart")
    return _session_json(request.get_data(cache=True)), None


def _multipart_session():
    text = request.form.get("session")
    if text is None:
        raise ApiError(400, 'multipart upload needs a "session" part holding the JSON')
    upload = request.files.get("snapshot")
    return _session_json(text, 'the "session" part'), (
        upload.read(SNAPSHOT_MAX_BYTES + 1) if upload else None)


def _session_json(text, what="the session"):
    """The parsed session JSON; 413 when larger than a session can be, 400 when unreadable."""
    if len(text) > SESSION_JSON_MAX_BYTES:
        raise ApiError(413, f"{what} is larger than {SESSION_JSON_MAX_BYTES // 1024} KB of JSON")
    try:
        return parse_json(text, SESSION_JSON_MAX_BYTES)
    except JSONRefused as e:
        raise ApiError(400, f"{what} is not JSON the registry can read: {e}")


def check_snapshot(data):
    if len(data) > SNAPSHOT_MAX_BYTES:
        raise ApiError(413, f"snapshot is larger than {SNAPSHOT_MAX_BYTES // 1024} KB")
    if not data.startswith(b"\xff\xd8\xff"):
        raise ApiError(400, "snapshot must be a JPEG image")
    try:
        load_image(data, max_bytes=SNAPSHOT_MAX_BYTES, max_pixels=SNAPSHOT_MAX_PIXELS)
    except PhotoRejected as e:
        raise ApiError(400, f"snapshot rejected: {e.reason}")


def save_snapshot(session_id, data):
    """Write the JPEG (atomically: a reader never sees half a file); its name relative to SNAPSHOTS_DIR."""
    name = f"{session_id}.jpg"
    write_whole(os.path.join(current_app.config["SNAPSHOTS_DIR"], name), data)
    return name


def session_json(db, row):
    """A session as the device sees it (no clerk notes; the citizen by key)."""
    keys = ("id", "outcome", "distance", "margin", "time_to_greet", "liveness",
            "started_at", "received_at", "review_status", "ticket_number", "case_opened_at",
            "identified_by")
    body = {key: row[key] for key in keys}
    body["citizen_key"] = citizen_key(db, row["citizen_id"])
    body["snapshot"] = bool(row["snapshot_path"])
    return body


def citizen_key(db, citizen_id):
    if citizen_id is None:
        return None
    return db.execute("SELECT key FROM citizens WHERE id = ?", [citizen_id]).fetchone()[0]


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
        session, key, registry = parse_session(payload)
    except SessionInvalid as e:
        raise ApiError(400, str(e))
    db = get_db()
    session["device_started_at"] = session["started_at"]   # the device's claim, kept as a note
    _check_registry(db, registry, session["outcome"])
    person = _citizen_by_key(db, key)
    session["citizen_id"] = person["id"] if person is not None else None
    session["identified_by"] = "face" if person is not None else None
    row = _existing(db, session["id"], session)
    if row is not None:     # a retry after a lost answer, whatever happened to the citizen since
        return jsonify(session_json(db, row)), 200
    _check_greetable(db, person, session["started_at"])
    _check_upload_pace(db)
    if snapshot is not None:
        check_snapshot(snapshot)
        session["snapshot_path"] = save_snapshot(session["id"], snapshot)
    row, created = _insert_session(db, session)
    return jsonify(session_json(db, row)), 201 if created else 200


def _check_upload_pace(db):
    """429 with Retry-After when the device is over its pace of uploads: asked before the
    snapshot is looked at (a cheap refusal), and again where the session is stored."""
    if _uploads_throttled(db):
        raise _uploads_too_fast(db)


def _uploads_throttled(db):
    """limits.sessions_throttled under the device's upload lock (inside the caller's
    transaction, if any, so that the count and the insert it allows are one step: checked
    only before the snapshot was looked at, 64 uploads sent together stored 31 for 30)."""
    with limits.one_try_at_a_time(db, f"session-upload:{g.device['id']}"):
        return limits.sessions_throttled(db, g.device, current_app.config, device_actor())


def _uploads_too_fast(db):
    return limits.TooFast(limits.SESSIONS_THROTTLED, limits.sessions_wait(db, g.device))


def _check_registry(db, registry, outcome):
    """A session recorded against another registry's gallery (a store reused, a registry
    rebuilt) must never be filed here: its citizen keys mean nothing, or someone else."""
    if registry is None and outcome == "unknown":
        return   # a device that never synced can only have met unknown visitors
    if registry != registry_id(db):
        raise ApiError(409, "this session was recorded for another registry; it is not filed here")


NOT_HELD = "citizen_key names no citizen this device's gallery held"


def _citizen_by_key(db, key):
    """The citizen a session names by key (None for an unknown visitor); 409 for a key no
    citizen ever had."""
    if key is None:
        return None
    row = db.execute("SELECT id, removed_at, consent, district FROM citizens WHERE key = ?",
                     [key]).fetchone()
    if row is None:
        raise ApiError(409, NOT_HELD)
    return row


def _check_greetable(db, person, started_at):
    """ApiError(409) when this device could never have greeted the citizen at the visit's
    time: removed before it, consent withdrawn, or (per-site galleries on) of another site.
    A visit recorded offline before the citizen was removed is filed: it was refused, and
    dead-lettered on the device, before (removal also clears consent)."""
    if person is None:
        return
    if person["removed_at"] is not None:
        greetable = person["removed_at"] > started_at
    else:
        greetable = bool(person["consent"])
    if not greetable or not in_scope(person["district"], device_scope(db, g.device["site"])):
        raise ApiError(409, NOT_HELD)


def _insert_session(db, session):
    """(row, created): the stored session, and whether this request stored it."""
    received = now_iso()
    # The server's clock bounds the visit: a device cannot date a session after its arrival.
    session.update(device_id=g.device["id"], received_at=received,
                   started_at=min(session["started_at"], received))
    columns = ", ".join(session)
    marks = ", ".join("?" for _ in session)
    try:
        with transaction(db):
            throttled = _uploads_throttled(db)
            if not throttled:
                db.execute(f"INSERT INTO sessions ({columns}) VALUES ({marks})",
                           list(session.values()))
                audit_device("session.upload", "session", session["id"],
                             {"outcome": session["outcome"], "citizen_id": session["citizen_id"]})
    except db.IntegrityError:
        # Two uploads of the same session raced; the first one stored it.
        row = _existing(db, session["id"], session)
        if row is None:
            raise
        return row, False
    if throttled:
        _drop_snapshot(db, session)
        raise _uploads_too_fast(db)
    return device_session(db, session["id"], g.device["id"]), True


def _drop_snapshot(db, session):
    """Delete the snapshot written for an upload refused at the last step, unless a retry of
    the same session stored it meanwhile (the file is named by the session's id)."""
    stored = db.execute("SELECT 1 FROM sessions WHERE id = ?", [session["id"]]).fetchone()
    if not session.get("snapshot_path") or stored is not None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(current_app.config["SNAPSHOTS_DIR"], session["snapshot_path"]))


@bp.route("/sessions/<session_id>")
@device_required
def get_session(session_id):
    row = device_session(get_db(), session_id, g.device["id"])
    if row is None:
        raise ApiError(404, "no such session from this device")
    return jsonify(session_json(get_db(), row))
