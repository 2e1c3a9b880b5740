"""The request's database connection and `flask --app app init-db` (as flaskr's db.py)."""
import click
from flask import current_app, g
from flask.cli import with_appcontext

from db import open_db


def get_db():
    """The request's (or command's) connection, opened on first use, closed at teardown."""
    if "db" not in g:
        g.db = open_db(current_app.config["DATABASE"], migrate_now=False)
    return g.db


def close_db(_exc=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database (scripts/run.sh runs it before serving)."""
    db = get_db()
    users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    click.echo(f"database ready: {current_app.config['DATABASE']}")
    if not users:
        click.echo("no users yet: flask --app app create-user NAME --role admin")


def init_app(app):
    open_db(app.config["DATABASE"]).close()  # create / migrate once, at start
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
