"""The server looks at the visitor itself before a case file opens.

A greeting is a device's claim. A stolen device token holds every template of its gallery
and could post "I greeted citizen N" with any picture, report a blink, and read N's case
summary. So before a case file opens the server finds the face in the session's snapshot,
encodes it with the engine the devices use, and compares it 1:1 with the claimed citizen's
templates under the registry's calibrated 1:1 distance (the ID-number check's, never looser
than the admin's ceiling for it). Measured once per session and kept in
sessions.snapshot_distance (infinite: no face in the snapshot). A forged greeting then needs
that citizen's face, not only a token. The device sends the frame of the visit that best
matched the citizen it named, so one frame stands for the evidence of several.
"""
import math
import os

from flask import current_app

from db import transaction
from recognition import PhotoRejected, engine
from recognition.images import load_image

from . import faces

SNAPSHOT_DETECT_SIDE = 640     # devices send a face crop (a few hundred pixels) or a frame


def snapshot_face(model, path, max_bytes, max_pixels):
    """The encoding (by the face model) of the largest face in a stored snapshot, or None
    when it shows none or none the model can align.
    OSError when the file cannot be read (then nothing is concluded about the face).

    A device's crop is the face with 0.6 of its size around it, at most 800 px: the face
    fills a third of it or more, so the cheap pass finds it and the finer one (upsample 1,
    faces down to ~40 px in a whole frame) is the most a picture without a face costs."""
    try:
        rgb = load_image(path, max_bytes=max_bytes, max_pixels=max_pixels)
    except PhotoRejected:
        return None
    found = engine.detect_faces(rgb, SNAPSHOT_DETECT_SIDE, upsample=0) \
        or engine.detect_faces(rgb, SNAPSHOT_DETECT_SIDE, upsample=1)
    return model.encodings(rgb, found[:1])[0] if found else None


def snapshot_distance(db, row, citizen_id):
    """How far the face in the session's snapshot is from the citizen's templates (inf when
    there is no face or no template); measured on first ask and stored with the session.
    A snapshot that cannot be read now (a disk error) counts as no match and is not stored."""
    if row["snapshot_distance"] is not None:
        return row["snapshot_distance"]
    from .api import SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS
    path = os.path.join(current_app.config["SNAPSHOTS_DIR"], row["snapshot_path"])
    model = faces.active(db)
    try:
        encoding = snapshot_face(model, path, SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS)
    except OSError:
        return math.inf
    distance = math.inf if encoding is None else faces.best_distance(db, citizen_id, encoding, model)
    with transaction(db):
        db.execute("UPDATE sessions SET snapshot_distance = ? WHERE id = ?", [distance, row["id"]])
    return distance

