"""`flask --app app ...` commands: thin click wrappers over plain functions.

Each feature module may define `cli_commands`, a list of click commands registered here.
Errors become one readable line and a non-zero exit.
"""
import os
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from db import open_db


def init_app(app):
    from . import imports, api, console, admin
    app.cli.add_command(create_user_command)
    app.cli.add_command(init_db_command)
    for module in (imports, api, console, admin):
        for command in getattr(module, "cli_commands", []):
            app.cli.add_command(command)


def cli_db():
    return open_db(current_app.config["DATABASE"])


def read_password():
    """CIVIC_PASSWORD when there is no terminal (scripts, CI), else a hidden prompt."""
    if not sys.stdin.isatty():
        password = os.environ.get("CIVIC_PASSWORD")
        if not password:
            raise click.ClickException("no terminal to ask for a password: set CIVIC_PASSWORD")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "clerk"]), required=True)
@with_appcontext
def create_user_command(username, role):
    """Create a user; the password comes from a prompt or CIVIC_PASSWORD."""
    from .auth import UserError, create_user
    try:
        create_user(cli_db(), username, read_password(), role)
    except UserError as e:
        raise click.ClickException(str(e))
    click.echo(f"created {role} {username}")


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database in the instance folder; run before starting the server
    (scripts/run.sh does): import jobs a stopped server left running are marked failed."""
    from .imports import fail_interrupted_jobs
    db = cli_db()
    interrupted = fail_interrupted_jobs(db)
    if interrupted:
        click.echo(f"{interrupted} import job(s) interrupted by the last shutdown marked failed")
    users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    click.echo(f"database ready: {current_app.config['DATABASE']}")
    if not users:
        click.echo("no users yet: flask --app app create-user NAME --role admin")
