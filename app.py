"""The Flask server: create_app() and the `flask --app app ...` commands.

Configuration: the defaults of server/settings.py -> instance/config.py (if present) -> the
environment -> test_config. The instance folder (database, photos, snapshots) is ./instance,
or the folder named by CIVIC_INSTANCE_PATH. Every blueprint and command is registered here.
"""
import os
import secrets

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from server import (admin, api, auth, casefile, cases, citizens, commands, dashboard, database,
                    errors, files, i18n, identify, imports, purge, queue, records, requests, review,
                    security, settings, tickets, times)

# One blueprint per feature; the device API (api, casefile) authenticates with bearer tokens,
# not cookies, so CSRF does not apply to it.
BLUEPRINTS = (auth.bp, citizens.bp, imports.bp, queue.bp, review.bp, cases.bp, dashboard.bp,
              records.bp, admin.bp, api.bp, casefile.bp, tickets.bp, tickets.api_bp, identify.bp)
TOKEN_BLUEPRINTS = (api.bp, casefile.bp, tickets.api_bp, identify.bp)
csrf = CSRFProtect()


def instance_path():
    return os.path.abspath(os.environ.get("CIVIC_INSTANCE_PATH") or
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance"))


def create_app(test_config=None):
    app = Flask(__name__, instance_path=instance_path(), instance_relative_config=True)
    private_folder(app.instance_path)
    app.config.from_mapping(settings.config_defaults(app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(settings.environment_overrides())
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    for key in ("PHOTOS_DIR", "SNAPSHOTS_DIR", "REPORTS_DIR", "UPLOADS_DIR"):
        private_folder(app.config[key])
    _wire(app)
    return app


def _wire(app):
    database.init_app(app)
    security.init_app(app)   # headers on every response; JSON that cannot crash the parser
    requests.init_app(app)   # before the routes: the <int:> converter, the body limit
    csrf.init_app(app)
    for bp in TOKEN_BLUEPRINTS:
        csrf.exempt(bp)
    auth.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    times.init_app(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    for command in commands.COMMANDS:
        app.cli.add_command(command)
    imports.init_app(app)    # end import jobs a stopped server left running
    purge.init_app(app)      # scheduled snapshot purge while the server runs (not in tests)


def private_folder(path):
    """A folder only the server's own user can enter: it holds ID numbers, phones and faces."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _instance_secret(instance):
    """A random secret kept in the instance folder: sessions survive restarts, nothing in git.
    Written whole before it takes its name (an empty file left by a crash had every page,
    the login included, answer 500), and an empty one is replaced."""
    path = os.path.join(instance, "secret_key")
    secret = _read_secret(path)
    if secret:
        return secret
    # Another process starting at the same time may win: use theirs. An empty one is replaced.
    if not files.write_whole(path, secrets.token_hex(32).encode(), 0o600, replace=False) \
            and not _read_secret(path):
        files.write_whole(path, secrets.token_hex(32).encode(), 0o600)
    return _read_secret(path)


def _read_secret(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""
