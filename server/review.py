"""Reviewing one session: the device's snapshot beside the enrolled photo, and the clerk's
decision (confirm, reject, close) with a note. For an unknown visitor: the nearest citizens the
device saw and the rule that refused them, and attaching the visit to a citizen once the clerk
has checked an ID document.

A confirmed match may become an extra face template (admin setting); a rejected one never
does, and withdraws a template an earlier confirmation added. Every view is audited.
"""
import hashlib
import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.utils import safe_join

from db import now_iso, transaction
from db.queries import next_sync_seq

from . import calibration, faces, sessions, settings
from .api import is_key
from .auth import audit_user, guard
from .importer import citizen_row, delete_unused_photos, normalise_id_number, save_photo
from .database import get_db
from .errors import ApiError
from .i18n import label, t
from .privacy import mask, private_image
from .casefile import second_factor_on

bp = Blueprint("review", __name__, url_prefix="/console")
DECISIONS = {"confirm": "confirmed", "reject": "rejected", "close": "closed"}
MAX_NOTE = 4000
guard(bp, "clerk")   # every view: the role is checked before it runs


@bp.route("/sessions/<session_id>")
def session_detail(session_id):
    db = get_db()
    row = sessions.session_or_404(db, session_id)
    with transaction(db):
        audit_user("session.view", "session", session_id)
    min_margin = settings.value(db, "policy.margin")
    candidates = nearest_citizens(db, row)
    tries = sessions.visit_tries(db, row)
    registry_model = faces.active_id(db)
    return render_template("console/session.html", s=row,
                           add_templates=bool(settings.value(db, "add_confirmed_templates")),
                           threshold=greeting_threshold(db), min_margin=min_margin,
                           one_to_one=calibration.one_to_one_threshold(db),
                           candidates=candidates[:SHOWN_CANDIDATES], refusal=refusal_text(row),
                           lookalike=lookalike(row, candidates, tries, min_margin, registry_model),
                           tries=tries, factor=sessions.second_factor(row, second_factor_on(db)),
                           registry_model=registry_model, mask=mask)


SHOWN_CANDIDATES = 3


def nearest_citizens(db, row):
    """Every citizen the device found nearest for this visit (api.MAX_CANDIDATES at most),
    closest first, as dicts: key, distance, margin (how much further the next one was: for
    the first, the device's margin), the citizen row (None when the key is unknown here or
    the citizen was removed since), and whether it is the citizen the visit is attached to.
    The page shows the first SHOWN_CANDIDATES; the lookalike check reads them all."""
    try:
        seen = json.loads(row["candidates"] or "[]")
    except ValueError:
        seen = []
    # a session stored before its candidates were checked may hold anything: skip what is no key
    seen = [c for c in seen if isinstance(c, dict) and is_key(c.get("key"))
            and isinstance(c.get("distance"), (int, float))]
    keys = sorted({c["key"] for c in seen})
    people = {p["key"]: p for p in db.execute(
        "SELECT id, key, name, id_number, photo_path FROM citizens WHERE removed_at IS NULL"
        " AND key IN (" + ",".join("?" * len(keys)) + ")", keys)} if keys else {}
    nearest = []
    for i, entry in enumerate(seen):
        following = seen[i + 1]["distance"] if i + 1 < len(seen) else None
        person = people.get(entry["key"])
        nearest.append({"key": entry["key"], "distance": entry["distance"], "citizen": person,
                        "margin": None if following is None else following - entry["distance"],
                        "this_visit": person is not None and person["id"] == row["citizen_id"]})
    return nearest


def lookalike(row, candidates, tries, min_margin, registry_model):
    """Why the clerk should check the ID document before trusting this visit's name, or None:
    another citizen was within the margin rule of the one named, or the device named them by
    face although its own margin was under the rule. The citizen's own distance is the
    device's for them when they are among its nearest; else, for a greeting, the distance it
    greeted at, and for an ID number the registry's 1:1 distance. A visit a clerk attached by
    the ID document has no distance of its own: only a citizen the device found is compared.
    Distances of another face model than the registry's are not held to its margin rule."""
    if row["citizen_id"] is None or row["face_model"] != registry_model:
        return None
    own = next((c["distance"] for c in candidates if c["this_visit"]), None)
    if own is None:
        own = {"face": row["distance"], "id_number": _matched_distance(tries)}.get(row["identified_by"])
    others = [c for c in candidates if not c["this_visit"] and c["citizen"] is not None]
    close = [c for c in others if own is not None and c["distance"] < own + min_margin]
    if close:
        nearest = min(close, key=lambda c: c["distance"])
        return t("Another citizen, {0}, was nearly as close ({1} against {2}; the rule asks {3}"
                 " between them): check the ID document.").format(
            nearest["citizen"]["name"], "%.3f" % nearest["distance"], "%.3f" % own, min_margin)
    if row["identified_by"] == "face" and row["margin"] is not None and row["margin"] < min_margin:
        return t("The margin to the next citizen ({0}) was under the rule ({1}): check the ID"
                 " document.").format("%.3f" % row["margin"], min_margin)
    return None


def _matched_distance(tries):
    """The distance the registry measured for the ID number that matched (from its try)."""
    return next((entry["distance"] for entry in tries if entry["ok"] and entry["distance"] is not None), None)


def refusal_text(row):
    """Why the device named nobody, in words (None for a greeting or an older device)."""
    texts = {
        "threshold": t("The nearest citizen was further away than the match threshold."),
        "margin": t("Two citizens were almost equally close (the margin was too small)."),
        "agreement": t("The camera frames did not agree on one citizen."),
        "empty_gallery": t("The device held no enrolled citizens."),
        "model_missing": t("The device cannot run the registry's face model: it names nobody."),
    }
    return texts.get(row["refused_by"]) if row["refused_by"] else None


def greeting_threshold(db):
    """The distance devices holding every citizen accept now: the registry's measured
    curve for that many citizens, never looser than the setting (server.calibration)."""
    return calibration.device_threshold(db)[0]


@bp.route("/sessions/<session_id>/snapshot")
def snapshot(session_id):
    """The device's snapshot of the visitor (audited; gone once purged by retention)."""
    db = get_db()
    row = sessions.session_or_404(db, session_id)
    if not row["snapshot_path"]:
        abort(404, t("The snapshot was not kept or has been purged."))
    with transaction(db):
        audit_user("session.snapshot.view", "session", session_id)
    return private_image(current_app.config["SNAPSHOTS_DIR"], row["snapshot_path"])


class ReviewRefused(ValueError):
    """A review decision that does not apply to this session (e.g. confirming an unknown visitor)."""


def review_session(db, row, decision, note, user_id, snapshots_dir, add_template):
    """Record a clerk's decision on a session; returns a message about the face template, or "".

    A confirmed match may become an extra face template for the citizen (add_template, the
    admin setting); a rejected one never is, and a template added by an earlier confirmation
    is withdrawn, with a new sync_seq so devices drop it at their next sync.
    """
    status = DECISIONS.get(decision)
    if status is None:
        raise ReviewRefused(t("Choose confirm, reject or close."))
    if status in ("confirmed", "rejected") and row["citizen_id"] is None:
        raise ReviewRefused(t("An unknown visitor has no match to confirm or reject."))
    template, message = None, ""
    if status == "confirmed" and add_template:
        template, message = _snapshot_template(db, row, snapshots_dir)
    with transaction(db):
        db.execute("UPDATE sessions SET review_status = ?, reviewed_by = ?, reviewed_at = ?,"
                   " review_note = ? WHERE id = ?",
                   [status, user_id, now_iso(), note, row["id"]])
        withdrawn = _withdraw_templates(db, row) if status == "rejected" else []
        if template is not None:
            _add_template(db, row, *template)
        audit_user(f"session.{decision}", "session", row["id"],
                   {"note": note, "template_added": template is not None,
                    "templates_withdrawn": len(withdrawn)})
    # the face crops the withdrawn templates kept, once nothing refers to them
    delete_unused_photos(db, current_app.config["PHOTOS_DIR"], [p for p in withdrawn if p])
    return message


def _snapshot_template(db, row, snapshots_dir):
    """((model, encoding, kept crop JPEG), message) from the session's snapshot, or (None,
    why not). The snapshot is purged after retention and the template stays: a crop of the
    face is kept as the template's photo, so the next face model can re-encode it."""
    from recognition.errors import PhotoRejected
    from recognition.images import jpeg_bytes, load_image
    from recognition.quality import enrolment_template
    if row["citizen_removed_at"]:
        return None, t("The citizen has been removed; no template was added.")
    if not row["consent"]:
        return None, t("The citizen has not consented to face templates; none was added.")
    if not row["snapshot_path"]:
        return None, t("No snapshot is kept for this session; no template was added.")
    if _has_session_template(get_db(), row["id"]):
        return None, ""
    try:
        rgb = load_image(safe_join(snapshots_dir, row["snapshot_path"]) or "")
        model = faces.active(db)
        enrolment = enrolment_template(rgb, model)
        crop = jpeg_bytes(enrolment.kept_crop(rgb))
        return (model, enrolment.encoding, crop), t("The snapshot was added as a face template.")
    except PhotoRejected as e:
        return None, t("The snapshot was not added as a face template: {reason}").format(
            reason=e.reason)


def _has_session_template(db, session_id):
    return db.execute("SELECT 1 FROM face_templates WHERE session_id = ?",
                      [session_id]).fetchone() is not None


def _add_template(db, row, model, encoding, crop):
    photos_dir = current_app.config["PHOTOS_DIR"]
    db.lock("faceindex")    # every writer of the photos folder holds it (server/files.py)
    path = save_photo(photos_dir, crop, hashlib.sha256(crop).hexdigest(), "jpg")
    faces.add_template(db, row["citizen_id"], model, encoding, source="confirmed_session",
                       photo_path=path, session_id=row["id"])
    _bump_citizen(db, row["citizen_id"])


def _withdraw_templates(db, row):
    """Delete the templates a confirmation of this session added; their photo paths."""
    paths = [r[0] for r in db.execute("SELECT photo_path FROM face_templates WHERE session_id = ?",
                                      [row["id"]])]
    deleted = db.execute("DELETE FROM face_templates WHERE session_id = ?",
                         [row["id"]]).rowcount
    if deleted and row["citizen_id"] is not None:
        _bump_citizen(db, row["citizen_id"])
    return paths


def _bump_citizen(db, citizen_id):
    db.execute("UPDATE citizens SET sync_seq = ?, updated_at = ? WHERE id = ?",
               [next_sync_seq(db), now_iso(), citizen_id])


@bp.route("/sessions/<session_id>/review", methods=["POST"])
def review(session_id):
    db = get_db()
    row = sessions.session_or_404(db, session_id)
    note = request.form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        raise ApiError(400, t("The note is too long."))
    seen = request.form.get("seen_status")
    if seen and seen != row["review_status"]:
        # another clerk decided while this one was looking: show them that decision first
        flash(t("{user} has already marked this session as {status}. Look again before changing it.")
              .format(user=row["reviewer"] or "?", status=label(row["review_status"])), "error")
        return redirect(url_for("review.session_detail", session_id=session_id))
    try:
        message = review_session(db, row, request.form.get("decision", ""), note, current_user.id,
                                 current_app.config["SNAPSHOTS_DIR"],
                                 bool(settings.value(db, "add_confirmed_templates")))
    except ReviewRefused as e:
        flash(str(e), "error")
        return redirect(url_for("review.session_detail", session_id=session_id))
    flash(t("Review saved.") + (" " + message if message else ""), "ok")
    return redirect(url_for("review.session_detail", session_id=session_id))


def attach_session(db, row, person, id_checked, user_id, snapshots_dir, add_template):
    """Attach an unknown visitor's session to a citizen, after the clerk checked an ID document;
    returns a message about the face template, or "". The session is marked confirmed; with
    add_template the snapshot becomes a template when it passes the enrolment quality gate."""
    if not id_checked:
        raise ReviewRefused(t("Confirm that you checked the visitor's ID document."))
    if row["citizen_id"] is not None:
        raise ReviewRefused(t("This visit is already attached to a citizen."))
    with transaction(db):
        db.execute("UPDATE sessions SET citizen_id = ?, review_status = 'confirmed',"
                   " identified_by = 'id_document', reviewed_by = ?, reviewed_at = ?"
                   " WHERE id = ? AND citizen_id IS NULL",
                   [person["id"], user_id, now_iso(), row["id"]])
        audit_user("session.attach", "session", row["id"],
                   {"citizen_id": person["id"], "id_document_checked": True})
    if not add_template:
        return ""
    attached = sessions.session_or_404(db, row["id"])
    template, message = _snapshot_template(db, attached, snapshots_dir)
    if template is not None:
        with transaction(db):
            _add_template(db, attached, *template)
            audit_user("session.template_added", "session", row["id"], {"citizen_id": person["id"]})
    return message


@bp.route("/sessions/<session_id>/attach", methods=["POST"])
def attach(session_id):
    db = get_db()
    row = sessions.session_or_404(db, session_id)
    back = redirect(url_for("review.session_detail", session_id=session_id))
    try:
        person = _attach_target(db, request.form.get("id_number", ""))
        message = attach_session(db, row, person, request.form.get("id_checked") == "yes",
                                 current_user.id, current_app.config["SNAPSHOTS_DIR"],
                                 request.form.get("add_template") == "yes")
    except ReviewRefused as e:
        flash(str(e), "error")
        return back
    flash(t("The visit is attached to {name}.").format(name=person["name"])
          + (" " + message if message else ""), "ok")
    return back


def _attach_target(db, typed):
    """The citizen whose ID number the clerk typed from the document, or ReviewRefused."""
    try:
        id_number = normalise_id_number(typed, current_app.config.get("ID_NUMBER_RULE", "prc18"))
    except ValueError:
        raise ReviewRefused(t("Type the ID number from the visitor's document."))
    person = citizen_row(db, id_number)
    if person is None or person["removed_at"] is not None:
        raise ReviewRefused(t("No citizen has this ID number."))
    return person
