"""People: users, login/logout, lockout after repeated failures, role checks."""
import functools
from datetime import datetime, timedelta, timezone

from flask import (Blueprint, abort, current_app, flash, has_app_context, redirect,
                   render_template, request, url_for)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from db import now_iso, transaction

from . import audit
from .database import get_db
from .i18n import t
from .requests import client_ip

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
ROLES = ("admin", "clerk")


class User(UserMixin):
    def __init__(self, row):
        self.id = row["id"]
        self.username = row["username"]
        self.role = row["role"]

    @property
    def is_admin(self):
        return self.role == "admin"


class UserError(ValueError):
    pass


def init_app(app):
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None


@login_manager.user_loader
def _load_user(user_id):
    row = get_db().execute("SELECT * FROM users WHERE id = ? AND disabled = 0",
                           [user_id]).fetchone()
    return User(row) if row else None


def hash_password(password):
    """The password's hash by the configured method (scrypt; tests set a cheap one)."""
    method = current_app.config["PASSWORD_HASH_METHOD"] if has_app_context() else "scrypt"
    return generate_password_hash(password, method=method)


def create_user(db, username, password, role, actor=audit.CLI):
    """Add a user with a hashed password. Raises UserError for a bad role, name or password."""
    username = (username or "").strip()
    if role not in ROLES:
        raise UserError(f"role must be one of: {', '.join(ROLES)}")
    if not username or len(username) > 64:
        raise UserError("username must be 1 to 64 characters")
    if len(password or "") < 10:
        raise UserError("password must be at least 10 characters")
    if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise UserError(f"user {username!r} already exists")
    with transaction(db):
        db.execute("INSERT INTO users (username, password_hash, role, created_at)"
                   " VALUES (?, ?, ?, ?)",
                   [username, hash_password(password), role, now_iso()])
        audit.record(db, actor, "user.create", "user", username, {"role": role})


def role_required(*roles):
    """Login required, and the user's role among roles (403 otherwise). Admins may do all."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles and not current_user.is_admin:
                abort(403, "Your role does not allow this page.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


def user_actor():
    """The signed-in user making this request, as an audit actor."""
    return audit.Actor("user", current_user.id, current_user.username, client_ip())


def audit_user(action, target_type="", target_id="", detail=""):
    """Audit entry for the signed-in user's action (call inside the view's transaction)."""
    audit.record(get_db(), user_actor(), action, target_type, target_id, detail)


class LoginForm(FlaskForm):
    username = StringField("username", validators=[DataRequired()])
    password = PasswordField("password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        error = _check_login(form.username.data.strip(), form.password.data)
        if error is None:
            return redirect(_safe_next(request.args.get("next")))
        flash(error, "error")
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" else 401


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("queue.index"))


def _check_login(username, password):
    """None on success (user logged in), else the message to show."""
    db = get_db()
    row = db.execute("SELECT * FROM users WHERE username = ?", [username]).fetchone()
    now = datetime.now(timezone.utc)
    if row and row["locked_until"] and _parse(row["locked_until"]) > now:
        wait = int((_parse(row["locked_until"]) - now).total_seconds()) + 1
        return t("Too many failed attempts. Try again in {n} seconds.").format(n=wait)
    if not row or row["disabled"] or not check_password_hash(row["password_hash"], password):
        if row:
            _record_failure(db, row, now)
        return t("Wrong username or password.")
    with transaction(db):
        db.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                   [row["id"]])
        audit.record(db, audit.Actor("user", row["id"], username, client_ip()), "login")
    login_user(User(row))
    return None


def _record_failure(db, row, now):
    """Each failure past LOGIN_SLOW_AFTER makes the next attempt wait longer; past
    LOGIN_LOCK_AFTER the account locks for LOGIN_LOCK_MINUTES."""
    cfg = current_app.config
    with transaction(db):
        # counted in the UPDATE, not from the row read before: two server processes failing
        # the same account at once must both count (the UPDATE holds the row until commit)
        failures = db.execute("UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?"
                              " RETURNING failed_logins", [row["id"]]).fetchone()[0]
        locked_until = None
        if failures >= cfg["LOGIN_LOCK_AFTER"]:
            locked_until = now + timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"])
        elif failures >= cfg["LOGIN_SLOW_AFTER"]:
            locked_until = now + timedelta(seconds=2 ** (failures - cfg["LOGIN_SLOW_AFTER"] + 1))
        db.execute("UPDATE users SET locked_until = ? WHERE id = ?",
                   [locked_until and locked_until.strftime("%Y-%m-%dT%H:%M:%SZ"), row["id"]])
        audit.record(db, audit.Actor("user", row["id"], row["username"], client_ip()),
                     "login.failed", detail={"failures": failures})


def _parse(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _safe_next(target):
    """Only same-site paths: a login link must not bounce a clerk to another site.
    No control characters or backslashes either: "/<TAB>/evil.com" left werkzeug's redirect
    as "//evil.com" (the tab is dropped), and browsers read a backslash as a slash."""
    if target and target.startswith("/") and not target.startswith("//") \
            and target.isprintable() and "\\" not in target:
        return target
    return url_for("auth.index")
