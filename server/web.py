"""Wire the server together: database per request, login, CSRF, error pages, blueprints."""
from flask import current_app, g, request
from flask_wtf.csrf import CSRFProtect

from db import open_db

csrf = CSRFProtect()


def get_db():
    """The request's database connection (opened on first use, closed at teardown)."""
    if "db" not in g:
        g.db = open_db(current_app.config["DATABASE"], migrate_now=False)
    return g.db


def close_db(_exc=None):
    db = g.pop("db", None)
    if db is not None:
        db.conn.close()


def init_app(app):
    from . import auth, errors, i18n
    open_db(app.config["DATABASE"]).conn.close()  # create / migrate once, at start
    app.teardown_appcontext(close_db)
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
