"""The request's database connection and `flask --app app init-db` (as flaskr's db.py)."""
from urllib.parse import urlsplit, urlunsplit

import click
from flask import current_app, g
from flask.cli import with_appcontext

from db import open_db, transaction
from recognition import models

from . import disk, faces
from . import settings as registry


def get_db():
    """The request's (or command's) connection, opened on first use, closed at teardown."""
    if "db" not in g:
        g.db = open_db(current_app.config["DATABASE"], migrate_now=False)
    return g.db


def close_db(_exc=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


def _where(target):
    """The database's path or URL, without a password (in the address or its query)."""
    parts = urlsplit(str(target))
    if not parts.scheme:
        return str(target)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    query = "&".join("password=***" if pair.lower().startswith("password=") else pair
                     for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(query=query))


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database (scripts/run.sh runs it before serving)."""
    db = get_db()
    users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    click.echo(f"database ready: {current_app.config['DATABASE']}")
    model, wanted = faces.active(db), current_app.config["FACE_MODEL"]
    click.echo(f"face model: {model.id}")
    if model.name != wanted:
        click.echo(f"this registry greets on {model.name}, FACE_MODEL is {wanted}: to switch,"
                   f" flask --app app reencode --model {wanted}")
    for target, staged in db.execute("SELECT face_model, count(*) FROM reencode_staged"
                                     " GROUP BY face_model").fetchall():
        click.echo(f"a reencode to {target} stopped with {staged} faces encoded: run it again"
                   " to finish (the registry greets on the old model until then)")
    _warn_shared_galleries(db)
    for line in disk.warnings(current_app.config):
        click.echo(f"warning: {line}")
    if not users:
        click.echo("no users yet: flask --app app create-user NAME --role admin")


def shared_gallery_sites(db):
    """The sites of the active devices when devices of more than one site each hold every
    citizen (gallery.by_site off): then any one kiosk's token holds every hall's names and
    face templates. [] when galleries are per site, or all devices stand at one site.
    init-db prints it; the admin pages show it (server/admin.py)."""
    if registry.value(db, "gallery.by_site"):
        return []
    sites = [row[0] for row in db.execute("SELECT DISTINCT site FROM devices WHERE revoked_at"
                                          " IS NULL AND site != '' ORDER BY site")]
    return sites if len(sites) > 1 else []


def _warn_shared_galleries(db):
    sites = shared_gallery_sites(db)
    if sites:
        click.echo(f"warning: per-site galleries are off and devices stand at {len(sites)} sites"
                   f" ({', '.join(sites)}): every device holds every citizen's name and face"
                   " template; turn on gallery.by_site at /admin/settings")


def init_app(app):
    try:
        _start(app)
    except (models.UnknownModel, models.ModelFileError) as e:
        raise SystemExit(f"cannot start: {e}") from e
    except Exception as e:
        # a damaged file, a database from a newer version, a folder that cannot be written,
        # PostgreSQL not running: one line that says which and what to do, not a traceback
        # (which is still logged, at debug level, for a fault of ours)
        app.logger.debug("database start failed", exc_info=True)
        raise SystemExit(f"cannot use the database {_where(app.config['DATABASE'])}:"
                         f" {type(e).__name__}: {e}") from e
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)


def _start(app):
    """Create / migrate the database once, at start; a new registry takes FACE_MODEL as its
    face model; the active model's file must be there and be the file its profile names
    (checked by its sha256), or nothing starts: a registry that cannot encode a face would
    refuse every photo of an import and every case file."""
    db = open_db(app.config["DATABASE"])
    try:
        models.get(app.config["FACE_MODEL"])
        with transaction(db):
            model = faces.start_on(db, app.config["FACE_MODEL"])
    except BaseException:
        db.close()
        raise
    _keep_or_close(app, db)
    model.check_file()


def _keep_or_close(app, db):
    """A SQLite file's start-up connection stays open with the app. SQLite creates the WAL
    and shared-memory files beside the database when a connection opens and there are none,
    and deletes them when the last one closes: on a full disk every request's new connection
    then failed to create them ("disk I/O error", a 500 even for a device's read). One idle
    connection held for the process keeps them, so a full disk still reads."""
    if db.dialect == "sqlite":
        app.extensions["sqlite_keeper"] = db
    else:
        db.close()
