"""People: users, login/logout, lockout after repeated failures, role checks."""
import functools

from flask import (Blueprint, abort, current_app, flash, has_app_context, redirect,
                   render_template, request, session, url_for)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from db import now_iso, transaction

from . import audit, disk, logins, user_sessions
from .database import get_db
from .errors import error_response, wants_json
from .i18n import t
from .redirects import safe_path
from .requests import client_ip

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
ROLES = ("admin", "clerk")
USERNAME_MAX = 64        # as create_user allows; the sign-in form refuses longer ones unseen
PASSWORD_MAX = 1024      # a hash of a 4 MB password is CPU for nothing


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
    """The signed-in user, only while their server-side session lives (see user_sessions)."""
    db = get_db()
    row = db.execute("SELECT * FROM users WHERE id = ? AND disabled = 0", [user_id]).fetchone()
    if row is None or not user_sessions.check(db, session.get("sid"), row["id"], current_app.config):
        return None
    return User(row)


def hash_password(password):
    """The password's hash by the configured method (scrypt; tests set a cheap one)."""
    method = current_app.config["PASSWORD_HASH_METHOD"] if has_app_context() else "scrypt"
    return generate_password_hash(password, method=method)


def create_user(db, username, password, role, actor=audit.CLI):
    """Add a user with a hashed password. Raises UserError for a bad role, name or password."""
    username = (username or "").strip()
    if role not in ROLES:
        raise UserError(f"role must be one of: {', '.join(ROLES)}")
    if not username or len(username) > USERNAME_MAX:
        raise UserError(f"username must be 1 to {USERNAME_MAX} characters")
    if len(password or "") < 10:
        raise UserError("password must be at least 10 characters")
    if len(password) > PASSWORD_MAX:
        raise UserError(f"password must be at most {PASSWORD_MAX} characters")
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
                if wants_json():     # a page's poll: the one error shape, not the login page
                    return error_response(401, "Please sign in.")
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles and not current_user.is_admin:
                abort(403, "Your role does not allow this page.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


def user_actor():
    """The signed-in user making this request, as an audit actor."""
    return audit.Actor("user", current_user.id, current_user.username, client_ip())


def guard(blueprint, *roles):
    """Check the role before every view of a blueprint, so a route added later cannot forget
    it: anonymous callers go to the login, other roles get 403."""
    blueprint.before_request(role_required(*roles)(lambda: None))


def audit_user(action, target_type="", target_id="", detail=""):
    """Audit entry for the signed-in user's action (call inside the view's transaction)."""
    audit.record(get_db(), user_actor(), action, target_type, target_id, detail)


class LoginForm(FlaskForm):
    # bounded before anything is counted: a 1 MB username was stored twice a try
    username = StringField("username", validators=[DataRequired(), Length(max=USERNAME_MAX + 8)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=PASSWORD_MAX)])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        # a full disk spends the reserve on it (server/disk.py): a clerk can still sign in
        error = disk.retry_after_release(current_app.config, _check_login,
                                         form.username.data.strip(), form.password.data)
        if error is None:
            return redirect(_safe_next(request.args.get("next")))
        flash(error, "error")
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" else 401


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out here and on the server: the old cookie no longer works anywhere."""
    if session.get("sid"):
        user_sessions.revoke(get_db(), session["sid"])
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("queue.index"))


def _check_login(username, password):
    """None on success (user signed in), else the message to show. Unknown and known usernames
    take the same path: the same messages, a password hash checked either way."""
    db, ip, config = get_db(), client_ip(), current_app.config
    # judged and counted as a failure before the password is checked: parallel tries each
    # see the ones before them (server/logins.py)
    wait = logins.reserve(db, config, username, ip)
    if wait:
        return t("Too many failed attempts. Try again in {n} seconds.").format(n=wait)
    row = db.execute("SELECT * FROM users WHERE username = ?", [username]).fetchone()
    matches = check_password_hash(row["password_hash"] if row else _dummy_hash(), password)
    if not (row and matches and not row["disabled"]):
        with transaction(db):
            failures = logins.pair_failures(db, username, ip)
            audit.record(db, audit.Actor("user", row["id"] if row else None, username, ip),
                         "login.failed", detail={"failures": failures})
        return t("Wrong username or password.")
    with transaction(db):
        logins.clear(db, username, ip)
        session_id = user_sessions.start(db, row["id"], ip)
        audit.record(db, audit.Actor("user", row["id"], username, ip), "login")
    session.clear()       # a fresh cookie at sign-in: nothing set before it carries over
    session["sid"] = session_id
    login_user(User(row))
    return None


@functools.lru_cache(maxsize=None)
def _dummy_hash_of(method):
    return generate_password_hash("not anyone's password", method=method)


def _dummy_hash():
    """A hash to check unknown usernames against, so they take as long as known ones."""
    return _dummy_hash_of(current_app.config["PASSWORD_HASH_METHOD"])


def _safe_next(target):
    """Only same-site paths: a login link must not bounce a clerk to another site."""
    return safe_path(target) or url_for("auth.index")
