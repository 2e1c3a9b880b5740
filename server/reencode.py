"""Move a registry to another face model: re-encode every template, then switch in one step.

    flask --app app reencode --model NAME

Templates of two models cannot be compared, so a registry greets on one model at a time
(server/faces.py). Moving it happens in two phases:

  stage   every template (and every record held for duplicate review) is encoded again with
          the new model from its source image: the enrolment photo, the face crop kept with a
          clerk-confirmed capture, or for an older confirmed capture its session's snapshot
          while retention keeps it. Results go to reencode_staged one batch per transaction,
          so a run killed at any point resumes where it stopped, and a second run of a
          finished one changes nothing. A source that is gone or that the new model cannot
          align is staged as a problem with its reason. The registry greets on the old model
          all this time.
  switch  in one transaction, under the face-index lock every template writer takes: what was
          added meanwhile is encoded too; every template takes its new encoding, those with a
          problem are dropped (and listed), the registry's model is recorded, and stale
          snapshot distances are cleared. Devices see the new model in their next gallery
          delta, drop their cache and pull it again; the curve is measured again on the new
          model's templates.

A record held for duplicate review whose photo the new model cannot encode stays held, on
the old model (deciding it says why it cannot be imported).
"""
import os
from dataclasses import dataclass, field

from db import now_iso, transaction

from . import audit, calibration, faces
from .importer import Encoder

BATCH = 50                  # images encoded between two commits of staged results
SWITCH_INLINE = 200         # at most this many late arrivals are encoded inside the switch
ACTOR = audit.Actor("system", None, "reencode")


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


def reencode(db, target, photos_dir, snapshots_dir, workers=1, progress=None):
    """Move the registry to the face model `target`; returns a Result. progress(done, total)
    is called as images are encoded, outside any transaction."""
    previous = faces.active(db)
    result = Result(target.id, previous.id)
    if previous.id == target.id:
        _forget_staged(db, target)
        return result
    try:
        target.check_file()
    except Exception as e:
        raise ReencodeFailed(str(e)) from e
    result.staged_before = _staged_count(db, target)
    todo = _unstaged(db, previous, target, photos_dir, snapshots_dir)
    result.encoded += _stage(db, target, todo, workers, progress, result.staged_before)
    _switch(db, previous, target, photos_dir, snapshots_dir, workers, result)
    calibration.measure_registry(db)    # the thresholds now rest on the new model's templates
    return result


# --- staging -----------------------------------------------------------------------------------

def _unstaged(db, previous, target, photos_dir, snapshots_dir):
    """Items of the old model that have no staged result for the target yet."""
    templates = db.execute(
        "SELECT t.id, t.photo_path, s.snapshot_path FROM face_templates t"
        " LEFT JOIN sessions s ON s.id = t.session_id"
        " WHERE t.face_model = ? AND NOT EXISTS (SELECT 1 FROM reencode_staged r"
        " WHERE r.kind = 'template' AND r.row_id = t.id AND r.face_model = ?) ORDER BY t.id",
        [previous.id, target.id]).fetchall()
    reviews = db.execute(
        "SELECT d.id, d.photo_path FROM duplicate_reviews d WHERE d.status = 'pending'"
        " AND d.face_model = ? AND NOT EXISTS (SELECT 1 FROM reencode_staged r"
        " WHERE r.kind = 'review' AND r.row_id = d.id AND r.face_model = ?) ORDER BY d.id",
        [previous.id, target.id]).fetchall()
    return ([Item("template", r[0], _source(photos_dir, snapshots_dir, r[1], r[2])) for r in templates]
            + [Item("review", r[0], _source(photos_dir, snapshots_dir, r[1], None)) for r in reviews])


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
        for start in range(0, len(items), BATCH):
            batch = items[start:start + BATCH]
            rows = _encoded_rows(encoder, target, batch)
            with transaction(db):
                db.executemany("INSERT INTO reencode_staged (kind, row_id, face_model, encoding, problem,"
                               " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
            encoded += len(batch)
            if progress:
                progress(done + encoded, total)
    return encoded


def _encoded_rows(encoder, target, batch):
    """reencode_staged rows for a batch: the new template, or the problem's reason."""
    readable = [item for item in batch if item.path]
    images = []
    for item in readable:
        with open(item.path, "rb") as f:
            images.append(f.read())
    results = dict(zip(readable, encoder.map(images)))
    stamp, rows = now_iso(), []
    for item in batch:
        template, _fmt, reason = results.get(item, (None, None, "its source image is gone"))
        rows.append((item.kind, item.row_id, target.id, template, reason if template is None else None,
                     stamp))
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
            late = _unstaged(db, previous, target, photos_dir, snapshots_dir)
            if len(late) <= SWITCH_INLINE:
                if late:            # added since staging (an import, a confirmed visit)
                    with Encoder(1, target) as encoder:
                        db.executemany(
                            "INSERT INTO reencode_staged (kind, row_id, face_model, encoding,"
                            " problem, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            _encoded_rows(encoder, target, late))
                    result.encoded += len(late)
                _apply(db, previous, target, result)
                result.switched = True
                return
        # many arrived meanwhile (a large import ran beside it): stage them unlocked first
        result.encoded += _stage(db, target, late, workers, None)


def _apply(db, previous, target, result):
    staged = db.execute("SELECT kind, row_id, encoding, problem FROM reencode_staged"
                        " WHERE face_model = ?", [target.id]).fetchall()
    for kind, row_id, encoding, problem in staged:
        if kind == "template" and encoding is not None:
            db.execute("UPDATE face_templates SET encoding = ?, face_model = ? WHERE id = ?",
                       [encoding, target.id, row_id])
        elif kind == "template":
            owner = db.execute("SELECT citizen_id FROM face_templates WHERE id = ?", [row_id]).fetchone()
            if owner is not None:
                db.execute("DELETE FROM face_templates WHERE id = ?", [row_id])
                result.dropped.append((row_id, owner[0], problem))
        elif encoding is not None:
            db.execute("UPDATE duplicate_reviews SET encoding = ?, face_model = ? WHERE id = ?",
                       [encoding, target.id, row_id])
        else:
            result.held_kept.append((row_id, problem))
    # templates of neither model cannot exist (add_template refuses them); any of the old
    # model not staged here would be compared with the new: none may stay
    leftover = db.execute("DELETE FROM face_templates WHERE face_model != ?", [target.id]).rowcount
    faces.switch(db, target)
    _touch_changed_citizens(db, result)
    # the server's own 1:1 measurements were on the old scale: measured again when asked
    db.execute("UPDATE sessions SET snapshot_distance = NULL WHERE snapshot_distance IS NOT NULL")
    db.execute("DELETE FROM reencode_staged WHERE face_model = ?", [target.id])
    audit.record(db, ACTOR, "faces.reencoded", "setting", "face.model",
                 {"from": previous.id, "to": target.id, "templates": len(staged) - len(result.held_kept),
                  "dropped": len(result.dropped) + leftover, "held_kept": len(result.held_kept)})


def _touch_changed_citizens(db, result):
    """A citizen who lost a template (its source was gone) changes for devices too."""
    from db.queries import next_sync_seq
    citizens = sorted({citizen_id for _, citizen_id, _ in result.dropped})
    if citizens:
        seq = next_sync_seq(db)
        db.executemany("UPDATE citizens SET sync_seq = ? WHERE id = ?", [(seq, c) for c in citizens])
