"""Admin pages: users, devices, settings and the audit log.

Admins only: the blueprint checks the role before every view, so a route added later cannot
forget it. Plain functions do the work (and are what the tests and the CLI call); the views
parse forms, call them and write the audit entry.
"""
import hashlib
import json
import string
from dataclasses import dataclass
from datetime import date

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)
from flask_login import current_user
from markupsafe import Markup, escape

from db import transaction

from . import audit
from . import calibration as calibration_data
from . import charts
from . import devices as device_registry
from . import disk, faces, importer, limits, logins, user_sessions
from . import settings as registry
from .auth import (PASSWORD_MAX, ROLES, UserError, audit_user, create_user, guard, hash_password,
                   user_actor)
from .database import get_db, shared_gallery_sites
from .gallery import resend_gallery
from .i18n import N_, LABELS, counted, current_language, kind, label, number, t
from .requests import clamp_page_size, parse_day, parse_row_id
from .times import day_bounds
from .vocabulary import LANGUAGES

bp = Blueprint("admin", __name__, url_prefix="/admin")

GREETING_FIELDS = {"name", "surname", "honorific"}
AUDIT_TARGET_TYPES = ("session", "citizen", "case", "user", "device", "setting", "import")
guard(bp, "admin")   # every view: the role is checked before it runs


# --- settings ---------------------------------------------------------------------------------

class SettingInvalid(ValueError):
    """A setting value out of range or of the wrong form; the message is for the admin."""


def parse_setting(spec, form):
    """The value of spec in a submitted form. Raises SettingInvalid."""
    if spec.kind == "bool":
        return form.get(spec.name) in ("1", "on", "true")
    if spec.kind == "greetings":
        return {lang: _greeting(form.get(f"{spec.name}.{lang}", "")) for lang in LANGUAGES}
    raw = form.get(spec.name, "").strip()
    try:
        value = float(raw) if spec.kind == "float" else int(raw)
    except ValueError:
        raise SettingInvalid(t("Enter a number."))
    if not spec.low <= value <= spec.high:
        raise SettingInvalid(t("Must be between {low} and {high}.").format(
            low=number(spec.low, grouping=False), high=number(spec.high, grouping=False)))
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
    current = registry.values(db)
    values, errors = {}, {}
    for spec in registry.on_form(db):
        if spec.kind in ("float", "int") and spec.name not in form:
            values[spec.name] = current[spec.name]   # a form from before the setting existed
            continue
        try:
            values[spec.name] = parse_setting(spec, form)
        except SettingInvalid as e:
            errors[spec.name] = str(e)
    if errors:
        return {}, errors
    changes = {key: [current[key], value] for key, value in values.items() if current[key] != value}
    with transaction(db):
        for key, (_, value) in changes.items():
            registry.save(db, key, value)
        if "gallery.by_site" in changes:
            resend_gallery(db)  # every device re-checks every citizen against the new scope
        if changes:
            audit_user("settings.update", "setting", ",".join(sorted(changes)), changes)
    return changes, {}


def settings_version(values):
    """A short digest of every setting: the page sends back the one it showed."""
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    db = get_db()
    errors, values = {}, registry.values(db)
    version = settings_version(values)
    if request.method == "POST" and request.form.get("seen_settings", version) != version:
        # The form sends every setting back: a page opened before another admin tightened the
        # threshold would have loosened it again without a word.
        flash(t("Another admin changed the settings while this page was open. Nothing was saved;"
                " look at them again."), "error")
        return redirect(url_for("admin.settings"))
    if request.method == "POST":
        changes, errors = save_settings(db, request.form)
        if not errors:
            flash(t("Settings saved.") if changes else t("Nothing changed."), "ok")
            return redirect(url_for("admin.settings"))
        values = _submitted(request.form, values)
    return render_template("admin/settings.html", specs=registry.on_form(db), model=faces.active(db),
                           values=values, errors=errors, setting_help=setting_help,
                           languages=LANGUAGES, version=version), 400 if errors else 200


def setting_help(spec, model):
    """A setting's help on the page, as HTML: the face model's title is marked as a name
    (translate="no"), not words for the page's language."""
    title = Markup('<span translate="no">{}</span>').format(model.title)
    return spec.help_for(model, lambda text: escape(t(text)), title=title)


def _submitted(form, values):
    """What the admin typed, to show back with the errors."""
    shown = dict(values)
    for spec in registry.ON_FORM:  # names and kinds only
        if spec.kind == "greetings":
            shown[spec.name] = {lang: form.get(f"{spec.name}.{lang}", "") for lang in LANGUAGES}
        elif spec.kind == "bool":
            shown[spec.name] = form.get(spec.name) in ("1", "on", "true")
        else:
            shown[spec.name] = form.get(spec.name, "")
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
        db.execute("UPDATE users SET role = ?, disabled = ? WHERE id = ?",
                   [role or row["role"], int(row["disabled"] if disabled is None else disabled),
                    row["id"]])
        if disabled:
            user_sessions.revoke_all(db, row["id"])
        if changes:
            audit_user("user.update", "user", row["username"], changes)
    return changes


def reset_password(db, row, password):
    """Set a new password, end every session signed in with the old one and clear the
    sign-in locks. Raises UserError for a short password."""
    if len(password or "") < 10:
        raise UserError(t("A password needs at least 10 characters."))
    if len(password) > PASSWORD_MAX:     # sign-in refuses longer ones
        raise UserError(t("A password has at most {n} characters.").format(n=PASSWORD_MAX))
    with transaction(db):
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                   [hash_password(password), row["id"]])
        user_sessions.revoke_all(db, row["id"], keep=session.get("sid"))
        logins.clear(db, row["username"])
        audit_user("user.password_reset", "user", row["username"])


def unlock_user(db, row):
    """Clear the sign-in locks of a user, from every address."""
    with transaction(db):
        logins.clear(db, row["username"])
        audit_user("user.unlock", "user", row["username"])


@bp.route("/users", methods=["GET", "POST"])
def users():
    db = get_db()
    status = 200
    if request.method == "POST":
        form = request.form
        try:
            create_user(db, form.get("username", ""), form.get("password", ""), form.get("role", ""),
                        actor=user_actor())
        except UserError as e:
            flash(str(e), "error")
            status = 400
        else:
            flash(t("User created."), "ok")
            return redirect(url_for("admin.users"))
    rows = db.execute("SELECT * FROM users ORDER BY username").fetchall()
    failures = {row["username"]: logins.recent_failures(db, row["username"]) for row in rows}
    return render_template("admin/users.html", users=rows, roles=ROLES, failures=failures), status


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
        elif action == "unlock":
            unlock_user(db, row)
            flash(t("User updated."), "ok")
        else:
            abort(400, t("Unknown action."))
    except UserError as e:
        flash(str(e), "error")
    return redirect(url_for("admin.users"))


# --- devices ----------------------------------------------------------------------------------

@bp.route("/devices", methods=["GET", "POST"])
def devices():
    db = get_db()
    token, status, form = None, 200, request.form
    if request.method == "POST":
        try:
            token = device_registry.register_device(db, form.get("name", ""), form.get("kind", ""),
                                                    form.get("site", ""), actor=user_actor())
        except device_registry.DeviceError as e:
            flash(str(e), "error")
            status = 400
        else:
            status = 201
    response = current_app.make_response((render_template(
        "admin/devices.html", devices=device_registry.device_rows(db), token=token,
        token_device=form.get("name", "").strip()), status))
    # The token is shown exactly once: no cached copy in the browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/devices/<int:device_id>/revoke", methods=["POST"])
def revoke(device_id):
    db = get_db()
    row = db.execute("SELECT * FROM devices WHERE id = ?", [device_id]).fetchone()
    if row is None:
        abort(404, t("No such device."))
    try:
        device_registry.revoke_device(db, row["name"], actor=user_actor())
    except device_registry.DeviceError as e:
        flash(str(e), "error")
    else:
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
    sql = (f"SELECT * FROM audit_log WHERE {' AND '.join(where) or '1 = 1'}"
           " ORDER BY id DESC LIMIT ?")
    return db.execute(sql, params + [limit]).fetchall()


def audit_target_url(entry):
    """A link to what an audit entry is about, where the console has a page for it."""
    target, kind = entry["target_id"], entry["target_type"]
    if kind == "session" and target:
        return url_for("review.session_detail", session_id=target)
    if kind in ("citizen", "case") and target.isdigit():
        endpoint = "cases.case_file" if kind == "citizen" else "cases.detail"
        return url_for(endpoint, **{f"{kind}_id": int(target)})
    return None


# Every action the code writes has a label (a test checks): the filter offers them by name.
AUDIT_ACTIONS = tuple(code for code in LABELS if "." in code or code == "login")


def audit_actions(selected=""):
    """[(code, label)] for the action filter, by label; a filtered code without a label too."""
    codes = set(AUDIT_ACTIONS) | ({selected} if selected else set())
    return sorted(((code, label(code)) for code in codes), key=lambda item: item[1])


def actor_roles(db, rows):
    """{user id: role} of the users who acted in rows: an admin is shown as one, not as staff."""
    ids = sorted({r["actor_id"] for r in rows if r["actor_type"] == "user" and r["actor_id"]})
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    return {r["id"]: r["role"] for r in
            db.execute(f"SELECT id, role FROM users WHERE id IN ({marks})", ids).fetchall()}


def audit_actor(entry, roles):
    """(name, what they are) of who acted: a user's role, a device, the system's job."""
    if entry["actor_type"] == "system":
        name = entry["actor_name"] or ""
        return t(audit.SYSTEM_ACTORS.get(name, name)), kind("system")
    role = roles.get(entry["actor_id"]) if entry["actor_type"] == "user" else None
    return entry["actor_name"] or "", label(role) if role else kind(entry["actor_type"])


def _setting_label(name):
    spec = next((s for s in registry.ADMIN if s.name == name), None)
    return t(spec.label) if spec and spec.label else t(SETTING_TARGETS.get(name, name))


SETTING_TARGETS = {"calibration": N_("Calibration"), "face.model": N_("Face model")}


def audit_target(entry):
    """What an entry's target id reads as: a setting by its label, else the id as stored."""
    if entry["target_type"] == "setting" and entry["target_id"]:
        comma = "、" if current_language() == "zh" else ", "
        return comma.join(_setting_label(name) for name in entry["target_id"].split(","))
    return entry["target_id"]


def audit_detail(entry):
    """[(label, value, is_data)] of an entry's detail for people: keys in the page's language,
    [old, new] as "old → new", yes/no, codes by their label; is_data marks what a person or a
    file wrote (a note, a search, an ID number), shown as written."""
    text = entry["detail"] or ""
    try:
        detail = json.loads(text) if text.startswith("{") else None
    except ValueError:
        detail = None
    if detail is None:
        return [("", text, True)] if text else []
    changes = entry["action"] in audit.CHANGES
    items = []
    for key, value in detail.items():
        name = _setting_label(key) if entry["action"] == "settings.update" \
            else t(audit.DETAIL_KEYS.get(key, key))
        if changes and isinstance(value, list) and len(value) == 2:
            shown = " → ".join(_detail_value(key, v) for v in value)
        else:
            shown = _detail_value(key, value)
        items.append((name, shown, _is_data(key, value)))
    return items


def _detail_value(key, value):
    if isinstance(value, bool):
        return t("yes") if value else t("no")
    if value is None or value == "":
        return "—"
    if isinstance(value, (int, float)):
        return str(number(value))
    if isinstance(value, list):
        shown = ", ".join(_detail_value(key, v) for v in value[:10])
        return shown + (f" … (+{len(value) - 10})" if len(value) > 10 else "")
    if isinstance(value, dict):
        return "; ".join(f"{label(k) if k in ('zh', 'yue', 'en') else t(audit.DETAIL_KEYS.get(k, k))}:"
                         f" {_detail_value(k, v)}" for k, v in value.items())
    if key in audit.CODED_KEYS:
        return t(audit.CODE_WORDS[value]) if value in audit.CODE_WORDS else label(value)
    return str(value)


def _is_data(key, value):
    """Text a person or a file wrote (not a code, a number or yes/no): shown as written."""
    if key in audit.CODED_KEYS:
        return False
    if isinstance(value, (list, dict)):
        return any(_is_data(key, v) for v in (value.values() if isinstance(value, dict) else value))
    return isinstance(value, str) and value != ""


@bp.route("/audit")
def audit_log():
    db = get_db()
    flt = AuditFilter.from_args(request.args)
    before = request.args.get("before", "")
    limit = clamp_page_size(request.args.get("per_page"))
    rows = audit_page(db, flt, parse_row_id(before), limit)
    roles = actor_roles(db, rows)
    return render_template("admin/audit.html", rows=rows, flt=flt, target_types=AUDIT_TARGET_TYPES,
                           actions=audit_actions(flt.action), audit_target_url=audit_target_url,
                           audit_actor=lambda e: audit_actor(e, roles), audit_target=audit_target,
                           audit_detail=audit_detail,
                           next_before=rows[-1]["id"] if len(rows) == limit else None,
                           paged=bool(before))


# --- overview ---------------------------------------------------------------------------------

@bp.context_processor
def _site_gallery_warning():
    # devices of several sites each holding every citizen (database.shared_gallery_sites, which
    # init-db prints too); a function, so only the pages showing admin/_site_galleries.html query
    return {"shared_gallery_sites": lambda: shared_gallery_sites(get_db())}


# --- calibration ------------------------------------------------------------------------------

@bp.route("/calibration", methods=["GET", "POST"])
def calibration():
    """The registry's measured false-match curve, the thresholds it gives, and the evidence."""
    db = get_db()
    report = None if request.method == "POST" else calibration_data.latest_report(db)
    if report is None:   # never measured, or the admin asked to measure now
        report = calibration_data.measure_registry(db)
        with transaction(db):
            audit_user("calibration.measured", "setting", "calibration",
                       {"source": report["source"], "people": report["people"]})
        if request.method == "POST":
            return redirect(url_for("admin.calibration"))
    return render_template("admin/calibration.html", r=report, notes=calibration_notes(report),
                           charts=_calibration_charts(report, faces.active(db).bounds.tick))


PRIOR_LABELS = {"east_asian": N_("Prior measured on East-Asian faces"),
                "mixed": N_("Prior measured on mixed faces")}
# The note the calibration stores with a count {n} (as its plural): said with the count's form.
FLAGGED = "{n} citizens flagged as possible duplicates are left out."


def calibration_notes(r):
    """The report's notes in the page's language, "1 citizen", not "1 citizens"."""
    notes = []
    for text, args in r.get("note_parts", []):
        if text == FLAGGED:
            notes.append(counted(args.get("n"), "{n} citizen flagged as a possible duplicate is left out.",
                                 "{n} citizens flagged as possible duplicates are left out."))
        else:
            notes.append(t(text).format(**{k: number(v) for k, v in args.items()}))
    return notes


def _calibration_charts(r, tick):
    xs = [p["t"] for p in r["curve"]]
    everyone = r.get("registry") or {}
    marker = None
    if everyone:
        n = everyone["gallery_size"]
        marker = (everyone["threshold"], counted(n, "threshold for {n} citizen", "threshold for {n} citizens")
                  + f" ({everyone['threshold']:.3f})")
    series = [(t("Different people (enrolment)"), r["histogram"]["non_mated"])]
    if sum(r["histogram"]["operational"]):
        series.append((t("Different people (device frames)"), r["histogram"]["operational"]))
    if sum(r["histogram"]["genuine"]):
        series.append((t("Same person (confirmed greetings)"), r["histogram"]["genuine"]))
    upper = [p["fmr_upper"] for p in r["curve"]]
    if r.get("source") == "measured":
        lines = [(t("Upper bound at 95% (what the thresholds use)"), upper, "band"),
                 (t("Measured false-match rate"), [p["fmr"] for p in r["curve"]], "solid")]
    else:   # nothing measured: the curve is the more cautious prior, not a rate of its own
        lines = [(t("What the thresholds use: the more cautious prior at each distance"), upper, "band")]
    lines += [(t(PRIOR_LABELS.get(name, name)), table, style) for (name, table), style
              in zip(r.get("priors", {}).items(), ("dashed", "dotted", "dashed", "dotted"))]
    return {
        "histogram": charts.histogram(r["bins"], series, t("Face distances"), t("distance"),
                                      t("share of pairs"), marker, tick=tick),
        "fmr": charts.log_lines(xs, lines, t("False-match rate by threshold"), t("distance threshold"),
                                t("false-match rate (log)"), marker, tick=tick,
                                empty=t("no pair this close: nothing to draw on a log scale")),
    }


# --- the import page ----------------------------------------------------------------------------

@bp.app_template_global()
def import_columns():
    """[(file, [(column, required, Chinese headers also read for it)])] of the bulk import, from
    the importer's own lists (server/importer.py), for the import page (admins only, as this
    blueprint's pages)."""
    def columns(required, optional):
        return [(name, name in required, [alias for alias, column in importer.HEADER_ALIASES.items()
                                          if column == name]) for name in (*required, *optional)]
    return [("Records", columns(importer.RECORD_COLUMNS, importer.RECORD_OPTIONAL)),
            ("Cases", columns(importer.CASE_COLUMNS, importer.CASE_OPTIONAL))]


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
    return render_template("admin/index.html", counts=counts, settings=registry.values(db),
                           alerts=limits.recent_alerts(db), disk_warnings=disk.warnings(current_app.config))
