"""The registry's face model and its face templates: the one place templates are written.

A registry greets on one model at a time (settings key 'face.model', the profile's id).
Every template in face_templates is that model's: a template is written only through
add_template, which refuses one made by another model (an import that encoded its photos
before `reencode` switched the registry would otherwise slip old-scale templates in), and
the switch replaces every template in the same transaction (server/reencode.py). So no
query here or elsewhere ever compares templates of two models.

    active(db)                   the registry's FaceModel
    start_on(db, name)           a registry with no model yet starts on FACE_MODEL
    add_template(...)            store one template of the active model
    citizen_templates(db, id)    a citizen's templates, decoded
    live_templates(db)           (owners, matrix) of every consenting, enrolled citizen
    best_distance(db, id, v)     distance from v to the nearest of a citizen's templates
"""
from db import now_iso
from db.queries import get_setting, set_setting
from recognition import models

KEY = "face.model"


class ModelChanged(RuntimeError):
    """A template of another model than the registry's active one."""


def active_id(db):
    """The id of the model the registry greets on (the default model's for a registry that
    has not recorded one: nothing of another model can be in it then)."""
    return get_setting(db, KEY) or models.get(models.DEFAULT).id


def active(db):
    """The registry's FaceModel. UnknownModel when the registry names a model this server's
    code does not hold (a database restored into an older server)."""
    return models.get(active_id(db))


def start_on(db, name):
    """Record FACE_MODEL as the model of a registry that has none yet (call in a transaction).
    A registry that already has one keeps it: `reencode --model` is the only way to change
    it. Returns the active model."""
    if get_setting(db, KEY) is None:
        set_setting(db, KEY, models.get(name).id)
    return active(db)


def switch(db, model):
    """Make model the registry's (call inside the transaction that replaced every template)."""
    set_setting(db, KEY, model.id)


def add_template(db, citizen_id, model, encoding, source="enrolment", photo_path=None,
                 session_id=None):
    """Store one face template of the registry's active model; returns its id. Call inside
    the transaction (and, for a new face, the face-index lock) of the change it belongs to.
    photo_path: the file in PHOTOS_DIR it was made from (an enrolment photo, or the face
    crop kept of a confirmed snapshot), from which the next model re-encodes it.
    ModelChanged when model is not the registry's (it was switched meanwhile)."""
    # the lock reencode's switch holds: on PostgreSQL (read committed) the model check and the
    # insert would otherwise race the switch, and an old-model template could follow it in
    db.lock("faceindex")
    if model.id != active_id(db):
        raise ModelChanged(f"the registry's face model is now {active_id(db)}, not {model.id}:"
                           " this change was encoded with the old one; run it again")
    return db.insert(
        "INSERT INTO face_templates (citizen_id, encoding, source, model, num_jitters, face_model,"
        " photo_path, session_id, created_at) VALUES (?, ?, ?, 'small', 1, ?, ?, ?, ?)"
        " RETURNING id", [citizen_id, model.to_blob(encoding), source, model.id, photo_path,
                          session_id, now_iso()])


def citizen_templates(db, citizen_id, model=None):
    """The citizen's face templates (float32 arrays of the model), oldest first."""
    model = model or active(db)
    rows = db.execute("SELECT encoding FROM face_templates WHERE citizen_id = ? AND face_model = ?"
                      " ORDER BY id", [citizen_id, model.id]).fetchall()
    return [model.from_blob(r["encoding"]) for r in rows]


def live_templates(db, model=None):
    """(owner ids, n x dims matrix) of the templates of citizens enrolled with consent."""
    import numpy as np
    model = model or active(db)
    rows = db.execute(
        "SELECT t.citizen_id, t.encoding FROM face_templates t JOIN citizens c ON c.id = t.citizen_id"
        " WHERE c.removed_at IS NULL AND c.consent = 1 AND t.face_model = ? ORDER BY t.id",
        [model.id]).fetchall()
    owners = [r[0] for r in rows]
    # one join and one frombuffer: decoding a million rows one by one took seconds
    blob = b"".join(bytes(r[1]) for r in rows)
    if len(blob) != len(rows) * model.dims * 4:
        raise ValueError(f"a stored template is not a {model.name} template")
    matrix = np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(len(rows), model.dims)
    return owners, matrix


def best_distance(db, citizen_id, vector, model=None):
    """The distance from vector to the nearest of the citizen's templates (inf: none)."""
    model = model or active(db)
    templates = citizen_templates(db, citizen_id, model)
    if not templates:
        return float("inf")
    return float(model.distances(templates, vector).min())
