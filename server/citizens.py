"""Citizen records for clerks and admins: search, one citizen with photo and cases.

The list masks ID numbers and phones (a search result page is often on a screen others can
see); the detail page shows them in full. Every page that shows personal data, and every
photo served, writes an audit entry: who looked at whom, and when.
"""
import os
import re

from flask import Blueprint, abort, current_app, render_template, request, send_file
from werkzeug.utils import safe_join

from db import transaction
from db.queries import citizen, citizen_cases, search_citizens

from .auth import audit_user, role_required
from .i18n import add_translations, t
from .web import SQLITE_MAX_INT, get_db

bp = Blueprint("citizens", __name__, url_prefix="/citizens")
PAGE_SIZE = 50
MAX_QUERY = 100


def mask(value, keep_start=4, keep_end=4):
    """4401**********1234: enough to tell rows apart, not enough to use the number."""
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return value[:2] + "*" * (len(value) - 2)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def mask_phone(phone):
    return mask(phone, 3, 4)


def search_text(q):
    """What to look for: a phone or ID number typed with spaces or dashes is matched as stored."""
    if re.fullmatch(r"[\d\s\-+()xX]+", q):
        return re.sub(r"[\s\-()]", "", q)
    return q


def parse_after(text):
    """The keyset cursor: the last citizen id of the previous page (0 = first page)."""
    try:
        # capped at SQLite's integer range: a bigger id raised OverflowError (a 500)
        return min(max(0, int(text or 0)), SQLITE_MAX_INT)
    except ValueError:
        return 0


def citizen_or_404(db, citizen_id):
    row = citizen(db, citizen_id)
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
    path = row["photo_path"] and safe_join(current_app.config["PHOTOS_DIR"], row["photo_path"])
    if not path or not os.path.isfile(path):
        abort(404, t("No enrolled photo."))
    with transaction(db):
        audit_user("citizen.photo.view", "citizen", citizen_id)
    response = send_file(path, mimetype=_image_type(path), max_age=0)
    response.headers["Cache-Control"] = "no-store, private"
    return response


def _image_type(path):
    extension = os.path.splitext(path)[1].lower()
    return {".png": "image/png", ".webp": "image/webp"}.get(extension, "image/jpeg")


add_translations({
    "Citizens": "市民",
    "Search by ID number, name or phone": "按身份证号、姓名或电话搜索",
    "Search": "搜索",
    "ID number": "身份证号",
    "Name": "姓名",
    "Phone": "电话",
    "Language": "语言",
    "District": "区",
    "Consent": "同意人脸识别",
    "yes": "是",
    "no": "否",
    "Face template": "人脸模板",
    "enrolled": "已登记",
    "none": "无",
    "Updated": "更新时间",
    "Enrolled photo": "登记照片",
    "No enrolled photo.": "没有登记照片。",
    "No such citizen.": "没有此市民。",
    "No citizens found.": "没有找到市民。",
    "Next page": "下一页",
    "First page": "第一页",
    "Cases": "案件",
    "No cases.": "没有案件。",
    "Case number": "案件编号",
    "Type": "类型",
    "Status": "状态",
    "Summary": "摘要",
    "Counter": "窗口",
    "Appointment": "预约时间",
    "Open": "打开",
    "ID numbers and phones are partly hidden here; open a citizen to see them in full (the view is logged).":
        "这里的身份证号和电话部分隐藏；打开市民记录可查看完整信息（查看会被记录）。",
})
