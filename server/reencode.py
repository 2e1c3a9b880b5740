"""Move a registry to another face model: re-encode every template, then switch in one step.

    flask --app app reencode --model NAME

Templates of two models cannot be compared, so a registry greets on one model at a time
(server/faces.py). Moving it happens in two phases:

  stage   every template (and every record held for duplicate review) is encoded again with
          the new model from its source image: the enrolment photo, the face crop kept with a
          clerk-confirmed capture, or for an older confirmed capture its session's snapshot
          while retention keeps it. Results go to reencode_staged one batch per transaction,
          each with the row's fingerprint (who, which photo, when), so a run killed at any
          point resumes where it stopped, a second run of a finished one changes nothing, and
          a row id reused meanwhile for another face is encoded again, never given this one's
          template. A source that is gone or that the new model cannot align is staged as a
          problem with its reason. The registry greets on the old model all this time.
  switch  in one transaction, under the face-index lock every template writer takes: the few
          added meanwhile are encoded too (many are staged first, unlocked); every template
          takes its new encoding in set-wise statements, those with a problem are dropped (and
          listed), the registry's model is recorded, and stale snapshot distances are cleared.
          Devices see the new model in their next gallery delta, drop their cache and pull it
          again; the curve is measured again on the new model's templates.

A record held for duplicate review whose photo the new model cannot encode stays held, on
the old model (deciding it says why it cannot be imported).
"""
import os
from dataclasses import dataclass, field

from db import now_iso, transaction

from . import audit, calibration, duplicates, faces
from .importer import BATCH_BYTES, Encoder

BATCH = 50                  # images encoded between two commits of staged results
SWITCH_INLINE = 20          # at most this many late arrivals are encoded inside the switch
ACTOR = audit.Actor("system", None, "reencode")
# What a row was when it was staged (SQLite may give a deleted row's id to a new one).
TEMPLATE_PRINT = ("CAST(t.citizen_id AS TEXT) || '|' || COALESCE(t.photo_path, '') || '|'"
                  " || COALESCE(t.session_id, '') || '|' || t.created_at")
REVIEW_PRINT = "COALESCE(d.photo_sha256, '') || '|' || d.created_at"
STAGE = ("INSERT INTO reencode_staged (kind, row_id, face_model, encoding, problem, fingerprint,"
         " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, row_id, face_model) DO UPDATE"
         " SET encoding = excluded.encoding, problem = excluded.problem,"
         " fingerprint = excluded.fingerprint, created_at = excluded.created_at")


class ReencodeFailed(RuntimeError):
    """The re-encode cannot run (the target model's file is missing or damaged, say)."""


@dataclass
class Result:
    model: str
    previous: str
    encoded: int = 0                 # templates and held records encoded in this run
    staged_before: int = 0           # done by an earlier, interrupted run
    dropped: list = field(default_factory=list)     # (template id, citizen id, reason)
    held_kept: list = field(default_factory=list)   # (review id, reason): stay on the old model
    switched: bool = False

    def summary_line(self):
        if not self.switched:
            return f"already on {self.model}: nothing to do"
        return (f"switched from {self.previous} to {self.model}: {self.encoded} encoded"
                f" ({self.staged_before} by an earlier run), {len(self.dropped)} templates dropped,"
                f" {len(self.held_kept)} held records left on the old model")


@dataclass(frozen=True)
class Item:
    kind: str                        # "template" or "review"
    row_id: int
    path: str                        # the source image's full path, or None: gone
    fingerprint: str


def reencode(db, target, photos_dir, snapshots_dir, workers=1, progress=None):
    """Move the registry to the face model `target`; returns a Result. progress(done, total)
    is called as images are encoded, outside any transaction."""
    previous = faces.active(db)
    result = Result(target.id, previous.id)
    if previous.id == target.id:
        _forget_staged(db, target)
        if calibration.latest_report(db, target) is None:
            _measure(db, target)     # a run killed between the switch and its measurement
        return result
    try:
        target.check_file()
    except Exception as e:
        raise ReencodeFailed(str(e)) from e
    result.staged_before = _staged_count(db, target)
    todo = _unstaged(db, previous, target, photos_dir, snapshots_dir)
    result.encoded += _stage(db, target, todo, workers, progress, result.staged_before)
    _switch(db, previous, target, photos_dir, snapshots_dir, workers, result)
    _measure(db, target)
    return result


def _measure(db, target):
    """The thresholds rest on the new model's templates; held records get its duplicate
    threshold (their distance was measured again at the switch)."""
    calibration.measure_registry(db)
    with transaction(db):
        db.execute("UPDATE duplicate_reviews SET threshold = ? WHERE status = 'pending'"
                   " AND face_model = ?", [duplicates.duplicate_threshold(db), target.id])


# --- staging -----------------------------------------------------------------------------------

def _unstaged(db, previous, target, photos_dir, snapshots_dir):
    """Items of the old model with no staged result for the target as they are now."""
    templates = db.execute(
        f"SELECT t.id, t.photo_path, s.snapshot_path, {TEMPLATE_PRINT} FROM face_templates t"
        " LEFT JOIN sessions s ON s.id = t.session_id"
        " WHERE t.face_model = ? AND NOT EXISTS (SELECT 1 FROM reencode_staged r"
        " WHERE r.kind = 'template' AND r.row_id = t.id AND r.face_model = ?"
        f" AND r.fingerprint = {TEMPLATE_PRINT}) ORDER BY t.id", [previous.id, target.id]).fetchall()
    reviews = db.execute(
        f"SELECT d.id, d.photo_path, {REVIEW_PRINT} FROM duplicate_reviews d"
        " WHERE d.status = 'pending' AND d.face_model = ? AND NOT EXISTS (SELECT 1 FROM"
        " reencode_staged r WHERE r.kind = 'review' AND r.row_id = d.id AND r.face_model = ?"
        f" AND r.fingerprint = {REVIEW_PRINT}) ORDER BY d.id", [previous.id, target.id]).fetchall()
    return ([Item("template", r[0], _source(photos_dir, snapshots_dir, r[1], r[2]), r[3])
             for r in templates]
            + [Item("review", r[0], _source(photos_dir, snapshots_dir, r[1], None), r[2])
               for r in reviews])


def _source(photos_dir, snapshots_dir, photo_path, snapshot_path):
    """The image a template was made from, if it is still on disk."""
    candidates = [os.path.join(photos_dir, os.path.basename(photo_path))] if photo_path else []
    if snapshot_path:
        candidates.append(os.path.join(snapshots_dir, os.path.basename(snapshot_path)))
    return next((p for p in candidates if os.path.isfile(p)), None)


def _stage(db, target, items, workers, progress, done=0):
    """Encode items with the target model in batches, each committed on its own."""
    total = done + len(items)
    if progress:
        progress(done, total)
    encoded = 0
    with Encoder(workers, target) as encoder:
        for batch in _batches(items):
            rows = _encoded_rows(encoder, target, batch)
            with transaction(db):
                db.executemany(STAGE, rows)
            encoded += len(batch)
            if progress:
                progress(done + encoded, total)
    return encoded


def _batches(items):
    """BATCH items at a time, fewer when their photos pass BATCH_BYTES (the import's cap)."""
    batch, size = [], 0
    for item in items:
        batch.append(item)
        size += os.path.getsize(item.path) if item.path and os.path.isfile(item.path) else 0
        if len(batch) >= BATCH or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _encoded_rows(encoder, target, batch):
    """reencode_staged rows for a batch: the new template, or the problem's reason."""
    images, reasons = {}, {}
    for item in batch:
        try:
            with open(item.path, "rb") as f:
                images[item] = f.read()
        except (TypeError, OSError) as e:     # gone (no path), or unreadable now
            reasons[item] = "its source image is gone" if item.path is None or \
                isinstance(e, FileNotFoundError) else f"its source image cannot be read ({e.strerror})"
    readable = list(images)
    results = dict(zip(readable, encoder.map([images[i] for i in readable])))
    stamp, rows = now_iso(), []
    for item in batch:
        template, _fmt, reason = results.get(item, (None, None, reasons.get(item)))
        rows.append((item.kind, item.row_id, target.id, template,
                     reason if template is None else None, item.fingerprint, stamp))
    return rows


def _staged_count(db, target):
    return db.execute("SELECT count(*) FROM reencode_staged WHERE face_model = ?",
                      [target.id]).fetchone()[0]


def _forget_staged(db, model):
    """Staged rows of a switch that already happened (a run killed after its commit)."""
    with transaction(db):
        db.execute("DELETE FROM reencode_staged WHERE face_model = ?", [model.id])


# --- the switch --------------------------------------------------------------------------------

def _switch(db, previous, target, photos_dir, snapshots_dir, workers, result):
    """Replace every template with its staged encoding, in one transaction."""
    while True:
        with transaction(db):
            db.lock("faceindex")    # no import or admin writes a face meanwhile
            if faces.active_id(db) != previous.id:
                raise ReencodeFailed(f"the registry moved to {faces.active_id(db)} meanwhile"
                                     " (another reencode); run this one again")
            late = _unstaged(db, previous, target, photos_dir, snapshots_dir)
            if len(late) <= SWITCH_INLINE:
                if late:            # added since staging (an import, a confirmed visit)
                    with Encoder(1, target) as encoder:
                        db.executemany(STAGE, _encoded_rows(encoder, target, late))
                    result.encoded += len(late)
                _apply(db, previous, target, result)
                result.switched = True
                return
        # many arrived meanwhile (a large import beside it): stage them unlocked first
        result.encoded += _stage(db, target, late, workers, None)


def _apply(db, previous, target, result):
    """Every old-model template and held record takes its staged result, set-wise."""
    staged = ("SELECT {col} FROM reencode_staged r WHERE r.kind = '{kind}' AND r.row_id = {table}.id"
              " AND r.face_model = ?")
    result.dropped = [tuple(r) for r in db.execute(
        "SELECT t.id, t.citizen_id, r.problem FROM face_templates t JOIN reencode_staged r"
        " ON r.kind = 'template' AND r.row_id = t.id AND r.face_model = ?"
        " WHERE t.face_model = ? AND r.encoding IS NULL ORDER BY t.id", [target.id, previous.id])]
    db.execute("UPDATE face_templates SET encoding = ("
               + staged.format(col="r.encoding", kind="template", table="face_templates")
               + "), face_model = ? WHERE face_model = ? AND EXISTS ("
               + staged.format(col="1", kind="template", table="face_templates")
               + " AND r.encoding IS NOT NULL)", [target.id, target.id, previous.id, target.id])
    # what is left on the old model had a problem (or cannot be compared with anything now)
    leftover = db.execute("DELETE FROM face_templates WHERE face_model != ?", [target.id]).rowcount
    result.held_kept = [tuple(r) for r in db.execute(
        "SELECT d.id, r.problem FROM duplicate_reviews d JOIN reencode_staged r ON r.kind = 'review'"
        " AND r.row_id = d.id AND r.face_model = ? WHERE d.status = 'pending' AND d.face_model = ?"
        " AND r.encoding IS NULL ORDER BY d.id", [target.id, previous.id])]
    db.execute("UPDATE duplicate_reviews SET encoding = ("
               + staged.format(col="r.encoding", kind="review", table="duplicate_reviews")
               + "), face_model = ? WHERE status = 'pending' AND face_model = ? AND EXISTS ("
               + staged.format(col="1", kind="review", table="duplicate_reviews")
               + " AND r.encoding IS NOT NULL)", [target.id, target.id, previous.id, target.id])
    faces.switch(db, target)
    _remeasure_held(db, target)
    _touch_changed_citizens(db, result)
    # the server's own 1:1 measurements were on the old scale: measured again when asked
    db.execute("UPDATE sessions SET snapshot_distance = NULL WHERE snapshot_distance IS NOT NULL")
    db.execute("DELETE FROM reencode_staged WHERE face_model = ?", [target.id])
    audit.record(db, ACTOR, "faces.reencoded", "setting", "face.model",
                 {"from": previous.id, "to": target.id, "dropped": leftover,
                  "held_kept": len(result.held_kept)})


def _remeasure_held(db, model):
    """A held record's distance to the citizen it resembles, on the new model's scale."""
    rows = db.execute("SELECT id, encoding, match_citizen_id FROM duplicate_reviews"
                      " WHERE status = 'pending' AND face_model = ?", [model.id]).fetchall()
    for review_id, encoding, citizen_id in rows:
        distance = faces.best_distance(db, citizen_id, model.from_blob(encoding), model)
        db.execute("UPDATE duplicate_reviews SET distance = ? WHERE id = ?",
                   [distance if distance != float("inf") else model.bounds.max_reported, review_id])


def _touch_changed_citizens(db, result):
    """A citizen who lost a template (its source was gone) changes for devices too."""
    from db.queries import next_sync_seq
    citizens = sorted({citizen_id for _, citizen_id, _ in result.dropped})
    if citizens:
        seq = next_sync_seq(db)
        db.executemany("UPDATE citizens SET sync_seq = ? WHERE id = ?", [(seq, c) for c in citizens])
