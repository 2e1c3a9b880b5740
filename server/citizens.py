"""Citizen records for clerks and admins: search, one citizen with photo and cases.

The list masks ID numbers and phones (a search result page is often on a screen others can
see); the detail page shows them in full. Every page that shows personal data, and every
photo served, writes an audit entry: who looked at whom, and when.
"""
import re

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   url_for)

from db import transaction
from db.queries import citizen, citizen_cases, search_citizens

from . import limits
from .auth import audit_user, role_required, user_actor
from .database import get_db
from .i18n import t
from .privacy import mask, mask_phone, private_image
from .requests import parse_after

bp = Blueprint("citizens", __name__, url_prefix="/citizens")
PAGE_SIZE = 50
MAX_QUERY = 100


def search_text(q):
    """What to look for: a phone or ID number typed with spaces or dashes is matched as stored."""
    if re.fullmatch(r"[\d\s\-+()xX]+", q):
        return re.sub(r"[\s\-()]", "", q)
    return q


def citizen_or_404(db, citizen_id, removed_too=False):
    """The citizen, or a 404; removed_too also finds one removed from the registry (their
    cases and visits stay as history, and a clerk must still be able to read them)."""
    row = citizen(db, citizen_id, removed_too)
    if row is None:
        abort(404, t("No such citizen."))
    return row


def template_count(db, citizen_id):
    return db.execute("SELECT count(*) FROM face_templates WHERE citizen_id = ?",
                      [citizen_id]).fetchone()[0]


@bp.route("/")
@role_required("clerk")
def index():
    """Citizens whose ID number, name or phone contains q, a page at a time."""
    db = get_db()
    q = request.args.get("q", "").strip()[:MAX_QUERY]
    after = parse_after(request.args.get("after"))
    rows = search_citizens(db, search_text(q), limit=PAGE_SIZE + 1, after_id=after)
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    with transaction(db):
        audit_user("citizen.search", "citizen", "",
                   {"q": q, "after": after, "shown": [r["id"] for r in rows]})
    return render_template("citizens/index.html", rows=rows, q=q, after=after,
                           next_after=rows[-1]["id"] if more else None,
                           mask=mask, mask_phone=mask_phone)


@bp.route("/<int:citizen_id>")
@role_required("clerk")
def detail(citizen_id):
    """One citizen in full: record, photo, whether a face template is enrolled, cases."""
    db = get_db()
    row = citizen_or_404(db, citizen_id)
    with transaction(db):
        audit_user("citizen.view", "citizen", citizen_id)
    return render_template("citizens/detail.html", person=row, cases=citizen_cases(db, citizen_id),
                           templates=template_count(db, citizen_id))


@bp.route("/<int:citizen_id>/photo")
@role_required("clerk")
def photo(citizen_id):
    """The enrolled photo, never cached by browsers or proxies (audited)."""
    db = get_db()
    row = citizen_or_404(db, citizen_id)
    if not row["photo_path"]:
        abort(404, t("No enrolled photo."))
    with transaction(db):
        audit_user("citizen.photo.view", "citizen", citizen_id)
    return private_image(current_app.config["PHOTOS_DIR"], row["photo_path"])


@bp.route("/<int:citizen_id>/unlock-factor", methods=["POST"])
@role_required("clerk")
def unlock_factor(citizen_id):
    """After checking the citizen's ID document, a clerk lets them type their digits again."""
    db = get_db()
    citizen_or_404(db, citizen_id)
    limits.unlock_factor(db, citizen_id, user_actor())
    flash(t("The phone check is unlocked for this citizen."), "ok")
    return redirect(url_for("citizens.detail", citizen_id=citizen_id))
