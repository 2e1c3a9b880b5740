"""Wire the server together: database per request, login, CSRF, error pages, blueprints."""
from flask import current_app, g, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.routing import IntegerConverter

from db import open_db

csrf = CSRFProtect()
SQLITE_MAX_INT = 2 ** 63 - 1
# MAX_CONTENT_LENGTH is sized for the bulk photo zip; no other request needs more than this
# (a device session with its snapshot is ~2 MB).
BODY_MAX_BYTES = 4 * 1024 * 1024
BIG_UPLOAD_ENDPOINTS = ("imports.index",)


class RowIdConverter(IntegerConverter):
    """<int:...> limited to what SQLite can store: /citizens/99999999999999999999 is a 404,
    not an OverflowError (500) when the id reaches the query."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", SQLITE_MAX_INT)
        super().__init__(map, *args, **kwargs)


def _limit_body():
    """Cap the body of every request but the bulk upload. A chunked body has no
    Content-Length to refuse up front, so without this a JSON or form request was read whole
    into memory up to MAX_CONTENT_LENGTH (512 MB) before anything looked at it."""
    if request.endpoint not in BIG_UPLOAD_ENDPOINTS:
        request.max_content_length = min(BODY_MAX_BYTES, current_app.config["MAX_CONTENT_LENGTH"]
                                          or BODY_MAX_BYTES)


def get_db():
    """The request's database connection (opened on first use, closed at teardown)."""
    if "db" not in g:
        g.db = open_db(current_app.config["DATABASE"], migrate_now=False)
    return g.db


def close_db(_exc=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app):
    from . import auth, errors, i18n
    open_db(app.config["DATABASE"]).close()  # create / migrate once, at start
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    app.teardown_appcontext(close_db)
    app.before_request(_limit_body)  # before CSRF's check, which reads the form
    csrf.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    for bp in _blueprints():
        app.register_blueprint(bp)
    from . import admin
    admin.init_app(app)  # scheduled snapshot purge while the server runs (not under TESTING)
    # The device API authenticates with bearer tokens, not cookies: CSRF does not apply.
    from . import api, casefile
    csrf.exempt(api.bp)
    csrf.exempt(casefile.bp)


def _blueprints():
    from . import auth, citizens, imports, api, casefile, console, admin
    return [auth.bp, citizens.bp, imports.bp, api.bp, casefile.bp, console.bp, admin.bp]


def client_ip():
    return request.remote_addr or ""
