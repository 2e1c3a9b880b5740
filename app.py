"""The Flask server: create_app() and the `flask --app app ...` commands.

Configuration: defaults below -> instance/config.py (if present) -> test_config.
The instance folder (database, photos, snapshots) is ./instance, or CIVIC_INSTANCE_PATH.
"""
import os
import secrets

from flask import Flask

from server import cli, web


def instance_path():
    return os.path.abspath(os.environ.get("CIVIC_INSTANCE_PATH") or
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance"))


def create_app(test_config=None):
    app = Flask(__name__, instance_path=instance_path(), instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(_defaults(app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    for key in ("PHOTOS_DIR", "SNAPSHOTS_DIR", "REPORTS_DIR", "UPLOADS_DIR"):
        os.makedirs(app.config[key], exist_ok=True)
    web.init_app(app)
    cli.init_app(app)
    return app


def _defaults(instance):
    return {
        "DATABASE": os.path.join(instance, "civic.db"),
        "PHOTOS_DIR": os.path.join(instance, "photos"),
        "SNAPSHOTS_DIR": os.path.join(instance, "snapshots"),
        "REPORTS_DIR": os.path.join(instance, "reports"),
        "UPLOADS_DIR": os.path.join(instance, "uploads"),
        "MAX_CONTENT_LENGTH": 512 * 1024 * 1024,  # a bulk zip of photos
        "ID_NUMBER_RULE": "prc18",                # or "any": non-empty, up to 32 letters/digits
        "LOGIN_SLOW_AFTER": 3,                    # failed logins before each attempt must wait
        "LOGIN_LOCK_AFTER": 6,                    # failed logins before the account locks
        "LOGIN_LOCK_MINUTES": 15,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "IMPORT_WORKERS": os.cpu_count() or 1,
        "CASEFILE_SESSION_MAX_AGE_S": 300,        # a device may open a case file this long after greeting
        "SECOND_FACTOR_TRIES": 3,                 # wrong phone digits before the details lock
        "SECOND_FACTOR_WAIT_S": 2,                # first wait after a wrong try; doubles each time
        "TIMEZONE": os.environ.get("CIVIC_TIMEZONE", ""),  # e.g. Asia/Shanghai: "today" on the console
    }


def _instance_secret(instance):
    """A random secret kept in the instance folder: sessions survive restarts, nothing in git."""
    path = os.path.join(instance, "secret_key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    with open(path) as f:
        return f.read().strip()
