"""One citizen at a time: add, correct, add or replace photos, withdraw consent, remove; and
the admin's decision on a record the duplicate check held.

A plain module (no Flask): the admin pages (server/records.py) are thin views over these
functions, which take an Actor and write their audit entry in the change's transaction.
Fields and photos are checked by the import's own rules (server/importer.py), so a form
shows the same reasons an import report does.

Withdrawing consent and removing delete the face templates and the photo files (unless
another citizen or a held record uses the same file) and bump the citizen's sync_seq: the
gallery delta (server/gallery.py) then tells every device to drop the citizen.

One face, one citizen: adding a citizen and adding or replacing a photo check for duplicates
inside the transaction that writes, under the face-index lock every import batch takes, on
the import's own index brought up to date there (_face_change). Checked before, an add and
an import running at once each saw the other's face missing and one face got two ID numbers.
A face like another citizen's is held for review as the import holds it (DuplicateHeld). While
an import runs, a change answers at once (ImportRunning, with a wait) and writes nothing.
"""
import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from db import now_iso, transaction
from db.queries import next_sync_seq
from recognition import models
from recognition.images import MAX_BYTES

from . import audit, duplicates, faceindex, faces, importer
from .i18n import N_
from .importer import RowInvalid, delete_unused_photos  # shared with the import
from .imports import STALE_S as IMPORT_STALE_S           # a job silent this long was interrupted
from .times import parse_stamp, utc_stamp

EDITABLE = ("name", "phone", "language", "district")


class RecordRefused(ValueError):
    """A change that cannot be made; `reason` is shown to the admin as the import would."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class DuplicateHeld(RecordRefused):
    """The face resembles another citizen's: the record and its photo are held for an admin's
    review (that is written); the citizen is not added."""

    def __init__(self, reason, review_id):
        super().__init__(reason)
        self.review_id = review_id


class ImportRunning(RuntimeError):
    """An import is running: the change was refused before anything was written. Waiting for
    its face index could take the import's whole run. retry_after: seconds, from its progress."""

    def __init__(self, retry_after):
        super().__init__(f"an import is running; try again in {retry_after} seconds")
        self.retry_after = retry_after


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
        raise RecordRefused(N_("photo is empty"))
    if len(data) > MAX_BYTES:
        raise RecordRefused(f"file is larger than {MAX_BYTES // 2**20} MB")
    model = faces.active(db)
    template, fmt, reason = importer.encode_photo(data, model.name)
    if reason:
        raise RecordRefused(reason)
    return Photo(data, hashlib.sha256(data).hexdigest(), template, fmt, model)


# --- one face, one citizen: the check and the write in one step ------------------------------

RETRY_MIN_S, RETRY_MAX_S = 5, 300   # how long an admin is told to wait for a running import


@dataclass
class _FaceChange:
    """The face index inside a change's transaction, and what the change does to it, applied
    once the transaction has committed (the index never holds an uncommitted face)."""
    gallery: object
    dropped: list = field(default_factory=list)     # citizen ids whose templates went
    added: list = field(default_factory=list)       # (citizen id, vector, template id)

    def apply(self):
        for citizen_id in self.dropped:
            self.gallery.remove(citizen_id)
        for citizen_id, vector, template_id in self.added:
            self.gallery.add(citizen_id, vector, template_id)


@contextlib.contextmanager
def _face_change(db, settings):
    """A transaction holding the face-index lock, with the index caught up in it: what the
    duplicate check reads there is what every writer of faces (each import batch too) sees,
    until the change commits. ImportRunning at once while an import runs, in this process
    (it holds the index) or another (its job's heartbeat is fresh)."""
    _refuse_while_importing(db)
    gallery = importer.gallery_unless_importing(db, settings.index_dir)
    if gallery is None:
        raise ImportRunning(_retry_after(db))
    try:
        change = _FaceChange(gallery)
        with transaction(db):
            db.lock("faceindex")
            gallery.catch_up(db, importer.locked_sync_seq(db))
            yield change
            seq = importer.locked_sync_seq(db)
        change.apply()
        gallery.seen_seq = seq
    finally:
        # kept either way: it only ever holds committed faces (caught up, or applied after)
        if settings.index_dir:
            faceindex.release(settings.index_dir, gallery)


def _running_imports(db, now):
    """Import jobs of any server process that are under way (their heartbeat is fresh)."""
    since = utc_stamp(now - timedelta(seconds=IMPORT_STALE_S))
    return db.execute("SELECT created_at, processed, total FROM import_jobs"
                      " WHERE status IN ('queued', 'running')"
                      " AND COALESCE(heartbeat_at, created_at) >= ?", [since]).fetchall()


def _refuse_while_importing(db):
    if _running_imports(db, datetime.now(timezone.utc)):
        raise ImportRunning(_retry_after(db))


def _retry_after(db):
    """Seconds until the running imports are likely done, from their progress so far."""
    now = datetime.now(timezone.utc)
    left = [_time_left(job, now) for job in _running_imports(db, now)]
    return int(min(max([RETRY_MIN_S, *left]), RETRY_MAX_S))


def _time_left(job, now):
    done, total = job["processed"], job["total"]
    if not done or total <= done:
        return RETRY_MIN_S
    elapsed = (now - parse_stamp(job["created_at"])).total_seconds()
    return elapsed / done * (total - done)


def _duplicate(db, gallery, vector, own_id=None):
    """(citizen id, ID number, distance, threshold) of another citizen this face resembles
    within the duplicate threshold, or None. Call inside _face_change."""
    threshold = duplicates.duplicate_threshold(db, len(gallery))
    best, runner_up = gallery.nearest_two(vector)
    other = runner_up if best and best.citizen_id == own_id else best
    if other and other.distance <= threshold:
        return other.citizen_id, importer.id_number_of(db, other.citizen_id), other.distance, threshold
    return None


def duplicate_reason(id_number, distance):
    return (f"possible duplicate identity: face matches ID number {id_number}"
            f" (distance {distance:.2f}); not imported, check both records")


def held_reason(id_number, distance, review_id):
    return (f"possible duplicate identity: face matches ID number {id_number}"
            f" (distance {distance:.2f}); not added, held for review (duplicate review {review_id})")


def _save_photos(settings, photos, created):
    """Photo files for photos, written inside the change's lock (_delete_unused decides under
    the same lock whether a file is still used); `created` collects the new ones."""
    return [importer.save_photo(settings.photos_dir, p.data, p.sha256, p.fmt, created=created)
            for p in photos]


def _delete_unused(db, photos_dir, paths):
    """Delete photo files nothing refers to, under the face-index lock: a change saving the
    same file (photos are named by content) commits its reference before or after, never
    between the check and the deletion."""
    if paths:
        with transaction(db):
            db.lock("faceindex")
            delete_unused_photos(db, photos_dir, sorted(paths))


@contextlib.contextmanager
def _cleaning(db, photos_dir, created):
    """The photo files a failed change wrote (`created`) go again, once it is rolled back."""
    try:
        yield
    except BaseException:
        _delete_unused(db, photos_dir, created)
        raise


def _refuse_registered(existing, id_number):
    if existing and existing["removed_at"] is None:
        raise RecordRefused(f"ID number {id_number} is already registered")


def add_citizen(db, actor, fields, photos, settings):
    """Add one citizen with zero (consent no) or more photos; returns the citizen id.

    photos: uploaded bytes, each through the quality gate; then, in one transaction under the
    face-index lock, the duplicate check and the write. A face like another citizen's holds
    the record for review instead (DuplicateHeld). A removed citizen's ID number may be added
    again (the same row comes back). ImportRunning while an import runs: nothing written."""
    record = check_record(fields, settings.id_number_rule, has_photo=bool(photos))
    _refuse_registered(importer.citizen_row(db, record.id_number), record.id_number)  # early
    checked = [check_photo(db, data) for data in photos] if record.consent else []
    created = set()
    with _cleaning(db, settings.photos_dir, created), _face_change(db, settings) as change:
        existing = importer.citizen_row(db, record.id_number)     # again, under the lock
        _refuse_registered(existing, record.id_number)
        own = existing["id"] if existing else None
        held = _hold_duplicate(db, actor, change.gallery, record, checked, own, settings, created)
        if held is None:
            citizen_id = _store_citizen(db, actor, change, record, existing, checked, settings,
                                        created)
    if held is not None:
        raise DuplicateHeld(*held)
    return citizen_id


def _hold_duplicate(db, actor, gallery, record, photos, own_id, settings, created):
    """(reason, review id) when one of the photos resembles another citizen: the record is
    held with that photo, as the import holds it; None when none does."""
    for photo in photos:
        match = _duplicate(db, gallery, photo.vector, own_id)
        if match:
            other_id, other_number, distance, threshold = match
            [path] = _save_photos(settings, [photo], created)
            review_id = duplicates.hold(db, actor, importer.record_fields(record), path,
                                        photo.sha256, photo.model, photo.template, other_id,
                                        distance, threshold)
            return held_reason(other_number, distance, review_id), review_id
    return None


def _store_citizen(db, actor, change, record, existing, photos, settings, created):
    paths = _save_photos(settings, photos, created)
    main_sha = photos[0].sha256 if photos else None
    citizen_id = importer.upsert_citizen(db, record, existing, paths[0] if paths else None,
                                         main_sha, record.row_sha256(main_sha))
    db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [citizen_id])
    change.dropped.append(citizen_id)
    for photo, path in zip(photos, paths):
        template_id = faces.add_template(db, citizen_id, photo.model, photo.vector, photo_path=path)
        change.added.append((citizen_id, photo.vector, template_id))
    audit.record(db, actor, "citizen.add", "citizen", citizen_id,
                 {"id_number": record.id_number, "photos": len(photos), "consent": record.consent})
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
            raise RecordRefused(N_("the record was changed while this page was open (an import or"
                                " another admin); nothing was saved, look at it again"))
        # which fields, not their values: the audit log is read more widely than the record
        audit.record(db, actor, "citizen.update", "citizen", row["id"], {"changed": changed})
    return changed


def add_photo(db, actor, row, data, settings, replace=False):
    """Add a photo as one more template, or replace every photo and template with it. The
    duplicate check and the write are one step under the face-index lock (_face_change); a
    face like another citizen's is refused. ImportRunning while an import runs."""
    _refuse_photo(row)
    photo = check_photo(db, data)
    created, old_paths = set(), []
    with _cleaning(db, settings.photos_dir, created), _face_change(db, settings) as change:
        row = _refuse_photo(_fresh(db, row))     # changed or removed since the page was read?
        match = _duplicate(db, change.gallery, photo.vector, row["id"])
        if match:
            raise RecordRefused(duplicate_reason(match[1], match[2]))
        [path] = _save_photos(settings, [photo], created)
        old_paths = _photo_paths(db, row) if replace else []
        _store_photo(db, actor, change, row, photo, path, replace)
    _delete_unused(db, settings.photos_dir, old_paths)


def _fresh(db, row):
    return db.execute("SELECT * FROM citizens WHERE id = ?", [row["id"]]).fetchone()


def _refuse_photo(row):
    """The citizen's row, or RecordRefused when they may hold no photo."""
    if row is None or row["removed_at"] is not None:
        raise RecordRefused(N_("the citizen was removed; nothing was saved"))
    if not row["consent"]:
        raise RecordRefused(N_("consent is no: a citizen without consent holds no photo"))
    return row


def _store_photo(db, actor, change, row, photo, path, replace):
    if replace:
        db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [row["id"]])
        change.dropped.append(row["id"])
    template_id = faces.add_template(db, row["id"], photo.model, photo.vector, photo_path=path)
    change.added.append((row["id"], photo.vector, template_id))
    main_path, main_sha = (path, photo.sha256) if replace or not row["photo_path"] \
        else (row["photo_path"], row["photo_sha256"])
    record = _record_of(row)
    db.execute("UPDATE citizens SET photo_path = ?, photo_sha256 = ?, row_sha256 = ?,"
               " sync_seq = ?, updated_at = ? WHERE id = ?",
               [main_path, main_sha, record.row_sha256(main_sha), next_sync_seq(db), now_iso(),
                row["id"]])
    audit.record(db, actor, "citizen.photo.replace" if replace else "citizen.photo.add",
                 "citizen", row["id"], {"photo_sha256": photo.sha256})


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
        raise RecordRefused(N_("the held photo is gone; add the citizen again with a new photo"))
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
        raise RecordRefused(N_("choose import, discard or add to the existing citizen"))
    if review["status"] != "pending":
        raise RecordRefused(N_("this record has already been decided"))
    record = check_record(duplicates.record_of(review), settings.id_number_rule)
    model, vector = _held_face(db, review, settings) if decision != "discard" else (None, None)
    citizen_id = None
    with transaction(db):
        # the face-index lock before the sync counter's row, in the order imports and the
        # admin's adds take them: the other order can deadlock against them on PostgreSQL
        db.lock("faceindex")
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
