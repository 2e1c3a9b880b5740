"""One citizen at a time: add, correct, add or replace photos, withdraw consent, remove; and
the admin's decision on a record the duplicate check held.

A plain module (no Flask): the admin pages (server/records.py) are thin views over these
functions, which take an Actor and write their audit entry in the change's transaction.
Fields and photos are checked by the import's own rules (server/importer.py), so a form
shows the same reasons an import report does.

Withdrawing consent and removing delete the face templates and the photo files (unless
another citizen or a held record uses the same file) and bump the citizen's sync_seq: the
gallery delta (server/gallery.py) then tells every device to drop the citizen.
"""
import hashlib
import os
from dataclasses import dataclass

from flask import current_app, has_app_context

from db import now_iso, transaction
from db.queries import next_sync_seq
from recognition import models
from recognition.images import MAX_BYTES

from . import audit, duplicates, faceindex, faces, importer
from .importer import RowInvalid, delete_unused_photos  # shared with the import

EDITABLE = ("name", "phone", "language", "district")


class RecordRefused(ValueError):
    """A change that cannot be made; `reason` is shown to the admin as the import would."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Photo:
    """An uploaded photo that passed the quality gate: its bytes, hash, template and format,
    and the face model the template is of."""
    data: bytes
    sha256: str
    template: bytes
    fmt: str
    model: object

    @property
    def vector(self):
        return self.model.from_blob(self.template)


def check_record(fields, rule, has_photo=True):
    """An importer.Record from form fields (same reasons as a CSV row), or RecordRefused."""
    cells = {k: str(fields.get(k) or "").strip() for k in
             ("id_number", "name", "phone", "language", "district", "consent")}
    cells["photo"] = "upload" if has_photo else ""
    try:
        return importer.parse_record(0, cells, rule)
    except RowInvalid as e:
        raise RecordRefused(e.reason)


def check_photo(db, data):
    """A Photo through the enrolment quality gate (one face, big and sharp enough) and the
    registry's face model, or RecordRefused."""
    if not data:
        raise RecordRefused("photo is empty")
    if len(data) > MAX_BYTES:
        raise RecordRefused(f"file is larger than {MAX_BYTES // 2**20} MB")
    model = faces.active(db)
    template, fmt, reason = importer.encode_photo(data, model.name)
    if reason:
        raise RecordRefused(reason)
    return Photo(data, hashlib.sha256(data).hexdigest(), template, fmt, model)


def duplicate_of(db, vector, own_id=None):
    """(citizen id, ID number, distance, threshold) of another citizen this face resembles
    within the duplicate threshold, or None."""
    index_dir = current_app.config.get("FACEINDEX_DIR") if has_app_context() else None
    gallery = importer.load_gallery(db, index_dir)
    try:
        threshold = duplicates.duplicate_threshold(db, len(gallery))
        best, runner_up = gallery.nearest_two(vector)
    finally:
        if index_dir:
            faceindex.release(index_dir, gallery)
    other = runner_up if best and best.citizen_id == own_id else best
    if other and other.distance <= threshold:
        return other.citizen_id, importer.id_number_of(db, other.citizen_id), other.distance, threshold
    return None


def duplicate_reason(id_number, distance):
    return (f"possible duplicate identity: face matches ID number {id_number}"
            f" (distance {distance:.2f}); not imported, check both records")


def _refuse_duplicates(db, photos, own_id=None):
    for photo in photos:
        match = duplicate_of(db, photo.vector, own_id)
        if match:
            raise RecordRefused(duplicate_reason(match[1], match[2]))


def add_citizen(db, actor, fields, photos, settings):
    """Add one citizen with zero (consent no) or more photos; returns the citizen id.

    photos: uploaded bytes, each through the quality gate and the duplicate check. A removed
    citizen's ID number may be added again (the same row comes back)."""
    record = check_record(fields, settings.id_number_rule, has_photo=bool(photos))
    existing = importer.citizen_row(db, record.id_number)
    if existing and existing["removed_at"] is None:
        raise RecordRefused(f"ID number {record.id_number} is already registered")
    checked = [check_photo(db, data) for data in photos] if record.consent else []
    _refuse_duplicates(db, checked, existing["id"] if existing else None)
    paths = [importer.save_photo(settings.photos_dir, p.data, p.sha256, p.fmt) for p in checked]
    main_sha = checked[0].sha256 if checked else None
    with transaction(db):
        citizen_id = importer.upsert_citizen(db, record, existing, paths[0] if paths else None,
                                             main_sha, record.row_sha256(main_sha))
        db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [citizen_id])
        for photo, path in zip(checked, paths):
            faces.add_template(db, citizen_id, photo.model, photo.vector, photo_path=path)
        audit.record(db, actor, "citizen.add", "citizen", citizen_id,
                     {"id_number": record.id_number, "photos": len(checked),
                      "consent": record.consent})
    return citizen_id


def update_citizen(db, actor, row, fields, rule):
    """Correct name, phone, language or district; returns the names of the changed fields."""
    values = {k: fields.get(k, row[k]) for k in EDITABLE}
    record = check_record({**dict(row), **values, "consent": "yes" if row["consent"] else "no"},
                          rule, has_photo=True)
    changed = [k for k in EDITABLE if getattr(record, k) != (row[k] or "")]
    if not changed:
        return []
    # The form sends every field back, so a page opened before an import or another admin
    # changed the record would put the old values back: it must show the record as stored.
    seen = fields.get("seen_row", row["row_sha256"] or "")
    with transaction(db):
        saved = db.execute("UPDATE citizens SET name = ?, phone = ?, language = ?, district = ?,"
                           " row_sha256 = ?, sync_seq = ?, updated_at = ?"
                           " WHERE id = ? AND COALESCE(row_sha256, '') = ?",
                           [record.name, record.phone, record.language, record.district,
                            record.row_sha256(row["photo_sha256"]), next_sync_seq(db), now_iso(),
                            row["id"], seen]).rowcount
        if not saved:
            raise RecordRefused("the record was changed while this page was open (an import or"
                                " another admin); nothing was saved, look at it again")
        # which fields, not their values: the audit log is read more widely than the record
        audit.record(db, actor, "citizen.update", "citizen", row["id"], {"changed": changed})
    return changed


def add_photo(db, actor, row, data, settings, replace=False):
    """Add a photo as one more template, or replace every photo and template with it."""
    if not row["consent"]:
        raise RecordRefused("consent is no: a citizen without consent holds no photo")
    photo = check_photo(db, data)
    _refuse_duplicates(db, [photo], row["id"])
    path = importer.save_photo(settings.photos_dir, photo.data, photo.sha256, photo.fmt)
    old_paths = _photo_paths(db, row) if replace else []
    with transaction(db):
        if replace:
            db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [row["id"]])
        faces.add_template(db, row["id"], photo.model, photo.vector, photo_path=path)
        main_path, main_sha = (path, photo.sha256) if replace or not row["photo_path"] \
            else (row["photo_path"], row["photo_sha256"])
        record = _record_of(row)
        db.execute("UPDATE citizens SET photo_path = ?, photo_sha256 = ?, row_sha256 = ?,"
                   " sync_seq = ?, updated_at = ? WHERE id = ?",
                   [main_path, main_sha, record.row_sha256(main_sha), next_sync_seq(db), now_iso(),
                    row["id"]])
        audit.record(db, actor, "citizen.photo.replace" if replace else "citizen.photo.add",
                     "citizen", row["id"], {"photo_sha256": photo.sha256})
    delete_unused_photos(db, settings.photos_dir, old_paths)


def withdraw_consent(db, actor, row, photos_dir):
    """Consent withdrawn: templates and photos deleted; devices drop the citizen at next sync."""
    _forget_face(db, actor, row, photos_dir, "citizen.consent.withdraw", removed=False)


def remove_citizen(db, actor, row, photos_dir):
    """The citizen leaves the registry (cases and past sessions stay as history)."""
    _forget_face(db, actor, row, photos_dir, "citizen.remove", removed=True)


def _forget_face(db, actor, row, photos_dir, action, removed):
    paths = _photo_paths(db, row)
    record = _record_of(row)
    record.consent = False
    with transaction(db):
        templates = db.execute("DELETE FROM face_templates WHERE citizen_id = ?",
                               [row["id"]]).rowcount
        db.execute("UPDATE citizens SET consent = 0, photo_path = NULL, photo_sha256 = NULL,"
                   " row_sha256 = ?, sync_seq = ?, updated_at = ?"
                   + (", removed_at = ?" if removed else "") + " WHERE id = ?",
                   [record.row_sha256(None), next_sync_seq(db), now_iso()]
                   + ([now_iso()] if removed else []) + [row["id"]])
        audit.record(db, actor, action, "citizen", row["id"],
                     {"templates_deleted": templates, "photos_deleted": len(paths)})
    delete_unused_photos(db, photos_dir, paths)


def _record_of(row):
    return importer.Record(0, row["id_number"], row["name"], row["phone"] or "", row["language"],
                           row["district"] or "", bool(row["consent"]), "")


def _photo_paths(db, row):
    paths = {r[0] for r in db.execute("SELECT photo_path FROM face_templates WHERE citizen_id = ?"
                                      " AND photo_path IS NOT NULL", [row["id"]])}
    return sorted(paths | ({row["photo_path"]} if row["photo_path"] else set()))


# --- records held by the duplicate check ------------------------------------------------------

def _held_face(db, review, settings):
    """(model, template) of a held record on the registry's face model: as held, or encoded
    again from its photo when the registry moved to another model since (reencode could not
    encode it then; RecordRefused with the reason if it still cannot)."""
    if review["face_model"] == faces.active_id(db):
        model = models.get(review["face_model"])
        return model, model.from_blob(review["encoding"])
    try:
        with open(os.path.join(settings.photos_dir, os.path.basename(review["photo_path"] or "")), "rb") as f:
            photo = check_photo(db, f.read())
    except OSError:
        raise RecordRefused("the held photo is gone; add the citizen again with a new photo")
    return photo.model, photo.vector


DECISIONS = ("import", "discard", "add_to_existing")


def decide_duplicate(db, actor, review, decision, settings):
    """An admin's decision on a held record; returns the citizen id it ends with, if any.

    import: different people, the held record is imported as a new citizen (its photo as its
      template; the duplicate check is not run again, a person has just looked).
    discard: same person, keep the existing citizen; the held record and photo are dropped.
    add_to_existing: same person, keep the existing citizen and add the held photo as one more
      template (a second, recent photo helps devices recognise them).
    """
    if decision not in DECISIONS:
        raise RecordRefused("choose import, discard or add to the existing citizen")
    if review["status"] != "pending":
        raise RecordRefused("this record has already been decided")
    record = check_record(duplicates.record_of(review), settings.id_number_rule)
    model, vector = _held_face(db, review, settings) if decision != "discard" else (None, None)
    citizen_id = None
    with transaction(db):
        if decision == "import":
            # as the import would have: a new citizen, or the ID number's record updated
            existing = importer.citizen_row(db, record.id_number)
            citizen_id = importer.upsert_citizen(db, record, existing, review["photo_path"],
                                                 review["photo_sha256"],
                                                 record.row_sha256(review["photo_sha256"]))
            db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [citizen_id])
            faces.add_template(db, citizen_id, model, vector, photo_path=review["photo_path"])
        elif decision == "add_to_existing":
            citizen_id = review["match_citizen_id"]
            faces.add_template(db, citizen_id, model, vector, photo_path=review["photo_path"])
            db.execute("UPDATE citizens SET sync_seq = ?, updated_at = ? WHERE id = ?",
                       [next_sync_seq(db), now_iso(), citizen_id])
        db.execute("UPDATE duplicate_reviews SET status = ?, decided_by = ?, decided_at = ?,"
                   " created_citizen_id = ? WHERE id = ?",
                   [decision, actor.id, now_iso(), citizen_id if decision == "import" else None,
                    review["id"]])
        audit.record(db, actor, f"duplicate.{decision}", "duplicate_review", review["id"],
                     {"id_number": record.id_number, "match_citizen_id": review["match_citizen_id"],
                      "citizen_id": citizen_id})
    if decision == "discard":
        delete_unused_photos(db, settings.photos_dir, [review["photo_path"]])
    return citizen_id
