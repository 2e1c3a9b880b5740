"""No dead end for a visitor the camera did not recognise: their ID number, checked 1:1.

    POST /api/v1/sessions/<id>/identify  {"id_number": "4401...", "encoding": [dims floats],
                                          "model": "<face model id>",
                                          "snapshot": "<base64 JPEG of the face now>"}
        -> {"matched": true, "citizen_key": K, "name": ..., "language": ...}
        or {"matched": false, "citizen_key": null, "name": null, "language": null}

The kiosk sends the typed ID number, the face encoding of the visitor's track and a crop of
their face as they press OK (devices never hold ID numbers). The server compares the encoding
with that citizen's templates only (1:1, not a search of everyone) under the registry's
calibrated 1:1 threshold (server/calibration.py: one_to_one_threshold), and looks at the
crop itself (server/facecheck.py), under the same threshold: an encoding is the device's word,
and a device holds every template of its gallery. On a match of both the crop becomes the
session's snapshot and the session a greeting of that citizen, identified_by "id_number". Liveness comes first:
the device reports the visitor's blink before it sends the number (409 otherwise). An
encoding of another face model than the registry's is refused (409: the device syncs and
re-encodes), never compared with templates it cannot be compared with. The case
file and the phone digits then follow as for a face greeting. "No such ID number" and "not
this face" get the same answer, so the endpoint cannot be used to learn who is enrolled.
Every attempt is audited (the ID number masked); a device gets IDENTIFY_MAX_PER_HOUR tries an
hour and a visit IDENTIFY_MAX_PER_SESSION.
"""
import base64
import math
from datetime import datetime, timedelta, timezone

import numpy as np
from flask import Blueprint, current_app, g, jsonify, request

from . import evidence, faces, limits
from .api import SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS, check_snapshot, save_snapshot
from .calibration import one_to_one_threshold
from .casefile import CaseFileRefused, check_recent, own_session
from .database import get_db
from .devices import audit_device, device_required
from .facecheck import snapshot_face
from .errors import ApiError
from .gallery import device_scope, in_scope
from .importer import normalise_id_number
from .privacy import mask

bp = Blueprint("identify", __name__, url_prefix="/api/v1")

ACTIONS = ("identify.match", "identify.no_match")
NO_MATCH = {"matched": False, "citizen_key": None, "name": None, "language": None}


def _body(model):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, 'send {"id_number": "...", "encoding": [numbers], "model": "...",'
                            ' "snapshot": "..."}')
    claimed = body.get("model")
    if claimed is not None and not isinstance(claimed, str):
        raise ApiError(400, "model must be the id of the face model the encoding is of")
    if claimed is not None and claimed != model.id:
        raise ApiError(409, f"the registry's face model is {model.id}: sync the gallery and"
                            " encode the face again")
    encoding = body.get("encoding")
    if (not isinstance(encoding, list) or len(encoding) != model.dims
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in encoding)):
        raise ApiError(400, f"encoding must be {model.dims} numbers (a {model.name} template)")
    # Compared before any conversion: the chained comparison refuses NaN and infinities, and
    # a 400-digit JSON integer, which numpy cannot convert (OverflowError, a 500 before).
    if not all(-10 <= v <= 10 for v in encoding):
        raise ApiError(400, "encoding is not a face encoding")
    vector = np.asarray(encoding, dtype=np.float64)
    raw = body.get("id_number")
    if not isinstance(raw, str) or len(raw) > 64:
        raise ApiError(400, "id_number must be a string")
    try:
        id_number = normalise_id_number(raw, current_app.config["ID_NUMBER_RULE"])
    except ValueError:
        # the format alone (a typo, a wrong check digit) tells nothing about who is enrolled
        raise ApiError(400, "check the ID number")
    return id_number, vector, _snapshot(body.get("snapshot"))


def _snapshot(value):
    """The JPEG bytes of the face crop sent with the number (decoded and checked as an
    uploaded snapshot after the rate check). Required: with an encoding alone, a device's
    own gallery templates answered "is this citizen's ID number N?"."""
    if not isinstance(value, str) or not value or len(value) > SNAPSHOT_MAX_BYTES * 4 // 3 + 4:
        raise ApiError(400, "send the visitor's face as snapshot: a base64 JPEG")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ApiError(400, "snapshot must be a base64 JPEG")


def _rounded(distance):
    return round(distance, 4) if np.isfinite(distance) else None


def _check_rate(db, row):
    since = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    marks = ", ".join("?" for _ in ACTIONS)
    per_device = db.execute(
        f"SELECT count(*) FROM audit_log WHERE actor_type = 'device' AND actor_id = ?"
        f" AND action IN ({marks}) AND at >= ?", [g.device["id"], *ACTIONS, since]).fetchone()[0]
    per_session = db.execute(
        f"SELECT count(*) FROM audit_log WHERE target_type = 'session' AND target_id = ?"
        f" AND action IN ({marks})", [row["id"], *ACTIONS]).fetchone()[0]
    if per_device >= current_app.config["IDENTIFY_MAX_PER_HOUR"] or \
            per_session >= current_app.config["IDENTIFY_MAX_PER_SESSION"]:
        raise ApiError(429, "too many ID number tries; please see a clerk")


def _blinked_as(db, row, person, model, threshold):
    """Whether every face crop the server saw blink in this visit is the claimed citizen's
    (server/evidence.py): the ID number opens nothing for a photo held up beside a live face."""
    blob = row["liveness_encodings"]
    if not blob or row["liveness_model"] != model.id:
        return False
    crops = np.frombuffer(bytes(blob), dtype="<f4").reshape(-1, model.dims)
    templates = faces.citizen_templates(db, person["id"], model)
    return evidence.farthest(list(crops), templates, model) <= threshold


def _candidate(db, id_number):
    """The citizen a device of this site may greet under that ID number, or None."""
    person = db.execute("SELECT id, key, name, language, district FROM citizens"
                        " WHERE id_number = ? AND consent = 1 AND removed_at IS NULL",
                        [id_number]).fetchone()
    if person is None:
        return None
    return person if in_scope(person["district"], device_scope(db, g.device["site"])) else None


@bp.route("/sessions/<session_id>/identify", methods=["POST"])
@device_required
def identify(session_id):
    db = get_db()
    model = faces.active(db)
    id_number, vector, snapshot = _body(model)
    row = own_session(db, session_id)
    if row["outcome"] != "unknown":
        raise ApiError(409, "only a visitor the device did not recognise types an ID number")
    if row["liveness"] != "passed":
        # Liveness first: a photo held up with a known ID number must not learn whose it is.
        raise ApiError(409, "liveness first: report the visitor's blink before their ID number")
    try:
        check_recent(row)
    except CaseFileRefused as refused:
        raise ApiError(refused.status, refused.message)
    _check_rate(db, row)            # before the costly part (the lock checks it again)
    check_snapshot(snapshot)
    threshold = one_to_one_threshold(db)
    # the crop is examined only within the device's hourly budget of tries, counted first:
    # tries sent together each cost an examination otherwise
    wait = limits.take_slot(db, f"identify:{g.device['id']}", current_app.config["IDENTIFY_MAX_PER_HOUR"],
                            3600)
    if wait is not None:
        raise limits.TooFast("too many ID number tries; please see a clerk", wait)
    seen = snapshot_face(model, snapshot, SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS)   # unlocked
    # The tries are counted in the audit log: check, compare and count as one step per
    # device (a session is one device's), or tries sent together all pass the check.
    with limits.one_try_at_a_time(db, f"identify:{g.device['id']}"):
        row = own_session(db, session_id)
        if row["outcome"] != "unknown":     # another try of this visit matched meanwhile
            raise ApiError(409, "only a visitor the device did not recognise types an ID number")
        _check_rate(db, row)
        person = _candidate(db, id_number)
        distance = faces.best_distance(db, person["id"], vector, model) if person is not None \
            else float("inf")
        matched = distance <= threshold and _blinked_as(db, row, person, model, threshold)
        detail = {"id_number": mask(id_number), "threshold": threshold,
                  "distance": _rounded(distance)}
        if matched:
            seen_distance = faces.best_distance(db, person["id"], seen, model) \
                if seen is not None else math.inf
            detail["snapshot_distance"] = _rounded(seen_distance)
            matched = seen_distance <= threshold
        if matched:
            db.execute("UPDATE sessions SET outcome = 'greeted', citizen_id = ?,"
                       " identified_by = 'id_number', snapshot_path = ?, snapshot_distance = ?"
                       " WHERE id = ? AND outcome = 'unknown'",
                       [person["id"], save_snapshot(row["id"], snapshot), seen_distance, row["id"]])
        audit_device(ACTIONS[0] if matched else ACTIONS[1], "session", row["id"], detail)
    if not matched:
        return jsonify(NO_MATCH)
    return jsonify({"matched": True, "citizen_key": person["key"], "name": person["name"],
                    "language": person["language"]})
