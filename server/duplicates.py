"""The duplicate-identity check: how close a new face may be to another citizen's before a
person must look, and the list of records held for that look.

A plain module (no Flask). The import and the one-citizen pages call duplicate_threshold();
the admin pages (server/records.py) list what is held and record the decision through
server/enrolment.py.

Why its own threshold: greeting and fraud review fail in opposite directions. A device must
not say a wrong name, so its threshold is strict (precision). The fraud check must not let
the same face in under a second ID number, and a false flag only costs an admin a look, so
it is loose (recall): the largest distance whose expected false flags per imported row,
N x FMR(t) over the N enrolled citizens on the registry's measured curve, stay within the
admin's review budget (setting duplicates.review_budget), never stricter than the greeting
threshold and never looser than the model's duplicate ceiling (recognition/models).
"""
import json

from db import now_iso
from recognition import calibration as maths

from . import audit, calibration, faces
from . import settings as registry


def enrolled_count(db):
    """Citizens with at least one face template (those a new face is compared with)."""
    return db.execute(
        "SELECT count(DISTINCT c.id) FROM citizens c JOIN face_templates t ON t.citizen_id = c.id"
        " WHERE c.removed_at IS NULL").fetchone()[0]


def duplicate_threshold(db, enrolled=None, curve=None):
    """The distance under which a new face counts as possibly another citizen's: the largest t
    whose expected false flags per imported row, enrolled x FMR(t), stay within the review
    budget, on the registry's own measured false-match curve (server/calibration.py; the LFW
    prior until it can be measured). The point estimate, not its upper bound: here a false
    flag costs a look, a missed duplicate a second identity. Never stricter than what devices
    greet at, never looser than the model's duplicate ceiling. curve: the one to decide on
    (an import passes the curve of the registry as its batch began); default the latest."""
    ceiling = faces.active(db).bounds.duplicate_ceiling
    enrolled = enrolled_count(db) if enrolled is None else enrolled
    budget = float(registry.value(db, "duplicates.review_budget"))
    curve = curve or calibration.latest_curve(db)
    return maths.duplicate_threshold(curve, enrolled, budget,
                                     calibration.threshold_for_size(db, enrolled, curve), ceiling)


def hold(db, actor, record, photo_path, photo_sha256, model, encoding, match_citizen_id, distance,
         threshold):
    """Keep a flagged record for review (inside the caller's transaction); returns its id.

    record: the row's fields as a dict; encoding: its template's bytes, of `model`. An ID number with the same photo is held once:
    re-importing a file flags it again, and the nearest registered face may have changed as
    the registry grew (the match was part of the key, and each re-import added a review), so
    the waiting review is brought up to date instead."""
    values = {"record": json.dumps(record, ensure_ascii=False), "match_citizen_id": match_citizen_id,
              "distance": float(distance), "threshold": float(threshold)}
    waiting = waiting_review(db, record["id_number"], photo_sha256)
    if waiting:
        if any(waiting[k] != v for k, v in values.items()):  # the same file again: no write
            db.execute("UPDATE duplicate_reviews SET record = ?, match_citizen_id = ?, distance = ?,"
                       " threshold = ? WHERE id = ?", [*values.values(), waiting["id"]])
        return waiting["id"]
    review_id = db.insert(
        "INSERT INTO duplicate_reviews (id_number, record, photo_path, photo_sha256, encoding,"
        " face_model, match_citizen_id, distance, threshold, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [record["id_number"], values["record"], photo_path, photo_sha256, encoding, model.id,
         match_citizen_id, values["distance"], values["threshold"], now_iso()])
    audit.record(db, actor, "duplicate.held", "duplicate_review", review_id,
                 {"id_number": record["id_number"], "match_citizen_id": match_citizen_id,
                  "distance": round(float(distance), 3)})
    return review_id


def waiting_review(db, id_number, photo_sha256):
    """The pending review of this ID number with this photo, or None."""
    return db.execute(
        "SELECT * FROM duplicate_reviews WHERE status = 'pending' AND id_number = ?"
        " AND photo_sha256 = ? ORDER BY id LIMIT 1", [id_number, photo_sha256]).fetchone()


def pending_reviews(db, limit=100):
    return db.execute(
        "SELECT r.*, c.name AS match_name, c.id_number AS match_id_number"
        " FROM duplicate_reviews r JOIN citizens c ON c.id = r.match_citizen_id"
        " WHERE r.status = 'pending' ORDER BY r.id LIMIT ?", [limit]).fetchall()


def decided_reviews(db, limit=50):
    """The latest decisions, newest first, with who made them: the record of what was done with
    each held record (a decided review stays; only its photo may be gone)."""
    return db.execute(
        "SELECT r.id, r.id_number, r.distance, r.threshold, r.status, r.decided_at,"
        " r.created_citizen_id, r.match_citizen_id, c.name AS match_name,"
        " c.id_number AS match_id_number, u.username AS decider"
        " FROM duplicate_reviews r JOIN citizens c ON c.id = r.match_citizen_id"
        " LEFT JOIN users u ON u.id = r.decided_by"
        " WHERE r.status <> 'pending' ORDER BY r.decided_at DESC, r.id DESC LIMIT ?",
        [limit]).fetchall()


def review_row(db, review_id):
    """One review with the registered citizen it resembles (what the admin compares it with:
    ID number, name, phone, district, photo) and who decided it."""
    return db.execute(
        "SELECT r.*, c.name AS match_name, c.id_number AS match_id_number,"
        " c.phone AS match_phone, c.district AS match_district,"
        " c.photo_path AS match_photo_path, c.removed_at AS match_removed_at, u.username AS decider"
        " FROM duplicate_reviews r JOIN citizens c ON c.id = r.match_citizen_id"
        " LEFT JOIN users u ON u.id = r.decided_by WHERE r.id = ?", [review_id]).fetchone()


def record_of(row):
    """The held record's fields (dict) of a duplicate_reviews row."""
    return json.loads(row["record"])


# How close a pair is, against the limit it was held at (distance / threshold): under
# NEAR_SHARE of the limit the faces are very likely one person's, from CLOSE_SHARE up to the
# limit two people's faces can be this close.
NEAR_SHARE = 0.6
CLOSE_SHARE = 0.9


def closeness(distance, threshold):
    """How the pair's distance stands against its limit, in words the review page says:
    "far_under" (very likely the same person), "under" (probably the same person),
    "just_under" (could be either: look closely) or "over" (probably different people)."""
    share = distance / threshold if threshold > 0 else float("inf")
    if share >= 1:
        return "over"
    if share >= CLOSE_SHARE:
        return "just_under"
    return "far_under" if share < NEAR_SHARE else "under"


def likely_same_person(review):
    """The likely answer of a review: its faces are within the limit it was held at. Then
    "same person" is the page's first answer, and importing the record as someone else
    needs the admin's explicit confirmation."""
    return review["distance"] < review["threshold"]
