"""Admin pages: users, devices, settings, the audit log; and the snapshot purge.

Admins only: the blueprint checks the role before every view, so a route added later cannot
forget it. Plain functions do the work (and are what the tests and the CLI call); the views
parse forms, call them and write the audit entry.
"""
import os
import string
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import click
from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   url_for)
from flask.cli import with_appcontext
from flask_login import current_user
from werkzeug.security import generate_password_hash
from werkzeug.utils import safe_join

from db import open_db, transaction
from db.queries import audit, get_setting, set_setting
from recognition.decision import Policy

from .api import GALLERY_BY_SITE, resend_gallery
from .auth import ROLES, UserError, audit_user, create_user, role_required
from .console import clamp_page_size, day_bounds, parse_day, parse_row_id, utc_stamp
from .i18n import add_translations, t
from .web import get_db

bp = Blueprint("admin", __name__, url_prefix="/admin")

LANGUAGES = ("zh", "yue", "en")
GREETING_FIELDS = {"name", "surname", "honorific"}
DEFAULT_RETENTION_DAYS = 30
AUDIT_TARGET_TYPES = ("session", "citizen", "case", "user", "device", "setting", "import")


@bp.before_request
@role_required("admin")
def _admins_only():
    """Every admin URL: anonymous -> login, clerk -> 403."""
    return None


# --- settings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One admin setting: its key in the settings table, type, default and allowed range."""
    key: str
    label: str
    kind: str            # "float", "int", "bool" or "greetings"
    default: object
    low: float = None
    high: float = None
    help: str = ""


# Keys shared with the device API (server/api.py device_config) and the case-file second factor.
SETTINGS = (
    Setting("policy.threshold", "Match threshold", "float", Policy.threshold, 0.20, 0.60,
            "Loosest face distance that may be greeted by name; devices tighten it as the"
            " number of enrolled citizens grows. Lower is stricter."),
    Setting("policy.margin", "Match margin", "float", Policy.margin, 0.0, 0.30,
            "How much closer the best citizen must be than the next one."),
    Setting("policy.min_frames", "Frames that must agree", "int", Policy.min_frames, 1, 30,
            "Frames in a row naming the same citizen before the greeting."),
    Setting("greeting.templates", "Greeting per language", "greetings",
            {"zh": "{name}，您好！", "yue": "{name}，你好！", "en": "Hello, {name}!"}, None, None,
            "Placeholders: {name}, {surname}, {honorific}."),
    Setting("retention_days", "Snapshot retention (days)", "int", DEFAULT_RETENTION_DAYS, 1, 3650,
            "Device snapshots older than this are deleted; the session record stays."),
    Setting("add_confirmed_templates", "Add confirmed matches as face templates", "bool", False,
            help="A clerk-confirmed snapshot becomes an extra template for that citizen."),
    Setting("second_factor", "Second factor for case details", "bool", True,
            help="Citizens type the last four digits of their phone before case details show."),
    Setting(GALLERY_BY_SITE, "Each device holds only its own site's citizens", "bool", False,
            help="A device gets the citizens whose district is its site (and those without a"
                 " district): smaller galleries name fewer strangers and greet more citizens."),
)


class SettingInvalid(ValueError):
    """A setting value out of range or of the wrong form; the message is for the admin."""


def read_settings(db):
    """{key: current value}, the default where nothing was saved."""
    values = {}
    for spec in SETTINGS:
        value = get_setting(db, spec.key, spec.default)
        if spec.kind == "greetings":
            value = {**spec.default, **(value or {})}
        values[spec.key] = value
    return values


def parse_setting(spec, form):
    """The value of spec in a submitted form. Raises SettingInvalid."""
    if spec.kind == "bool":
        return form.get(spec.key) in ("1", "on", "true")
    if spec.kind == "greetings":
        return {lang: _greeting(form.get(f"{spec.key}.{lang}", "")) for lang in LANGUAGES}
    raw = form.get(spec.key, "").strip()
    try:
        value = float(raw) if spec.kind == "float" else int(raw)
    except ValueError:
        raise SettingInvalid(t("Enter a number."))
    if not spec.low <= value <= spec.high:
        raise SettingInvalid(t("Must be between {low} and {high}.").format(low=spec.low,
                                                                             high=spec.high))
    return value


def _greeting(text):
    text = text.strip()
    if not text or len(text) > 120:
        raise SettingInvalid(t("A greeting needs 1 to 120 characters."))
    try:
        parts = [(name, spec, conversion) for _, name, spec, conversion
                 in string.Formatter().parse(text) if name is not None]
    except ValueError:
        raise SettingInvalid(t("Unbalanced braces in the greeting."))
    if any(spec or conversion for _, spec, conversion in parts):
        # "{name:>999999999}" passed and made every device build a 1 GB greeting string
        raise SettingInvalid(t("Placeholders take no format: write {name}, not {name:...}."))
    fields = {name for name, _, _ in parts}
    unknown = fields - GREETING_FIELDS
    if unknown:
        raise SettingInvalid(t("Unknown placeholder: {field}").format(field=sorted(unknown)[0]))
    return text


def save_settings(db, form):
    """Validate every setting in form; save all or none.

    Returns (changes {key: [old, new]}, errors {key: message}); nothing is saved when there
    is any error, so a half-valid form never leaves the devices with a mixed policy.
    """
    current = read_settings(db)
    values, errors = {}, {}
    for spec in SETTINGS:
        try:
            values[spec.key] = parse_setting(spec, form)
        except SettingInvalid as e:
            errors[spec.key] = str(e)
    if errors:
        return {}, errors
    changes = {key: [current[key], value] for key, value in values.items() if current[key] != value}
    with transaction(db):
        for key, (_, value) in changes.items():
            set_setting(db, key, value)
        if GALLERY_BY_SITE in changes:
            resend_gallery(db)  # every device re-checks every citizen against the new scope
        if changes:
            audit_user("settings.update", "setting", ",".join(sorted(changes)), changes)
    return changes, {}


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    db = get_db()
    errors, values = {}, read_settings(db)
    if request.method == "POST":
        changes, errors = save_settings(db, request.form)
        if not errors:
            flash(t("Settings saved.") if changes else t("Nothing changed."), "ok")
            return redirect(url_for("admin.settings"))
        values = _submitted(request.form, values)
    return render_template("admin/settings.html", specs=SETTINGS, values=values, errors=errors,
                           languages=LANGUAGES), 400 if errors else 200


def _submitted(form, values):
    """What the admin typed, to show back with the errors."""
    shown = dict(values)
    for spec in SETTINGS:
        if spec.kind == "greetings":
            shown[spec.key] = {lang: form.get(f"{spec.key}.{lang}", "") for lang in LANGUAGES}
        elif spec.kind == "bool":
            shown[spec.key] = form.get(spec.key) in ("1", "on", "true")
        else:
            shown[spec.key] = form.get(spec.key, "")
    return shown


# --- users ------------------------------------------------------------------------------------

def user_or_404(db, user_id):
    row = db.execute("SELECT * FROM users WHERE id = ?", [user_id]).fetchone()
    if row is None:
        abort(404, t("No such user."))
    return row


def change_user(db, row, acting_user_id, role=None, disabled=None):
    """Change a user's role and/or disabled flag. Raises UserError for a bad role or for an
    admin changing their own account (the way an office locks itself out of its admin pages)."""
    if row["id"] == acting_user_id:
        raise UserError(t("You cannot change your own role or disable yourself."))
    if role is not None and role not in ROLES:
        raise UserError(t("Unknown role."))
    changes = {}
    if role is not None and role != row["role"]:
        changes["role"] = [row["role"], role]
    if disabled is not None and bool(disabled) != bool(row["disabled"]):
        changes["disabled"] = [bool(row["disabled"]), bool(disabled)]
    with transaction(db):
        db.execute("UPDATE users SET role = ?, disabled = ?, failed_logins = 0,"
                   " locked_until = NULL WHERE id = ?",
                   [role or row["role"], int(row["disabled"] if disabled is None else disabled),
                    row["id"]])
        if changes:
            audit_user("user.update", "user", row["username"], changes)
    return changes


def reset_password(db, row, password):
    """Set a new password and clear any lockout. Raises UserError for a short password."""
    if len(password or "") < 10:
        raise UserError(t("A password needs at least 10 characters."))
    with transaction(db):
        db.execute("UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL"
                   " WHERE id = ?", [generate_password_hash(password), row["id"]])
        audit_user("user.password_reset", "user", row["username"])


@bp.route("/users", methods=["GET", "POST"])
def users():
    db = get_db()
    status = 200
    if request.method == "POST":
        form = request.form
        try:
            create_user(db, form.get("username", ""), form.get("password", ""), form.get("role", ""))
        except UserError as e:
            flash(str(e), "error")
            status = 400
        else:
            with transaction(db):
                audit_user("user.create", "user", form["username"].strip(), {"role": form["role"]})
            flash(t("User created."), "ok")
            return redirect(url_for("admin.users"))
    rows = db.execute("SELECT * FROM users ORDER BY username").fetchall()
    return render_template("admin/users.html", users=rows, roles=ROLES), status


@bp.route("/users/<int:user_id>", methods=["POST"])
def update_user(user_id):
    db = get_db()
    row = user_or_404(db, user_id)
    action = request.form.get("action", "")
    try:
        if action == "password":
            reset_password(db, row, request.form.get("password", ""))
            flash(t("Password reset for {user}.").format(user=row["username"]), "ok")
        elif action in ("disable", "enable"):
            change_user(db, row, current_user.id, disabled=action == "disable")
            flash(t("User updated."), "ok")
        elif action == "role":
            change_user(db, row, current_user.id, role=request.form.get("role", ""))
            flash(t("User updated."), "ok")
        else:
            abort(400, t("Unknown action."))
    except UserError as e:
        flash(str(e), "error")
    return redirect(url_for("admin.users"))


# --- devices ----------------------------------------------------------------------------------

def register_device(db, name, kind, site):
    """Register through the device API's own function (one place creates tokens)."""
    from .api import register_device as register
    return register(db, name, kind, site)


def revoke_device(db, name):
    from .api import revoke_device as revoke
    revoke(db, name)


def device_rows(db):
    return db.execute("SELECT * FROM devices ORDER BY revoked_at IS NOT NULL, name").fetchall()


@bp.route("/devices", methods=["GET", "POST"])
def devices():
    from .api import DeviceError
    db = get_db()
    token, status, form = None, 200, request.form
    if request.method == "POST":
        name = form.get("name", "").strip()
        try:
            token = register_device(db, name, form.get("kind", ""), form.get("site", "").strip())
        except DeviceError as e:
            flash(str(e), "error")
            status = 400
        else:
            with transaction(db):
                audit_user("device.register", "device", name,
                           {"kind": form["kind"], "site": form.get("site", "").strip()})
            status = 201
    response = current_app.make_response((render_template(
        "admin/devices.html", devices=device_rows(db), token=token,
        token_device=form.get("name", "").strip()), status))
    # The token is shown exactly once: no cached copy in the browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/devices/<int:device_id>/revoke", methods=["POST"])
def revoke(device_id):
    from .api import DeviceError
    db = get_db()
    row = db.execute("SELECT * FROM devices WHERE id = ?", [device_id]).fetchone()
    if row is None:
        abort(404, t("No such device."))
    try:
        revoke_device(db, row["name"])
    except DeviceError as e:
        flash(str(e), "error")
    else:
        with transaction(db):
            audit_user("device.revoke", "device", row["name"])
        flash(t("Device {name} revoked: its token no longer works.").format(name=row["name"]), "ok")
    return redirect(url_for("admin.devices"))


# --- audit log --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    day: date = None

    @classmethod
    def from_args(cls, args):
        return cls(args.get("actor", "").strip(), args.get("action", "").strip(),
                   args.get("target_type", "").strip(), args.get("target_id", "").strip(),
                   parse_day(args.get("day", "")))

    def query_args(self):
        args = {"actor": self.actor, "action": self.action, "target_type": self.target_type,
                "target_id": self.target_id, "day": self.day.isoformat() if self.day else ""}
        return {key: value for key, value in args.items() if value}


def audit_page(db, flt, before_id=None, limit=50):
    """Audit entries matching flt, newest first, with ids below before_id (keyset paging).

    Each filter column has an index whose entries are in id order, so a page is an index walk
    however long the log grows.
    """
    where, params = [], []
    for column, value in (("actor_name", flt.actor), ("action", flt.action),
                          ("target_type", flt.target_type), ("target_id", flt.target_id)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if flt.day:
        where.append("at >= ? AND at < ?")
        params.extend(day_bounds(flt.day))
    if before_id:
        where.append("id < ?")
        params.append(before_id)
    sql = (f"SELECT * FROM audit_log WHERE {' AND '.join(where) or '1'}"
           " ORDER BY id DESC LIMIT ?")
    return db.execute(sql, params + [limit]).fetchall()


def audit_target_url(entry):
    """A link to what an audit entry is about, where the console has a page for it."""
    target, kind = entry["target_id"], entry["target_type"]
    if kind == "session" and target:
        return url_for("console.session_detail", session_id=target)
    if kind in ("citizen", "case") and target.isdigit():
        endpoint = "console.case_file" if kind == "citizen" else "console.case_detail"
        return url_for(endpoint, **{f"{kind}_id": int(target)})
    return None


@bp.route("/audit")
def audit_log():
    db = get_db()
    flt = AuditFilter.from_args(request.args)
    before = request.args.get("before", "")
    limit = clamp_page_size(request.args.get("per_page"))
    rows = audit_page(db, flt, parse_row_id(before), limit)
    return render_template("admin/audit.html", rows=rows, flt=flt, target_types=AUDIT_TARGET_TYPES,
                           audit_target_url=audit_target_url,
                           next_before=rows[-1]["id"] if len(rows) == limit else None,
                           paged=bool(before))


# --- overview ---------------------------------------------------------------------------------

@bp.route("/", endpoint="index")
def index():
    db = get_db()
    counts = {
        "users": db.execute("SELECT count(*) FROM users WHERE disabled = 0").fetchone()[0],
        "devices": db.execute("SELECT count(*) FROM devices WHERE revoked_at IS NULL")
                     .fetchone()[0],
        "pending": db.execute("SELECT count(*) FROM sessions WHERE review_status = 'pending'")
                     .fetchone()[0],
    }
    return render_template("admin/index.html", counts=counts, settings=read_settings(db))


# --- snapshot purge ---------------------------------------------------------------------------

def purge_snapshots(db, snapshots_dir, retention_days, now=None, batch=500):
    """Delete snapshot files of sessions received more than retention_days ago.

    The session row keeps all its metadata; only snapshot_path is cleared. Each file is deleted
    before its row is cleared: a crash in between leaves a path to a missing file, which the
    next run clears, never an unreferenced face image that nothing would delete.
    Returns (purged, failed): failed files (e.g. permissions) keep their path for the next run.
    """
    cutoff = utc_stamp((now or datetime.now(timezone.utc)) - timedelta(days=retention_days))
    purged = failed = 0
    cursor = ("", "")
    while True:
        rows = db.execute(
            "SELECT id, snapshot_path, received_at FROM sessions WHERE snapshot_path IS NOT NULL"
            " AND received_at < ? AND (received_at, id) > (?, ?) ORDER BY received_at, id LIMIT ?",
            [cutoff, *cursor, batch]).fetchall()
        if not rows:
            break
        cursor = (rows[-1]["received_at"], rows[-1]["id"])
        removed = [row["id"] for row in rows if _remove_snapshot(snapshots_dir, row["snapshot_path"])]
        with transaction(db):
            db.executemany("UPDATE sessions SET snapshot_path = NULL WHERE id = ?",
                           [(session_id,) for session_id in removed])
        purged += len(removed)
        failed += len(rows) - len(removed)
    if purged or failed:
        with transaction(db):
            audit(db, "system", None, "purge", "snapshots.purge", "session", "",
                  {"purged": purged, "failed": failed, "received_before": cutoff})
    return purged, failed


def _remove_snapshot(snapshots_dir, relative):
    """True when the file is gone (or never existed inside the snapshots folder)."""
    path = safe_join(snapshots_dir, relative)
    if path is None:
        return True  # a path outside the folder was never ours to delete; just forget it
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        current_app.logger.warning("could not delete snapshot %s: %s", path, e)
        return False
    return True


def retention_days(db):
    return get_setting(db, "retention_days", DEFAULT_RETENTION_DAYS)


@click.command("purge")
@click.option("--days", type=click.IntRange(min=0), default=None,
              help="Retention in days for this run (default: the retention_days setting).")
@with_appcontext
def purge(days):
    """Delete device snapshots older than the retention setting; session records stay."""
    db = open_db(current_app.config["DATABASE"])
    days = retention_days(db) if days is None else days
    purged, failed = purge_snapshots(db, current_app.config["SNAPSHOTS_DIR"], days)
    click.echo(f"purged {purged} snapshots older than {days} days"
               + (f"; {failed} could not be deleted" if failed else ""))
    if failed:
        raise SystemExit(1)


cli_commands = [purge]


def init_app(app):
    """Run the purge on a schedule in a daemon thread while the server runs (not in tests).

    Config: PURGE_INTERVAL_SECONDS (default 3600; 0 turns the schedule off) and
    PURGE_FIRST_DELAY_SECONDS (default 60, so one-shot `flask` commands exit before it runs).
    """
    interval = app.config.get("PURGE_INTERVAL_SECONDS", 3600)
    if app.config.get("TESTING") or not interval:
        return None
    thread = threading.Thread(target=_purge_loop, name="snapshot-purge", daemon=True,
                              args=(app, interval, app.config.get("PURGE_FIRST_DELAY_SECONDS", 60)))
    thread.start()
    return thread


def _purge_loop(app, interval, first_delay):
    wait = threading.Event().wait
    wait(first_delay)
    while True:
        try:
            with app.app_context():
                db = open_db(app.config["DATABASE"], migrate_now=False)
                try:
                    purge_snapshots(db, app.config["SNAPSHOTS_DIR"], retention_days(db))
                finally:
                    db.close()
        except Exception:  # the next run tries again; a crashed thread would never purge again
            app.logger.exception("scheduled snapshot purge failed")
        wait(interval)


add_translations({
    "Users": "用户",
    "Devices": "设备",
    "Settings": "设置",
    "Overview": "概览",
    "Active users": "在用用户",
    "Active devices": "在用设备",
    "Sessions waiting for review": "待审核接待记录",
    "Match threshold": "匹配阈值",
    "Match margin": "匹配差距",
    "Frames that must agree": "需一致的帧数",
    "Greeting per language": "各语言问候语",
    "Snapshot retention (days)": "抓拍保留天数",
    "Add confirmed matches as face templates": "将确认的匹配加入为人脸模板",
    "Second factor for case details": "查看案件详情需第二重验证",
    "Each device holds only its own site's citizens": "每台设备只保存本网点的市民",
    "A device gets the citizens whose district is its site (and those without a"
    " district): smaller galleries name fewer strangers and greet more citizens.":
        "设备只接收所属区域与其网点相同的市民（以及未填写区域的市民）：人脸库越小，误认越少、识别越多。",
    "Loosest face distance that may be greeted by name; devices tighten it as the"
    " number of enrolled citizens grows. Lower is stricter.":
        "可按姓名问候的最大人脸距离；登记人数越多，设备会自动收紧。越低越严格。",
    "How much closer the best citizen must be than the next one.": "最佳匹配须比次佳匹配近多少。",
    "Frames in a row naming the same citizen before the greeting.": "问候前须连续识别为同一人的帧数。",
    "Placeholders: {name}, {surname}, {honorific}.": "占位符：{name}、{surname}、{honorific}。",
    "Device snapshots older than this are deleted; the session record stays.":
        "超过此天数的设备抓拍将被删除，接待记录保留。",
    "A clerk-confirmed snapshot becomes an extra template for that citizen.":
        "工作人员确认后的抓拍将成为该市民的额外模板。",
    "Citizens type the last four digits of their phone before case details show.":
        "市民须输入手机号后四位才能查看案件详情。",
    "Enter a number.": "请输入数字。",
    "Must be between {low} and {high}.": "须在 {low} 与 {high} 之间。",
    "A greeting needs 1 to 120 characters.": "问候语需为 1 至 120 个字符。",
    "Unbalanced braces in the greeting.": "问候语中的花括号不匹配。",
    "Unknown placeholder: {field}": "未知占位符：{field}",
    "Placeholders take no format: write {name}, not {name:...}.": "占位符不能带格式：请写 {name}，不要写 {name:...}。",
    "Settings saved.": "设置已保存。",
    "Nothing changed.": "没有更改。",
    "No such user.": "没有此用户。",
    "You cannot change your own role or disable yourself.": "不能更改自己的角色或停用自己。",
    "Unknown role.": "未知角色。",
    "A password needs at least 10 characters.": "密码至少需要 10 个字符。",
    "User created.": "用户已创建。",
    "User updated.": "用户已更新。",
    "Password reset for {user}.": "已为 {user} 重置密码。",
    "Unknown action.": "未知操作。",
    "No such device.": "没有此设备。",
    "Device {name} revoked: its token no longer works.": "设备 {name} 已吊销，其令牌立即失效。",
    "Role": "角色",
    "Active": "在用",
    "Disabled": "已停用",
    "Locked until": "锁定至",
    "Created": "创建时间",
    "Create user": "创建用户",
    "Create": "创建",
    "Disable": "停用",
    "Enable": "启用",
    "New password": "新密码",
    "Reset password": "重置密码",
    "Change role": "更改角色",
    "Kind": "类型",
    "Last seen": "最近在线",
    "Never": "从未",
    "Revoked": "已吊销",
    "Revoke": "吊销",
    "Register device": "登记设备",
    "Register": "登记",
    "Device token for {name}": "设备 {name} 的令牌",
    "Copy it to the device now: it is shown only this once and cannot be recovered.":
        "请立即复制到设备上：令牌只显示这一次，之后无法找回。",
    "Actor": "操作人",
    "Action": "操作",
    "Target": "对象",
    "Target type": "对象类型",
    "Target id": "对象编号",
    "Detail": "详情",
    "Address": "地址",
    "No entries match.": "没有符合条件的记录。",
    "Save settings": "保存设置",
    "Revoke this device? Its token stops working at once.": "确定吊销此设备？其令牌将立即失效。",
})
