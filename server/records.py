"""Admin pages for the registry's records one at a time: add a citizen, correct them, add or
replace photos, withdraw consent, remove; and the records the duplicate check held, each
looked at beside the citizen it resembles, with the decisions made on them kept in view.

Admins only. Thin views over server/enrolment.py (the same checks and reasons as an import);
every view of personal data and every change is audited.
"""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from db import transaction

from . import duplicates, enrolment, importer
from .auth import audit_user, guard, user_actor
from .citizens import citizen_or_404
from .database import get_db
from .i18n import N_, reason as translated, t
from .privacy import mask, private_image
from .vocabulary import LANGUAGES

bp = Blueprint("records", __name__, url_prefix="/admin")
MAX_PHOTOS = 5
guard(bp, "admin")   # every view: the role is checked before it runs


def _settings():
    return importer.Settings.from_config(current_app.config)


def _uploads(name="photos"):
    """Bytes of the uploaded files of a form field (empty file inputs skipped)."""
    files = [f for f in request.files.getlist(name) if f and f.filename]
    return [f.read(importer.MAX_BYTES + 1) for f in files[:MAX_PHOTOS]]


def _refused(reason):
    flash(t("Not saved: {reason}").format(reason=translated(reason)), "error")


def _import_running(e, page, **context):
    """503 with Retry-After, at once: an import holds the face index and nothing was written
    (the page does not wait for the import, which a proxy would have answered with a 504)."""
    flash(t("An import is running: nothing was saved. Try again in {n} seconds.")
          .format(n=e.retry_after), "error")
    response = current_app.make_response((render_template(page, **context), 503))
    response.headers["Retry-After"] = str(e.retry_after)
    return response


@bp.route("/citizens/new", methods=["GET", "POST"])
def new_citizen():
    form = request.form
    if request.method == "POST":
        db = get_db()
        try:
            citizen_id = enrolment.add_citizen(db, user_actor(), form, _uploads(), _settings())
        except enrolment.ImportRunning as e:
            return _import_running(e, "records/new.html", form=form, languages=LANGUAGES)
        except enrolment.DuplicateHeld as e:
            _refused(e.reason)     # held: the admin sees both photos at once
            return redirect(url_for("records.duplicate", review_id=e.review_id))
        except enrolment.RecordRefused as e:
            _refused(e.reason)
            return render_template("records/new.html", form=form, languages=LANGUAGES), 400
        flash(t("Citizen added."), "ok")
        return redirect(url_for("records.manage", citizen_id=citizen_id))
    return render_template("records/new.html", form=form, languages=LANGUAGES)


def _templates(db, citizen_id):
    return db.execute("SELECT id, source, photo_path, created_at FROM face_templates"
                      " WHERE citizen_id = ? ORDER BY id", [citizen_id]).fetchall()


@bp.route("/citizens/<int:citizen_id>")
def manage(citizen_id):
    db = get_db()
    person = citizen_or_404(db, citizen_id)
    with transaction(db):
        audit_user("citizen.view", "citizen", citizen_id, {"page": "manage"})
    return render_template("records/manage.html", person=person, languages=LANGUAGES,
                           templates=_templates(db, citizen_id))


@bp.route("/citizens/<int:citizen_id>", methods=["POST"])
def update(citizen_id):
    db = get_db()
    person = citizen_or_404(db, citizen_id)
    try:
        changed = enrolment.update_citizen(db, user_actor(), person, request.form,
                                           _settings().id_number_rule)
        flash(t("Saved.") if changed else t("Nothing changed."), "ok")
    except enrolment.RecordRefused as e:
        _refused(e.reason)
    return redirect(url_for("records.manage", citizen_id=citizen_id))


@bp.route("/citizens/<int:citizen_id>/photos", methods=["POST"])
def add_photo(citizen_id):
    db = get_db()
    person = citizen_or_404(db, citizen_id)
    uploads = _uploads("photo")
    try:
        if not uploads:
            raise enrolment.RecordRefused(N_("photo is empty"))
        enrolment.add_photo(db, user_actor(), person, uploads[0], _settings(),
                            replace=request.form.get("mode") == "replace")
        flash(t("Photo saved."), "ok")
    except enrolment.ImportRunning as e:
        return _import_running(e, "records/busy.html", citizen_id=citizen_id)
    except enrolment.RecordRefused as e:
        _refused(e.reason)
    return redirect(url_for("records.manage", citizen_id=citizen_id))


@bp.route("/citizens/<int:citizen_id>/photos/<int:template_id>")
def template_photo(citizen_id, template_id):
    """The photo a template was made from (audited, never cached)."""
    db = get_db()
    citizen_or_404(db, citizen_id)
    row = db.execute("SELECT photo_path FROM face_templates WHERE id = ? AND citizen_id = ?",
                     [template_id, citizen_id]).fetchone()
    if row is None or not row["photo_path"]:
        abort(404, t("No enrolled photo."))
    with transaction(db):
        audit_user("citizen.photo.view", "citizen", citizen_id, {"template": template_id})
    return private_image(current_app.config["PHOTOS_DIR"], row["photo_path"])


@bp.route("/citizens/<int:citizen_id>/withdraw", methods=["POST"])
def withdraw(citizen_id):
    return _forget(citizen_id, enrolment.withdraw_consent, t("Consent withdrawn: face templates"
                   " and photos deleted; devices drop this citizen at their next sync."))


@bp.route("/citizens/<int:citizen_id>/remove", methods=["POST"])
def remove(citizen_id):
    return _forget(citizen_id, enrolment.remove_citizen, t("Citizen removed."))


def _forget(citizen_id, action, message):
    db = get_db()
    person = citizen_or_404(db, citizen_id)
    if request.form.get("confirm") != "yes":
        flash(t("Tick the box to confirm."), "error")
        return redirect(url_for("records.manage", citizen_id=citizen_id))
    action(db, user_actor(), person, current_app.config["PHOTOS_DIR"])
    flash(message, "ok")
    if action is enrolment.remove_citizen:
        return redirect(url_for("citizens.index"))
    return redirect(url_for("records.manage", citizen_id=citizen_id))


# --- duplicate review -------------------------------------------------------------------------

def review_or_404(db, review_id):
    row = duplicates.review_row(db, review_id)
    if row is None:
        abort(404, t("No such duplicate review."))
    return row


@bp.route("/duplicates/")
def duplicate_list():
    """The records waiting for a look, and the latest decisions (who, when, what)."""
    db = get_db()
    rows, decided = duplicates.pending_reviews(db), duplicates.decided_reviews(db)
    with transaction(db):
        audit_user("duplicate.list", "duplicate_review", "",
                   {"shown": [r["id"] for r in rows], "decided": [r["id"] for r in decided]})
    return render_template("records/duplicates.html", rows=rows, decided=decided, mask=mask,
                           threshold=duplicates.duplicate_threshold(db))


@bp.route("/duplicates/<int:review_id>")
def duplicate(review_id):
    """Both records in full, side by side: the page shows the registered citizen's record as
    their own page does, so it is audited as a view of them too."""
    db = get_db()
    row = review_or_404(db, review_id)
    with transaction(db):
        audit_user("duplicate.view", "duplicate_review", review_id)
        audit_user("citizen.view", "citizen", row["match_citizen_id"],
                   {"page": "duplicate", "review": review_id})
    return render_template("records/duplicate.html", r=row, held=duplicates.record_of(row),
                           closeness=duplicates.closeness(row["distance"], row["threshold"]),
                           likely_same=duplicates.likely_same_person(row))


@bp.route("/duplicates/<int:review_id>/photo")
def duplicate_photo(review_id):
    """The held record's photo (audited); gone once the record is discarded."""
    db = get_db()
    row = review_or_404(db, review_id)
    with transaction(db):
        audit_user("duplicate.photo.view", "duplicate_review", review_id)
    return private_image(current_app.config["PHOTOS_DIR"], row["photo_path"])


@bp.route("/duplicates/<int:review_id>", methods=["POST"])
def decide(review_id):
    db = get_db()
    row = review_or_404(db, review_id)
    decision = request.form.get("decision", "")
    # Faces this close are likely one person: a second identity goes in only with the admin's
    # own tick that they are two people, checked here (the form's `required` only helps the
    # browser; a replayed or hand-made POST has no tick).
    if (decision == "import" and duplicates.likely_same_person(row)
            and request.form.get("confirm_different") != "yes"):
        flash(t("Not imported: tick the box to confirm these are two different people."), "error")
        return redirect(url_for("records.duplicate", review_id=review_id))
    try:
        citizen_id = enrolment.decide_duplicate(db, user_actor(), row, decision, _settings())
    except enrolment.RecordRefused as e:
        _refused(e.reason)
        return redirect(url_for("records.duplicate", review_id=review_id))
    flash(t("Decision saved."), "ok")
    if citizen_id:
        return redirect(url_for("records.manage", citizen_id=citizen_id))
    return redirect(url_for("records.duplicate_list"))
